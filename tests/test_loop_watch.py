"""A session loop blocked while no cell runs is named, with its task and line (DESIGN B3):
in a programmatic shell under every persistent runner, at a real terminal's idle prompt,
and in a kernel's log (not a cell's output)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from conftest import PERSISTENT, TIMEOUT, IPythonPty, Shell, has_module, start_with_runner

from autoawait_runners._core import _loop_watch

RUNNERS = [*PERSISTENT, *(["uvloop"] if has_module("uvloop") else [])]

#: runner -> a cell that starts a background task named 'hogger' whose line 5 holds the
#: loop for `HOLD` seconds, after a first short wait; the task sets `held` once it let go.
HOLD = 2.0
_HOG = """async def hog():
    await {sleep}(0.05)
    time.sleep({hold})
    held.set()
"""
_START = {
    "asyncio": "t = asyncio.get_running_loop().create_task(hog(), name='hogger')",
    "trio": "autoawait_runners.trio_nursery().start_soon(hog, name='hogger')",
    "curio": "t = await curio.spawn(hog, daemon=True)",
}
_LIBRARY = {
    "asyncio": "asyncio",
    "thread": "asyncio",
    "uvloop": "asyncio",
    "trio": "trio",
    "trio-guest": "trio",
    "curio": "curio",
}


def hog_cell(runner: str, hold: float = HOLD) -> str:
    library = _LIBRARY[runner]
    return (
        f"import {library}, time, threading, autoawait_runners\nheld = threading.Event()\n"
        + _HOG.format(sleep=f"{library}.sleep", hold=hold)
        + _START[library]
    )


def until(condition: object, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"not within {TIMEOUT} s: {what}")
        time.sleep(0.02)


def idle(shell: Shell, until_done: threading.Event) -> None:
    """Leave the session idle, as between cells at a prompt, until ``until_done`` is set:
    a loop in the main thread is run as the prompt's input hook runs it."""
    runner = shell.ip.loop_runner
    if not runner.runs_at_the_prompt:
        until(until_done.is_set, "the background task's end")
        return
    read_end, write_end = os.pipe()

    def input_when_done() -> None:
        until_done.wait(TIMEOUT)
        os.write(write_end, b"\n")

    typist = threading.Thread(target=input_when_done)
    typist.start()
    try:
        assert runner.run_until_readable(read_end, None)
    finally:
        typist.join()
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_blocked_loop_is_named_with_its_task_and_line(ipshell: Shell, runner: str) -> None:
    # B3
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok("%config AutoawaitRunners.blocked_warning = 0.3")
    ipshell.ok(hog_cell(runner))
    cell = ipshell.ip.execution_count - 1
    idle(ipshell, ipshell.ns["held"])
    until(
        lambda: _loop_watch.settings.recent and _loop_watch.settings.recent[-1].duration,
        "the episode's end",
    )
    output = ipshell.output()
    task = "'hog'" if runner == "curio" else "'hogger'"  # curio names a task by its function
    assert f"the {runner} loop is blocked" in output, output
    assert f"by task {task} in hog() at In[{cell}]:5" in output, output
    assert output.count("loop is blocked") == 1, output  # one line per episode
    assert f"... the {runner} loop was blocked for" in output, output
    ipshell.ok("%tasks blocked")
    listed = ipshell.output()
    assert f"{runner}: for" in listed and f"by task {task} running hog()" in listed, listed
    assert f"In[{cell}]:5 in hog\n    time.sleep({HOLD})" in listed, listed


@pytest.mark.parametrize("runner", ["asyncio", "thread"])
def test_a_callback_that_blocks_the_loop_is_named(ipshell: Shell, runner: str) -> None:  # B3
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok("%config AutoawaitRunners.blocked_warning = 0.3")
    ipshell.ok(
        "import asyncio, time, threading\nheld = threading.Event()\n"
        "def stall():\n    time.sleep(1.5)\n    held.set()\n"
        "asyncio.get_running_loop().call_later(0.05, stall)"
    )
    cell = ipshell.ip.execution_count - 1
    idle(ipshell, ipshell.ns["held"])
    until(
        lambda: _loop_watch.settings.recent and _loop_watch.settings.recent[-1].duration,
        "the episode's end",
    )
    output = ipshell.output()
    assert f"the {runner} loop is blocked" in output, output
    assert f"by callback in stall() at In[{cell}]:4" in output, output


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_cell_that_blocks_is_not_a_blocked_loop(ipshell: Shell, runner: str) -> None:
    # B3: what a cell does is the cell's (and Ctrl-C's), not a blocked loop
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok("%config AutoawaitRunners.blocked_warning = 0.3")
    ipshell.ok("import time\ntime.sleep(1)")
    ipshell.ok(f"import {_LIBRARY[runner]}\nawait {_LIBRARY[runner]}.sleep(0)\ntime.sleep(1)")
    output = ipshell.output()
    assert "blocked" not in output, output
    assert not _loop_watch.settings.recent


@pytest.mark.parametrize("runner", ["asyncio", "thread", "trio"])
def test_blocked_warning_zero_warns_of_nothing(ipshell: Shell, runner: str) -> None:
    # B3
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok("%config AutoawaitRunners.blocked_warning = 0")
    ipshell.ok(hog_cell(runner, hold=1.0))
    idle(ipshell, ipshell.ns["held"])
    ipshell.ok("x = 1")  # what the loop did meanwhile is reported by now, if at all
    output = ipshell.output()
    assert "blocked" not in output, output
    ipshell.ok("%tasks blocked")
    assert "no blocked session loop seen" in ipshell.output()


