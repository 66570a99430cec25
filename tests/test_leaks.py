"""R8: switching runners over and over leaves no threads, file descriptors or tasks behind."""

from __future__ import annotations

import contextlib
import gc
import os
import threading

from conftest import Shell


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
