"""Side-by-side measurements of the runners against IPython's own (DESIGN P1, P3, P4, P5, P6).

    python benchmarks/bench_runners.py            # full run, about a minute
    python benchmarks/bench_runners.py --quick    # a smoke run (CI)

Everything is measured in one run, and the per-cell modes in one process with interleaved
rounds, so a noisy machine slows every mode alike: read the ratios, not the microseconds.
Prints a table and writes ``benchmarks/results/runners.json``.

- P1, P5, P6 per-cell cost: the median time of ``shell.run_cell`` for an ``await
  <library>.sleep(0)`` cell and a plain ``x = 1`` cell under each runner, against IPython's
  own asyncio runner (await cells) and a plain cell without the extension (plain cells).
- P3 ``%load_ext autoawait_runners``: median time in fresh processes of IPython's terminal
  shell, as a ratio to the shell's own start-up in the same process, and which optional
  libraries it imported.
- P4 idle CPU: a real ``ipython`` in a pseudo-terminal, idle at its prompt with each runner
  selected and no tasks, CPU seconds per wall second.

``--blocked-warning SECONDS`` sets ``c.AutoawaitRunners.blocked_warning`` for the runners
measured (the loop watch, B3; 0 turns it off): run with its default and with 0 to see what
the watch costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _report import print_targets, write_results

HERE = Path(__file__).parent
OPTIONAL = ("trio", "curio", "greenback", "ipykernel")

# name -> (the %autoawait argument that selects it, the cell timed)
CELL_MODES = {
    "plain cell, IPython": ("sync", "x = 1"),
    "await cell, IPython asyncio": ("IPython.core.async_helpers._asyncio_runner", "asyncio"),
    "await cell, IPython trio": ("IPython.core.async_helpers._trio_runner", "trio"),
    "await cell, IPython curio": ("IPython.core.async_helpers._curio_runner", "curio"),
    "await cell, asyncio": ("asyncio", "asyncio"),
    "plain cell, asyncio": ("asyncio", "x = 1"),
    "await cell, thread": ("thread", "asyncio"),
    "plain cell, thread": ("thread", "x = 1"),
    "await cell, uvloop": ("uvloop", "asyncio"),
    "plain cell, uvloop": ("uvloop", "x = 1"),
    "await cell, trio": ("trio", "trio"),
    "plain cell, trio": ("trio", "x = 1"),
    "await cell, trio-guest": ("trio-guest", "trio"),
    "plain cell, trio-guest": ("trio-guest", "x = 1"),
    "await cell, curio": ("curio", "curio"),
    "plain cell, curio": ("curio", "x = 1"),
}
AWAIT_CELLS = {lib: f"_ = await {lib}.sleep(0)" for lib in ("asyncio", "trio", "curio")}
REFERENCE = "await cell, IPython asyncio"
PLAIN_REFERENCE = "plain cell, IPython"

TARGETS = [
    # (what, measured mode, reference mode, at most this ratio): DESIGN P6, issue 22.
    ("P6 asyncio await cell <= 1.05x IPython's asyncio", "await cell, asyncio", REFERENCE, 1.05),
    ("P6 asyncio plain cell <= 1.2x IPython's plain", "plain cell, asyncio", PLAIN_REFERENCE, 1.2),
    ("P6 thread <= 1.3x IPython's asyncio", "await cell, thread", REFERENCE, 1.3),
    ("P6 uvloop <= 1.3x IPython's asyncio", "await cell, uvloop", REFERENCE, 1.3),
    ("P6 trio-guest <= 1.0x IPython's asyncio", "await cell, trio-guest", REFERENCE, 1.0),
    ("P1 trio <= 0.6x IPython's trio", "await cell, trio", "await cell, IPython trio", 0.6),
    ("P1 curio <= 1.0x IPython's curio", "await cell, curio", "await cell, IPython curio", 1.0),
]


def per_cell(
    rounds: int, cells: int, blocked_warning: float | None = None
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Per mode, the median seconds per cell over all rounds; and each round's medians."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance(history_length=0)
    ip.history_manager.enabled = False
    ip.run_line_magic("load_ext", "autoawait_runners")
    if blocked_warning is not None:
        ip.run_line_magic("config", f"AutoawaitRunners.blocked_warning = {blocked_warning}")
    ip.run_cell("import asyncio, trio, curio")
    modes = {name: mode for name, mode in CELL_MODES.items() if _available(mode[0])}
    samples: dict[str, list[float]] = {name: [] for name in modes}
    per_round: list[dict[str, float]] = []
    for _ in range(rounds):
        this_round: dict[str, float] = {}
        for name, (runner, cell) in modes.items():
            ip.run_line_magic("autoawait", runner)
            if runner == "sync":
                ip.autoawait = True  # only plain cells are timed in this mode
            code = AWAIT_CELLS.get(cell, cell)
            for _ in range(10):  # warm up after the switch
                ip.run_cell(code, store_history=True)
            timings = []
            for _ in range(cells):
                start = time.perf_counter()
                ip.run_cell(code, store_history=True)
                timings.append(time.perf_counter() - start)
            samples[name] += timings
            this_round[name] = statistics.median(timings)
        per_round.append(this_round)
    ip.run_line_magic("unload_ext", "autoawait_runners")
    return {name: statistics.median(values) for name, values in samples.items()}, per_round


def _available(runner: str) -> bool:
    """uvloop is optional (and not on Windows): its modes are left out without it."""
    if runner != "uvloop":
        return True
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def pair_ratio(per_round: list[dict[str, float]], mode: str, against: str) -> float:
    """The median over rounds of mode / against in the same round: load on a shared
    machine drifts between rounds and moves both sides of a ratio together."""
    return statistics.median(r[mode] / r[against] for r in per_round)


LOAD_SNIPPET = """
import sys, time
start = time.perf_counter()
from IPython.terminal.interactiveshell import TerminalInteractiveShell
ip = TerminalInteractiveShell.instance()
shell_ready = time.perf_counter()
before = set(sys.modules)
ip.run_line_magic("load_ext", "autoawait_runners")
loaded = time.perf_counter()
print(shell_ready - start, loaded - shell_ready,
      ",".join(m for m in {optional!r} if m in sys.modules and m not in before))
