"""Loading and unloading the extension, and selecting runners.

Loading changes the shell in one place, :meth:`Extension.install`, through
:class:`~._changes.Changes`, which records each change's undo as it is made, so
``%unload_ext`` puts back exactly what was there: the shell's ``loop_runner``,
``autoawait``, ``trio_runner`` (IPython's hook that receives *every* cell, which persistent
runners use so plain cells run in their loop too), the magics (one module each, listed in
:data:`MAGICS`), the completer and the per-shell ``loop_runner_map``. IPython's
class-level ``loop_runner_map`` is shared by every shell and is never modified.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .._core import _private_api
from .._core._cell import CellDidNotRun
from .._core._messages import say
from .._core._tracebacks import as_its_class_has_it, showing_user_frames
from .._nesting._shim import is_nesting, nest_off, nest_on
from .._runners._base import Runner, RunnerUnavailable, in_a_kernel
from . import (
    _autoawait_magic,
    _background,
    _blocked_warning,
    _completion,
    _kernel_comms,
    _kernel_messages,
    _kernel_output,
    _kernel_shutdown,
    _nest_magic,
    _prompt_hook,
    _task_cells,
    _tasks_magic,
    _timing_magics,
)
from ._autoawait_magic import unknown
from ._catalogue import Catalogue, Entry, describe_error
from ._changes import Changes
from ._config import load_config

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

_extensions: dict[int, Extension] = {}
#: The options that take effect when set in a session (``%config``; each one's help says
#: when); ``default`` is read when the extension loads.
LIVE_OPTIONS = ("nest", "nest_trio", "loop_factory")

#: The catalogue's runners that make their session loop with ``c.AutoawaitRunners.loop_factory``.
LOOP_FACTORY_RUNNERS = ("asyncio", "thread")
#: What loading installs besides the runners: each module's ``install(extension)`` makes
#: its changes through ``extension.changes``. A new magic is a module and a line here.
MAGICS = (
    _autoawait_magic.install,
    _nest_magic.install,
    _timing_magics.install,
    _tasks_magic.install,
    _background.install,
    _blocked_warning.install,
)


class RunnerMap(Mapping[str, tuple[Any, bool]]):
    """The shell's ``loop_runner_map``: IPython's entries plus the catalogue's.

    Plugin runners are loaded only when looked up, so ``%load_ext`` stays fast.
    """

    def __init__(
        self, ipython_map: Mapping[str, tuple[Any, bool]], catalogue: Mapping[str, Entry]
    ) -> None:
        self._ipython = ipython_map
        self._catalogue = catalogue

    def __getitem__(self, name: str) -> tuple[Any, bool]:
        entry = self._catalogue.get(name)
        if name == "kernel":
            return _private_api.ipython_asyncio_runner(), True
        if entry is None or name == "sync":
            return self._ipython[name]
        return entry.runner(), True

    def __iter__(self) -> Iterator[str]:
        yield from self._catalogue
        yield from (name for name in self._ipython if name not in self._catalogue)

    def __len__(self) -> int:
        return len(set(self._catalogue) | set(self._ipython))


class Extension:
    """The extension's state in one shell: its catalogue, the active runner, and every
    change loading made (:class:`Changes`), which unloading undoes."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell
        self.config = load_config(shell)
        self.catalogue = Catalogue()
        self.active: Any = None  # the loop runner the extension last saw selected
        self.in_kernel = in_a_kernel(shell)
        self.changes = Changes(shell)
        self._trio_runner_found = shell.trio_runner  # IPython's hook, given back on detach
        #: Whether the runners were given a loop factory (``loop_factory``).
        self._loop_factory_set = False
        #: magic name -> what it takes after the words typed so far (completion).
        self.complete: dict[str, Callable[[list[str]], list[str]]] = {}

    # -- install / uninstall ---------------------------------------------------------------

    def install(self) -> None:
        shell, changes = self.shell, self.changes
        # Undone last: the runner in use when the extension is unloaded is closed first
        # (see uninstall), then the shell gets back the runner it had.
        for trait in ("loop_runner", "autoawait", "trio_runner"):
            changes.remember_trait(trait)
        changes.set_attribute(
            shell, "loop_runner_map", RunnerMap(shell.loop_runner_map, self.catalogue)
        )
        for install_magic in MAGICS:
            install_magic(self)
        _completion.install(self)  # of the magics' arguments, as each says
        _kernel_output.install(self)  # in a kernel: output goes to the cell that made it
        _task_cells.install(self)  # tasks belong to cells; a cell run again (after output)
        _kernel_messages.install(self)  # ipykernel 6: comm messages while a cell runs
        _kernel_comms.install(self)  # in a kernel: comm callbacks where the cells run
        _kernel_shutdown.install(self)  # in a kernel: a shutdown ends the cells first
        _prompt_hook.install(self)  # the terminal prompt's input hook: the session and %gui
        self._apply_loop_factory(self.config.loop_factory or None)
        changes.on_undo(self._apply_loop_factory, None)
        # Listed, shown and set by %config like IPython's own configurables.
        changes.append(shell.configurables, self.config)
        self.config.observe(self._on_option_change, names=list(LIVE_OPTIONS))
        changes.on_undo(self.config.unobserve, self._on_option_change, names=list(LIVE_OPTIONS))
        changes.observe(self._on_loop_runner_change, "loop_runner")
        atexit.register(self.close_active)
        changes.on_undo(atexit.unregister, self.close_active)
        # Terminal IPython clears the user namespace (``_atexit_once``) as soon as its main
        # loop ends, before atexit handlers run: the session ends first, so the clean-up of
        # background tasks still finds the names it uses (F2).
        clear_namespace = getattr(shell, _private_api.ATEXIT_ONCE)

        def end_session_then_clear() -> None:
            self.close_active()
            clear_namespace()

        changes.set_attribute(shell, _private_api.ATEXIT_ONCE, end_session_then_clear)
        # IPython's own, as the class has it when a traceback is shown (a tool that patches
        # InteractiveShell.showtraceback is not bypassed), or the shell's own, if it has one.
        own = vars(shell).get("showtraceback")
        show_now = (lambda: own) if own is not None else as_its_class_has_it(shell, "showtraceback")
        changes.set_attribute(
            shell, "showtraceback", showing_user_frames(show_now, lambda: self.active)
        )
        changes.on_event("post_run_cell", self._number_a_cell_that_did_not_run)
        # Undone first: the active runner's session ends while everything else is still in
        # place.
        changes.on_undo(self._deactivate)
        self._select_at_start()

    def uninstall(self) -> None:
        self.changes.undo()

    def _number_a_cell_that_did_not_run(self, result: Any) -> None:
        """A cell Ctrl-C cancelled before it ran (queued behind a busy loop) never reached
        ``run_cell_async``'s own bookkeeping: give it its number and its history entry, as
        IPython gives an interrupted cell, so the next prompt's number does not repeat."""
        info = getattr(result, "info", None)
        if not isinstance(getattr(result, "error_in_exec", None), CellDidNotRun) or not (
            info is not None and info.store_history
        ):
            return
        shell = self.shell
        result.execution_count = shell.execution_count
        if shell.history_manager is not None:
            shell.history_manager.store_inputs(
                shell.execution_count,
                getattr(info, "transformed_cell", None) or info.raw_cell,  # IPython 9 has it
                info.raw_cell,
            )
        shell.execution_count += 1

    def _apply_loop_factory(self, path: str | None) -> None:
        """``c.AutoawaitRunners.loop_factory``: what the asyncio and thread runners make
        their session loop with (imported when a session starts; an error then is one
        line, see F5). None puts asyncio's own back."""
        if path is None and not self._loop_factory_set:
            return  # nothing to put back: the runners are not even loaded (P3)
        factory = None if path is None else _dotted_loop_factory(path)
        for name in LOOP_FACTORY_RUNNERS:
            self.catalogue[name].runner().loop_factory = factory
        self._loop_factory_set = factory is not None

    def _on_option_change(self, change: Any) -> None:
        """An option set in the session (``%config AutoawaitRunners.nest = False``): each
        takes effect as its help says."""
        if change["name"] == "loop_factory":
            self._apply_loop_factory(change["new"] or None)
        elif change["name"] == "nest":
            if change["new"]:
                nest_on(trio=self.config.nest_trio)
            else:
                nest_off()
        elif change["name"] == "nest_trio" and is_nesting():
            nest_on(trio=change["new"])

    def _select_at_start(self) -> None:
        """Apply ``c.AutoawaitRunners.default``, or adopt a runner set by dotted path."""
        _asyncio_runner = _private_api.ipython_asyncio_runner()
        explicit = "default" in self.config.config.get("AutoawaitRunners", {})
        current = self.shell.loop_runner
        name = self.config.default
        if not explicit and current is not _asyncio_runner:
            # Keep what the shell has: a runner set by dotted path (adopted). A Jupyter
            # kernel's own asyncio integration is IPython's asyncio runner, and gives way to
            # ours as in a terminal: a kernel interrupt then stops an awaiting cell at once
            # (the kernel's own lets it run to its end; docs/jupyter.rst).
            self._on_loop_runner_change({"old": None, "new": current})
            return
        if not name:
            return
        entry = self.catalogue.get(name)
        why = unknown(name, self.catalogue) if entry is None else _unavailable(entry)
        if entry is None or why is not None:
            # One line, and the session still gets a runner of ours (F5).
            say(f"c.AutoawaitRunners.default: {why}; the asyncio runner is used instead")
            entry = self.catalogue["asyncio"]
            name = "asyncio"
        if not self.select(entry) and explicit:  # else the line select() said is enough
            say(f"c.AutoawaitRunners.default = {name!r} was not applied")

    # -- selecting runners -----------------------------------------------------------------

    def select(self, entry: Entry) -> bool:
        """Make an entry the active runner; False (after saying why) if it cannot be."""
        why = _unavailable(entry)
        if why is not None:
            say(why)
            return False
        if entry.name == "kernel" and not self.in_kernel:
            say("kernel: a Jupyter kernel's own asyncio integration, in a kernel only")
            return False
        try:
            runner = entry.runner()
        except Exception as exc:
            say(f"the {entry.name} runner cannot be loaded: {describe_error(exc)}")
            return False
        if entry.name == "kernel":
            runner = runner.wrapped  # ipykernel recognises IPython's own runner object
        if not _start(runner, entry.name):
            return False
        autoawait = self.shell.loop_runner_map[entry.name][1]
        self.shell.loop_runner = runner
        self.shell.autoawait = autoawait
        return True

    def _on_loop_runner_change(self, change: Mapping[str, Any]) -> None:
        """Whatever set ``loop_runner`` (our magic, IPython's forms, code): follow it."""
        new = change["new"]
        if new is self.active:
            return
        if isinstance(new, Runner) and not new.started and not _start(new, str(new)):
            self.shell.loop_runner = change["old"]  # refuse, keep the runner we had
            return
        self._deactivate()
        self.active = new
        if getattr(new, "every_cell", False):
            self.shell.trio_runner = new
        if isinstance(new, Runner):
            new.attach(self.shell)

    def _deactivate(self) -> None:
        """Detach and close the runner that was active (any runner with ``close()``)."""
        old, self.active = self.active, None
        if old is None:
            return
        if isinstance(old, Runner):
            old.detach(self.shell)
        if getattr(old, "every_cell", False):
            self.shell.trio_runner = self._trio_runner_found
        _close(old)

    def close_active(self) -> None:
        """At exit: end the active runner's session (its background tasks are cancelled)."""
        _close(self.active)

    def entry_of(self, runner: Any) -> Entry | None:
        """The catalogue's entry for ``runner`` (a plugin's wrapped runner too), if any."""
        for entry in self.catalogue.values():
            if entry._runner is runner or getattr(entry._runner, "wrapped", None) is runner:
                return entry
        return None

    def describe(self, runner: Any) -> str:
        entry = self.entry_of(runner)
        if entry is not None:
            return f"{entry.name} ({entry.description})"
        module = getattr(runner, "__module__", None) or type(runner).__module__
        if module.startswith("IPython."):
            if str(runner) == "asyncio" and self.in_kernel:
                return (
                    "the kernel's own asyncio integration (ipykernel awaits cells on its loop; "
                    "a catalogue runner: %autoawait --list)"
                )
            return f"IPython's own {runner} runner (load a catalogue runner: %autoawait --list)"
        return repr(runner)


