"""Coroutines the pseudo-terminal tests call from one-line cells.

A real prompt_toolkit prompt auto-indents what is typed, so multi-line cells are awkward to
type through a pty; the tests import this module instead (it is put on PYTHONPATH).
"""

import asyncio
import itertools

counter = itertools.count()
waiting = 0


async def until(predicate, timeout: float = 30.0) -> None:
    """Wait, without blocking the loop, until predicate() is true."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def tick(period: float = 0.2) -> None:
    while True:
        await asyncio.sleep(period)
        print("tick", next(counter), flush=True)


async def sleeper() -> None:
    global waiting
    try:
        print("sleeper: waiting", flush=True)
        waiting += 1
        await asyncio.sleep(100)
        print("RESUMED", flush=True)
    finally:
        print("cleanup ran", flush=True)


async def fail_later(delay: float) -> None:
    await asyncio.sleep(delay)
    raise ValueError("background failure")


def busy() -> None:
    """A cell stuck in Python code: only an in-place KeyboardInterrupt stops it."""
    try:
        print("busy: spinning", flush=True)
        while True:
            pass
    finally:
        print("busy cleanup ran", flush=True)
