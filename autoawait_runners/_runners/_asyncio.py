"""The ``asyncio`` runner: one asyncio loop for the whole session, in the main thread.

IPython's own asyncio runner calls ``run_until_complete`` per await cell on a loop that
stands still between cells, and Ctrl-C leaves the cell's task pending (it resumes during the
next await cell). This runner:

- runs every cell, plain ones too, as a task on the session loop, so
  ``asyncio.get_running_loop()`` and ``asyncio.create_task()`` work in any cell (R3);
- keeps the loop running while the terminal prompt waits for input, from the prompt's
  input hook (``run_until_readable``), so background tasks make progress between cells
  (R2); a GUI's event loop (``%gui``) waits in it (``_gui_wait``);
- routes Ctrl-C to the cell (see :mod:`autoawait_runners._cell`).

Started where an asyncio loop already runs in the main thread (a Jupyter kernel, whose
loop runs between cells anyway, or a shell embedded in an asyncio program), the session
borrows that loop instead of making one: cells run as its tasks while the calling code is
parked (``_parking``), so background tasks keep running whenever the kernel is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .._core import _ctrl_c, _private_api
from .._core._messages import say
from .._core._nested_call import NestedCallTaker
from ._asyncio_session import (
    AsyncioSession,
    AsyncioSessionRunner,
    raised_by_a_task,
    run_cell_as_task,
)
from ._base import GuiHook, RunnerUnavailable, in_a_kernel

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

T = TypeVar("T")


class AsyncioRunner(AsyncioSessionRunner):
    """One asyncio loop for the session, in the main thread."""

    name = "asyncio"
    description = "one asyncio loop for the session (in a kernel, the kernel's); runs between cells"
    plain_cells_apart = True
    #: The runner whose loop runs in a thread of its own, for the same library.
    in_a_thread = "thread"

    def __init__(self) -> None:
        super().__init__()
        self._waker: _ctrl_c.Waker | None = None
        self._waker_in_loop = contextlib.ExitStack()
        #: The threads a cell of this runner runs in now (a kernel's subshells run cells in
        #: threads of their own, alongside the main shell's).
        self._cells_in: set[int] = set()
        self._shell: InteractiveShell | None = None
        self._said_no_idle_progress = False
        #: What a plain cell sees as its current task (see _run_plain_cell).
        self._plain_cells_task: asyncio.Task[None] | None = None
        #: Puts the session loop's own selector back (the loop watch's, B3).
        self._unwatch: Callable[[], None] | None = None

    def _startup(self) -> None:
        # The loop is chosen by the first cell, where it runs (see _session_here); a loop
        # policy that cannot make one is refused now, in one line (F4).
        try:
            loop = (self.loop_factory or asyncio.new_event_loop)()
            loop.close()
        except RunnerUnavailable:  # the factory's own words (a loop_factory not found)
            raise
        except Exception as exc:
            raise RunnerUnavailable(
                f"asyncio cannot make an event loop ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(loop, asyncio.BaseEventLoop):
            kind = type(loop)
            raise RunnerUnavailable(
                f"the asyncio runner re-enters its loop between cells, which only asyncio's "
                f"own loop class allows, not {kind.__module__}.{kind.__qualname__}: use the "
                "thread runner with this loop_factory (or %autoawait uvloop)"
            )

    def _session_here(self) -> AsyncioSession:
        """The session; made at the first cell, in the thread IPython runs cells in.

        Made there, not when the runner is selected, because the magic that selects it may
        run in another runner's thread, where another loop runs.
        """
        if self._session is not None:
            return self._session
        host = _private_api.running_loop()
        if host is not None:
            self._session = AsyncioSession(self.name, host=host)
            self._unwatch = self._watch_the_loop(host)
            return self._session
        session = AsyncioSession(self.name, loop_factory=self.loop_factory)
        # A SIGINT that lands on another thread writes to the waker: the loop wakes up and
        # the main thread runs the handler at once.
        self._waker = self._waker_in_loop.enter_context(
            _ctrl_c.waker_in(session.loop, only_way_to_wake=True)
        )
        self._session = session
        self._unwatch = self._watch_the_loop(session.loop)
        return session

    def _inside_cell(self) -> bool:
        return threading.get_ident() in self._cells_in or (
            self._session is not None
            and not self._session.borrowed
            and _private_api.running_loop() is self._session.loop
        )

    def _run_until_complete(self, awaitable: Coroutine[Any, Any, T] | asyncio.Future[T]) -> T:
        # greenlet is imported here, at the first cell, not by %load_ext.
        from .._nesting._parking import run_from_outside, run_on_running_loop

        assert self._session is not None
        loop = self._session.loop
        result: T
        if self._session.borrowed and _private_api.running_loop() is loop:
            result = run_on_running_loop(loop, awaitable)
        else:
            result = run_from_outside(loop, awaitable, survives=raised_by_a_task)
        return result

    def _before_the_kernels_loop(self) -> bool:
        """Whether a kernel runs this cell before its loop runs (its ``exec_lines``, its
        startup ``.ipy`` files). The session is to borrow that loop, which does not run
        yet: a loop made now would be one of its own that nothing runs once the kernel's
        does (background tasks would stand still between cells, a trio-guest run would
        never answer). Such a cell runs as it would without the extension."""
        return (
            self._session is None
            and self._shell is not None
            and in_a_kernel(self._shell)
            and _private_api.running_loop() is None
        )

    def _ipythons_own(self) -> Any:
        """IPython's own runner for this runner's library (see _before_the_kernels_loop)."""
        return _private_api.ipython_asyncio_runner()

    def _a_subshells_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop of the kernel subshell whose thread calls, or None (the main shell)."""
        session = self._session
        loop_here = _private_api.running_loop()
        if session is None or not session.borrowed or loop_here is session.loop:
            return None
        return loop_here

    def _cell_runs_in_the_shells_context(self) -> bool:
        return self._a_subshells_loop() is not None

    def _run_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._before_the_kernels_loop():
            return self._ipythons_own()(coro)
        try:
            session = self._session_here()
        except Exception as exc:  # a loop policy broken since the runner was selected
            return self._without_session(coro, f"{type(exc).__name__}: {exc}")
        here = threading.get_ident()
        self._cells_in.add(here)
        try:
            loop_here = self._a_subshells_loop()
            if loop_here is not None:
                # A kernel's subshell: its cells run in its own thread, on its own loop
                # (as ipykernel runs them), parked there like any cell on a loop below.
                from .._nesting._parking import run_on_running_loop

                return run_cell_as_task(
                    coro,
                    loop=loop_here,
                    create_task=loop_here.create_task,
                    wait_for=functools.partial(run_on_running_loop, loop_here),
                    runner=self.name,
                )
            return run_cell_as_task(
                coro,
                loop=session.loop,
                create_task=session.create_cell_task,
                wait_for=self._run_until_complete,
                runner=self.name,
                waker=self._waker,
            )
        finally:
            self._cells_in.discard(here)

    def _run_plain_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """A cell that cannot await needs the session loop only to see it (R3): it runs in
        place, in the session's context, with the loop made the running one, as IPython runs
        a plain cell, without a round trip through the loop (P5). Ctrl-C is Python's
        KeyboardInterrupt, raised where the cell is, as it would be in the cell's task.

        What it schedules (``create_task``) takes its first steps before the cell returns,
        as it did in a task of the loop: one loop iteration, only if anything is ready.
        In a kernel (a borrowed loop) and before the loop first ran, cells run as tasks.
        """
        session = self._session
        if self._before_the_kernels_loop():
            return _private_api.pseudo_sync_runner()(coro)  # as IPython runs a plain cell
        if (
            session is None
            or session.borrowed
            or not session.loop.is_running()  # run_forever waits in its greenlet
            or _private_api.running_loop() is not None
        ):
            return self._run_cell(coro)
        loop = session.loop
        if self._plain_cells_task is None:
            # Code that asks whether it runs in asyncio (sniffio, so anyio and httpx) looks
            # for a current task: a task ended at once stands for the cell's.
            stand_in = _PlainCellStandIn(self.name)
            self._plain_cells_task = session.made_plainly(
                asyncio.Task(stand_in, loop=loop, name="plain cell")
            )
        task = self._plain_cells_task
        _private_api.set_running_loop(loop)
        _private_api.enter_task(loop, task)
        try:
            result = session.context.run(_private_api.pseudo_sync_runner(), coro)
        finally:
            _private_api.leave_task(loop, task)
            _private_api.set_running_loop(None)
        if _private_api.ready_queue(loop):
            self._run_until_complete(asyncio.sleep(0))
        return result

    def _shutdown(self) -> int:
        session = self._session
        if session is None:
            return 0  # selected, but no cell ever ran
        try:
            if session.loop.is_closed():  # a borrowed loop its owner closed first
                return 0
            cancelled = self._run_until_complete(session.cancel_background())
            self._left_running += session.left_running
            if not session.borrowed:
                from .._nesting._parking import finish_outside

                if not finish_outside(session.loop):
                    self._left_running.append("its loop (a task stuck in a nested asyncio.run())")
            return cancelled
        finally:
            if self._unwatch is not None:
                self._unwatch()
                self._unwatch = None
            self._session = None
            self._plain_cells_task = None
            self._waker_in_loop.close()
            self._waker = None
            session.close()

    # -- idle progress in the terminal -----------------------------------------------------

    runs_at_the_prompt = True

    def attach(self, shell: InteractiveShell) -> None:
        self._shell = shell

    def detach(self, shell: InteractiveShell) -> None:
        self._shell = None

    def _after_cell(self) -> None:
        super()._after_cell()
        self._say_if_no_idle_progress()
        session, watch = self._session, self._watch
        if watch is not None and session is not None and not session.borrowed:
            watch.waiting()  # the loop stands still until the prompt, or the next cell, runs it

    def _say_if_no_idle_progress(self) -> None:
        """A terminal without prompt_toolkit (--simple-prompt, or input that is not a tty)
        reads input with no event loop, so no input hook runs the session loop: say so
        once, when it first matters (R2)."""
        shell, session = self._shell, self._session
        if (
            shell is not None
            and getattr(shell, "simple_prompt", None) is True
            and not self._said_no_idle_progress
            and session is not None
            and not session.borrowed
            and self._has_background_work()
        ):
            self._said_no_idle_progress = True
            say(
                f"--simple-prompt reads input with no event loop: {self.library} background "
                f"tasks run only while cells run (the {self.in_a_thread} runner keeps them "
                "running)"
            )

    def _has_background_work(self) -> bool:
        assert self._session is not None
        return any(not task.done() for task in asyncio.all_tasks(self._session.loop))

    def run_until_readable(self, fd: int, gui: GuiHook | None) -> bool:
        """Run the session loop, in this (the main) thread, until the prompt has input."""
        session = self._session
        if session is None or session.borrowed or session.loop.is_closed():
            return False  # a borrowed loop is run by its owner
        if self._inside_cell():
            return False
        from ._gui_wait import readable_future, waiting_in_gui

        loop = session.loop
        watch = self._watch
        with (
            readable_future(loop, [fd]) as input_ready,
            _ctrl_c.reaches_a_busy_prompt_loop(self._terminal_fd()),
            waiting_in_gui(loop, gui),
        ):
            if watch is not None:
                watch.woke()  # the loop goes on from where it stood: a turn of it runs
            try:
                self._run_until_complete(input_ready)
            finally:
                if watch is not None:
                    watch.waiting()  # it stands still while the prompt has input
        return True

    def _terminal_fd(self) -> int | None:
        """The terminal the prompt reads from."""
        try:
            return int(self._shell.pt_app.app.input.fileno())  # type: ignore[union-attr]
        except (AttributeError, NotImplementedError, ValueError):
            return None


