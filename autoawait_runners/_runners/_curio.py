"""The ``curio`` runner: one curio Kernel for the whole session, in its own thread.

IPython's own curio runner calls ``curio.run`` per cell. Here one Kernel runs for the
session in a dedicated thread (the plumbing is shared with the other threaded runners, see
``_dedicated_thread``); every cell, plain ones too, runs as a task in it, so
``curio.meta.curio_running()`` is true in any cell and daemon tasks spawned in a cell keep
running between cells and while the prompt is idle.

Ctrl-C cancels the cell's task with an exception that is both a KeyboardInterrupt (what
IPython shows) and curio's ``TaskCancelled`` (what curio code expects). A background task
that crashes is reported at once, the way the other runners report theirs (curio's own
"Task Crash" log record is turned into that report). curio lets a task's KeyboardInterrupt
or SystemExit end ``Kernel.run``; the session runs on after one (F1).

curio is the ``curio-compat`` distribution on PyPI (the last ``curio`` release does not
import on Python 3.12+); it installs the same ``curio`` package.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import selectors
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from .._core import _ctrl_c, _private_api
from .._core._cell import cancelled_before_it_ran, interruption_type
from .._core._loop_watch import WatchedSelector
from .._core._messages import say_failed
from .._core._tracebacks import cut_to_task_code
from ._base import CellMark, GuiHook, TaskRow, cell_in, runs_cells
from ._dedicated_thread import DedicatedThreadRunner, SubmittedCell
from ._gui_wait import GuiSelector

if TYPE_CHECKING:
    import curio


# What Ctrl-C must know of curio: its kernel sleeps in a selector, as asyncio's loop does.
_ctrl_c.know(_ctrl_c.LoopLibrary("curio", waits_in=(("selectors", "select"),)))


class CurioRunner(DedicatedThreadRunner):
    """One curio Kernel for the session, in its own thread."""

    name = "curio"
    library = "curio"
    extra = "curio"
    description = "one curio Kernel for the session, in its own thread"
    cells_in_a_session_context = True

    def __init__(self) -> None:
        super().__init__()
        self._queue: curio.UniversalQueue | None = None
        self._interruption: type[BaseException] | None = None
        # A cell's task -> the cell (for %tasks). Held weakly: a cell's task keeps its result,
        # the cell's value (F7).
        self._cell_tasks: weakref.WeakKeyDictionary[curio.Task, Any] = weakref.WeakKeyDictionary()
        #: The newest cell's task: the cell asking, when %tasks runs (an older one that
        #: still runs is a cell given up on).
        self._newest_cell: weakref.ref[curio.Task] | None = None
        self._internal: set[int] = set()
        self._main_task: curio.Task | None = None
        self._kernel: curio.Kernel | None = None
        self._born: dict[curio.Task, float] = {}  # task -> when made, for %tasks
        #: The context every cell runs in (R4).
        self._context: contextvars.Context | None = None
        self._kernel_selector: GuiSelector | None = None

    def _session_context(self) -> contextvars.Context | None:
        return self._context

    def _serve(self, ready: Callable[[], None]) -> None:
        import curio
        import curio.errors

        self._interruption = interruption_type(curio.errors.TaskCancelled)
        self._queue = curio.UniversalQueue()
        self._main_task = None
        self._context = contextvars.copy_context()
        # The kernel waits for events in it, where a GUI can wait in its place (_gui_wait).
        self._kernel_selector = GuiSelector(selectors.DefaultSelector())
        # The loop watch (B3) is told of the kernel's waits by the selector they go through.
        watch = self._start_watching(threading.get_ident())
        kernel = self._kernel = curio.Kernel(
            selector=WatchedSelector(self._kernel_selector, watch),
            activations=[_births(self._born)],
            taskcls=_session_task_class(self._context),
        )
        crashes = _CrashReports(self.name)
        logging.getLogger("curio.kernel").addFilter(crashes)
        try:
            run = [functools.partial(kernel.run, self._main, kernel, ready)]

            def survives(exc: BaseException) -> bool:
                # A task's own (Ctrl-C sent to a task that does not yield is one): the task
                # is over, the kernel is sound, the session runs on, from its main task.
                main = self._main_task
                if main is None or main.terminated:
                    return False
                if isinstance(exc, SystemExit):  # curio logs every other crash
                    crashes.report(None, exc)
                # Joined, as kernel.run joins the task it starts (curio warns at exit of
                # one never joined).
                run[0] = functools.partial(kernel.run, main.join)
                return True

            _ctrl_c.run_past_interrupts(lambda: run[0](), survives=survives)
            # curio has no public list of a kernel's tasks; this is what its own shutdown
            # cancels, less its own and the cell that asked for the shutdown (finishing).
            left = [
                t
                for tid, t in _private_api.curio_tasks(kernel).items()
                if tid not in self._internal
            ]
            self._cancelled = sum(task not in self._cell_tasks for task in left)
        finally:
            logging.getLogger("curio.kernel").removeFilter(crashes)
            kernel.run(shutdown=True)

    async def _main(self, kernel: curio.Kernel, ready: Callable[[], None]) -> None:
        import curio

        queue = self._queue
        assert queue is not None
        self._internal = set(
            _private_api.curio_tasks(kernel)
        )  # the kernel's own task(s), and this one
        self._main_task = await curio.current_task()
        ready()
        while (request := await queue.get()) is not None:
            await request()
            # Not kept until the next request: a cell's closure holds its value (F7).
            del request

    def _wait_in_gui(self, gui: GuiHook, fds: Sequence[int]) -> Coroutine[Any, Any, None]:
        selector = self._kernel_selector
        assert selector is not None
        return _until_readable(selector, gui, fds)

    def _submit(self, submitted: SubmittedCell) -> None:
        import curio

        queue, interruption = self._queue, self._interruption
        assert queue is not None and interruption is not None
        tasks: list[curio.Task] = []

        async def start() -> None:
            if submitted.cell.pending_interrupt:  # Ctrl-C came first: the cell never runs
                submitted.cell.close()  # nor warns that it was never awaited
                submitted.fail(cancelled_before_it_ran())
                return
            task = await curio.spawn(_run_cell_task, submitted, daemon=True)
            tasks.append(task)
            self._cell_tasks[task] = submitted.cell
            self._newest_cell = weakref.ref(task)

        async def cancel() -> None:
            if tasks:
                # Each press cancels: curio would deliver only the first, and a cell that
                # swallowed it would not hear the next.
                _private_api.curio_cancellable_again(tasks[0])
                await tasks[0].cancel(exc=interruption, blocking=False)

        submitted.cancel = lambda: queue.put(cancel)
        queue.put(start)

    def _request_stop(self) -> None:
        queue = self._queue
        assert queue is not None
        queue.put(None)

    def _reset(self) -> None:
        self._queue = None
        self._kernel = None
        self._context = None
        self._kernel_selector = None
        self._cell_tasks.clear()
        self._newest_cell = None
        self._born.clear()

    def session_tasks(self, *, tree: bool = False) -> list[TaskRow]:
        # curio has no parent/child structure between tasks: the list stays flat.
        kernel = self._kernel
        if kernel is None:
            return []
        rows = []
        asking = self._newest_cell() if self._newest_cell is not None else None
        for task in sorted(_private_api.curio_tasks(kernel).values(), key=lambda t: t.id):
            coro = task.coro
            if task.id in self._internal:
                hidden = "runner" if task is self._main_task else "curio"
            elif task in self._cell_tasks:
                # The cell asking; another cell's task is one given up on (it still runs).
                hidden = "cell" if task is asking else ""
                coro = self._cell_tasks[task]
            else:
                hidden = ""
            state = "running" if task.state == "RUNNING" else "waiting"
            # A cell's task is in the session's context: the newest cell's mark is there.
            cell = None if task in self._cell_tasks else getattr(task, "cell", None)
            rows.append(
                TaskRow(task, task.name, state, self._born.get(task), coro, hidden, cell=cell)
            )
        return rows

    def start_background(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str,
        context: contextvars.Context,
    ) -> None:
        import curio

        queue = self._queue
        assert queue is not None
        _contexts_given[coro] = context

        async def spawn() -> None:
            # curio spawns from a task: the session's main task does, as this cell yields.
            task = await curio.spawn(coro, daemon=True)
            task.name = name

        queue.put(spawn)

    def _tasks_for_the_watch(self) -> list[tuple[str, Any]]:
        kernel = self._kernel
        if kernel is None:
            return []
        return [(task.name, task.coro) for task in list(_private_api.curio_tasks(kernel).values())]

    def cancel_task(self, task: Any) -> str:
        queue = self._queue
        if task.terminated or queue is None:
            raise ValueError("it has already ended")
        if task in self._cell_tasks:
            raise ValueError("it is a cell (Ctrl-C interrupts a cell)")
        # curio cancels from a task: the session's main task does it as soon as this
        # cell lets the kernel run.
        queue.put(functools.partial(task.cancel, blocking=False))
        return "cancelled as soon as this cell ends: its clean-up runs then"

    async def _cancel_from_a_cell(self, task: Any) -> None:
        # A cell is a curio task: it cancels at once (without waiting: end_tasks does).
        if task.terminated:
            return
        if task in self._cell_tasks:
            raise ValueError("it is a cell")
        await task.cancel(blocking=False)

    def _pause(self, seconds: float) -> Awaitable[None]:
        import curio

        return curio.sleep(seconds)  # type: ignore[no-any-return]


def _births(born: dict[curio.Task, float]) -> Any:
    """A curio activation that notes when each task was made (for %tasks' age)."""
    from curio.kernel import Activation

    class Births(Activation):  # type: ignore[misc]
        def created(self, task: curio.Task) -> None:
            born[task] = time.monotonic()

        def terminated(self, task: curio.Task) -> None:
            born.pop(task, None)

    return Births()


class _CrashReports(logging.Filter):
    """Turns curio's "Task Crash" log records into the report every runner gives a failed
    background task (R6): one line naming it, then its traceback from its own code."""

    def __init__(self, runner: str) -> None:
        super().__init__()
        self._runner = runner

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.msg == "Task Crash: %r" and record.exc_info and record.exc_info[1]):
            return True
        task = record.args[0] if isinstance(record.args, tuple) and record.args else None
        exc = record.exc_info[1]
        self.report(getattr(task, "name", None) or None, exc)
        return False

    def report(self, name: str | None, exc: BaseException) -> None:
        """Report the failure; ``name`` None: named by the task's first function."""
        import curio

        first = cut_to_task_code(exc, os.path.dirname(curio.__file__) + os.sep)
        if name is None:
            name = first.tb_frame.f_code.co_qualname if first is not None else "?"
        say_failed(f"background task {name} of the {self._runner} session failed:", exc)


