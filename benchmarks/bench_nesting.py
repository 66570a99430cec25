"""The nesting shim against plain asyncio, nest_asyncio and nest-asyncio2 (DESIGN P2, N3).

    python benchmarks/bench_nesting.py            # full run, a minute or two
    python benchmarks/bench_nesting.py --quick    # a smoke run (CI)

nest_asyncio and nest-asyncio2 patch asyncio for the whole process with no way back, so
every variant runs in a fresh process; the variants take turns in interleaved rounds, and a
ratio is the median over rounds of a variant's time against plain asyncio's time *in the
same round*. nest_asyncio and nest-asyncio2 are measured when installed (they are not
dependencies of the project: ``pip install nest_asyncio nest-asyncio2`` in the benchmark's
environment); a missing one is reported and skipped.

Workloads, each run inside a running loop (as a cell's code is):

- ``gather``: 20,000 tasks stepped together (``gather`` of tasks doing five ``sleep(0)``);
- ``sleep0``: 200,000 ``await asyncio.sleep(0)`` in one task;
- ``futures``: 5,000 Future round trips (``call_soon(set_result)``, then ``await``);
- ``nested run``: one ``asyncio.run()`` of a trivial coroutine from inside the running loop
  (plain asyncio cannot; its row is ``asyncio.run()`` with no loop running, for scale).

Prints a table and writes ``benchmarks/results/nesting.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from _report import print_targets, write_results

HERE = Path(__file__).parent
VARIANTS = ("asyncio", "shim on", "nest_asyncio", "nest_asyncio2")
WORKLOADS = ("gather", "sleep0", "futures", "nested run")
TARGETS = [
    # (what, workload, at most this ratio of the shim against plain asyncio)
    ("N3 20k-task gather, shim on <= 1.10x off", "gather", 1.10),
    ("N3 sleep(0) loop in one task, shim on <= 1.25x off", "sleep0", 1.25),
]


# -- one process, one variant --------------------------------------------------------------


def prepare(variant: str) -> asyncio.AbstractEventLoop:
    """Set up the variant and return the loop to measure on."""
    loop = asyncio.new_event_loop()
    if variant == "shim on":
        import autoawait_runners

        autoawait_runners.nest_on()
    elif variant in ("nest_asyncio", "nest_asyncio2"):
        module = __import__(variant)
        module.apply(loop)
    return loop


async def gather(scale: float) -> None:
    async def stepper() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    await asyncio.gather(*(stepper() for _ in range(int(20_000 * scale))))


async def sleep0(scale: float) -> None:
    for _ in range(int(200_000 * scale)):
        await asyncio.sleep(0)


async def futures(scale: float) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(int(5_000 * scale)):
        future = loop.create_future()
        loop.call_soon(future.set_result, None)
        await future


NESTED_CALLS = 2000  # enough for a stable per-call figure on a noisy machine


async def trivial() -> int:
    return 1


async def nested_run(scale: float) -> None:
    for _ in range(max(1, int(NESTED_CALLS * scale))):
        asyncio.run(trivial())


async def warm_up() -> None:
    asyncio.run(trivial())  # first-call costs (imports) are not per-call costs


BODIES: dict[str, Callable[[float], Coroutine[Any, Any, None]]] = {
    "gather": gather,
    "sleep0": sleep0,
    "futures": futures,
    "nested run": nested_run,
}


def measure(variant: str, scale: float) -> dict[str, float]:
    """Seconds per workload (per call for the nested run), in this process."""
    loop = prepare(variant)
    times: dict[str, float] = {}
    if variant == "asyncio":
        asyncio.run(trivial())
    else:
        loop.run_until_complete(warm_up())
    for name in WORKLOADS:
        if name == "nested run" and variant == "asyncio":
            start = time.perf_counter()
            calls = max(1, int(NESTED_CALLS * scale))
            for _ in range(calls):
                asyncio.run(trivial())
            times[name] = (time.perf_counter() - start) / calls
            continue

        async def timed(body: Callable[[float], Coroutine[Any, Any, None]] = BODIES[name]) -> float:
            start = time.perf_counter()
            await body(scale)
            return time.perf_counter() - start

        elapsed = loop.run_until_complete(timed())
        if name == "nested run":
            elapsed /= max(1, int(NESTED_CALLS * scale))
        times[name] = elapsed
    loop.close()
    return times


# -- the side-by-side run ------------------------------------------------------------------


def available(variant: str) -> bool:
    if variant in ("asyncio", "shim on"):
        return True
    probe = [sys.executable, "-c", f"import {variant}"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def run_variant(variant: str, scale: float) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", variant, "--scale", str(scale)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small and short")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.scale)))
        return

    scale = 0.1 if args.quick else 1.0
    rounds = args.rounds or (3 if args.quick else 7)
    variants = [v for v in VARIANTS if available(v)]
    missing = [v for v in VARIANTS if v not in variants]
    samples: dict[str, dict[str, list[float]]] = {v: {w: [] for w in WORKLOADS} for v in variants}
    ratios: dict[str, dict[str, list[float]]] = {v: {w: [] for w in WORKLOADS} for v in variants}
    for _ in range(rounds):
        order = list(variants)
        random.shuffle(order)
        measured = {variant: run_variant(variant, scale) for variant in order}
        for variant in variants:
            for workload in WORKLOADS:
                value = measured[variant][workload]
                samples[variant][workload].append(value)
                ratios[variant][workload].append(value / measured["asyncio"][workload])

    print(
        f"P2 nesting: Python {sys.version.split()[0]}, {rounds} interleaved rounds, "
        f"scale {scale}, each variant in its own process"
    )
    header = f"  {'variant':<15}" + "".join(f"{w:>22}" for w in WORKLOADS)
    print(header)
    for variant in variants:
        cells = []
        for workload in WORKLOADS:
            median = statistics.median(samples[variant][workload])
            ratio = statistics.median(ratios[variant][workload])
            shown = f"{median * 1e6:.0f} us" if workload == "nested run" else f"{median:.3f} s"
            cells.append(f"{shown} ({ratio:.2f}x)")
        print(f"  {variant:<15}" + "".join(f"{c:>22}" for c in cells))
    print("  (x = against plain asyncio in the same round; its nested-run row is asyncio.run()")
    print("   with no loop running: plain asyncio cannot nest)")
    for variant in missing:
        print(f"  {variant}: not installed, skipped (pip install {variant.replace('_', '-')})")
    checks = {}
    for what, workload, limit in TARGETS:
        ratio = statistics.median(ratios["shim on"][workload])
        checks[f"{what} (measured {ratio:.2f}x)"] = ratio <= limit
    if "nest_asyncio" in variants:
        # Against nest_asyncio in the same round: one nested call costs no more (N1, P2).
        per_round = [
            shim / peer
            for shim, peer in zip(
                samples["shim on"]["nested run"], samples["nest_asyncio"]["nested run"], strict=True
            )
        ]
        ratio = statistics.median(per_round)
        checks[f"P2 one nested asyncio.run(), shim <= nest_asyncio (measured {ratio:.2f}x)"] = (
            ratio <= 1.0
        )
    print_targets(checks)
    write_results(
        "nesting",
        {
            "rounds": rounds,
            "scale": scale,
            "median_seconds": {
                v: {w: statistics.median(s) for w, s in ws.items()} for v, ws in samples.items()
            },
            "median_ratio": {
                v: {w: statistics.median(r) for w, r in ws.items()} for v, ws in ratios.items()
            },
            "targets": checks,
        },
    )


if __name__ == "__main__":
    main()
