"""``%%background`` (B1): a cell that runs as a task of the session.

The cell's code is compiled as IPython compiles a cell (its magics transformed, top-level
``await`` allowed, the source kept for tracebacks under its own ``In [n]``) and started as a
task of the session, in the cell's context: what it prints goes where the cell's own output
goes (above the idle prompt, which IPython's prompt keeps clear of output with prompt_toolkit's
``patch_stdout``; to its own output area in Jupyter, by the request it was started for), and
the tasks it starts are the cell's. The cell itself ends at once. Starting the task is each
runner's business (``Runner.start_background``); this module compiles, runs, reports, and
keeps the handles in ``_bg``.

Nothing else of IPython's cell machinery runs for the task: no ``pre_run_cell`` or
``post_run_cell`` events (the cell that started it has had both), no displayhook (it would
number the value with whatever cell runs then). Its value is stored in ``Out[n]`` and shown
once, as ``Out[n]``; its failure as a cell's traceback, once.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from .._core import _private_api
from .._core._messages import say
from .._runners._base import RunnerUnavailable, in_a_kernel

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ._extension import Extension

#: The name in the user's namespace of the handles, by cell number.
HANDLES = "_bg"


def install(extension: Extension) -> None:
    shell = extension.shell
    handles = BackgroundCells()

    def background_magic(line: str, cell: str) -> None:
        start(shell, shell.loop_runner, handles, line, cell)

    background_magic.__doc__ = BACKGROUND_HELP
    extension.changes.register_magic(background_magic, "cell", "background")
    shell.user_ns[HANDLES] = handles
    shell.user_ns_hidden[HANDLES] = handles
    extension.changes.on_undo(_forget_handles, shell, handles)


def _forget_handles(shell: InteractiveShell, handles: BackgroundCells) -> None:
    for namespace in (shell.user_ns, shell.user_ns_hidden):
        if namespace.get(HANDLES) is handles:
            del namespace[HANDLES]


#: What ``%%background?`` shows.
BACKGROUND_HELP = """Run the cell as a task of the session; the prompt comes back at once.

  %%background
  async with httpx.AsyncClient() as client:
      while True:
          ...