def _dotted_loop_factory(path: str) -> Any:
    """What makes a loop from the dotted path ``path``, imported when it is first called:
    a path that cannot be imported is then one line that names the option (F5)."""

    def make_loop() -> Any:
        import importlib

        module, _, name = path.rpartition(".")
        try:
            if not module:
                raise ValueError("not a dotted path (module.function)")
            factory = getattr(importlib.import_module(module), name)
        except Exception as exc:
            raise RunnerUnavailable(
                f"c.AutoawaitRunners.loop_factory = {path!r} cannot be imported: {exc}"
            ) from None
        try:
            loop = factory()
        except Exception as exc:
            raise RunnerUnavailable(
                f"c.AutoawaitRunners.loop_factory = {path!r} failed: {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise RunnerUnavailable(
                f"c.AutoawaitRunners.loop_factory = {path!r} made a {type(loop).__name__}, "
                "not an event loop (it names a function that makes one: uvloop.new_event_loop)"
            )
        return loop

    return make_loop


def _close(runner: Any) -> None:
    """End a runner's session, if it has one; a plugin's ``close()`` that fails is one line
    (at exit too, where a traceback would come out half-torn-down) (F5)."""
    close = getattr(runner, "close", None)
    if not callable(close):
        return
    try:
        close()
    except BaseException as exc:  # whatever a plugin raises, the shell goes on
        say(f"closing the {runner} runner failed: {type(exc).__name__}: {exc}")


