"""IPython embedded in a running async program: ``embed()``, ``aembed()`` and the ``embed``
runner.

``IPython.embed()`` fails exactly where people reach for it, inside a live async program:
under ``asyncio.run()`` its prompt crashes (prompt_toolkit starts a loop of its own), and
``await`` either is a SyntaxError or cannot run on the host's loop. Here:

- :func:`embed` (sync, a drop-in for ``IPython.embed``) inside a running asyncio loop reads
  each line with prompt_toolkit *on the host's loop* and runs ``await`` cells as tasks of the
  host's loop, through the nesting shim's parking (``_parking.run_on_running_loop``): the
  caller is parked while the host loop keeps running, so the host's other tasks progress
  while you type and while a cell awaits, and cells can await the host's futures and tasks.
- Inside ``trio.run``, ``await`` cells run in the calling task through a greenback portal if
  it has one (``await greenback.ensure_portal()`` before ``embed()``), else in a helper trio
  run in a thread of its own (they cannot use the host run's objects there); the banner
  says which.
- With no loop running, ``await`` cells run on a private asyncio loop, kept for the shell.
- :func:`aembed` (async) reads input off the loop (prompt_toolkit on the host asyncio loop,
  or in a worker thread under trio) and runs cells in the awaiting task: the host loop runs
  all the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from IPython.core.compilerop import PyCF_MASK

from .._core import _ctrl_c, _private_api
from .._core._cell import CellCoroutine
from .._core._messages import say
from .._nesting._parking import run_on_running_loop
from .._runners._asyncio_session import run_cell_as_task
from .._runners._base import Runner

if TYPE_CHECKING:
    from IPython.terminal.embed import InteractiveShellEmbed

    from .._runners._asyncio import AsyncioRunner
    from .._runners._trio import TrioRunner


# -- which loop runs here, and how the caller can wait on it ------------------------------


def _trio_running() -> bool:
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def _greenback_portal() -> Callable[[Any], Any] | None:
    """greenback's ``await_``, if the calling trio task has a greenback portal."""
    greenback: Any = sys.modules.get("greenback")
    if greenback is None:
        try:
            greenback = importlib.import_module("greenback")
        except ImportError:
            return None
    return greenback.await_ if greenback.has_portal() else None


def _awaiter() -> Callable[[Any], Any] | None:
    """How synchronous code here can wait for an awaitable on the loop running below it,
    while that loop keeps running: :func:`aembed`'s portal, a greenback portal, or (asyncio
    only) parking the caller. None if there is no loop, or no way (trio without a portal).
    """
    if "greenlet" in sys.modules:
        from .._nesting._portal import current_portal

        portal = current_portal()
        if portal is not None:
            return portal.await_
    loop = _private_api.running_loop()
    if loop is not None:
        return functools.partial(run_on_running_loop, loop)
    if _trio_running():
        return _greenback_portal()
    return None


def host_description() -> str:
    """One line for the banner: where ``await`` cells will run."""
    if _private_api.running_loop() is not None:
        return (
            "await cells run on this program's asyncio loop, which keeps running while you "
            "type and while cells run"
        )
    if _trio_running():
        if _awaiter() is not None:
            return "await cells run in this trio task, on this program's trio loop"
        return (
            "await cells run in a helper trio run in another thread, not in this program's "
            "(await greenback.ensure_portal() before embed() to run them here)"
        )
    return "await cells run on an asyncio loop of this shell's own"


# -- the runner ----------------------------------------------------------------------------


class EmbedRunner(Runner):
    """Runs ``await`` cells on the loop already running in the calling thread.

    The runner :func:`embed` and :func:`aembed` use, also in the catalogue
    (``%autoawait embed``) and usable as
    ``IPython.embed(using="autoawait_runners.embed_runner")``. With no loop running, a
    private asyncio runner; under trio without a portal, a helper trio runner in a thread.
    """

    name = "embed"
    library = "asyncio"
    description = "the loop running in the calling thread (asyncio or trio); else asyncio"
    every_cell = False

    def __init__(self) -> None:
        super().__init__()
        self._private: AsyncioRunner | None = None
        self._helper: TrioRunner | None = None
        self._in_cell = False

    def _startup(self) -> None:
        pass

    def _inside_cell(self) -> bool:
        return self._in_cell

    def session_tasks(self, *, tree: bool = False) -> list[Any]:
        raise NotImplementedError(
            "the embed runner keeps no session of its own: the program's tasks are the program's"
        )

    def _run_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:
        awaiter = _awaiter()
        self._in_cell = True
        try:
            if awaiter is not None:
                loop = _private_api.running_loop()
                if loop is not None:
                    return run_cell_as_task(
                        coro,
                        loop=loop,
                        create_task=loop.create_task,
                        wait_for=awaiter,
                        runner=self.name,
                    )
                return _trio_cell(coro, awaiter)
            if _trio_running():
                if self._helper is None:
                    from .._runners._trio import TrioRunner

                    self._helper = TrioRunner()
                return self._helper(coro)
            if self._private is None:
                from .._runners._asyncio import AsyncioRunner

                self._private = AsyncioRunner()
            return self._private(coro)
        finally:
            self._in_cell = False

    def _shutdown(self) -> int:
        for fallback in (self._private, self._helper):
            if fallback is not None:
                fallback.close()
        self._private = self._helper = None
        return 0


