"""The prompt's input hook: IPython's one slot for what runs while the terminal prompt waits
for input, and how the session shares it with the user's GUI.

``%gui tk``, ``%gui qt`` and ``%matplotlib`` put a GUI hook in that slot (``enable_gui``),
and ``prompt_for_code`` hands it to prompt_toolkit at each prompt
(``pt_app.prompt(inputhook=...)``). The runners need that time too: the ``asyncio`` and
``trio-guest`` runners' session loop runs in the main thread, so only from there between
cells (R2); the thread runners' cells made the GUI's objects in their loop thread, where
the GUI must then run, if the toolkit allows it (:data:`ANY_THREAD`).

So the slot stays the user's: ``%gui`` and ``%matplotlib`` do, and say, what they do without
the extension (``active_eventloop`` is what they set, and a second GUI is refused by IPython
as ever). The hook is composed at each prompt instead: the shell's ``pt_app.prompt`` is
wrapped (through ``Changes``: unloading puts it back), and what it passes on is the active
runner's :meth:`~autoawait_runners._runners._base.Runner.run_until_readable` with the user's
GUI hook in it. (``pt_app.prompt_async`` too, which IPython reads input with under ``%gui
asyncio``, calling no hook: it says, once, what that costs the session.) No other module
touches the slot; no runner calls ``enable_gui``.

A GUI hook that fails (a Tk window made in another thread than the one its hook runs in)
is one line, and is left out until ``%gui`` changes: without the extension it ends IPython.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._messages import say
from .._runners._base import GuiHook, Runner

if TYPE_CHECKING:
    from ._extension import Extension

#: The GUI event loops whose objects can live in any one thread: Tk's (a Tcl interpreter
#: per thread). The thread runners serve them in their loop thread, where the cells made
#: them. Qt's, GTK's, wx's want the main thread (Qt widgets made in another one hang
#: IPython at exit once that thread has run their events): they stay there, as IPython
#: runs them, and what a loop thread's cell makes of them gets no events.
ANY_THREAD = frozenset({"tk"})

#: What was said about a session that could not run at the prompt: each line once.
_said: set[str] = set()


def install(extension: Extension) -> None:
    """Compose the prompt's input hook with the active runner's, in a terminal shell."""
    prompt_session = getattr(extension.shell, "pt_app", None)
    if prompt_session is None:  # not a terminal, or --simple-prompt: no input hook at all
        return
    shell = extension.shell
    gui_state = _GuiState(shell)
    changes = extension.changes
    changes.set_attribute(
        prompt_session,
        "prompt",
        _composing(prompt_session.prompt, shell, gui_state, lambda: extension.active),
    )
    changes.set_attribute(
        prompt_session,
        "prompt_async",
        _saying_what_gui_asyncio_costs(
            prompt_session.prompt_async, shell, gui_state, lambda: extension.active
        ),
    )


def _composing(
    prompt: Callable[..., Any], shell: Any, gui_state: _GuiState, active: Callable[[], Any]
) -> Callable[..., Any]:
    """``pt_app.prompt``, with the input hook it is given composed with the runner's."""

    @functools.wraps(prompt)
    def prompt_composed(*args: Any, inputhook: GuiHook | None = None, **kwargs: Any) -> Any:
        gui = gui_state.hook_now(inputhook)
        runner = active()
        if isinstance(runner, Runner) and (
            runner.runs_at_the_prompt
            or (gui is not None and getattr(shell, "active_eventloop", None) in ANY_THREAD)
        ):
            inputhook = functools.partial(_wait_for_input, runner, gui)
        else:  # the GUI in the main thread, as IPython runs it
            inputhook = gui
        return prompt(*args, inputhook=inputhook, **kwargs)

    return prompt_composed


def _saying_what_gui_asyncio_costs(
    prompt_async: Callable[..., Any], shell: Any, gui_state: _GuiState, active: Callable[[], Any]
) -> Callable[..., Any]:
    """``pt_app.prompt_async``, which IPython uses instead of ``prompt`` under ``%gui
    asyncio``: the prompt then runs on IPython's own asyncio loop, no input hook is called,
    and a session loop in the main thread stands still until the next cell. Said once."""

    @functools.wraps(prompt_async)
    def prompt_async_said(*args: Any, **kwargs: Any) -> Any:
        runner = active()
        if (
            isinstance(runner, Runner)
            and runner.runs_at_the_prompt
            and getattr(shell, "active_eventloop", None) == "asyncio"
            and not gui_state.said_gui_asyncio
        ):
            gui_state.said_gui_asyncio = True
            say(
                f"%gui asyncio reads input on IPython's own loop: {runner.library} background "
                "tasks run only while cells run (%gui alone turns it off)"
            )
        return prompt_async(*args, **kwargs)

    return prompt_async_said


def _wait_for_input(runner: Runner, gui: GuiHook | None, context: Any) -> None:
    """The composed hook: the runner's session until input, the GUI waiting in it; or the
    GUI alone, as without the extension, when the runner has no session to run now."""
    try:
        if runner.run_until_readable(context.fileno(), gui):
            return
    except Exception as exc:  # the session's trouble must not end the prompt
        message = (
            f"the {runner.name} session could not run at the prompt "
            f"({type(exc).__name__}: {exc}); it runs again with the next cell"
        )
        if message not in _said:
            _said.add(message)
            say(message)
    if gui is not None:
        gui(context)


class _GuiState:
    """The GUI hook of one shell's prompt, as the runners call it: one that fails is one
    line, and is left out until ``%gui`` changes it (a prompt comes with another hook)."""

    def __init__(self, shell: Any) -> None:
        self._shell = shell
        self._hook: GuiHook | None = None
        self._failed = False
        #: Whether the cost of ``%gui asyncio`` was said since it was last off.
        self.said_gui_asyncio = False

    def hook_now(self, hook: GuiHook | None) -> GuiHook | None:
        """What to run for the hook this prompt comes with."""
        self.said_gui_asyncio = False  # a prompt without %gui asyncio
        if hook is not self._hook:
            self._hook, self._failed = hook, False
        if hook is None or self._failed:
            return None
        return functools.partial(self._run, hook)

    def _run(self, hook: GuiHook, context: Any) -> None:
        if self._failed:
            return
        try:
            hook(context)
        except Exception as exc:
            self._failed = True
            name = getattr(self._shell, "active_eventloop", None) or "GUI"
            say(
                f"the {name} event loop failed at the prompt ({type(exc).__name__}: {exc}); "
                "it is left out until %gui changes"
            )
