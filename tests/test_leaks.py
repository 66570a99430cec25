"""R8: switching runners over and over leaves no threads, file descriptors or tasks behind.
F8: nothing of an ended session is kept, in memory or in the process's state."""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import statistics
import sys
import threading
import tracemalloc
import weakref
from collections.abc import Callable

import pytest
from conftest import Shell, differences, fresh_shell, process_state
from IPython.core.interactiveshell import InteractiveShell

from autoawait_runners._ipython import _extension


def open_fds() -> dict[str, str]:
    """The open file descriptors, with what they are (for a readable failure)."""
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the one listdir itself used
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return fds


def leaked(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    return {fd: what for fd, what in after.items() if before.get(fd) != what}


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_100_switches_with_background_work_leak_nothing(ipshell: Shell) -> None:
    shell = ipshell
    shell.ok("import asyncio, time")
    work = (
        "bg = [asyncio.create_task(asyncio.sleep(100)) for _ in range(3)]\n"
        "await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0)"
    )
    # Warm up once: imports and IPython's own lazily created objects are not leaks.
    for name in ("thread", "asyncio"):
        shell.ok(f"%autoawait {name}")
        shell.ok(work)
    gc.collect()
    fds, threads, py_threads = open_fds(), os_threads(), threading.active_count()
    shell.output()

    for i in range(100):
        shell.ok("%autoawait thread" if i % 2 == 0 else "%autoawait asyncio")
        shell.ok(work)

    shell.ok("%autoawait sync")  # closes the last one too
    gc.collect()
    out = shell.output()
    assert out.count("cancelled 3 background tasks") == 101
    assert "Task was destroyed" not in out and "never retrieved" not in out
    # The warm-up's asyncio session was open at the baseline and is closed now.
    assert leaked(fds, open_fds()) == {}
    assert os_threads() <= threads
    assert threading.active_count() <= py_threads


#: One cell per runner that leaves background work behind, in that runner's library.
BACKGROUND_WORK = {
    "asyncio": "bg = asyncio.create_task(asyncio.sleep(100)); await asyncio.sleep(0)",
    "thread": "bg = asyncio.create_task(asyncio.sleep(100)); await asyncio.sleep(0)",
    "trio": "autoawait_runners.trio_nursery().start_soon(trio.sleep, 100); await trio.sleep(0)",
    "curio": "bg = await curio.spawn(curio.sleep, 100, daemon=True)",
}


def test_100_switches_across_all_runners_leak_nothing(ipshell: Shell) -> None:
    shell = ipshell
    shell.ok("import asyncio, trio, curio, autoawait_runners")
    order = list(BACKGROUND_WORK)
    for name in order:  # warm up: first imports and first sessions are not leaks
        shell.ok(f"%autoawait {name}")
        shell.ok(BACKGROUND_WORK[name])
    shell.ok("%autoawait sync")
    gc.collect()
    fds, threads = open_fds(), os_threads()
    shell.output()

    for i in range(100):
        name = order[i % len(order)]
        shell.ok(f"%autoawait {name}")
        shell.ok(BACKGROUND_WORK[name])

    shell.ok("%autoawait sync")
    gc.collect()
    out = shell.output()
    assert out.count("cancelled 1 background task") == 100
    assert "Task was destroyed" not in out and "never joined" not in out
    assert leaked(fds, open_fds()) == {}
    assert os_threads() <= threads


# -- F8: nothing of an ended session is kept -------------------------------------------------

#: Every runner with a session, and what a session is used for: background work left
#: running (the session's end cancels it), a nested asyncio.run() (uvloop's loop cannot be
#: re-entered), %tasks; and weak references to the session's loop, or its trio run, which
#: must be garbage once the session has ended.
SESSION_CELLS = {
    "asyncio": [
        "for _ in range(3): asyncio.create_task(asyncio.sleep(100))",
        "await asyncio.sleep(0)",
        "asyncio.run(asyncio.sleep(0))",
        "%tasks",
        "session_objects = [weakref.ref(asyncio.get_running_loop())]",
    ],
    "thread": [
        "for _ in range(3): asyncio.create_task(asyncio.sleep(100))",
        "await asyncio.sleep(0)",
        "asyncio.run(asyncio.sleep(0))",
        "%tasks",
        "session_objects = [weakref.ref(asyncio.get_running_loop())]",
    ],
    "uvloop": [
        "for _ in range(3): asyncio.create_task(asyncio.sleep(100))",
        "await asyncio.sleep(0)",
        "%tasks",
        "session_objects = [weakref.ref(asyncio.get_running_loop())]",
    ],
    "trio": [
        "autoawait_runners.trio_nursery().start_soon(trio.sleep, 100)",
        "await trio.sleep(0)",
        "asyncio.run(asyncio.sleep(0))",
        "%tasks",
        "session_objects = [weakref.ref(trio.lowlevel.current_root_task())]",
    ],
    "trio-guest": [
        "autoawait_runners.trio_nursery().start_soon(trio.sleep, 100)",
        "await trio.sleep(0)",
        "asyncio.run(asyncio.sleep(0))",
        "%tasks",
        "session_objects = [weakref.ref(trio.lowlevel.current_root_task()),"
        " weakref.ref(asyncio.get_running_loop())]",
    ],
    "curio": [
        "async def spawn(): await curio.spawn(curio.sleep, 100, daemon=True)",
        "await spawn()",
        "asyncio.run(asyncio.sleep(0))",
        "%tasks",
        "session_objects = []",  # curio's kernel is not a cell's to see
    ],
}
SESSION_RUNNERS = list(SESSION_CELLS)
IMPORTS = "import asyncio, weakref, trio, curio, autoawait_runners"


def run_cells(ip: InteractiveShell, *cells: str) -> None:
    """Run cells as a notebook would, without storing them in the history (which keeps
    every cell: the host's, not the session's)."""
    for cell in cells:
        result = ip.run_cell(cell)
        assert result.success, (cell, result.error_before_exec or result.error_in_exec)


def use_a_session(ip: InteractiveShell, runner: str, end: str = "%autoawait sync") -> None:
    """Select ``runner``, use its session, and end the session with ``end``."""
    run_cells(ip, f"%autoawait {runner}", *SESSION_CELLS[runner], end)
    # IPython 9 keeps what each cell displayed under its number, the same number for cells
    # kept out of the history: the host's, with or without the extension (%tasks displays).
    outputs = getattr(ip.history_manager, "outputs", None)
    if outputs is not None:
        outputs.clear()


#: At most this much memory may a switch, or a load/unload cycle, keep once warm (F8).
KEPT_PER_CYCLE = 1024


def kept_per_cycle(cycle: Callable[[], None]) -> tuple[float, list[int]]:
    """What one more ``cycle()`` keeps once warm (imports and IPython's lazily made objects
    are not leaks), as tracemalloc sees it: the median of twenty cycles' growth (a dict or a
    list of the host's that grows by resizing does so in one cycle; what a cycle keeps,
    every cycle keeps); and each cycle's growth."""
    for _ in range(5):
        cycle()
    gc.collect()
    # What exists now is not looked at again by the collections after each cycle: they
    # take a tenth of the time.
    gc.freeze()
    tracemalloc.start(1)  # sizes only: a traceback per block costs ten times as much
    try:
        sizes = [traced_after(cycle)]
        for _ in range(20):
            sizes.append(traced_after(cycle))
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    growth = [later - earlier for earlier, later in itertools.pairwise(sizes)]
    return statistics.median(growth), growth


def traced_after(cycle: Callable[[], None]) -> int:
    """The memory traced once ``cycle()`` has run and its garbage is collected. (The first
    traced cycle is a baseline, not a measure: memory made before tracing began and freed
    now is not counted, what replaces it is.)"""
    cycle()
    gc.collect()
    # The interpreter's method cache holds the attribute names last looked up: bounded,
    # and not the session's. (3.13 renamed the call; the old one warns on 3.14, and each
    # warning pytest records is memory a cycle seems to keep.)
    getattr(sys, "_clear_internal_caches", sys._clear_type_cache)()
    return tracemalloc.get_traced_memory()[0]


def kept_the_most(cycle: Callable[[], None]) -> str:
    """For a failure: the three allocation sites whose memory grew most over five more
    cycles, each with the ten frames that made it (the allocation last)."""
    tracemalloc.start(12)
    try:
        traced_after(cycle)
        before = tracemalloc.take_snapshot()
        for _ in range(5):
            traced_after(cycle)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    compared = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "traceback")
    grown = [stat for stat in compared if stat.size_diff > 0]
    return "\n".join(
        f"+{stat.size_diff} B in {stat.count_diff} blocks, made at:\n"
        + "\n".join(stat.traceback.format(limit=10))
        for stat in grown[:3]
    )