def _trio_cell(coro: Coroutine[Any, Any, Any], awaiter: Callable[[Any], Any]) -> Any:
    """The cell in the calling trio task, in a cancel scope Ctrl-C cancels."""
    import trio

    from .._runners._trio import translate_cancellation as translate_trio_cancellation

    cell = CellCoroutine(coro, translate_trio_cancellation, level_triggered=True)
    scope = trio.CancelScope()
    token = trio.lowlevel.current_trio_token()
    ended = threading.Event()

    async def run() -> Any:
        try:
            with scope:
                return await cell
            raise KeyboardInterrupt  # cancelled before the cell's code ran
        finally:
            ended.set()

    here = threading.get_ident()
    controls = _ctrl_c.CellControls(
        cell,
        runner="embed",
        thread=lambda: here,
        cancel=lambda: token.run_sync_soon(scope.cancel),
        # The cell runs in this very task, on the loop below this code: nothing here can
        # wait for it but the await that the press that gives up has left.
        wait=lambda seconds: ended.is_set(),
        ended=ended.is_set,
    )
    with _ctrl_c.waiting_for(controls):
        return awaiter(run())


embed_runner = EmbedRunner()


def get_runner() -> EmbedRunner:
    """Entry point: the ``embed`` runner."""
    return embed_runner


# -- the shell -----------------------------------------------------------------------------


@functools.cache
def _shell_class() -> type[InteractiveShellEmbed]:
    from IPython.terminal.embed import InteractiveShellEmbed
    from prompt_toolkit.patch_stdout import patch_stdout

    class EmbeddedShell(InteractiveShellEmbed):
        """IPython's embedded shell, reading input without starting a loop of its own
        when one runs here (prompt_toolkit's ``prompt()`` would, and asyncio refuses)."""

        def prompt_for_code(self) -> str:
            awaiter = _awaiter()
            if awaiter is None:
                return super().prompt_for_code()  # type: ignore[no-any-return]
            if _private_api.running_loop() is None:
                # trio: prompt_toolkit runs its own asyncio loop in a worker thread.
                import trio

                read = super().prompt_for_code
                return awaiter(trio.to_thread.run_sync(read, abandon_on_cancel=True))  # type: ignore[no-any-return]
            default = self.rl_next_input or ""
            self.rl_next_input = None
            assert self.pt_app is not None  # a terminal shell always has one
            with patch_stdout(raw=True):
                prompt = self.pt_app.prompt_async(
                    default=default,
                    handle_sigint=False,
                    **_private_api.extra_prompt_options(self),
                )
                return awaiter(prompt)  # type: ignore[no-any-return]

    return EmbeddedShell


def _make_shell(
    header: str, kwargs: dict[str, Any], caller: FrameType, *, ctrl_c_reaches: bool
) -> tuple[InteractiveShellEmbed, str]:
    """The embedded shell for ``kwargs`` (IPython.embed's), and the header to show."""
    from IPython.terminal.ipapp import load_default_config

    config = kwargs.get("config")
    if config is None:
        config = load_default_config()
        config.InteractiveShellEmbed = config.TerminalInteractiveShell
        kwargs["config"] = config
    using = kwargs.pop("using", embed_runner)
    settings: dict[str, Any] = {"colors": kwargs.pop("colors", "nocolor")}
    if using:
        settings.update(loop_runner=using, autoawait=using != "sync")
    config.TerminalInteractiveShell.update(settings)
    shell = _shell_class().instance(
        **_private_api.embed_location(f"{caller.f_code.co_filename}:{caller.f_lineno}"), **kwargs
    )
    # The extension's magics and shim in the embedded shell too (%autoawait --list,
    # %nest, %tasks, asyncio.run() in a cell); the runner stays the one chosen here, which
    # the extension adopts. Unloaded when the shell closes (see _embedded_instance).
    from .._ipython._extension import load

    load(shell)
    note = f"autoawait_runners: {host_description()}"
    if not ctrl_c_reaches and threading.current_thread() is not threading.main_thread():
        note += (
            "\nautoawait_runners: this shell runs in a worker thread and the main thread runs "
            "no asyncio loop: Ctrl-C goes to the program's main thread, not to cells here"
        )
    return shell, f"{header}\n{note}" if header else note


