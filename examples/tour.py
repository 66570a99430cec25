"""A short tour of the runners, run through a real IPython shell.

    ipython -i examples/tour.py

Each step below is a cell: it is shown, then run by the shell exactly as if you had typed
it, and you are left at the prompt with the asyncio runner active and a background task
still running, to try things yourself.
"""

import time

from IPython import get_ipython

PAUSE = "pause"

STEPS = [
    (
        "Load the extension: it registers the catalogue and selects the asyncio runner.",
        "%load_ext autoawait_runners",
    ),
    ("The catalogue of runners:", "%autoawait --list"),
    (
        "One asyncio loop lives for the whole session. Plain cells see it too:",
        "import asyncio, threading, time\nasyncio.get_running_loop()",
    ),
    (
        "Start a background task. It keeps running between cells and while the prompt waits.",
        "ticks = []\n"
        "async def ticker():\n"
        "    while True:\n"
        "        ticks.append(time.monotonic())\n"
        "        await asyncio.sleep(0.1)\n"
        "task = asyncio.create_task(ticker(), name='ticker')",
    ),
    ("Top-level await works, on the same loop:", "await asyncio.sleep(0.5)\nlen(ticks)"),
    (
        "Background tasks that fail are reported by the next prompt, not lost:",
        "async def broken():\n"
        "    raise RuntimeError('this task failed in the background')\n"
        "_ = asyncio.create_task(broken(), name='broken')\n"
        "await asyncio.sleep(0.01)",
    ),
    (
        "Switch to the thread runner: the old session's tasks are cancelled, one line says how"
        " many. Its asyncio loop runs in a thread of its own, and every cell runs there.",
        "%autoawait thread",
    ),
    ("", "threading.current_thread().name"),
    (
        "Its loop never stops: the tour now waits half a second between two cells.",
        "task = asyncio.create_task(ticker(), name='ticker')\nn = len(ticks)",
    ),
    (PAUSE, "0.5"),
    ("", "len(ticks) - n  # ticks made while no cell was running"),
    (
        "trio: one trio.run for the whole session (IPython's own runner starts one per cell).\n"
        "# Background work goes in the session nursery, which outlives the cell.",
        "%autoawait trio",
    ),
    (
        "",
        "import trio, autoawait_runners\n"
        "async def trio_ticker():\n"
        "    while True:\n"
        "        ticks.append(time.monotonic())\n"
        "        await trio.sleep(0.1)\n"
        "autoawait_runners.trio_nursery().start_soon(trio_ticker)\n"
        "n = len(ticks)",
    ),
    ("", "await trio.sleep(0.5)\nlen(ticks) - n"),
    ("curio: one curio Kernel for the session.", "%autoawait curio"),
    ("", "import curio, curio.meta\nawait curio.sleep(0.1)\ncurio.meta.curio_running()"),
    ("Back to the asyncio runner, with a fresh ticker.", "%autoawait asyncio"),
    (
        "",
        "ticks.clear()\ntask = asyncio.create_task(ticker(), name='ticker')",
    ),
    (
        "Code that runs its own loop works in a cell too (the nesting shim, %nest), and the\n"
        "# session's tasks keep running during it:",
        "n = len(ticks)\n"
        "asyncio.run(asyncio.sleep(0.5))\n"
        "print('ticks during asyncio.run:', len(ticks) - n)",
    ),
    (
        "%time and %timeit take await: the code is timed in the session, on its loop.",
        "%time await asyncio.sleep(0.2)",
    ),
    ("", "%timeit -n 100 -r 3 await asyncio.sleep(0)"),
    ("%tasks lists the session's tasks (%tasks where ID, %tasks cancel ID):", "%tasks"),
]

OUTRO = """
That's the tour. You are at the prompt with the asyncio runner active and `task` ticking.
Try:
  len(ticks)                      # grows while the prompt is idle
  await asyncio.sleep(60)         # then press Ctrl-C: the cell is cancelled, `task` is not
  %autoawait                      # the active runner
  %autoawait thread               # switch runner (the ticker is cancelled)
  %autoawait --list               # all the runners
  %nest                           # the nesting shim: asyncio.run() in cells
  %tasks where 1                  # where the ticker waits
  %autoawait uvloop               # the thread runner's session on uvloop

In one command next time: python -m autoawait_runners trio   (or any runner)
"""


def main() -> None:
    shell = get_ipython()
    if shell is None:
        raise SystemExit("run the tour inside IPython: ipython -i examples/tour.py")
    for text, cell in STEPS:
        if text is PAUSE:
            time.sleep(float(cell))
            continue
        if text:
            print(f"\n# {text}")
        for line in cell.splitlines():
            print(f"tour> {line}")
        shell.run_cell(cell, store_history=True)
    print(OUTRO)


main()