def collect_garbage() -> None:
    """Collect until nothing more is found: what a struct sequence holds (trio keeps the
    async generator hooks it found in the one ``sys.get_asyncgen_hooks()`` returns, which
    the collector does not look into) is freed one collection after it."""
    for _ in range(5):
        if not gc.collect():
            return


@pytest.mark.parametrize("runner", SESSION_RUNNERS)
def test_a_session_ended_by_a_switch_keeps_no_memory(ipshell: Shell, runner: str) -> None:  # F8
    ip = ipshell.ip
    run_cells(ip, IMPORTS)

    def cycle() -> None:
        use_a_session(ip, runner)

    kept, growth = kept_per_cycle(cycle)
    if kept > KEPT_PER_CYCLE:
        pytest.fail(
            f"each switch to {runner} and back to sync keeps {kept:.0f} bytes once warm (the "
            f"growth of twenty: {growth}); kept the most:\n{kept_the_most(cycle)}"
        )


@pytest.mark.parametrize("runner", SESSION_RUNNERS)
def test_loading_and_unloading_the_extension_keeps_no_memory(runner: str) -> None:  # F8
    with fresh_shell() as ip:
        run_cells(ip, IMPORTS)

        def cycle() -> None:
            ip.run_line_magic("load_ext", "autoawait_runners")
            use_a_session(ip, runner, end="%unload_ext autoawait_runners")

        kept, growth = kept_per_cycle(cycle)
        if kept > KEPT_PER_CYCLE:
            pytest.fail(
                f"each %load_ext, session of {runner}, %unload_ext keeps {kept:.0f} bytes once "
                f"warm (the growth of twenty: {growth}); kept the most:\n{kept_the_most(cycle)}"
            )


@pytest.mark.parametrize("end", ["%autoawait sync", "%unload_ext autoawait_runners"])
@pytest.mark.parametrize("runner", SESSION_RUNNERS)
def test_an_ended_session_leaves_the_process_as_it_found_it(runner: str, end: str) -> None:  # F8
    with fresh_shell() as ip:
        run_cells(ip, IMPORTS)
        before = process_state()  # the host's, the extension not loaded yet
        ip.run_line_magic("load_ext", "autoawait_runners")
        extension = weakref.ref(_extension._extensions[id(ip)])
        use_a_session(ip, runner, end=end)
        collect_garbage()
        changed = differences(before, process_state())
        assert not changed, f"the {runner} session, ended by {end}, left: {changed}"
        alive = [ref() for ref in ip.user_ns["session_objects"] if ref() is not None]
        assert not alive, f"outlived the {runner} session: {alive}"
        if end.startswith("%unload_ext"):
            # Nothing holds it: its atexit registration, its magics, its observers.
            held_by = [type(holder).__name__ for holder in gc.get_referrers(extension())]
            assert extension() is None, f"the unloaded extension is held by: {held_by}"
