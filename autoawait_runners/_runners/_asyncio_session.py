"""An asyncio loop that lives for a whole IPython session: what the asyncio-family runners
(``asyncio`` in the main thread, ``thread`` in a thread of its own) have in common.

- Every cell runs as a task in one :class:`contextvars.Context`, so context variables set in
  one cell are seen by the next (R4); tasks a cell starts copy it, as usual in asyncio.
- A background task that fails is reported once, with its traceback, by the next prompt at
  the latest (R6): unless something retrieved its exception first (an ``await``, a
  ``gather``), which is how asyncio itself decides whether to log it.
- Shutting down cancels the background tasks, waits briefly for their ``finally`` blocks,
  closes async generators and the default executor, then the loop (R8).
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import contextlib
import contextvars
import dataclasses
import os
import re
import selectors
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .._core import _ctrl_c, _private_api
from .._core._cell import CellCoroutine, CellInterrupted
from .._core._loop_watch import WatchedSelector
from .._core._messages import SHUTDOWN_TIMEOUT, plural, say, say_failed
from .._core._shell_context import session_only
from .._core._tracebacks import closing_quietly, cut_to_task_code, for_the_user
from .._nesting._loops import context_entered, nested_calls
from ._base import CellMark, Runner, TaskRow, cell_in, current_cell, runs_cells

#: How long a failed task's exception may wait to be retrieved by the code that owns it
#: before it is reported while the prompt is idle.
REPORT_DELAY = 0.1

#: At a session's end, the least time the tasks cancelled last get to take their
#: cancellation, whatever the tasks cancelled first took of the shutdown timeout.
CANCELLATION_MOMENT = 0.1

#: A background failure like one shown less than this long ago (same coroutine, exception
#: type and message) is counted, not shown again; one line gives the count (F6).
COALESCE_WINDOW = 5.0

# What Ctrl-C must know of asyncio (and of curio's loop, which sleeps in the same place).
_ctrl_c.know(
    _ctrl_c.LoopLibrary(
        "asyncio",
        waits_in=(("selectors", "select"),),
        # asyncio.run's and asyncio.Runner's handler (around embed() in a program)
        sigint_handlers_in=("asyncio.runners",),
    )
)

#: Set, in a session's context, to the session: see :class:`AsyncioSession`.
_session_of_context: contextvars.ContextVar[AsyncioSession] = session_only(
    contextvars.ContextVar("autoawait_runners_session")
)


def translate_cancellation(exc: BaseException) -> BaseException | None:
    """The asyncio cancellation the runner caused, as the cell should see it."""
    if isinstance(exc, asyncio.CancelledError) and not isinstance(exc, KeyboardInterrupt):
        return CellInterrupted()
    return None


def run_cell_as_task(
    coro: Coroutine[Any, Any, Any],
    *,
    loop: asyncio.AbstractEventLoop,
    create_task: Callable[[CellCoroutine[Any]], asyncio.Task[Any]],
    wait_for: Callable[[Any], Any],
    runner: str,
    waker: _ctrl_c.Waker | None = None,
) -> Any:
    """Run a cell as a task of ``loop`` from the thread that waits for it; Ctrl-C goes to
    the cell (``_ctrl_c.waiting_for``), and a cell left running by Ctrl-C is cancelled, not
    left to resume later.

    ``create_task`` makes the cell's task; ``wait_for(awaitable)`` runs the loop until the
    awaitable is done and returns its result (the asyncio runner runs its session loop;
    the embed runner waits on a loop already running below it). ``waker``: the runner's
    own loop's (see ``_ctrl_c.waker_in``); a loop running below gets one for the cell.

    On a loop already running below (a Jupyter kernel's), the main thread is mostly the
    kernel's own machinery (its output streams, its messaging), which an exception raised
    by the signal handler at an arbitrary point can leave half-done: there the Ctrl-C that
    gives up on the cell tells this code to stop waiting, and it raises from here.
    """
    cell = CellCoroutine(coro, translate_cancellation)
    # The loop's machinery can hold the finished task a while (parking keeps the last step's
    # frame until the loop is next run): the task must not hold the cell's value (F7).
    cell.value_aside = True
    task = create_task(cell)
    running_below = _private_api.running_loop() is loop
    given_up = loop.create_future() if running_below else None
    here = threading.get_ident()

    def cancel() -> None:
        loop.call_soon_threadsafe(task.cancel)

    def wait(timeout: float) -> bool:
        wait_for(asyncio.wait([task], timeout=timeout))
        return task.done()

    def stop_waiting() -> None:
        assert given_up is not None
        loop.call_soon_threadsafe(resolve, given_up)

    controls = _ctrl_c.CellControls(
        cell,
        runner=runner,
        thread=lambda: here,
        cancel=cancel,
        wait=wait,
        ended=task.done,
        stop_waiting=None if given_up is None else stop_waiting,
    )
    waker_below = (
        _ctrl_c.waker_in(loop, only_way_to_wake=False)
        if waker is None and running_below
        else contextlib.nullcontext(waker)
    )
    with waker_below as waker_here, _ctrl_c.waiting_for(controls, waker=waker_here):
        try:
            if given_up is None:
                wait_for(task)
            else:
                wait_for(asyncio.wait([task, given_up], return_when=asyncio.FIRST_COMPLETED))
                if not task.done():
                    raise KeyboardInterrupt
            task.result()  # raises what the cell raised
            return cell.take_value()
        finally:
            if given_up is not None:
                given_up.cancel()
            if task.done() and not task.cancelled():
                # A KeyboardInterrupt the cell raised ends the loop's step, and comes out
                # here before anything retrieved it: asyncio would log it again at exit.
                task.exception()


def _close_coroutine(coro: Any) -> None:
    with contextlib.suppress(RuntimeError):  # it awaited again in a finally block
        coro.close()


def resolve(future: asyncio.Future[Any]) -> None:
    """Give ``future`` its result (None) unless it has one: a wake-up scheduled from another
    thread with ``call_soon_threadsafe``, which may come after the future is done."""
    if not future.done():
        future.set_result(None)


def resolve_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
    """:func:`resolve` ``future`` from any thread, in ``loop``'s own; nothing if the loop
    was closed meanwhile (by its owner: nobody waits on it any more)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(resolve, future)


def raised_by_a_task(exc: BaseException) -> bool:
    """For ``_ctrl_c.run_past_interrupts``: a KeyboardInterrupt or SystemExit that ended
    the session loop's run came from a task, which keeps it and is reported as a failed
    background task, with the traceback of its own frames (the loop's frames it went
    through since are cut off). The loop runs on (F1)."""
    cut_to_task_code(exc, ASYNCIO_DIR)
    return True


#: Where the frames between a loop's run_forever and a task's code live.
ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep


def coroutine_name(coro: Any) -> str:
    """``boom`` for the coroutine of ``async def boom()``."""
    return str(getattr(coro, "__qualname__", type(coro).__name__))


def _failed_name(task: asyncio.Task[Any], coro: Any) -> str:
    """How a failure report names a task, as the trio and curio runners do: its coroutine's
    name, and the name its creator gave it, if one was given (not asyncio's Task-N)."""
    name = task.get_name()
    given = name != "None" and re.fullmatch(r"Task-\d+", name) is None
    return coroutine_name(coro) + (f" ({name!r})" if given else "")


def _made_where_the_code_made_it(task: asyncio.Task[Any], *, by_a_factory: bool) -> None:
    """In debug mode asyncio keeps where a task was made (its ``_source_traceback``, shown
    when it fails unretrieved or is destroyed pending); the session's factory was the last
    frame there, where the code that made the task is without it. Its frame is taken out,
    and, where no factory of the code's own made the task, the loop's ``create_task`` that
    called it (asyncio leaves that frame out when it makes the task itself)."""
    source = getattr(task, "_source_traceback", None)
    if not source:
        return
    source[:] = [frame for frame in source if frame.filename != __file__]
    if not by_a_factory and source[-1:] and source[-1].filename == _BASE_EVENTS:
        del source[-1]


_BASE_EVENTS = asyncio.base_events.__file__


def is_a_cell(coro: Any) -> bool:
    """Whether a task's coroutine runs a cell (in a portal, too: see create_cell_task)."""
    return isinstance(coro, CellCoroutine) or isinstance(
        getattr(coro, "coroutine", None), CellCoroutine
    )


def describe_task(task: asyncio.Task[Any], coro: Any) -> str:
    """``'name' running coro()``; Python 3.13.0 names factory-made tasks 'None'."""
    if is_a_cell(coro):
        return "a cell given up on after Ctrl-C"
    running = f"running {coroutine_name(coro)}()"
    name = task.get_name()
    return running if name == "None" else f"{name!r} {running}"


class AsyncioSession:
    """One asyncio loop and what lives on it between cells.

    The loop is the session's own, or (``host`` given) a loop already running in this thread
    that the session borrows: a Jupyter kernel's, whose loop runs between cells anyway. A
    borrowed loop is left open at the end, and only the tasks the session's cells started
    (and the tasks those started) count as the session's background tasks.
    """

    def __init__(
        self,
        runner_name: str,
        host: asyncio.AbstractEventLoop | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        self.runner_name = runner_name
        self.borrowed = host is not None
        if host is not None:
            self.loop = host
        else:
            self.loop = (loop_factory or asyncio.new_event_loop)()
        # Empty: the shell's values come in with each cell (Runner, _core._shell_context).
        # Tasks inherit their creator's context, so the mark in it marks everything the
        # cells start, however indirectly, and nothing the host loop's own code starts.
        self.context = self.marked_context()
        self._tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._failed: list[asyncio.Task[Any]] = []
        self._failed_lock = threading.Lock()
        # The cell running, or the last one, held weakly: its result (the cell's value) must
        # not outlive what IPython keeps of it (%reset, %xdel; F7).
        self._cell_ref: Callable[[], asyncio.Task[Any] | None] = lambda: None
        self._made_during_cell: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        #: The tasks a cell started itself (not a task of the session's): ended first.
        self._started_by_cells: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._born: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = (
            weakref.WeakKeyDictionary()
        )  # task -> when made, for %tasks
        #: task -> the cell it belongs to (B2), read from its creator's context as it was made.
        self._cells: weakref.WeakKeyDictionary[asyncio.Task[Any], CellMark] = (
            weakref.WeakKeyDictionary()
        )
        # task -> its coroutine, taken as the task was made: see coroutine_of.
        self._coroutines: weakref.WeakKeyDictionary[asyncio.Task[Any], Any] = (
            weakref.WeakKeyDictionary()
        )
        # (coroutine, exception type, message) -> [when last shown, repeats counted since]
        self._shown: dict[tuple[str, str, str], list[Any]] = {}
        #: What the ending session could not end (see cancel_background), for its runner.
        self.left_running: list[str] = []
        # The session's task factory stays the loop's: a cell that sets one of its own
        # (loop.set_task_factory) sets the factory under it, which it calls, so failures
        # are still reported and %tasks still lists (F7). get_task_factory() says theirs.
        self._inner_factory: Any = self.loop.get_task_factory()  # the host's, or a cell's
        self.loop.set_task_factory(self._task_factory)
        self.loop.set_task_factory = self._set_inner_factory  # type: ignore[method-assign]
        self.loop.get_task_factory = self._get_inner_factory  # type: ignore[method-assign]

    @property
    def _cell(self) -> asyncio.Task[Any] | None:
        return self._cell_ref()

    def coroutine_of(self, task: asyncio.Task[Any]) -> Any:
        """The task's coroutine, as it was made; None for a task the session did not see
        made that has ended.

        Not ``task.get_coro()`` for a task that has ended: one that ended in its first step,
        run as it was made (an eager task factory's), no longer has its coroutine, and its
        ``get_coro()`` gives None (Python 3.12.5+) or crashes the interpreter (3.12.0-3.12.4).
        """
        coro = self._coroutines.get(task)
        if coro is None and not task.done():
            coro = task.get_coro()
        return coro

    def marked_context(self) -> contextvars.Context:
        """A new context with nothing in it but the session's mark: the tasks started from
        code run in it, however indirectly, are the session's (on a borrowed loop too)."""
        context = contextvars.Context()
        context.run(_session_of_context.set, self)
        return context

    def made_plainly(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Note the coroutine of a task the runner made without the factory, as it was made
        (see :meth:`coroutine_of`); returns the task."""
        self._coroutines[task] = task.get_coro()
        return task

    # -- tasks -----------------------------------------------------------------------------

    def _set_inner_factory(self, factory: Any) -> None:
        if factory is not None and not callable(factory):
            raise for_the_user(TypeError("task factory must be a callable or None"))  # asyncio's
        self._inner_factory = factory

    def _get_inner_factory(self) -> Any:
        return self._inner_factory

    def _task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        # Python 3.13.0 names a task 'None' when given name=None explicitly.
        options = {key: value for key, value in kwargs.items() if value is not None}
        task: asyncio.Task[Any]
        # A task made from outside the loop is the runner's own (what its waiting thread
        # or greenlet runs the loop until): made the plain way, since a factory that runs
        # a task's first step at once (asyncio.eager_task_factory) would run it there,
        # where the loop is not the running one.
        in_the_loop = _private_api.running_loop() is loop
        inner = self._inner_factory is not None and in_the_loop
        if inner:
            task = self._inner_factory(loop, coro, **options)
        else:
            task = asyncio.Task(coro, loop=loop, **options)
        _made_where_the_code_made_it(task, by_a_factory=inner)
        if self.borrowed and _session_of_context.get(None) is not self:
            return task  # the host's
        context = kwargs.get("context")
        cell = current_cell() if context is None else cell_in(context)
        if cell is not None:
            self._cells[task] = cell
        starter = asyncio.current_task(loop) if in_the_loop else None
        if starter is None or starter not in self._born or is_a_cell(self._coroutines.get(starter)):
            self._started_by_cells.add(task)  # by a cell's task, a plain cell, no task
        self._born[task] = time.monotonic()
        self._coroutines[task] = coro
        if self.borrowed:
            self._tasks.add(task)
        if self._cell is not None and not self._cell.done():
            self._made_during_cell.add(task)
        if task.done():
            # Ended in its first step, run as it was made (an eager task): known as failed
            # now, as a task that waits is known as waiting (%tasks in the same cell).
            self._on_task_done(task)
        else:
            task.add_done_callback(self._on_task_done)
        return task

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        # `_log_traceback` is asyncio's own "exception not retrieved yet" flag (on both the C
        # and Python tasks); reading it does not retrieve the exception.
        if not _private_api.exception_unretrieved(task):
            return
        with self._failed_lock:
            self._failed.append(task)
        self.loop.call_later(REPORT_DELAY, self.report_failures, True)

    def report_failures(self, cell_may_retrieve: bool = False) -> None:
        """Print the traceback of each background task that failed unnoticed.

        ``cell_may_retrieve``: while a cell runs, the tasks it started are left for it to
        await (``b = create_task(boom()); await sleep(1); await b`` shows the cell's error
        only, not a background failure too); they are looked at again when it ends (R6).
        """
        cell = self._cell
        keep = cell_may_retrieve and cell is not None and not cell.done()
        with self._failed_lock:
            failed, self._failed = self._failed, []
            if keep:
                self._failed = [task for task in failed if task in self._made_during_cell]
                failed = [task for task in failed if task not in self._made_during_cell]
        now = time.monotonic()
        for task in failed:
            if not _private_api.exception_unretrieved(task):
                continue  # someone awaited it in the meantime
            exc = task.exception()  # marks it retrieved: asyncio will not log it again
            assert exc is not None
            coro = self.coroutine_of(task)
            like = (coroutine_name(coro), type(exc).__qualname__, str(exc))
            shown = self._shown.get(like)
            if shown is not None and now - shown[0] < COALESCE_WINDOW:
                if not shown[1] and cell_may_retrieve:
                    # The first repeat, seen on the loop (this timer's thread): the count is
                    # said when the window ends. (Called at the end of a cell, possibly
                    # from another thread, every count is said below.)
                    self.loop.call_later(COALESCE_WINDOW, self.report_failures, True)
                shown[1] += 1
                continue
            self._say_repeats(like)
            self._shown[like] = [now, 0]
            cut_to_task_code(exc, ASYNCIO_DIR)
            say_failed(
                f"background task {_failed_name(task, coro)} of the {self.runner_name} session "
                "failed:",
                exc,
            )
        for like, (since, _) in list(self._shown.items()):
            if not cell_may_retrieve or now - since >= COALESCE_WINDOW:
                self._say_repeats(like)
            if now - since >= COALESCE_WINDOW:
                del self._shown[like]  # the next one like it is shown again

    def _say_repeats(self, like: tuple[str, str, str]) -> None:
        """One line for the failures like an earlier one that were counted, not shown."""
        shown = self._shown.get(like)
        if shown is not None and shown[1]:
            name, kind, message = like
            say(f"... and {plural(shown[1], 'more failure')} like it ({name}(): {kind}: {message})")
            shown[1] = 0

    def create_cell_task(self, cell: CellCoroutine[Any]) -> asyncio.Task[Any]:
        """Start a cell as a task on the loop, in the session's context. Loop thread only.

        Made directly rather than through the task factory: a cell is not background work.
        Still the session's: one abandoned after Ctrl-C is cancelled when the session ends.
        """
        if context_entered(self.context):
            # A cell abandoned inside a nested call holds the context (see _parking): the
            # session goes on in a copy, with every variable as that cell left it.
            self.context = self.context.copy()
        code: Coroutine[Any, Any, Any] = cell
        if runs_cells(cell) and not isinstance(self.loop, asyncio.BaseEventLoop):
            # The cells it runs cannot park in this loop (uvloop's): they await in a portal.
            from .._nesting._portal import Portal

            code = Portal(cell, cell=cell)
        task = asyncio.Task(code, loop=self.loop, context=self.context)
        self._born[task] = time.monotonic()
        self._coroutines[task] = cell
        if self.borrowed:
            self._tasks.add(task)
        self._cell_ref, self._made_during_cell = weakref.ref(task), weakref.WeakSet()
        return task

    # -- %tasks ----------------------------------------------------------------------------

    def task_rows(self) -> list[TaskRow]:
        """The loop's tasks, oldest first (loop thread only): the session's, those that
        failed and are not reported yet, and (hidden) the cell and a host loop's own."""
        alive = asyncio.all_tasks(self.loop)
        mine = alive if not self.borrowed else {task for task in self._tasks if not task.done()}
        with self._failed_lock:
            failed = [task for task in self._failed if _private_api.exception_unretrieved(task)]
        current = asyncio.current_task(self.loop)
        # The current task is the cell asking, even where it stands for a plain cell and
        # has ended (see AsyncioRunner._run_plain_cell).
        asking = {current} if current is not None else set()
        rows = []
        for task in sorted({*alive, *failed, *asking}, key=lambda t: self._born.get(t, 0.0)):
            if task is current:  # the cell asking; another cell's task is one given up on
                hidden = "cell"
            elif task in mine or task in failed:
                hidden = ""
            else:
                hidden = "kernel" if self.borrowed else "runner"
            state = "failed" if task in failed else "running" if task is current else "waiting"
            rows.append(
                TaskRow(
                    task,
                    task.get_name(),
                    state,
                    self._born.get(task),
                    self.coroutine_of(task),
                    hidden,
                    cell=self._cells.get(task),
                )
            )
        return rows

    # -- shutdown --------------------------------------------------------------------------

    async def cancel_background(self) -> int:
        """Cancel every task left (a cell abandoned after Ctrl-C too) and let its clean-up
        run, within :data:`SHUTDOWN_TIMEOUT`. Runs on the loop.

        The tasks cells started are cancelled first, and waited for; then what is left.
        A server a cell started (hypercorn's ``serve``) ends its own tasks (its connections,
        its lifespan) in its clean-up, in its order, as when a script cancels it; cancelled
        at once with them, it found them gone and failed ("Lifespan failure in shutdown").
        """
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        mine = asyncio.all_tasks(self.loop) if not self.borrowed else set(self._tasks)
        tasks = [t for t in mine if not t.done() and t is not asyncio.current_task()]
        # A nested asyncio.run() is its caller's business: cancelling the caller cancels it.
        nested = nested_calls(self.loop)
        background = [task for task in tasks if task not in nested]
        first = [task for task in background if task in self._started_by_cells]
        in_order = bool(first) and len(first) < len(background)
        if in_order:
            for task in first:
                task.cancel()
            await asyncio.wait(first, timeout=SHUTDOWN_TIMEOUT)
        for task in background:
            if not (in_order and task in first):
                task.cancel()
        if tasks:
            # What is left gets the rest of the time, and a moment to take its cancellation.
            left = max(deadline - time.monotonic(), CANCELLATION_MOMENT)
            _, pending = await asyncio.wait(tasks, timeout=left)
            for task in pending:
                # Not ended within the timeout: its clean-up takes longer, or it ignores
                # cancellation. Said in the runner's closing line, not at garbage collection.
                coro = self.coroutine_of(task)
                self.left_running.append(
                    f"{describe_task(task, coro)} (not ended {SHUTDOWN_TIMEOUT:g} s after "
                    "cancellation)"
                )
                task.remove_done_callback(self._on_task_done)
                _private_api.forget_pending(task)
                if self.borrowed:
                    continue
                # The loop closes: nothing will run it again. Closed now, its clean-up runs
                # while the namespace it uses exists, not at interpreter exit, and with the
                # loop running: an await in it suspends, so close() ends, even where the
                # code swallows every exception in a loop (it printed without end at exit).
                if is_a_cell(coro):
                    with closing_quietly():  # IPython's run_cell_async around it
                        _close_coroutine(task.get_coro())
                else:
                    _close_coroutine(task.get_coro())  # pending: it has it
        if self.borrowed:
            return len(background)  # the host's async generators and executor are the host's
        await self.loop.shutdown_asyncgens()
        await self._shut_down_executor()
        return len(background)

    async def _shut_down_executor(self) -> None:
        """Shut the loop's default executor down, waiting for its running jobs at most
        :data:`SHUTDOWN_TIMEOUT`. (``loop.shutdown_default_executor`` joins its helper
        thread, which waits for every running job: a ``to_thread(time.sleep, 20)`` held a
        switch or ``%unload_ext`` for 20 s.) Jobs still running then cannot be stopped:
        one line says so, and they finish on their own."""
        executor = _private_api.default_executor(self.loop)
        if executor is None:
            return
        finished = self.loop.create_future()

        def shut_down() -> None:
            executor.shutdown(wait=True, cancel_futures=True)
            resolve_soon(self.loop, finished)

        threading.Thread(target=shut_down, name="autoawait_runners-executor", daemon=True).start()
        done, _ = await asyncio.wait([finished], timeout=SHUTDOWN_TIMEOUT)
        if not done:
            running = _private_api.executor_jobs_running(executor)
            self.left_running.append(
                f"{plural(running, 'executor job')} (to_thread, run_in_executor: they end "
                "on their own)"
            )

    def close(self) -> None:
        """Close the loop, once :meth:`cancel_background` has run and the loop stopped (one
        that could not be stopped is left open); a borrowed loop is given back as it was."""
        self.report_failures()
        for name in ("set_task_factory", "get_task_factory"):
            vars(self.loop).pop(name, None)
        if self.borrowed:
            if not self.loop.is_closed():
                self.loop.set_task_factory(self._inner_factory)
        elif not self.loop.is_running():
            self.loop.close()


def _nothing() -> None:
    pass


#: Whether asyncio's call graphs (Python 3.14) can say which task awaits which.
ASYNCIO_CALL_GRAPHS = hasattr(asyncio, "capture_call_graph")


def in_tree_order(rows: list[TaskRow]) -> list[TaskRow]:
    """``rows`` (oldest first) as a tree: each task under the nearest task that awaits it
    (directly, or through a ``gather()``, a ``TaskGroup``: asyncio's call graph, Python
    3.14), children oldest first. A task is put under one that ``%tasks`` shows with it:
    a session task awaited by the cell (hidden) stays a root."""
    capture_call_graph = asyncio.capture_call_graph  # type: ignore[attr-defined,unused-ignore]
    by_task = {row.task: row for row in rows}

    def parent_of(row: TaskRow) -> Any:
        waiting = list(capture_call_graph(row.task, limit=0).awaited_by)
        seen: set[int] = set()
        while waiting:  # breadth first: the nearest awaiter
            graph = waiting.pop(0)
            if id(graph.future) in seen:
                continue
            seen.add(id(graph.future))
            awaiter = by_task.get(graph.future)
            if awaiter is not None and awaiter.hidden in ("", row.hidden):
                return graph.future
            waiting.extend(graph.awaited_by)
        return None

    children: dict[Any, list[TaskRow]] = {}
    for row in rows:
        children.setdefault(parent_of(row), []).append(row)
    ordered: list[TaskRow] = []
    placed: set[int] = set()  # ids of the tasks in `ordered`

    def add(row: TaskRow, depth: int) -> None:
        ordered.append(dataclasses.replace(row, depth=depth))
        placed.add(id(row.task))
        for child in children.pop(row.task, []):
            add(child, depth + 1)

    for root in children.pop(None, []):
        add(root, 0)
    for rest in list(children.values()):  # a cycle of awaits: shown, flat
        for row in rest:
            if id(row.task) not in placed:
                add(row, 0)
    return ordered


class AsyncioSessionRunner(Runner):
    """What the asyncio-family runners share: an :class:`AsyncioSession` per session."""

    library = "asyncio"

    def __init__(self) -> None:
        super().__init__()
        self._session: AsyncioSession | None = None
        #: What makes the session loop (``c.AutoawaitRunners.loop_factory``); None:
        #: ``asyncio.new_event_loop``.
        self.loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None

    cells_in_a_session_context = True

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The session loop, or None when the runner is closed."""
        return self._session.loop if self._session is not None else None

    def _session_context(self) -> contextvars.Context | None:
        return self._session.context if self._session is not None else None

    def _make_cell(self, coro: Coroutine[Any, Any, Any]) -> CellCoroutine[Any]:
        return CellCoroutine(coro, translate_cancellation)

    def _after_cell(self) -> None:
        if self._session is not None:
            self._session.report_failures()

    def _watch_the_loop(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Start the loop watch (B3) on ``loop``, which runs in this thread: its waits are
        marked by its selector, wrapped; a loop without one (uvloop's, in C) gets a
        heartbeat instead. Returns what puts the loop's own selector back."""
        own = _private_api.loop_selector(loop)
        if not isinstance(own, selectors.BaseSelector):
            self._start_watching(threading.get_ident(), heartbeat=loop.call_soon_threadsafe)
            return _nothing
        watched = WatchedSelector(own, self._start_watching(threading.get_ident()))
        _private_api.set_loop_selector(loop, watched)

        def unwatch() -> None:
            if _private_api.loop_selector(loop) is watched:
                _private_api.set_loop_selector(loop, own)

        return unwatch

    def _tasks_for_the_watch(self) -> list[tuple[str, Any]]:
        session = self._session
        if session is None:
            return []
        return [(task.get_name(), task.get_coro()) for task in asyncio.all_tasks(session.loop)]

    #: asyncio's call graphs (Python 3.14) say which task awaits which.
    task_tree = ASYNCIO_CALL_GRAPHS

    def session_tasks(self, *, tree: bool = False) -> list[TaskRow]:
        if self._session is None:
            return []
        rows = self._session.task_rows()
        # Not self.task_tree: trio-guest's says trio's nurseries are a tree.
        return in_tree_order(rows) if tree and ASYNCIO_CALL_GRAPHS else rows

    def _pause(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(seconds)

    def start_background(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str,
        context: contextvars.Context,
    ) -> None:
        # In a cell: in the loop's thread, the loop running (a plain cell's too, R3).
        loop = self.loop
        assert loop is not None
        # The loop holds it until its first step, its handle (in _bg) from then on.
        loop.create_task(coro, name=name, context=context)

    def cancel_task(self, task: Any) -> str:
        if task.done():
            raise ValueError("it has already ended")
        if task is asyncio.current_task():
            raise ValueError("it is this cell (Ctrl-C interrupts a cell)")
        task.cancel()
        return "cancelled: its clean-up runs as the loop goes on"
