"""The extension's configuration: the ``AutoawaitRunners`` traitlets Configurable.

In ``ipython_config.py``::

    c.InteractiveShellApp.extensions = ["autoawait_runners"]
    c.AutoawaitRunners.default = "thread"
    c.AutoawaitRunners.nest = False

IPython applies configuration before extensions load, so a runner name cannot go in
``c.InteractiveShell.loop_runner``; a dotted path (``"autoawait_runners.thread_runner"``)
can, and works without the extension.
"""

from __future__ import annotations

import copy
from typing import Any

from traitlets import Bool, Enum, Float, TraitError, Unicode
from traitlets.config import Config, Configurable

from .._core._messages import say


class AutoawaitRunners(Configurable):
    """Options of the autoawait_runners IPython extension."""

    default = Unicode(
        "asyncio",
        help="""The runner %load_ext autoawait_runners selects, by catalogue name
        (`%autoawait --list` shows them). An empty string keeps the runner the shell
        already has. A name that is unknown or whose library is missing gives one line at
        start-up, and the asyncio runner is selected instead. Read when the extension
        loads: in a session, %autoawait NAME switches.""",
    ).tag(config=True)

    nest = Bool(
        True,
        help="""Turn the nesting shim on when the extension loads, so that cells (and their
        tasks) can call asyncio.run() and loop.run_until_complete() while a loop runs.
        Set in a session (%config AutoawaitRunners.nest = False), it takes effect at
        once, as %nest on|off does; %unload_ext turns the shim off again if loading turned
        it on.""",
    ).tag(config=True)

    loop_factory = Unicode(
        "",
        help="""A dotted path to a zero-argument callable that returns the event loop the
        asyncio and thread runners run their session on (``"uvloop.new_event_loop"``, say).
        Empty: asyncio's own. The asyncio runner takes only loops of asyncio's own class
        (it re-enters its loop between cells); other loops need the thread runner. Set in a
        session (%config), it applies to the sessions those runners start after it:
        switch to another runner and back.""",
    ).tag(config=True)

    nest_trio = Bool(
        False,
        help="""With the nesting shim on, also run trio.run() called from a cell of the trio
        runner in the cell's own task, on the session's trio loop. Off by default: it runs
        every trio-runner cell in a greenlet portal, which costs each cell about 80 us and
        each step of its task two greenlet switches. %nest trio on|off, or %config, change
        it at once.""",
    ).tag(config=True)

    rerun = Enum(
        ["warn", "cancel", "keep"],
        "warn",
        help="""What running a notebook cell again does to the tasks its earlier runs left
        alive (told by the frontend's cellId; in a terminal, by nothing: each input is a
        new cell). 'warn': one line names them and they keep running; 'cancel': they are
        cancelled, and their finally blocks run, before the new run starts; 'keep': nothing
        is said or done (B2).""",
    ).tag(config=True)

    blocked_warning = Float(
        1.0,
        min=0.0,
        help="""Seconds the session loop may go without coming back to wait for events,
        while no cell runs, before one line names what holds it (the task or callback and
        its line of code, sampled from another thread); %tasks blocked lists the recent
        ones with their stacks. 0 turns the watch off (B3).""",
    ).tag(config=True)


def load_config(parent: Any) -> AutoawaitRunners:
    """The options from ``parent``'s configuration; a bad value is one line, not a
    traceback, and the option keeps its default (F5)."""
    section = parent.config.get("AutoawaitRunners", {})
    if not section:
        return AutoawaitRunners(parent=parent)
    checker = AutoawaitRunners()
    cleaned = copy.deepcopy(parent.config)
    for name, value in list(section.items()):
        if not checker.has_trait(name):
            continue  # traitlets warns about options it does not know
        try:
            setattr(checker, name, value)
        except TraitError:
            trait = checker.traits()[name]
            say(
                f"c.AutoawaitRunners.{name} = {value!r} is not valid (it takes "
                f"{trait.info()}); the default {trait.default_value!r} is used"
            )
            del cleaned.AutoawaitRunners[name]
    return AutoawaitRunners(parent=parent, config=Config(cleaned))