async def _until_readable(selector: GuiSelector, gui: GuiHook, fds: Sequence[int]) -> None:
    """Run the session until one of ``fds`` is readable (the prompt has input), the GUI
    waiting in the kernel's selector meanwhile (``_gui_wait``)."""
    import select

    import curio

    selector.gui = gui
    try:
        await curio.run_in_thread(select.select, list(fds), [], [])
    finally:
        selector.gui = None


async def _run_cell_task(submitted: SubmittedCell) -> None:
    """A cell, as a task of the session: whatever happens, it settles ``submitted``. A cell
    that runs cells (``%run script.ipy``) runs in a portal, so that those can await in its
    task (see ``_portal``)."""
    cell = submitted.cell
    try:
        if runs_cells(cell):
            from .._nesting._portal import Portal

            submitted.succeed(await Portal(cell, cell=cell))
        else:
            submitted.succeed(await cell)
    except BaseException as exc:
        submitted.fail(exc)


_runner = CurioRunner()


def get_runner() -> CurioRunner:
    """Entry point: the session's curio runner (one object per process)."""
    return _runner


#: The contexts chosen for coroutines about to be spawned (a %%background cell's).
_contexts_given: weakref.WeakKeyDictionary[Any, contextvars.Context] = weakref.WeakKeyDictionary()


def _session_task_class(session: contextvars.Context) -> type[Any]:
    """curio's task class for the session: every task runs in a copy of its parent's
    context, as asyncio's and trio's do (curio's default tasks all share the thread's), so
    a background task keeps the variables of the cell that started it (ipykernel's output
    routing among them); cells run in the session's one context, and see each other's
    variables (R4)."""
    import curio.task

    class SessionTask(curio.task.ContextTask):  # type: ignore[misc]
        def __init__(self, coro: Any, parent: Any = None) -> None:
            super().__init__(coro, parent)
            if getattr(coro, "cr_code", None) is _run_cell_task.__code__:
                self._context = session
            elif (given := _contexts_given.pop(coro, None)) is not None:
                self._context = given
            #: The cell the task belongs to (B2): the one marked in its creator's context.
            self.cell: CellMark | None = cell_in(self._context)

    return SessionTask
