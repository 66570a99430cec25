"""The ``curio`` runner: one curio Kernel for the whole session, in its own thread.

IPython's own curio runner calls ``curio.run`` per cell. Here one Kernel runs for the
session in a dedicated thread (the plumbing is shared with the other threaded runners, see
``_threaded``); every cell, plain ones too, runs as a task in it, so
``curio.meta.curio_running()`` is true in any cell and daemon tasks spawned in a cell keep
running between cells and while the prompt is idle.

Ctrl-C cancels the cell's task with an exception that is both a KeyboardInterrupt (what
IPython shows) and curio's ``TaskCancelled`` (what curio code expects). A task that
crashes is logged by curio itself ("Task Crash"), with its traceback, at once.

curio is the ``curio-compat`` distribution on PyPI (the last ``curio`` release does not
import on Python 3.12+); it installs the same ``curio`` package.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ._cell import CellCoroutine, interruption_type
from ._threaded import SubmittedCell, ThreadedRunner

if TYPE_CHECKING:
    import curio


def _not_translated(resumed: Any) -> None:
    """curio delivers the runner's own exception class: nothing to translate."""
    return None


class CurioRunner(ThreadedRunner):
    """One curio Kernel for the session, in its own thread."""

    name = "curio"
    library = "curio"
    extra = "curio"
    description = "one curio Kernel for the session, in its own thread"

    def __init__(self) -> None:
        super().__init__()
        self._queue: curio.UniversalQueue | None = None
        self._interruption: type[BaseException] | None = None
        self._cell_tasks: set[curio.Task] = set()
        self._internal: set[int] = set()

    def _serve(self, ready: Callable[[], None]) -> None:
        import curio
        import curio.errors

        self._interruption = interruption_type(curio.errors.TaskCancelled)
        self._queue = curio.UniversalQueue()
        kernel = curio.Kernel()
        try:
            kernel.run(self._main, kernel, ready)
            # curio has no public list of a kernel's tasks; this is what its own shutdown
            # cancels, less its own and the cell that asked for the shutdown (finishing).
            left = [t for tid, t in kernel._tasks.items() if tid not in self._internal]
            self._cancelled = sum(task not in self._cell_tasks for task in left)
        finally:
            kernel.run(shutdown=True)

    async def _main(self, kernel: curio.Kernel, ready: Callable[[], None]) -> None:
        queue = self._queue
        assert queue is not None
        self._internal = set(kernel._tasks)  # the kernel's own task(s), and this one
        ready()
        while (request := await queue.get()) is not None:
            await request()

    def _make_cell(self, coro: Coroutine[Any, Any, Any]) -> CellCoroutine[Any]:
        return CellCoroutine(coro, _not_translated)

    def _submit(self, submitted: SubmittedCell) -> None:
        import curio

        queue, interruption = self._queue, self._interruption
        assert queue is not None and interruption is not None
        tasks: list[curio.Task] = []

        async def start() -> None:
            task = await curio.spawn(_run_cell_task, submitted, daemon=True)
            tasks.append(task)
            # Cells that ended are gone from the kernel; remember only the live ones.
            self._cell_tasks = {t for t in self._cell_tasks if not t.terminated}
            self._cell_tasks.add(task)

        async def cancel() -> None:
            await tasks[0].cancel(exc=interruption, blocking=False)

        submitted.cancel = lambda: queue.put(cancel)
        queue.put(start)

    def _request_stop(self) -> None:
        queue = self._queue
        assert queue is not None
        queue.put(None)

    def _reset(self) -> None:
        self._queue = None
        self._cell_tasks.clear()


async def _run_cell_task(submitted: SubmittedCell) -> None:
    """A cell, as a task of the session: whatever happens, it settles ``submitted``."""
    try:
        submitted.succeed(await submitted.cell)
    except BaseException as exc:
        submitted.fail(exc)


_runner = CurioRunner()


def get_runner() -> CurioRunner:
    """Entry point: the session's curio runner (one object per process)."""
    return _runner
