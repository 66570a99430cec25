"""The IPython side: loading and unloading the extension, ``%autoawait``, completion, config.

Everything the extension changes in a shell is recorded in an :class:`Extension` object so
that ``%unload_ext`` puts back exactly what was there: the shell's ``loop_runner``,
``autoawait``, ``trio_runner`` (IPython's hook that receives *every* cell, which persistent
runners use so plain cells run in their loop too), the ``%autoawait`` magic, the completer
and the per-shell ``loop_runner_map``. IPython's class-level ``loop_runner_map`` is shared by
every shell and is never modified.
"""

from __future__ import annotations

import atexit
import difflib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .._core import _private_api
from .._core._messages import say
from .._core._tracebacks import showing_user_frames
from .._nesting._shim import STRATEGY, is_nesting, nest_off, nest_on, trio_cells_nest
from .._runners._base import Runner
from ._catalogue import Catalogue, Entry, describe_error
from ._config import load_config

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

_extensions: dict[int, Extension] = {}
#: The catalogue's runners that make their session loop with ``c.AutoawaitRunners.loop_factory``.
LOOP_FACTORY_RUNNERS = ("asyncio", "thread")
_MISSING = object()


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
    """The extension's state in one shell."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell
        self.config = load_config(shell)
        self.catalogue = Catalogue()
        self.active: Any = None  # the loop runner the extension last saw selected
        self._saved: dict[str, Any] = {}
        self._showtraceback: Any = None
        self._await_timing: Any = None
        self._matcher: Any = None

    # -- install / uninstall ---------------------------------------------------------------

    def install(self) -> None:
        shell = self.shell
        self._saved = {
            "loop_runner": shell.loop_runner,
            "autoawait": shell.autoawait,
            "trio_runner": shell.trio_runner,
            "loop_runner_map": vars(shell).get("loop_runner_map", _MISSING),
            "magic": shell.magics_manager.magics["line"].get("autoawait"),
            "nest_magic": shell.magics_manager.magics["line"].get("nest"),
            "timing_magics": {
                (kind, name): shell.magics_manager.magics[kind].get(name)
                for kind in ("line", "cell")
                for name in ("atime", "atimeit")
            },
            "tasks_magic": shell.magics_manager.magics["line"].get("tasks"),
            "nesting": is_nesting(),
            "showtraceback": vars(shell).get("showtraceback", _MISSING),
        }
        shell.loop_runner_map = RunnerMap(  # type: ignore[assignment]
            shell.loop_runner_map, self.catalogue
        )
        register_magic = shell.register_magic_function
        register_magic(self.autoawait_magic, "line", "autoawait")  # type: ignore[arg-type]
        register_magic(self.nest_magic, "line", "nest")  # type: ignore[arg-type]
        self._register_magics()
        self._apply_loop_factory(self.config.loop_factory or None)
        if self.config.nest:
            nest_on(trio=self.config.nest_trio)
        self._matcher = _argument_matcher(self)
        shell.Completer.custom_matchers.append(self._matcher)
        shell.observe(self._on_loop_runner_change, names="loop_runner")
        atexit.register(self.close_active)
        # Terminal IPython clears the user namespace (``_atexit_once``) as soon as its main
        # loop ends, before atexit handlers run: the session ends first, so the clean-up of
        # background tasks still finds the names it uses (F2).
        clear_namespace = getattr(shell, _private_api.ATEXIT_ONCE)

        def end_session_then_clear() -> None:
            self.close_active()
            clear_namespace()

        setattr(shell, _private_api.ATEXIT_ONCE, end_session_then_clear)
        self._showtraceback = showing_user_frames(shell.showtraceback, lambda: self.active)
        shell.showtraceback = self._showtraceback  # type: ignore[method-assign]
        self._select_at_start()

    def uninstall(self) -> None:
        shell = self.shell
        atexit.unregister(self.close_active)
        if _private_api.ATEXIT_ONCE in vars(shell):
            delattr(shell, _private_api.ATEXIT_ONCE)
        if vars(shell).get("showtraceback") is self._showtraceback:  # still ours
            if self._saved["showtraceback"] is _MISSING:
                del shell.showtraceback
            else:
                shell.showtraceback = self._saved["showtraceback"]  # type: ignore[method-assign]
        shell.unobserve(self._on_loop_runner_change, names="loop_runner")
        self._deactivate()
        saved = self._saved
        shell.loop_runner = saved["loop_runner"]
        shell.autoawait = saved["autoawait"]
        shell.trio_runner = saved["trio_runner"]
        if saved["loop_runner_map"] is _MISSING:
            del shell.loop_runner_map
        else:
            shell.loop_runner_map = saved["loop_runner_map"]
        magics = shell.magics_manager.magics["line"]
        for name, key in (("autoawait", "magic"), ("nest", "nest_magic"), ("tasks", "tasks_magic")):
            if saved[key] is None:
                magics.pop(name, None)
            else:
                magics[name] = saved[key]
        for (kind, name), previous in saved["timing_magics"].items():
            if previous is None:
                shell.magics_manager.magics[kind].pop(name, None)
            else:
                shell.magics_manager.magics[kind][name] = previous
        if self._await_timing in shell.input_transformers_post:
            shell.input_transformers_post.remove(self._await_timing)
        if not saved["nesting"]:
            nest_off()
        self._apply_loop_factory(None)
        if self._matcher in shell.Completer.custom_matchers:
            shell.Completer.custom_matchers.remove(self._matcher)

    def _apply_loop_factory(self, path: str | None) -> None:
        """``c.AutoawaitRunners.loop_factory``: what the asyncio and thread runners make
        their session loop with (imported when a session starts; an error then is one
        line, see F5). None puts asyncio's own back."""
        if path is None and not self.config.loop_factory:
            return
        factory = None if path is None else _dotted_loop_factory(path)
        for name in LOOP_FACTORY_RUNNERS:
            self.catalogue[name].runner().loop_factory = factory

    def _register_magics(self) -> None:
        """``%atime``/``%atimeit``, the rewrite that sends ``%time``/``%timeit`` of code
        that awaits to them (M1), and ``%tasks`` (M2); see ``_magics``."""
        from . import _magics

        shell = self.shell

        def atime(line: str, cell: str | None = None, local_ns: Any = None) -> Any:
            return _magics.atime(shell, line, cell, local_ns)

        def atimeit(line: str, cell: str | None = None, local_ns: Any = None) -> Any:
            return _magics.atimeit(shell, line, cell, local_ns)

        for magic, name in ((atime, "atime"), (atimeit, "atimeit")):
            magic.needs_local_scope = True  # type: ignore[attr-defined]
            magic.__doc__ = getattr(_magics, name).__doc__
            shell.register_magic_function(magic, "line_cell", name)  # type: ignore[arg-type]

        task_ids = _magics.TaskIds()

        def tasks(line: str) -> Any:
            return _magics.tasks(shell, shell.loop_runner, task_ids, line)

        tasks.__doc__ = _magics.tasks.__doc__
        shell.register_magic_function(tasks, "line", "tasks")  # type: ignore[arg-type]

        def await_timing(lines: list[str]) -> list[str]:
            return _magics.await_timing_magics(lines) if shell.autoawait else lines

        self._await_timing = await_timing
        shell.input_transformers_post.append(await_timing)

    def _select_at_start(self) -> None:
        """Apply ``c.AutoawaitRunners.default``, or adopt a runner set by dotted path."""
        _asyncio_runner = _private_api.ipython_asyncio_runner()
        explicit = "default" in self.config.config.get("AutoawaitRunners", {})
        current = self.shell.loop_runner
        name = self.config.default
        if not explicit and (current is not _asyncio_runner or _in_kernel(self.shell)):
            # Keep what the shell has: a runner set by dotted path (adopted), or a Jupyter
            # kernel's own asyncio integration, whose loop already runs between cells.
            self._on_loop_runner_change({"old": None, "new": current})
            return
        if not name:
            return
        entry = self.catalogue.get(name)
        why = _unknown(name, self.catalogue) if entry is None else _unavailable(entry)
        if entry is None or why is not None:
            # One line, and the session still gets a runner of ours (F5).
            say(f"c.AutoawaitRunners.default: {why}; the asyncio runner is used instead")
            entry = self.catalogue["asyncio"]
            name = "asyncio"
        if not self.select(entry):
            say(f"c.AutoawaitRunners.default = {name!r} was not applied")

    # -- selecting runners -----------------------------------------------------------------

    def select(self, entry: Entry) -> bool:
        """Make an entry the active runner; False (after saying why) if it cannot be."""
        why = _unavailable(entry)
        if why is not None:
            say(why)
            return False
        if entry.name == "kernel" and not _in_kernel(self.shell):
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
            self.shell.trio_runner = self._saved["trio_runner"]
        _close(old)

    def close_active(self) -> None:
        """At exit: end the active runner's session (its background tasks are cancelled)."""
        _close(self.active)

    # -- %autoawait ------------------------------------------------------------------------

    def autoawait_magic(self, line: str) -> None:
        """Select the runner for top-level ``await`` (extended by autoawait_runners).

        %autoawait            show the active runner and whether autoawait is on
        %autoawait --list     the catalogue of runners
        %autoawait NAME       select a runner of the catalogue (asyncio, thread, trio...)
        %autoawait on|off     turn autoawait on or off, keeping the runner
        %autoawait OBJ        a runner from the user namespace or a dotted import path
        """
        arg = line.strip()
        shell = self.shell
        if not arg:
            state = "on" if shell.autoawait else "off"
            print(f"autoawait is {state}; runner: {self.describe(shell.loop_runner)}")
        elif arg in ("--list", "-l"):
            print(self.listing())
        elif arg.lower() in ("on", "true", "off", "false"):
            shell.autoawait = arg.lower() in ("on", "true")
        elif arg in self.catalogue:
            self.select(self.catalogue[arg])
        elif arg in shell.user_ns or "." in arg:
            self._select_object(arg)
        else:
            say(_unknown(arg, self.catalogue))

    # -- %nest -----------------------------------------------------------------------------

    def nest_magic(self, line: str) -> None:
        """Turn the nesting shim on or off: asyncio.run() and run_until_complete() in cells.

        %nest              say whether it is on, and how nested calls are run
        %nest on|off       turn it on or off (for the whole process)
        %nest trio on|off  also let trio.run() run in trio-runner cells (costs every cell)
        """
        words = line.lower().split()
        if words in (["on"], ["true"]):
            nest_on()
        elif words in (["off"], ["false"]):
            nest_off()
        elif words in (["trio", "on"], ["trio"]):
            nest_on(trio=True)
        elif words == ["trio", "off"]:
            nest_on(trio=False)
        elif words:
            say(f"%nest takes on, off, trio on or trio off, not {line.strip()!r}")
            return
        if not is_nesting():
            print("nesting shim is off: asyncio.run() inside a running loop raises RuntimeError")
            return
        print(f"nesting shim is on: {STRATEGY}")
        if trio_cells_nest():
            print("trio.run() in a trio-runner cell runs in the cell's task (%nest trio off)")
        else:
            print("trio.run() in a trio-runner cell is not served (%nest trio on)")

    def _select_object(self, arg: str) -> None:
        """IPython's own forms: a name in the user namespace, or a dotted import path."""
        from IPython.utils.importstring import import_item

        try:
            runner = self.shell.user_ns[arg] if arg in self.shell.user_ns else import_item(arg)
        except Exception as exc:
            say(f"cannot import {arg!r}: {type(exc).__name__}: {exc}")
            return
        if not callable(runner):
            say(f"{arg!r} is not a loop runner (it is not callable)")
            return
        self.shell.loop_runner = runner
        self.shell.autoawait = True

    def describe(self, runner: Any) -> str:
        for entry in self.catalogue.values():
            if entry._runner is runner or getattr(entry._runner, "wrapped", None) is runner:
                return f"{entry.name} ({entry.description})"
        module = getattr(runner, "__module__", None) or type(runner).__module__
        if module.startswith("IPython."):
            if str(runner) == "asyncio" and _in_kernel(self.shell):
                return (
                    "the kernel's own asyncio integration (ipykernel awaits cells on its loop; "
                    "a catalogue runner: %autoawait --list)"
                )
            return f"IPython's own {runner} runner (load a catalogue runner: %autoawait --list)"
        return repr(runner)

    def listing(self) -> str:
        rows = [("name", "library", "installed", "active", "description")]
        in_kernel = _in_kernel(self.shell)
        for name, entry in self.catalogue.items():
            if name == "kernel":
                if not in_kernel:
                    continue
                entry.runner()  # cheap, and it may be the active one
            active = entry._runner is not None and (
                self.shell.loop_runner in (entry._runner, getattr(entry._runner, "wrapped", 0))
            )
            installed = (
                "yes"
                if entry.installed
                else "no"
                if entry.error
                else f"no: {entry.install_command}"
            )
            rows.append((name, entry.library, installed, "*" if active else "", entry.description))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[4]
            for row in rows
        )


