"""Debugging a live asyncio program with autoawait_runners.aembed().

    python examples/debug_live_asyncio.py

A small program, a producer and a consumer joined by a queue, stops in an embedded IPython
shell while it keeps running. At the prompt, try:

    stats                                   # the consumer keeps counting while you type
    await asyncio.sleep(1); stats           # and while a cell awaits
    item = await queue.get(); item          # take an item from the program's own queue
    consumer.cancel()                       # poke at its tasks
    exit                                    # the program carries on, then ends

With autoawait_runners.embed() instead (a plain call, usable from synchronous code), the
program's loop also keeps running, at the prompt and during await cells.
"""

import asyncio

import autoawait_runners


async def main() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    stats = {"produced": 0, "consumed": 0}

    async def producer() -> None:
        n = 0
        while True:
            n += 1
            await queue.put(n)
            stats["produced"] += 1
            await asyncio.sleep(0.1)

    async def consume() -> None:
        while True:
            await queue.get()
            stats["consumed"] += 1

    producing = asyncio.create_task(producer(), name="producer")
    consumer = asyncio.create_task(consume(), name="consumer")
    await asyncio.sleep(0.3)

    await autoawait_runners.aembed(header="A live program: `stats`, `queue`, `consumer`.")

    print("program: back from the shell at", stats, flush=True)
    producing.cancel()
    consumer.cancel()


if __name__ == "__main__":
    asyncio.run(main())
