"""Programs that embed IPython, run by tests/test_embed.py in a pseudo-terminal.

python embed_hosts.py asyncio-embed | asyncio-aembed | trio-embed | trio-aembed | no-loop
                      | asyncio-to-thread | thread-asyncio-embed
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import autoawait_runners

#: Shared with the embedded shell (which sees a copy of the module's globals, not them).
ticks = [0]


async def ticker(sleep: Callable[[float], Awaitable[None]]) -> None:
    """The host's background work: counts, and says so every half second."""
    while True:
        ticks[0] += 1
        if ticks[0] % 10 == 0:
            print(f"host tick {ticks[0]}", flush=True)
        await sleep(0.05)


async def asyncio_host(how: str) -> None:
    loop = asyncio.get_running_loop()
    answer = loop.create_future()
    loop.call_later(0.5, answer.set_result, 42)
    ticking = asyncio.create_task(ticker(asyncio.sleep), name="ticker")
    await asyncio.sleep(0)
    print("host: embedding", flush=True)
    if how == "aembed":
        await autoawait_runners.aembed()
    elif how == "ipython-embed":
        # IPython's own embed(), given the embed runner: its prompt needs the nesting shim.
        import IPython

        autoawait_runners.nest_on()
        IPython.embed(using="autoawait_runners.embed_runner")
    else:
        autoawait_runners.embed()
    print("host: resumed, ticker alive:", not ticking.done(), flush=True)
    ticking.cancel()


async def trio_host(how: str) -> None:
    import trio

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker, trio.sleep)
        answer = trio.Event()
        await trio.sleep(0)
        print("host: embedding", flush=True)
        if how == "aembed":
            await autoawait_runners.aembed()
        else:
            if how == "embed-greenback":
                import greenback

                await greenback.ensure_portal()
            autoawait_runners.embed()
        print("host: resumed", flush=True)
        del answer
        nursery.cancel_scope.cancel()


async def crashing_host() -> None:
    """A sibling task fails while the shell is open: the TaskGroup cancels the shell."""

    async def fail_soon() -> None:
        await asyncio.sleep(1.0)
        raise RuntimeError("the host crashed")

    async with asyncio.TaskGroup() as group:
        group.create_task(fail_soon())
        print("host: embedding", flush=True)
        await autoawait_runners.aembed()


async def asyncio_host_embedding_in_a_worker_thread() -> None:
    """The shell opens in a worker thread; the main thread runs the program's loop."""
    ticking = asyncio.create_task(ticker(asyncio.sleep), name="ticker")
    print("host: embedding", flush=True)
    await asyncio.to_thread(autoawait_runners.embed)
    print("host: resumed, ticker alive:", not ticking.done(), flush=True)
    ticking.cancel()


def embedding_in_a_worker_thread() -> None:
    """The shell opens in a worker thread's asyncio program; the main thread joins it."""
    import threading

    worker = threading.Thread(target=asyncio.run, args=(asyncio_host("embed"),))
    worker.start()
    worker.join()


def main() -> None:
    mode = sys.argv[1]
    if mode == "asyncio-to-thread":
        asyncio.run(asyncio_host_embedding_in_a_worker_thread())
    elif mode == "thread-asyncio-embed":
        embedding_in_a_worker_thread()
    elif mode == "asyncio-crash":
        asyncio.run(crashing_host())
    elif mode.startswith("asyncio"):
        asyncio.run(asyncio_host(mode.split("-", 1)[1]))
    elif mode.startswith("trio"):
        import trio

        trio.run(trio_host, mode.split("-", 1)[1])
    else:
        started = time.monotonic()
        autoawait_runners.embed()
        print("host: resumed after", round(time.monotonic() - started), "s", flush=True)
    print("host: done", flush=True)


if __name__ == "__main__":
    main()