@pytest.mark.pty
@pytest.mark.parametrize("runner", ["thread", "asyncio"])
def test_a_blocked_loop_is_said_at_the_idle_prompt_and_the_line_typed_survives(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # B3
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("%config AutoawaitRunners.blocked_warning = 0.3")
    ipy.cell("import asyncio, time")
    hog = ipy.count - 1  # the number of the cell typed next
    ipy.cell("async def hog(): await asyncio.sleep(0.05); time.sleep(3)")
    ipy.cell("t = asyncio.get_running_loop().create_task(hog(), name='hogger')")
    if runner == "thread":
        # The prompt is live while the loop thread is held: the line comes above it, and
        # what is being typed stays.
        ipy.child.send("x = 4")
    ipy.expect(
        rf"the {runner} loop is blocked \(0\.\d s\) by task 'hogger' in hog\(\) at In\[{hog}\]:1"
    )
    ipy.expect(rf"\.\.\. the {runner} loop was blocked for 3\.\d s")
    if runner == "asyncio":
        # The main thread's loop held the prompt too: the lines came when it let go.
        ipy.child.send("x = 4")
    ipy.expect_drawn("x = 4")
    ipy.cell("2; print('x is', x)", "x is 42")
    ipy.exit()


@pytest.mark.kernel
def test_a_kernels_blocked_loop_goes_to_its_log_not_to_a_cell(tmp_path: Path) -> None:  # B3
    from kernel import Kernel, kernel_manager

    kernel = Kernel.__new__(Kernel)
    kernel.manager = kernel_manager(tmp_path)
    log = tmp_path / "kernel-stderr.txt"
    with log.open("w") as stderr:
        kernel.manager.start_kernel(stderr=stderr)
    kernel.client = kernel.manager.client()
    kernel.client.start_channels()
    kernel.client.wait_for_ready(timeout=TIMEOUT * 2)
    kernel._statuses = {}
    try:
        outputs = [kernel.execute("%load_ext autoawait_runners")[0]]
        outputs.append(kernel.execute("%config AutoawaitRunners.blocked_warning = 0.3")[0])
        outputs.append(kernel.execute(hog_cell("asyncio"))[0])
        until(lambda: "was blocked for" in log.read_text(), "the kernel's log line")
        outputs.append(kernel.execute("print('next cell')")[0])
        text = log.read_text()
        assert "the asyncio loop is blocked" in text and "by task 'hogger' in hog()" in text, text
        assert "next cell" in outputs[-1]
        assert not any("blocked" in output for output in outputs), outputs
    finally:
        kernel.shutdown()


def _switches(native_id: int) -> int:
    """How many times a thread of this process was scheduled out so far."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    return sum(
        int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
    )


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
@pytest.mark.parametrize("runner", PERSISTENT)
def test_the_watch_sleeps_while_the_loop_waits(ipshell: Shell, runner: str) -> None:
    # B3, P4: an idle session wakes nothing (uvloop's watch looks once per threshold)
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok("%config AutoawaitRunners.blocked_warning = 0.3")
    ipshell.ok("x = 1")
    watch = ipshell.ip.loop_runner._watch
    assert watch is not None and watch._thread is not None
    until(lambda: watch._listening and watch._waiting, "the watch asleep, the loop waiting")
    thread_id = watch._thread.native_id
    # Settled: the %config cell's poke may still be ending (the thread between its wake-up
    # and its next sleep), which is one more switch, not a wake-up of an idle session.
    until(lambda: _settled(thread_id), "the watch's thread asleep")
    before = _switches(thread_id)
    time.sleep(1.5)  # the span measured: five thresholds
    assert _switches(thread_id) == before


def _settled(native_id: int) -> bool:
    """Whether a thread stays asleep, unscheduled, for 0.2 s."""
    before = _switches(native_id)
    time.sleep(0.2)
    return _switches(native_id) == before


@pytest.mark.parametrize("runner", ["asyncio", "thread"])
def test_a_background_cell_that_blocks_the_loop_is_named_by_its_cell(
    ipshell: Shell, runner: str
) -> None:  # B3, B1: a %%background cell runs as a task, while no cell runs
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok("%config AutoawaitRunners.blocked_warning = 0.3")
    ipshell.ok("import asyncio, time, threading\nheld = threading.Event()")
    ipshell.ok("%%background\nawait asyncio.sleep(0.05)\ntime.sleep(1.5)\nheld.set()")
    cell = ipshell.ip.execution_count - 1
    idle(ipshell, ipshell.ns["held"])
    until(
        lambda: _loop_watch.settings.recent and _loop_watch.settings.recent[-1].duration,
        "the episode's end",
    )
    output = ipshell.output()
    assert f"by task 'In [{cell}] (background)' at In[{cell}]:3 (" in output, output


def test_a_fork_in_a_cell_sees_no_watch_and_the_watch_comes_back(ipshell: Shell) -> None:
    # B3, F8: without the extension the asyncio runner's process has no other thread, and
    # Python 3.12+ warns at a fork in one that has (tests/differential's os-fork session).
    def watches() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.endswith(" watch")]

    ipshell.ok("import asyncio, os, threading\nawait asyncio.sleep(0)")
    assert watches() == ["autoawait_runners-asyncio watch"]
    ipshell.ok(
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "during = [t.name for t in threading.enumerate()]"
    )
    assert "autoawait_runners-asyncio watch" not in ipshell.ns["during"]
    ipshell.ok("await asyncio.sleep(0)")
    assert watches() == ["autoawait_runners-asyncio watch"]