def _start(runner: Any, name: str) -> bool:
    """Start a runner's session; on failure say why in one line and return False."""
    if not isinstance(runner, Runner):
        return True
    try:
        runner.start()
    except Exception as exc:
        say(f"the {name} runner could not start: {describe_error(exc)}")
        return False
    return True


def _unavailable(entry: Entry) -> str | None:
    """Why the entry's runner cannot be selected here, if it cannot."""
    if entry.installed:
        return None
    if entry.error:
        return f"the {entry.name} runner cannot be loaded: {entry.error}"
    return (
        f"the {entry.name} runner needs {entry.library}, which is not installed: "
        f"{entry.install_command}"
    )


def load(shell: InteractiveShell) -> None:
    if id(shell) in _extensions:
        return
    extension = Extension(shell)
    _extensions[id(shell)] = extension
    extension.install()


def active_runner(shell: InteractiveShell) -> str | None:
    """What a session started by ``autoawait-ipython`` says it has, once loading is done: the
    catalogue runner in place, or IPython's own when the one asked for could not start.
    None when the extension is not loaded in ``shell``."""
    extension = _extensions.get(id(shell))
    if extension is None:
        return None
    entry = extension.entry_of(shell.loop_runner)
    if entry is not None:
        return f"the {entry.name} runner (%autoawait --list for the others)"
    return extension.describe(shell.loop_runner)


def unload(shell: InteractiveShell) -> None:
    extension = _extensions.pop(id(shell), None)
    if extension is not None:
        extension.uninstall()
