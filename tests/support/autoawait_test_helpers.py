"""Coroutines the pseudo-terminal tests call from one-line cells, for every runner.

A real prompt_toolkit prompt auto-indents what is typed, so multi-line cells are awkward to
type through a pty; the tests import this module instead (it is put on PYTHONPATH). Each
helper works under asyncio, trio and curio alike: it asks sniffio which one is running.
"""

import itertools
from typing import Any

import sniffio

counter = itertools.count()
waiting = 0


async def sleep(seconds: float) -> None:
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        await trio.sleep(seconds)
    elif library == "curio":
        import curio

        await curio.sleep(seconds)
    else:
        import asyncio

        await asyncio.sleep(seconds)


async def background(async_fn, *args, name=None):
    """Start async_fn(*args) as background work of the session; return a handle."""
    library = sniffio.current_async_library()
    if library == "trio":
        import autoawait_runners

        autoawait_runners.trio_nursery().start_soon(async_fn, *args, name=name)
        return async_fn
    if library == "curio":
        import curio

        task = await curio.spawn(async_fn, *args, daemon=True)
        if name is not None:
            task.name = name
        return task
    import asyncio

    return asyncio.create_task(async_fn(*args), name=name)


def background_count() -> int:
    """How many background tasks the session has (a sync call, for plain cells)."""
    library = sniffio.current_async_library()
    if library == "trio":
        import autoawait_runners

        return len(autoawait_runners.trio_nursery().child_tasks)
    if library == "curio":
        raise NotImplementedError
    import asyncio

    return len(asyncio.all_tasks()) - 1


