"""``%timeit await`` against the same awaits timed in a plain loop (DESIGN M1).

    python benchmarks/bench_magics.py            # full run, about half a minute
    python benchmarks/bench_magics.py --quick    # a smoke run (CI)

Under each runner, in interleaved rounds in one process: what ``%timeit -o await
lib.sleep(0)`` reports per loop (its best run), and the best per-await time of a plain
``for`` loop of the same awaits inside one coroutine, run as a cell of that runner. The
ratio is taken per round, and the median over rounds is reported. Target: at most 1.5x,
i.e. the timing loop adds no hand-over between threads or loops per iteration.
Prints a table and writes ``benchmarks/results/magics.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from _report import print_targets, write_results

HERE = Path(__file__).parent
RUNNERS = {"asyncio": "asyncio", "thread": "asyncio", "trio": "trio", "curio": "curio"}
LIMIT = 1.5

PLAIN_LOOP = """\
async def plain_loop(n):
    start = time.perf_counter()
    for _ in range(n):
        await lib.sleep(0)
    return (time.perf_counter() - start) / n
"""


def measure(rounds: int, loops: int, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """Per runner, each round's (%timeit best per loop, plain loop best per await)."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance(history_length=0)
    ip.history_manager.enabled = False
    ip.run_line_magic("load_ext", "autoawait_runners")
    ip.run_cell("import time")
    pairs: dict[str, list[tuple[float, float]]] = {name: [] for name in RUNNERS}
    for _ in range(rounds):
        for name, library in RUNNERS.items():
            ip.run_line_magic("autoawait", name)
            ip.run_cell(f"import {library} as lib\n{PLAIN_LOOP}")
            ip.run_cell(f"r = %timeit -o -q -n {loops} -r {repeat} await lib.sleep(0)")
            ip.run_cell(f"plain = min([await plain_loop({loops}) for _ in range({repeat})])")
            pairs[name].append((ip.user_ns["r"].best, ip.user_ns["plain"]))
    ip.run_line_magic("unload_ext", "autoawait_runners")
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    rounds, loops, repeat = (2, 500, 3) if args.quick else (15, 2000, 5)
    pairs = measure(rounds, loops, repeat)

    print(f"M1 %timeit await lib.sleep(0) vs a plain loop ({rounds} rounds, {loops} loops)")
    print(f"  {'runner':8} {'%timeit us':>11} {'plain us':>9} {'ratio':>6}")
    ratios: dict[str, float] = {}
    for name, rows in pairs.items():
        ratios[name] = statistics.median(timed / plain for timed, plain in rows)
        timed = statistics.median(row[0] for row in rows)
        plain = statistics.median(row[1] for row in rows)
        print(f"  {name:8} {timed * 1e6:11.2f} {plain * 1e6:9.2f} {ratios[name]:6.2f}")
    checks = {
        f"M1 {name} %timeit <= {LIMIT}x a plain loop (measured {r:.2f}x)": r <= LIMIT
        for name, r in ratios.items()
    }
    print_targets(checks)
    write_results(
        "magics",
        {
            "quick": args.quick,
            "pairs_seconds": pairs,
            "ratio": ratios,
            "targets": checks,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