def _dotted_loop_factory(path: str) -> Any:
    def make_loop() -> Any:
        import importlib

        module, _, name = path.rpartition(".")
        if not module:
            raise ValueError(f"loop_factory {path!r} is not a dotted path")
        return getattr(importlib.import_module(module), name)()

    return make_loop


def _in_kernel(shell: InteractiveShell) -> bool:
    """Whether the shell is a Jupyter kernel's (ipykernel awaits cells on its own loop)."""
    return type(shell).__module__.startswith("ipykernel.")


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


def _unknown(name: str, catalogue: Mapping[str, Entry]) -> str:
    close = difflib.get_close_matches(name, list(catalogue), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown runner {name!r}{hint} (%autoawait --list shows them all)"


#: What the extension's magics take, by magic and the words typed before.
_MAGIC_ARGUMENTS: dict[str, dict[tuple[str, ...], list[str]]] = {
    "autoawait": {(): ["--list", "on", "off"]},
    "nest": {(): ["on", "off", "trio"], ("trio",): ["on", "off"]},
    "tasks": {(): ["--all", "--tree", "where", "cancel"]},
}


def _argument_matcher(extension: Extension) -> Any:
    """An IPython completion matcher for the arguments of ``%autoawait`` (runner names
    too), ``%nest`` and ``%tasks``: only those, not every Python name jedi knows."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()  # type: ignore[untyped-decorator]
    def complete_magic_arguments(context: Any) -> dict[str, Any]:
        words = context.line_with_cursor.lstrip().split()
        typed = context.token
        if typed:
            words = words[:-1]
        if not words or (magic := words[0].lstrip("%")) not in _MAGIC_ARGUMENTS:
            return {"completions": [], "suppress": False}
        options = list(_MAGIC_ARGUMENTS[magic].get(tuple(words[1:]), []))
        if magic == "autoawait" and len(words) == 1:
            names = [
                name
                for name in extension.catalogue
                if name != "kernel" or _in_kernel(extension.shell)
            ]
            options = [*names, *options]
        return {
            "completions": [
                SimpleCompletion(text=option, type="argument")
                for option in options
                if option.startswith(typed)
            ],
            "suppress": True,
        }

    return complete_magic_arguments


def load(shell: InteractiveShell) -> None:
    if id(shell) in _extensions:
        return
    extension = Extension(shell)
    _extensions[id(shell)] = extension
    extension.install()


def unload(shell: InteractiveShell) -> None:
    extension = _extensions.pop(id(shell), None)
    if extension is not None:
        extension.uninstall()
