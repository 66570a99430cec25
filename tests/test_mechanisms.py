"""Unit tests of the mechanisms the integration tests only reach through IPython: the cell
wrapper's state (``_cell``), the parking queue padding (``_parking``) and the portal
protocol (``_portal``), driven with real coroutines and a real asyncio loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from autoawait_runners._core._cell import CellCoroutine, CellInterrupted
from autoawait_runners._nesting import _parking
from autoawait_runners._nesting._portal import Portal, current_portal


class Suspend:
    """An awaitable that yields ``value`` to whoever drives the coroutine, as a library's
    trap does, and returns what it is resumed with."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.value)


def untranslated(resumed: Any) -> Any:
    return None


def interrupted_if_cancelled(resumed: Any) -> Any:
    return CellInterrupted() if isinstance(resumed, asyncio.CancelledError) else None


def swallowing_twice(received: list[BaseException]) -> Any:
    """A cell body that waits twice, recording what each wait was resumed with."""

    async def body() -> None:
        for _ in range(2):
            try:
                await Suspend()
            except BaseException as exc:
                received.append(exc)

    return body


# -- the cell wrapper ---------------------------------------------------------------------


def test_executing_is_true_exactly_while_the_cells_code_runs() -> None:
    seen: list[bool] = []
    cell: CellCoroutine[str]

    async def body() -> str:
        seen.append(cell.executing)
        await Suspend()
        seen.append(cell.executing)
        return "done"

    cell = CellCoroutine(body(), untranslated)
    assert (cell.started, cell.executing) == (False, False)
    cell.send(None)
    assert (cell.started, cell.executing) == (True, False)  # suspended at the await
    with pytest.raises(StopIteration) as stop:
        cell.send(None)
    assert stop.value.value == "done" and seen == [True, True] and not cell.executing


def test_a_press_landing_in_the_cell_wrapper_cancels_rather_than_raises() -> None:
    # R5: a press that lands in the wrapper's own code, just after a step (still executing),
    # raised KeyboardInterrupt there: it went through the loop, not the cell, and ended the
    # asyncio.run() around an embedded shell (a flaky terminal test on a loaded machine).
    import sys
    import threading

    from autoawait_runners._core import _ctrl_c

    frames: dict[str, Any] = {}
    cell: CellCoroutine[None]

    async def body() -> None:
        frames["the cell's"] = sys._getframe(0)
        frames["the wrapper's"] = sys._getframe(1)  # what resumed the cell: its _step
        await Suspend()

    cell = CellCoroutine(body(), untranslated)
    cell.send(None)
    cell.executing = True  # as between the cell's suspension and the wrapper's bookkeeping
    here = threading.get_ident()
    cancelled: list[bool] = []
    assert _ctrl_c.interrupt(
        cell,
        cancel=lambda: cancelled.append(True),
        cell_thread=here,
        landed=frames["the wrapper's"],
    )
    assert cancelled == [True] and cell.pending_interrupt
    with pytest.raises(KeyboardInterrupt):  # landed in the cell's code: raised there
        _ctrl_c.interrupt(
            cell,
            cancel=lambda: cancelled.append(True),
            cell_thread=here,
            landed=frames["the cell's"],
        )
    cell.close()


def test_the_runners_cancellation_reaches_the_cell_as_the_interruption_once() -> None:
    received: list[BaseException] = []
    body = swallowing_twice(received)
    cell = CellCoroutine(body(), interrupted_if_cancelled)
    cell.send(None)
    cell.pending_interrupt = True
    cell.throw(asyncio.CancelledError())  # edge-triggered: translated once, flag cleared
    assert isinstance(received[0], CellInterrupted) and not cell.pending_interrupt
    with pytest.raises(StopIteration):
        cell.throw(asyncio.CancelledError())  # not ours: passed on as it is
    assert type(received[1]) is asyncio.CancelledError


def test_a_level_triggered_cancellation_keeps_translating() -> None:
    received: list[BaseException] = []
    body = swallowing_twice(received)
    cell = CellCoroutine(body(), interrupted_if_cancelled, level_triggered=True)
    cell.send(None)
    cell.pending_interrupt = True
    cell.throw(asyncio.CancelledError())
    with pytest.raises(StopIteration):
        cell.throw(asyncio.CancelledError())
    assert all(isinstance(exc, CellInterrupted) for exc in received) and cell.pending_interrupt