"""

#: P3: %load_ext at most this share of the terminal shell's own start-up (importing it and
#: making the shell), both measured in the same fresh process: where users load it.
LOAD_TARGET = 0.3


def load_ext(repeats: int) -> dict[str, Any]:
    """P3: %load_ext in fresh processes (cold imports) of IPython's terminal shell, median;
    and its median ratio to the shell's own start-up in the same process."""
    times, ratios, imported = [], [], set()
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", LOAD_SNIPPET.format(optional=OPTIONAL)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        shell, load = float(out[0]), float(out[1])
        times.append(load)
        ratios.append(load / shell)
        imported.update(filter(None, (out[2] if len(out) > 2 else "").split(",")))
    return {
        "seconds": statistics.median(times),
        "ratio": statistics.median(ratios),
        "optional_imported": sorted(imported),
    }


def idle_cpu(seconds: float, blocked_warning: float | None = None) -> dict[str, float]:
    """P4: CPU used by an idle `ipython` at its prompt, per runner, interleaved."""
    import pexpect

    setups: dict[str, list[str]] = {
        "IPython (no extension)": [],
        "asyncio": ["%load_ext autoawait_runners", "%autoawait asyncio"],
        "thread": ["%load_ext autoawait_runners", "%autoawait thread"],
        "trio": ["%load_ext autoawait_runners", "%autoawait trio"],
        # The guest run starts at the first cell, where the session loop is made.
        "trio-guest": [
            "%load_ext autoawait_runners",
            "%autoawait trio-guest",
            "import trio",
            "await trio.sleep(0)",
        ],
        "curio": ["%load_ext autoawait_runners", "%autoawait curio"],
    }
    if _available("uvloop"):
        setups["uvloop"] = ["%load_ext autoawait_runners", "%autoawait uvloop"]
    if blocked_warning is not None:
        watch = f"%config AutoawaitRunners.blocked_warning = {blocked_warning}"
        setups = {
            name: [*lines[:1], watch, *lines[1:]] if lines else lines
            for name, lines in setups.items()
        }
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    children = {}
    for name, lines in setups.items():
        child = pexpect.spawn(
            sys.executable,
            [
                "-m",
                "IPython",
                "--no-banner",
                "--colors=nocolor",
                "--HistoryManager.hist_file=:memory:",
            ],
            encoding="utf-8",
            timeout=60,
            env=env,
            dimensions=(40, 200),
        )
        child.expect(r"In \[1\]:")
        for count, line in enumerate(lines, start=2):
            child.sendline(line)
            child.expect(rf"In \[{count}\]:")
        children[name] = child
    start = {name: _cpu(child.pid) for name, child in children.items()}
    wall = time.monotonic()
    # Idle is what is measured: nothing to wait on but the clock.
    time.sleep(seconds)
    wall = time.monotonic() - wall
    result = {name: (_cpu(child.pid) - start[name]) / wall for name, child in children.items()}
    for child in children.values():
        child.sendline("exit")
        child.expect(pexpect.EOF)
    return result


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--blocked-warning",
        type=float,
        default=None,
        metavar="SECONDS",
        help="c.AutoawaitRunners.blocked_warning for the runners (0: the loop watch off)",
    )
    args = parser.parse_args()
    rounds, cells, repeats, idle = (3, 50, 3, 2.0) if args.quick else (40, 50, 9, 10.0)

    cell, per_round = per_cell(rounds, cells, args.blocked_warning)
    ratio = {name: pair_ratio(per_round, name, REFERENCE) for name in cell}
    load = load_ext(repeats)
    cpu = idle_cpu(idle, args.blocked_warning)

    plain = {
        name: pair_ratio(per_round, name, PLAIN_REFERENCE)
        for name in cell
        if name.startswith("plain cell")
    }
    print(f"P1, P5 per-cell median ({rounds} interleaved rounds of {cells} cells)")
    print(f"  {'mode':32} {'us':>8} {'x IPython asyncio':>18} {'x IPython plain':>16}")
    for name, seconds in cell.items():
        plain_ratio = f"{plain[name]:16.2f}" if name in plain else ""
        print(f"  {name:32} {seconds * 1e6:8.1f} {ratio[name]:18.2f} {plain_ratio}")
    print(
        f"P3 %load_ext autoawait_runners: {load['seconds'] * 1e3:.1f} ms (median of {repeats}),"
        f" {load['ratio']:.2f}x the terminal shell's own start-up;"
        f" optional libraries imported: {load['optional_imported'] or 'none'}"
    )
    print(f"P4 idle CPU over {idle:.0f} s:")
    for name, share in cpu.items():
        print(f"  {name:32} {share * 100:6.2f} %")

    # Ratios between two modes: the median over rounds of their per-round ratio.
    checks = [
        (
            f"{what} (measured {pair_ratio(per_round, key, against):.2f}x)",
            pair_ratio(per_round, key, against) <= limit,
        )
        for what, key, against, limit in TARGETS
        if key in cell
    ]
    checks.append(
        (
            f"P3 %load_ext <= {LOAD_TARGET}x the terminal shell's start-up"
            f" (measured {load['ratio']:.2f}x)",
            load["ratio"] <= LOAD_TARGET,
        )
    )
    checks.append(("P3 imports none of " + ", ".join(OPTIONAL), not load["optional_imported"]))
    checks += [(f"P4 idle CPU < 2% ({name})", share < 0.02) for name, share in cpu.items()]
    print_targets(dict(checks))
    write_results(
        "runners",
        {
            "quick": args.quick,
            "blocked_warning": args.blocked_warning,
            "per_cell_seconds": cell,
            "per_cell_ratio_to_ipython_asyncio": ratio,
            "plain_cell_ratio_to_ipython_plain": plain,
            "load_ext": load,
            "idle_cpu_share": cpu,
            "targets": dict(checks),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