What it prints appears above the prompt (in Jupyter, in its own cell, also after other
cells have run). When it ends, its value is shown once as Out[n] (and kept there), or its
failure as a cell's traceback. `%tasks` lists it as "In [n] (background)"; `%tasks cancel
ID` cancels it. A later cell can wait for it: `await _bg[n]` returns its value or raises its
error. Ctrl-C at the prompt, or interrupting another cell, leaves it running.

Needs a session that lives between cells: the asyncio, thread, uvloop, trio, trio-guest or
curio runner of autoawait_runners (or a kernel's own asyncio loop).
"""


class BackgroundCells(dict[int, "BackgroundCell"]):
    """``_bg``: the background cells of the session, by cell number; ``_bg[-1]`` is the
    newest (as a list counts from its end)."""

    def __getitem__(self, number: int) -> BackgroundCell:
        if isinstance(number, int) and number < 0 and -number <= len(self):
            return list(self.values())[number]
        return super().__getitem__(number)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{n}: {cell!r}" for n, cell in self.items()) + "}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class BackgroundCell:
    """A ``%%background`` cell: ``await _bg[n]`` waits for it from any cell of the session
    and returns its value, or raises its error (a cancelled one raises
    :class:`BackgroundCellCancelled`). ``done()``, ``result()`` and ``cancel()`` as an
    asyncio future has them; thread-safe: the task may run in the runner's thread."""

    def __init__(self, number: int, runner: Any) -> None:
        self.number = number
        self.name = f"In [{number}] (background)"
        self._runner = runner
        #: The library's task, once it has started.
        self.task: Any = None
        self._started = time.monotonic()
        self._ended: float | None = None
        self._outcome: tuple[bool, Any] | None = None  # (failed, value or exception)
        self._lock = threading.Lock()
        self._wakers: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        if self._outcome is None:
            state = f"running for {time.monotonic() - self._started:.1f} s"
        else:
            failed, value = self._outcome
            state = (
                f"failed: {type(value).__name__}"
                if failed and not isinstance(value, BackgroundCellCancelled)
                else "cancelled"
                if failed
                else "done"
            )
        return f"<{self.name}: {state}>"

    def done(self) -> bool:
        return self._outcome is not None

    def result(self) -> Any:
        """The cell's value; raises its error; raises ``RuntimeError`` while it runs."""
        if self._outcome is None:
            raise RuntimeError(f"{self.name} is still running: await it for its value")
        failed, value = self._outcome
        if failed:
            raise value
        return value

    def cancel(self) -> str:
        """Cancel it the library's way (its ``finally`` blocks run); what happened."""
        if self._outcome is not None or self.task is None:
            return "it has already ended" if self._outcome is not None else "not started yet"
        return str(self._runner.cancel_task(self.task))

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        if self._outcome is None:
            await _until(self._add_waker)
        return self.result()

    def _add_waker(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Have ``wake()`` called once when the cell ends (at once if it has); returns what
        takes it off again."""
        with self._lock:
            if self._outcome is None:
                self._wakers.append(wake)
                return lambda: self._wakers.remove(wake) if wake in self._wakers else None
        wake()
        return lambda: None

    def _end(self, failed: bool, value: Any) -> None:
        with self._lock:
            self._outcome = (failed, value)
            self._ended = time.monotonic()
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    @property
    def took(self) -> float:
        return (self._ended or time.monotonic()) - self._started


class BackgroundCellCancelled(Exception):
    """What awaiting a ``%%background`` cell that was cancelled raises."""


async def _until(add_waker: Callable[[Callable[[], None]], Callable[[], None]]) -> None:
    """Wait, in whichever library runs the caller, until the waker ``add_waker`` takes is
    called (from any thread)."""
    import sniffio

    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        event = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def wake_trio() -> None:
            with contextlib.suppress(trio.RunFinishedError):  # the session ended
                token.run_sync_soon(event.set)

        remove = add_waker(wake_trio)
        try:
            await event.wait()
        finally:
            remove()
    elif library == "curio":
        import curio

        universal = curio.UniversalEvent()
        remove = add_waker(universal.set)
        try:
            await universal.wait()
        finally:
            remove()
    else:
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        def wake_asyncio() -> None:
            loop.call_soon_threadsafe(resolve)

        remove = add_waker(wake_asyncio)
        try:
            await future
        finally:
            remove()


def start(
    shell: InteractiveShell, runner: Any, handles: BackgroundCells, line: str, cell: str
) -> None:
    """``%%background``: compile the cell and start it as a task of the session."""
    from IPython.core.error import UsageError

    if line.strip():
        raise UsageError(f"%%background takes no arguments (got {line.strip()!r})")
    number = _cell_number(shell)
    body = _compiled(shell, line, cell, number)
    handle = BackgroundCell(number, runner)
    coro = _run(shell, runner, handle, body, _kernel_request(shell))
    start_background = getattr(runner, "start_background", None)
    if not callable(start_background):  # IPython's or a plugin's: a kernel's own loop will do
        start_background = _on_the_running_loop(runner)
    try:
        start_background(
            coro,
            name=handle.name,
            context=contextvars.copy_context(),
        )
    except RunnerUnavailable as exc:
        raise UsageError(
            f"%%background needs a session loop that runs between cells: {exc} "
            "(%autoawait asyncio selects one)"
        ) from None
    handles[number] = handle
    if HANDLES not in shell.user_ns:  # gone with a %reset: back, as IPython's Out comes back
        shell.user_ns[HANDLES] = shell.user_ns_hidden[HANDLES] = handles


def _on_the_running_loop(runner: Any) -> Callable[..., None]:
    """How a runner not of this package starts a background cell: on the asyncio loop
    running the cell (a kernel's own), or not at all."""

    def start_background(
        coro: Coroutine[Any, Any, Any],
        *,
        name: str,
        context: contextvars.Context,
    ) -> None:
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            raise RunnerUnavailable(
                f"the active runner ({runner}) keeps no loop running between cells"
            ) from None
        # The loop holds it until its first step, its handle (in _bg) from then on.
        loop.create_task(coro, name=name, context=context)  # noqa: RUF006

    return start_background


def _cell_number(shell: Any) -> int:
    """The number of the cell running this magic: its frame's (IPython 9 counts the next
    cell while one runs, 8 the one running), or the count if no cell's frame calls it."""
    frame: Any = _private_api.caller_frame(1)
    while frame is not None:
        named = shell.compile.format_code_name(frame.f_code.co_filename)
        if named and named[1].startswith("In["):
            return int(named[1][3:-1])
        frame = frame.f_back
    return int(shell.execution_count)


#: Compiles a cell's code: each part (the cell but its last expression, then that
#: expression) with its flags; returns a coroutine or, for code with no await, the value.
Body = Callable[[], Coroutine[Any, Any, Any]]


def _compiled(shell: Any, line: str, cell: str, number: int) -> Body:
    """The cell's code as one coroutine function, compiled as IPython compiles a cell: a
    SyntaxError is raised here, in the cell that asked."""
    source = shell.transform_cell(cell)
    # Kept under the whole cell's text, the magic's line first, so that tracebacks and
    # %tasks give the lines as the user sees them in the cell.
    filename = shell.compile.cache(
        f"%%background {line}\n{source}", number, raw_code=f"%%background {line}\n{cell}"
    )
    module = shell.compile.ast_parse(source, filename=filename)
    ast.increment_lineno(module, 1)
    module = shell.transform_ast(module)
    statements = list(module.body)
    last = statements.pop() if statements and isinstance(statements[-1], ast.Expr) else None
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    parts = []
    with shell.compile.extra_flags(flags):
        if statements:
            parts.append(shell.compile(ast.Module(statements, []), filename, "exec"))
        if last is not None:
            expression = ast.Expression(last.value)
            ast.fix_missing_locations(expression)
            parts.append(shell.compile(expression, filename, "eval"))
    returns_value = last is not None

    async def body() -> Any:
        value = None
        for code in parts:
            value = eval(code, shell.user_global_ns, shell.user_ns)
            if code.co_flags & _CO_COROUTINE:
                value = await value
        return value if returns_value else None

    return body


_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE


def _kernel_request(shell: Any) -> Any:
    """The execute request the cell answers, in a kernel (its outputs' parent)."""
    get_parent = getattr(shell, "get_parent", None)
    return get_parent() if in_a_kernel(shell) and callable(get_parent) else None


async def _run(
    shell: InteractiveShell, runner: Any, handle: BackgroundCell, body: Body, request: Any
) -> None:
    """The task: run the cell's code, keep and show its outcome once."""
    handle.task = await _current_task()
    try:
        value = await body()
    except BaseException as exc:
        if _is_cancellation(exc):
            handle._end(True, BackgroundCellCancelled(f"{handle.name} was cancelled"))
            if getattr(runner, "started", True):  # not the session ending: it says so
                say(f"{handle.name} cancelled after {handle.took:.1f} s")
            raise
        # Shown before whoever awaits it hears of it: the report comes first.
        try:
            _show_failure(shell, handle, exc, request)
        finally:
            handle._end(True, exc)
    else:
        try:
            _show_value(shell, handle, value, request)
        finally:
            handle._end(False, value)


def is_background_cell(coro: Any) -> bool:
    """Whether ``coro`` is the coroutine of a ``%%background`` cell's task."""
    return getattr(coro, "cr_code", None) is _run.__code__


async def _current_task() -> Any:
    """The library's task running the caller."""
    import sniffio

    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        return trio.lowlevel.current_task()
    if library == "curio":
        import curio

        return await curio.current_task()
    import asyncio

    return asyncio.current_task()


def _is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is the library's cancellation of the task (it must go on up)."""
    import asyncio

    if isinstance(exc, asyncio.CancelledError):
        return True
    trio = sys.modules.get("trio")
    if trio is not None and isinstance(exc, trio.Cancelled):
        return True
    curio = sys.modules.get("curio")
    return curio is not None and isinstance(exc, curio.errors.CancelledError)


def _show_value(shell: Any, handle: BackgroundCell, value: Any, request: Any) -> None:
    if value is not None:
        shell.history_manager.output_hist[handle.number] = value
    if request is not None:
        if value is not None:
            data, metadata = shell.display_formatter.format(value)
            _publish(
                shell,
                "execute_result",
                {"execution_count": handle.number, "data": data, "metadata": metadata},
                request,
            )
        return
    say(f"{handle.name} finished after {handle.took:.1f} s")
    if value is not None:
        data, _ = shell.display_formatter.format(value)
        text = data.get("text/plain", repr(value))
        print(f"Out[{handle.number}]: " + ("\n" if "\n" in text else "") + text, flush=True)


def _show_failure(shell: Any, handle: BackgroundCell, exc: BaseException, request: Any) -> None:
    # Cut for good: an exception group is shown from its own __traceback__, and a cell that
    # awaits the handle raises the same exception.
    tb = _from_the_cell(exc.__traceback__, handle.number, shell)
    exc.__traceback__ = tb
    if request is not None:
        stb = shell.InteractiveTB.structured_traceback(type(exc), exc, tb, tb_offset=0)
        _publish(
            shell,
            "error",
            {"ename": type(exc).__name__, "evalue": str(exc), "traceback": stb},
            request,
        )
        return
    say(f"{handle.name} failed after {handle.took:.1f} s:")
    shell.showtraceback((type(exc), exc, tb), tb_offset=0)  # tb starts at the cell's frame


def _from_the_cell(tb: Any, number: int, shell: Any) -> Any:
    """The traceback from the cell's own code on (this module's frames cut)."""
    here = tb
    while here is not None:
        named = shell.compile.format_code_name(here.tb_frame.f_code.co_filename)
        if named and named[1] == f"In[{number}]":
            return here
        here = here.tb_next
    return tb


def _publish(shell: Any, msg_type: str, content: dict[str, Any], request: Any) -> None:
    """Send an output of the cell to its own output area: to the request it answered,
    whichever the kernel answers now. Its prints go first."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    kernel = shell.kernel
    kernel.session.send(kernel.iopub_socket, msg_type, content, parent=request)