async def until(predicate, timeout: float = 30.0) -> None:
    """Wait, without blocking the loop, until predicate() is true."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await sleep(0.01)
    raise TimeoutError


async def all_at_once(make, count: int, started, text: str) -> list:
    """Await ``count`` awaitables made by ``make()`` concurrently, in the running library's
    own way (gather, a nursery, a task group); print ``text`` once ``started()`` says they
    all wait (what they subscribed to is in place). Return their results."""
    results = []

    async def one() -> None:
        results.append(await make())

    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(one)
            await until(started)
            print(text, flush=True)
    elif library == "curio":
        import curio

        async with curio.TaskGroup() as group:
            for _ in range(count):
                await group.spawn(one)
            await until(started)
            print(text, flush=True)
    else:
        import asyncio

        tasks = [asyncio.ensure_future(one()) for _ in range(count)]
        await until(started)
        print(text, flush=True)
        await asyncio.gather(*tasks)
    return results


async def tick(period: float = 0.2) -> None:
    while True:
        await sleep(period)
        print("tick", next(counter), flush=True)


async def sleeper() -> None:
    global waiting
    try:
        print("sleeper: waiting", flush=True)
        waiting += 1
        await sleep(100)
        print("sleeper:", "resumed", flush=True)
    finally:
        print("cleanup ran", flush=True)


async def fail_later(delay: float) -> None:
    await sleep(delay)
    raise ValueError("background failure")


def busy() -> None:
    """A cell stuck in Python code: only an in-place KeyboardInterrupt stops it."""
    try:
        print("busy: spinning", flush=True)
        while True:
            pass
    finally:
        print("busy cleanup ran", flush=True)


async def busy_async() -> None:
    """A coroutine stuck in Python code (run nested with asyncio.run)."""
    busy()


async def stubborn(times: int) -> None:
    """Swallows the first `times` cancellations (asyncio), then gives in."""
    import asyncio

    for swallowed in range(times):
        try:
            print("stubborn: waiting", flush=True)
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            print("stubborn: swallowed", swallowed + 1, flush=True)
    print("stubborn: gave in", flush=True)


def nest_in_background(seconds: float):
    """Start a background task that waits `seconds` in a nested asyncio.run() (a
    synchronous library's call, made from a task); return the task."""
    import asyncio

    async def parked() -> str:
        try:
            asyncio.run(asyncio.sleep(seconds))
        finally:
            print("parked call cleanup", flush=True)
        return "parked call returned"

    return asyncio.ensure_future(parked())


async def sleeper_with_cleanup(cleanup) -> None:
    """Waits until cancelled, then calls cleanup() (a function of the session's)."""
    global waiting
    try:
        waiting += 1
        await sleep(100)
    finally:
        cleanup()


async def raise_later(delay: float, what: str) -> None:
    """A background task that calls sys.exit() ('exit') or raises KeyboardInterrupt."""
    import sys

    await sleep(delay)
    if what == "exit":
        sys.exit(3)
    raise KeyboardInterrupt


spawned = 0


async def flood(count: int, period: float) -> None:
    """Start `count` background tasks that fail alike, one every `period` seconds."""
    import asyncio

    global spawned

    async def flaky() -> None:
        raise ValueError("flood")

    for _ in range(count):
        asyncio.create_task(flaky())  # noqa: RUF006 - left to fail in the background
        spawned += 1
        await asyncio.sleep(period)


async def hog() -> None:
    """A background task that never yields again (asyncio or trio)."""
    await sleep(0.1)
    print("hog: spinning", flush=True)
    while True:
        pass


def new_event():
    """An event of the session's library whose set() is a plain call and wait() awaits."""
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        return trio.Event()
    if library == "curio":
        return _CurioEvent()
    import asyncio

    return asyncio.Event()


class _CurioEvent:
    """curio's UniversalEvent.set() is async when called from a coroutine: this set() is
    a plain function, so curio takes its sync path."""

    def __init__(self) -> None:
        import curio

        self._event = curio.UniversalEvent()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


def interrupt_from_another_thread() -> None:
    """Send SIGINT to a thread other than the main one, once the main thread waits for the
    cell (asleep in its loop's selector, or in a thread runner's wait for the cell), as the
    system may do with a process's Ctrl-C. Start it in a thread of its own."""
    import signal
    import sys
    import threading
    import time

    waiting_for_the_cell = {
        ("selectors", "select"),
        ("autoawait_runners._runners._dedicated_thread", "wait"),
    }
    main = threading.main_thread().ident
    deadline, where = time.monotonic() + 60, None
    while True:
        frame = sys._current_frames().get(main)
        if frame is not None:
            where = (frame.f_globals.get("__name__"), frame.f_code.co_name)
            if where in waiting_for_the_cell:
                break
        if time.monotonic() > deadline:  # the test that started this fails on its own
            raise TimeoutError(f"the main thread never waited for the cell (last at {where})")
        time.sleep(0.01)
    # Started from a runner's thread, this one inherited its blocked SIGINT.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)


class announced:
    """``await announced(coro, text)``: await ``coro``, printing ``text`` once it has
    started (suspended for the first time): what it subscribes to at its start (a widget's
    change) is in place by the time a test that reads ``text`` acts on it."""

    def __init__(self, coro: Any, text: str) -> None:
        self._coro, self._text = coro, text

    def __await__(self) -> Any:
        steps = self._coro.__await__()
        try:
            try:
                yielded = next(steps)
            except StopIteration as stop:
                print(self._text, flush=True)
                return stop.value
            print(self._text, flush=True)
            while True:  # as ``yield from`` would, the first step taken
                try:
                    received = yield yielded
                except GeneratorExit:
                    raise
                except BaseException as exc:  # every throw goes on in
                    try:
                        yielded = steps.throw(exc)
                    except StopIteration as stop:
                        return stop.value
                else:
                    try:
                        yielded = steps.send(received)
                    except StopIteration as stop:
                        return stop.value
        finally:
            # Ended early (a KeyboardInterrupt raised here, in this very code): the awaited
            # coroutine's own clean-up runs now.
            steps.close()


async def abandon_generators(log: list) -> None:
    """In trio: abandon a trio async generator, then, in a nested ``asyncio.run()``, an
    asyncio one, each with a clean-up that awaits its own library; each notes in ``log``
    when it is closed (by its library, or the clean-up fails)."""
    import asyncio
    import gc

    import trio

    async def trio_generator():
        try:
            yield 1
            yield 2
        finally:
            log.append("trio's generator closed")
            await trio.sleep(0)

    async def asyncio_generator():
        try:
            yield 1
            yield 2
        finally:
            log.append("asyncio's generator closed")
            await asyncio.sleep(0)

    async def abandon_an_asyncio_generator():
        generator = asyncio_generator()
        await generator.__anext__()
        del generator
        gc.collect()
        await asyncio.sleep(0.05)

    generator = trio_generator()
    await generator.__anext__()
    del generator
    gc.collect()
    await trio.sleep(0.05)
    asyncio.run(abandon_an_asyncio_generator())


def process_state() -> dict:
    """What a session may change in the process around the shell (F8), as any code sees it
    (a kernel's cell too): after the session, each must be as it was before."""
    import signal
    import sys
    import threading
    import warnings

    wakeup_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_fd)
    return {
        "async generator hooks": tuple(sys.get_asyncgen_hooks()),
        "SIGINT handler": signal.getsignal(signal.SIGINT),
        "signal wake-up fd": wakeup_fd,
        "sys.excepthook": sys.excepthook,
        "threading.excepthook": threading.excepthook,
        "trace functions": (sys.gettrace(), threading.gettrace()),
        "profile functions": (sys.getprofile(), threading.getprofile()),
        "warnings filters": list(warnings.filters),
    }
