"""How a cell's coroutine is driven and interrupted: the plumbing every runner shares.

IPython hands a runner the coroutine of ``run_cell_async``. Inside it, ``run_code`` catches
*every* exception the user's code raises and shows it, so whatever Ctrl-C raises in the
cell is what the user sees. :class:`CellCoroutine` wraps that coroutine so a runner can tell
where the cell is when Ctrl-C arrives:

- running Python code (a busy loop, ``time.sleep``): :class:`KeyboardInterrupt` is raised
  right there, as it would be in a plain Python program;
- suspended at an ``await``: the runner cancels the cell's task, and the cancellation is
  delivered to the cell's code as a :class:`KeyboardInterrupt` (so IPython shows
  ``KeyboardInterrupt``) that is also the library's cancellation exception where the
  library allows it (so ``except asyncio.CancelledError`` clean-up and ``finally`` blocks
  run, and TaskGroups cancel their children): :data:`CellInterrupted` for asyncio, a
  ``TaskCancelled`` twin for curio, a plain KeyboardInterrupt for trio (whose ``Cancelled``
  cannot be subclassed).

Either way the cell's coroutine finishes before the next prompt: nothing of it resumes
later, unlike IPython's own asyncio runner whose interrupted task stays pending. Where a
press goes, and the SIGINT handler itself, are ``_ctrl_c``'s: this module only keeps the
flags it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar, overload

from . import _private_api
from ._nested_call import NestedCallWaiter, frame_of

T = TypeVar("T")


def interruption_type(cancelled: type[BaseException]) -> type[KeyboardInterrupt]:
    """A KeyboardInterrupt that is also the library's cancellation exception.

    IPython names the exception by its class name, so the class is called
    ``KeyboardInterrupt`` in tracebacks; ``isinstance(exc, CellInterrupted)`` tells it apart.
    """
    return type(
        "KeyboardInterrupt",
        (KeyboardInterrupt, cancelled),
        {
            "__module__": __name__,
            "__doc__": "Ctrl-C delivered to a cell waiting at an await (see CellInterrupted).",
            "__str__": _no_message_but_its_own,
            "delivered_at_an_await": True,
        },
    )


class AwaitInterrupted(KeyboardInterrupt):
    """Ctrl-C delivered to a cell waiting at an await, where the library's cancellation
    cannot be subclassed (trio's ``Cancelled``): a KeyboardInterrupt, shown as one."""

    #: Its traceback ends in the user's code: below it is only how the library waits
    #: (``_tracebacks``).
    delivered_at_an_await = True


AwaitInterrupted.__name__ = AwaitInterrupted.__qualname__ = "KeyboardInterrupt"


def _no_message_but_its_own(exc: BaseException) -> str:
    """A cancellation made with its class's name as message (curio's way) shows as a bare
    KeyboardInterrupt does, not as ``KeyboardInterrupt: KeyboardInterrupt``."""
    text = BaseException.__str__(exc)
    return "" if text == type(exc).__name__ else text


def _asyncio_interruption() -> type[KeyboardInterrupt]:
    import asyncio

    return interruption_type(asyncio.CancelledError)


def _ran(coro: Any) -> bool:
    """Whether a coroutine (or generator) has run any of its code yet."""
    import inspect

    if inspect.iscoroutine(coro):
        return inspect.getcoroutinestate(coro) != inspect.CORO_CREATED
    if inspect.isgenerator(coro):
        return inspect.getgeneratorstate(coro) != inspect.GEN_CREATED
    return True  # another awaitable: assume it has


class CellDidNotRun(KeyboardInterrupt):
    """A cell that Ctrl-C cancelled before its code ran. The IPython glue still numbers it
    and keeps it in the history, as IPython does an interrupted cell (the next prompt's
    number does not repeat, and ``In[n]`` has what was typed)."""


# Shown as what it is to the user: a KeyboardInterrupt.
CellDidNotRun.__name__ = CellDidNotRun.__qualname__ = "KeyboardInterrupt"
CellDidNotRun.__module__ = "builtins"


def cancelled_before_it_ran() -> CellDidNotRun:
    """What a cell that Ctrl-C cancelled before its code ran gives IPython to show: one line
    that says so, and why it had not run (its loop was busy with an earlier cell, or with
    code that does not yield)."""
    return CellDidNotRun(
        "the cell did not run: Ctrl-C cancelled it while it waited for its loop (busy with "
        "an earlier cell or code that does not yield)"
    )


#: Raised in a cell's code at the ``await`` where Ctrl-C found it, under the asyncio-family
#: runners. A subclass of both :class:`KeyboardInterrupt` and :class:`asyncio.CancelledError`.
CellInterrupted: type[KeyboardInterrupt] = _asyncio_interruption()


class CellCoroutine(Coroutine[Any, Any, T], NestedCallWaiter):
    """The cell's coroutine, wrapped so a runner knows whether the cell's code is running.

    ``executing`` is true exactly while the wrapped coroutine runs Python code (between a
    resume and its next suspension). A SIGINT handler reads it to choose between raising in
    place and cancelling at the await. The cost is one Python-level call per step of the
    cell's own task; background tasks are not wrapped.
    """

    __slots__ = (
        "_coro",
        "_decoy",
        "_held",
        "_level_triggered",
        "_stale_task",
        "_translate",
        "_value",
        "executing",
        "interrupts",
        "nested_calls",
        "nested_frames",
        "outer",
        "pending_interrupt",
        "raised_where",
        "started",
        "value_aside",
    )

    def __init__(
        self,
        coro: Coroutine[Any, Any, T],
        translate: Callable[[Any], Any],
        *,
        level_triggered: bool = False,
    ) -> None:
        self._coro = coro
        # Maps what the library resumes the cell with after the runner cancelled it (a
        # thrown exception, or a value sent in: trio sends outcomes, curio exceptions) to
        # what the cell should get instead; None means "not the cancellation, pass it on".
        self._translate = translate
        # trio's cancellation is level-triggered: once the cell's scope is cancelled, every
        # checkpoint raises, and every one of those must read as the interruption.
        self._level_triggered = level_triggered
        self.executing = False
        self.started = False  # its code ran at least once
        self.raised_where: tuple[Any, int, float] | None = None  # see _ctrl_c.note_if_stuck
        self.interrupts = 0
        self.pending_interrupt = False
        self.nested_calls = 0
        #: The outermost frame of each nested call's code the cell waits in, innermost last.
        self.nested_frames: list[Any] = []
        self._stale_task: Any = None
        #: Whether the cell's value is kept here for :meth:`take_value` rather than returned
        #: to the task that runs it: something may hold that task (or its last callback) after
        #: the cell, and the value must not outlive what IPython keeps of it (%reset; F7).
        self.value_aside = False
        self._value: Any = None
        self._decoy: Any = None
        self._held: Any = None
        #: The cell this one runs inside (``%run script.ipy``), if any: Ctrl-C interrupts
        #: the outer cell, and reaches this one as the interruption too.
        self.outer: CellCoroutine[Any] | None = None

    def _interrupted(self) -> bool:
        """Whether Ctrl-C interrupted this cell (or the cell it runs inside) at an await,
        and the library's cancellation it caused is to reach the code as the interruption."""
        outer = self.outer
        return self.pending_interrupt or (outer is not None and outer._interrupted())

    def _translated(self, resumed: Any) -> Any:
        replacement = self._translate(resumed)
        if replacement is None:
            return resumed
        if not self._level_triggered:
            self.pending_interrupt = False
        return replacement

    def send(self, value: Any) -> Any:
        if self._interrupted():
            value = self._translated(value)
        return self._step(self._coro.send, value)

    @overload
    def throw(
        self, typ: type[BaseException], val: object = ..., tb: TracebackType | None = ...
    ) -> Any: ...
    @overload
    def throw(self, typ: BaseException, val: None = ..., tb: TracebackType | None = ...) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: TracebackType | None = None) -> Any:
        exc = typ if isinstance(typ, BaseException) else typ(*(() if val is None else (val,)))
        if tb is not None:
            exc = exc.with_traceback(tb)
        if self._decoy is not None and self._decoy.cancelled():
            return self._release(exc)
        if self._interrupted():
            exc = self._translated(exc)
        # Thrown into a coroutine that never ran, an exception runs none of its code.
        return self._step(self._coro.throw, exc, runs_code=self.started or _ran(self._coro))

    def _step(self, resume: Callable[[Any], Any], arg: Any, *, runs_code: bool = True) -> Any:
        self.executing = True
        self.started = self.started or runs_code
        try:
            yielded = resume(arg)
        except StopIteration as stop:
            if self.value_aside:
                # The task that runs the cell keeps its result for good: it gets nothing,
                # and the runner takes the value from here (take_value).
                self._value, stop = stop.value, StopIteration()
            if self._stale_task is None:
                raise stop from None
            return self._absorb(stop)
        finally:
            self.executing = False
        if self._stale_task is not None:
            return self._absorb(yielded)
        return yielded

    # -- a cancellation the nesting shim already delivered ---------------------------------

    def absorb_stale_cancellation(self, task: Any) -> None:
        """Called by the nesting shim after it delivered a cancellation of the cell's task.

        The task was cancelled in the middle of a step (parked in a nested ``asyncio.run``),
        where asyncio can only set a flag that cancels whatever the task awaits next. The
        shim has already cancelled the nested call; if the cell handled that (an
        ``asyncio.timeout`` around it), the flag would cancel the cell a second time at its
        next await (or turn its result into a cancellation, if it returns first). So the
        next time the cell suspends or returns, the task first awaits a decoy future that
        takes the flag; then the cell waits for what it really awaited, or returns.
        (Python 3.13's ``Task.uncancel`` clears the flag itself when ``asyncio.timeout``
        handles the cancellation; the flag is checked before a decoy is used.)
        """
        self._stale_task = task

    def _absorb(self, yielded: Any) -> Any:
        task, self._stale_task = self._stale_task, None
        if not _private_api.cancel_pending(task):
            if isinstance(yielded, StopIteration):
                raise yielded
            return yielded
        decoy = task.get_loop().create_future()
        _private_api.mark_blocking(decoy)  # as `await decoy` would, before yielding it
        self._decoy, self._held = decoy, yielded
        return decoy

    def _release(self, exc: BaseException) -> Any:
        """The decoy took the stale cancellation: resume waiting for the real thing."""
        import asyncio

        held, self._decoy, self._held = self._held, None, None
        if not isinstance(exc, asyncio.CancelledError):
            return self.throw(exc)
        if isinstance(held, StopIteration):
            raise held
        if held is None:  # the cell had yielded bare (asyncio.sleep(0)): resume it
            return self.send(None)
        return held

    @property
    def cr_frame(self) -> Any:
        """The frame of the code wrapped, while it runs (what a coroutine says)."""
        return getattr(self._coro, "cr_frame", None)

    @property
    def cell_code(self) -> Coroutine[Any, Any, T]:
        """The coroutine wrapped: IPython's, which awaits the cell's code (``%tasks`` follows
        its await chain to say where a cell given up on waits)."""
        return self._coro

    def take_value(self) -> Any:
        """The cell's value (with :attr:`value_aside`), once: nothing here keeps it."""
        value, self._value = self._value, None
        return value

    def close(self) -> None:
        self._coro.close()

    # -- the nesting shim: a cell parked in a nested asyncio.run() ------------------------

    @contextmanager
    def in_nested_call(self, awaited: Any) -> Iterator[None]:
        """While the cell waits in a nested ``asyncio.run()`` (see ``_nesting``).

        Its step has not returned, so :attr:`executing` stays true; but the loop runs other
        code meanwhile (other tasks, its own), where Ctrl-C should not land: it cancels the
        cell (the nested call is cancelled, its clean-up runs), unless the nested call's own
        code is running (:attr:`nested_frames`), which it interrupts there.
        """
        self.nested_calls += 1
        self.nested_frames.append(frame_of(awaited))
        try:
            yield
        finally:
            self.nested_calls -= 1
            self.nested_frames.pop()

    def nested_call_cancelled(self, exc: BaseException) -> BaseException:
        """What the cell sees when its nested call was cancelled: the interruption, if
        Ctrl-C caused it."""
        if self.pending_interrupt:
            return self._translated(exc)  # type: ignore[no-any-return]
        return exc

    def __await__(self) -> Generator[Any, None, T]:
        # Lets a runner `await` the wrapper from a coroutine of its own (trio, curio).
        return self._await_impl()

    def _await_impl(self) -> Generator[Any, None, T]:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = self.send(value) if error is None else self.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value, error = None, None
            try:
                value = yield yielded
            except BaseException as exc:  # delivered by the library: pass it on
                error = exc