class _PlainCellStandIn(Coroutine[Any, Any, None], NestedCallTaker):
    """The coroutine of the task current while a plain cell runs in place: it ends at its
    first step, and takes the cell's nested calls (``asyncio.run()`` in a plain cell), which
    run as the cell's own task: Ctrl-C cancels them at their await, or interrupts their
    code, as in an await cell (R5), and the cell gets KeyboardInterrupt when they end."""

    def __init__(self, runner: str) -> None:
        self._runner = runner

    def send(self, value: Any) -> Any:
        raise StopIteration

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        raise StopIteration

    def close(self) -> None:
        pass

    def __await__(self) -> Any:
        return self

    def take_nested_call(self, loop: Any, awaitable: Any) -> Any:
        from .._nesting._parking import run_on_running_loop

        stand_in = asyncio.current_task(loop)
        assert stand_in is not None
        _private_api.leave_task(loop, stand_in)
        try:
            return run_cell_as_task(
                _awaiting(awaitable),
                loop=loop,
                create_task=lambda cell: asyncio.Task(cell, loop=loop),
                wait_for=functools.partial(run_on_running_loop, loop),
                runner=self._runner,
            )
        finally:
            _private_api.enter_task(loop, stand_in)


async def _awaiting(awaitable: Any) -> Any:
    return await awaitable


_runner = AsyncioRunner()


def get_runner() -> AsyncioRunner:
    """Entry point: the session's asyncio runner (one object per process)."""
    return _runner