def test_nested_calls_are_counted_even_when_they_fail() -> None:
    cell = CellCoroutine(Suspend().__await__(), untranslated)  # type: ignore[arg-type]
    awaited = Suspend().__await__()  # a generator: no coroutine frame to note
    with pytest.raises(ValueError), cell.in_nested_call(awaited):
        assert cell.nested_calls == 1
        assert cell.nested_frames == [None]
        raise ValueError
    assert cell.nested_calls == 0
    assert cell.nested_frames == []
    cell.close()


# -- parking: how many handles a suspended loop iteration still means to pop ----------------


def test_a_step_knows_how_many_handles_its_iteration_still_pops() -> None:
    loop = asyncio.new_event_loop()
    counts: list[int] = []
    try:
        for _ in range(4):
            loop.call_soon(lambda: counts.append(_parking._still_to_run(loop)))
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        loop.close()
    # Five handles in one iteration: each callback sees the ones after it.
    assert counts == [4, 3, 2, 1]


def test_outside_a_loop_iteration_the_whole_queue_counts() -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.call_soon(lambda: None)
        loop.call_soon(lambda: None)
        assert _parking._still_to_run(loop) == 2
    finally:
        loop.close()


# -- the portal -----------------------------------------------------------------------------


def test_synchronous_code_in_a_portal_awaits_through_its_outermost_frame() -> None:
    def sync_code() -> Any:
        portal = current_portal()
        assert portal is not None
        return portal.await_(Suspend("from sync code")) * 2

    async def body() -> Any:
        return sync_code()

    portal = Portal(body())
    assert portal.send(None) == "from sync code"  # the trap reaches the driver
    with pytest.raises(StopIteration) as stop:
        portal.send(21)
    assert stop.value.value == 42
    assert current_portal() is None  # outside the portal's greenlet


def test_an_error_in_awaited_code_reaches_the_synchronous_caller_through_the_hook() -> None:
    caught: list[BaseException] = []

    def sync_code() -> None:
        portal = current_portal()
        assert portal is not None
        try:
            portal.await_(Suspend())
        except BaseException as exc:
            caught.append(exc)

    async def body() -> None:
        sync_code()

    portal = Portal(body(), error_hook=lambda exc: KeyboardInterrupt())
    portal.send(None)
    with pytest.raises(StopIteration):
        portal.throw(asyncio.CancelledError())
    assert type(caught[0]) is KeyboardInterrupt


def test_ctrl_c_sent_to_a_thread_in_the_import_machinery_waits_until_it_has_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # F3: raised between an import lock's acquisition and its release, it left the
    # lock held, and every later import in the process waited for good
    import sys
    import threading

    from autoawait_runners._core._ctrl_c import raise_in_thread

    (tmp_path / "import_events.py").write_text(
        "import threading\nentered, release = threading.Event(), threading.Event()\n"
    )
    (tmp_path / "slow_to_import.py").write_text(
        "import import_events\nimport_events.entered.set()\nimport_events.release.wait(30)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("import_events", "slow_to_import"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import import_events

    entered, release = import_events.entered, import_events.release
    outcome: list[str] = []

    def first() -> None:  # holds the module's import lock while its code waits
        import slow_to_import  # noqa: F401

    def second() -> None:  # waits for that lock, in the import machinery's own code
        try:
            import slow_to_import  # noqa: F401

            outcome.append("imported")
            while True:
                pass
        except KeyboardInterrupt:
            outcome.append("interrupted")

    importer = threading.Thread(target=first, daemon=True)
    importer.start()
    assert entered.wait(30)
    waiter = threading.Thread(target=second, daemon=True)
    waiter.start()
    frames = sys._current_frames
    deadline = time.monotonic() + 30
    while (
        frames().get(waiter.ident) is None
        or frames()[waiter.ident].f_globals.get("__name__") != "importlib._bootstrap"
    ):
        assert time.monotonic() < deadline, "the second import did not wait for the lock"
        time.sleep(0.001)
    assert waiter.ident is not None and raise_in_thread(waiter.ident, KeyboardInterrupt)
    release.set()
    waiter.join(30)
    importer.join(30)
    assert outcome == ["imported", "interrupted"]
