"""What nest_asyncio's and nest-asyncio2's own test suites check, held by the nesting shim.

Each test restates, in this project's words, a behaviour one of the peers tests (named in
the docstring), on a plain asyncio loop outside IPython, with the shim on for the test only.
Their tests that check the Task/Future class swap itself have no counterpart: the shim
keeps asyncio's own classes (N3).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import threading
from collections.abc import Iterator

import pytest

import autoawait_runners


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh loop, with the shim on; afterwards no loop is left running."""
    loop = asyncio.new_event_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    asyncio.set_event_loop(loop)
    try:
        with autoawait_runners.nesting():
            yield loop
    finally:
        assert asyncio.events._get_running_loop() is None
        asyncio.set_event_loop(None)
        loop.close()
    assert errors == []  # asyncio reported nothing (a dropped step, a lost exception)


async def forty_two() -> int:
    await asyncio.sleep(0.01)
    return 42


def test_calls_nest_inside_calls_that_nest(loop: asyncio.AbstractEventLoop) -> None:
    """nest_asyncio: test_nesting."""

    async def inner() -> int:
        value = loop.run_until_complete(forty_two())
        assert value == await forty_two()
        return value

    async def outer() -> int:
        value = loop.run_until_complete(inner())
        assert value == await inner()
        return value

    assert loop.run_until_complete(outer()) == 42


def test_a_task_made_before_the_nested_call_is_run_by_it(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """nest_asyncio: test_ensure_future_with_run_until_complete (and ..._with_wait)."""

    async def by_task() -> int:
        task = asyncio.ensure_future(forty_two())
        return loop.run_until_complete(task)

    async def by_wait() -> int:
        task = asyncio.ensure_future(forty_two())
        done, _ = loop.run_until_complete(asyncio.wait([task]))
        return done.pop().result()

    assert loop.run_until_complete(by_task()) == 42
    assert loop.run_until_complete(by_wait()) == 42


def test_a_timeout_inside_the_nested_call_reaches_its_caller(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """nest_asyncio: test_timeout."""

    async def caller() -> None:
        asyncio.run(asyncio.wait_for(asyncio.sleep(1), 0.01))

    with pytest.raises(TimeoutError):
        loop.run_until_complete(caller())


def test_two_nested_calls_in_one_outer_call(loop: asyncio.AbstractEventLoop) -> None:
    """nest_asyncio: test_two_run_until_completes_in_one_outer_loop."""

    async def slower() -> int:
        loop.run_until_complete(asyncio.sleep(0.02))
        return 4

    async def faster() -> int:
        loop.run_until_complete(asyncio.sleep(0.01))
        return 2

    assert loop.run_until_complete(asyncio.gather(slower(), faster())) == [4, 2]


def test_context_variables_set_by_an_awaited_coroutine_are_seen(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """nest_asyncio: test_contextvars."""
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var")
    var.set(0)

    async def set_it() -> None:
        var.set(42)

    async def read_it() -> int:
        await set_it()
        await asyncio.sleep(0.01)
        return var.get()

    assert loop.run_until_complete(read_it()) == 42


def test_a_task_in_the_parked_callers_context_is_not_dropped(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """nest-asyncio2: test_shared_context (ipykernel 7 runs every cell in one Context)."""
    shared = contextvars.copy_context()

    async def answer() -> int:
        return 42

    async def caller() -> asyncio.Task[int]:
        task = loop.create_task(answer(), context=shared)
        loop.run_until_complete(forty_two())
        return task

    task = loop.run_until_complete(loop.create_task(caller(), context=shared))
    loop.run_until_complete(forty_two())
    assert task.result() == 42


def test_the_current_task_is_known_inside_a_nested_run() -> None:
    """nest-asyncio2: 314_task.py and 314_task_mix.py (the shim turned on inside a run)."""

    async def which_task() -> asyncio.Task[object] | None:
        assert asyncio.get_running_loop() is not None
        return asyncio.current_task()

    async def main() -> asyncio.Task[object] | None:
        with autoawait_runners.nesting():
            return asyncio.run(which_task())

    assert asyncio.run(main()) is not None
    assert asyncio.run(which_task()) is not None


@pytest.mark.skipif(sys.version_info < (3, 12), reason="loop_factory is new in Python 3.12")
def test_a_loop_factory_is_used_outside_a_running_loop() -> None:
    """nest-asyncio2: 312_loop_factory.py."""
    made: list[asyncio.AbstractEventLoop] = []

    def factory() -> asyncio.AbstractEventLoop:
        made.append(asyncio.new_event_loop())
        return made[-1]

    async def running() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    with autoawait_runners.nesting():
        assert asyncio.run(running(), loop_factory=factory) is made[0]  # type: ignore[call-arg]


def test_async_generators_are_finalised_on_later_loops() -> None:
    """nest-asyncio2: 36_asyncgen_hooks.py (clean-up that awaits, as httpx streams do)."""
    cleaned: list[str] = []

    async def stream() -> object:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            cleaned.append("finalised")

    async def abandon_one() -> None:
        assert sys.get_asyncgen_hooks().finalizer is not None
        generator = stream()
        await generator.__anext__()  # suspended, never closed
        del generator
        gc.collect()
        await asyncio.sleep(0.01)

    async def nested() -> None:
        asyncio.run(abandon_one())

    with autoawait_runners.nesting():
        asyncio.run(nested())
        asyncio.run(abandon_one())
    assert cleaned == ["finalised", "finalised"]


def test_work_scheduled_by_a_nested_run_is_done_by_the_next_run() -> None:
    """nest-asyncio2: call_soon_anyio.py (anyio's worker threads are stopped)."""
    anyio = pytest.importorskip("anyio")

    async def use_worker_thread() -> None:
        await anyio.to_thread.run_sync(lambda: None)

    async def nested() -> None:
        asyncio.run(use_worker_thread())

    before = set(threading.enumerate())
    with autoawait_runners.nesting():
        asyncio.run(nested())
        asyncio.run(use_worker_thread())
    for thread in set(threading.enumerate()) - before:
        thread.join(10)
        assert not thread.is_alive(), thread