@contextlib.contextmanager
def _embedded_instance() -> Iterator[bool]:
    """Make room for the embedded shell's instance and put the outer one back after
    (embedding from inside IPython), as IPython.embed does; sys.ps1/ps2 and
    sys.excepthook too. The embed runner's fallback sessions (a loop of its own, a helper
    trio run) end with the shell, with whatever tasks the shell left in them. Ctrl-C is the
    shell's while it is open (``embedded_shell_takes_ctrl_c``: the program carries on
    after the shell closes, whatever was interrupted in it); yields whether it reaches it."""
    if _trio_running():
        from .._runners import _trio  # noqa: F401  (trio.run's SIGINT handler, known as such)
    with _ctrl_c.embedded_shell_takes_ctrl_c() as ctrl_c_reaches, _shell_instance_swapped():
        yield ctrl_c_reaches


@contextlib.contextmanager
def _shell_instance_swapped() -> Iterator[None]:
    from IPython.core.interactiveshell import InteractiveShell

    saved_ps = (getattr(sys, "ps1", None), getattr(sys, "ps2", None))
    saved_excepthook = sys.excepthook  # the shell installs its own; the program keeps its
    outer = _private_api.singleton_instance(InteractiveShell)
    if outer is not None:
        type(outer).clear_instance()
    try:
        yield
    finally:
        shell = _private_api.singleton_instance(InteractiveShell)
        if shell is not None:
            from .._ipython._extension import unload

            unload(shell)
            type(shell).clear_instance()
        if outer is not None:
            _private_api.restore_singleton_instance(outer)
        if saved_ps[0] is not None:
            sys.ps1, sys.ps2 = saved_ps
        sys.excepthook = saved_excepthook
        embed_runner.close()


def embed(*, header: str = "", compile_flags: int | None = None, **kwargs: Any) -> None:
    """Embed IPython here, like ``IPython.embed()``, with ``await`` that works.

    Same arguments as ``IPython.embed``; ``using`` defaults to the ``embed`` runner (pass
    ``using="sync"`` for IPython's own behaviour). The shell sees the caller's namespace.
    Inside a running asyncio loop the prompt and ``await`` cells run on that loop, which
    keeps running; under trio and with no loop, see the module documentation.
    """
    caller = _private_api.caller_frame(1)
    with _embedded_instance() as ctrl_c_reaches:
        shell, header = _make_shell(header, kwargs, caller, ctrl_c_reaches=ctrl_c_reaches)
        shell(
            header=header,
            stack_depth=2,
            compile_flags=compile_flags,
            **_private_api.call_location(f"{caller.f_code.co_filename}:{caller.f_lineno}"),
        )


async def aembed(*, header: str = "", **kwargs: Any) -> None:
    """``await aembed()``: an embedded shell that does not block the program's loop.

    Input is read off the loop (on the program's asyncio loop, or in a worker thread under
    trio) and each ``await`` cell runs in the awaiting task, so the program's other tasks
    run all the time. Same arguments as :func:`embed`.
    """
    from .._nesting._portal import Portal

    caller = _private_api.caller_frame(1)
    compile_flags = kwargs.pop("compile_flags", None)
    if compile_flags is None:
        compile_flags = caller.f_code.co_flags & PyCF_MASK
    module = sys.modules.get(caller.f_globals.get("__name__", ""))

    async def run_shell() -> None:
        # The embedded shell's main loop is synchronous; it runs in the portal's greenlet
        # and waits for input and for cells through the portal, in this task.
        with _embedded_instance() as ctrl_c_reaches:
            shell, banner = _make_shell(header, kwargs, caller, ctrl_c_reaches=ctrl_c_reaches)
            shell(
                header=banner,
                local_ns=caller.f_locals,
                module=module,
                compile_flags=compile_flags,
                **_private_api.call_location(f"{caller.f_code.co_filename}:{caller.f_lineno}"),
            )

    try:
        await Portal(run_shell())
    except BaseException as exc:
        if _is_cancellation(exc):
            # The program is shutting down around us (its task group failed, it was
            # cancelled): leave the shell and let the cancellation through.
            say("the program cancelled the embedded shell")
        raise


def _is_cancellation(exc: BaseException) -> bool:
    trio = sys.modules.get("trio")
    return isinstance(exc, asyncio.CancelledError) or (
        trio is not None and isinstance(exc, trio.Cancelled)
    )
