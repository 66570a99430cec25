"""The R-behaviours of DESIGN.md for the ``curio`` runner, in a real InteractiveShell."""

from __future__ import annotations

import threading

import pytest
from conftest import TIMEOUT, Shell, send_sigint_when

import autoawait_runners

pytest.importorskip("curio")


@pytest.fixture
def curio_shell(ipshell: Shell) -> Shell:
    ipshell.ok("%autoawait curio")
    ipshell.ok("import curio, curio.meta")
    return ipshell


def test_tasks_queues_and_events_outlive_their_cell(curio_shell: Shell) -> None:  # R1
    shell = curio_shell
    shell.ok(
        "queue = curio.Queue(); done = curio.Event(); results = []\n"
        "async def worker():\n"
        "    item = await queue.get()\n"
        "    results.append(item * 2)\n"
        "    await done.set()\n"
        "    return 'joined'\n"
        "task = await curio.spawn(worker)"
    )
    shell.ok("await queue.put(21)")
    shell.ok("await curio.timeout_after(10, done.wait())")
    assert shell.ok("await task.join()") == "joined"
    assert shell.ns["results"] == [42]


def test_daemon_tasks_run_between_cells(curio_shell: Shell) -> None:  # R2
    shell = curio_shell
    shell.ns["reached"] = reached = threading.Event()
    shell.ok(
        "ticks = []\n"
        "async def ticker():\n"
        "    while True:\n"
        "        ticks.append(1)\n"
        "        if len(ticks) == 5:\n"
        "            reached.set()\n"
        "        await curio.sleep(0.01)\n"
        "t = await curio.spawn(ticker, daemon=True)"
    )
    assert reached.wait(TIMEOUT)  # no cell runs meanwhile
    assert shell.ok("t.terminated") is False


def test_plain_cells_run_in_the_kernel(curio_shell: Shell) -> None:  # R3
    shell = curio_shell
    shell.ok("import threading")
    assert shell.ok("curio.meta.curio_running()") is True
    assert shell.ok("threading.current_thread()") is autoawait_runners.curio_runner.thread


def test_ctrl_c_cancels_only_the_cell(curio_shell: Shell) -> None:  # R5
    shell = curio_shell
    shell.ns["at_await"] = at_await = threading.Event()
    shell.ok(
        "log = []\n"
        "async def ticker():\n"
        "    while True:\n"
        "        await curio.sleep(0.01)\n"
        "        log.append('tick')\n"
        "bg = await curio.spawn(ticker, daemon=True)\n"
        "async def mark():\n"
        "    at_await.set()"
    )
    sender = send_sigint_when(at_await)
    result = shell.run(
        "await curio.spawn(mark, daemon=True)\n"
        "try:\n"
        "    await curio.sleep(60)\n"
        "    log.append('resumed')\n"
        "except curio.CancelledError:\n"
        "    log.append('saw cancellation')\n"
        "    raise\n"
        "finally:\n"
        "    log.append('finally ran')\n"
    )
    sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    out = shell.output()
    assert "KeyboardInterrupt" in out
    assert "KeyboardInterrupt: KeyboardInterrupt" not in out  # shown as a bare Ctrl-C is
    assert shell.ns["log"].count("saw cancellation") == 1
    assert "finally ran" in shell.ns["log"]
    shell.ok("n = log.count('tick'); await curio.sleep(0.1)")
    assert "resumed" not in shell.ns["log"]
    assert shell.ok("log.count('tick') > n and not bg.terminated") is True


def test_crashed_daemon_task_is_reported_and_the_kernel_lives(
    curio_shell: Shell, caplog: pytest.LogCaptureFixture
) -> None:
    shell = curio_shell  # R6: reported like the other runners' (curio's log record is not)
    shell.ok(
        "alive = []\n"
        "async def survivor():\n"
        "    while True:\n"
        "        alive.append(1)\n"
        "        await curio.sleep(0.01)\n"
        "async def doomed():\n"
        "    raise ValueError('doomed curio task')\n"
        "s = await curio.spawn(survivor, daemon=True)\n"
        "d = await curio.spawn(doomed, daemon=True)"
    )
    shell.ok("await curio.sleep(0.1)")
    out = shell.output()
    assert out.count("background task doomed of the curio session failed:") == 1, out
    assert "raise ValueError('doomed curio task')" in out
    assert "curio/kernel.py" not in out  # the traceback starts in the task's code
    assert not [r for r in caplog.records if r.getMessage().startswith("Task Crash")]
    assert shell.ok("n = len(alive); await curio.sleep(0.05); len(alive) > n") is True


def test_sniffio_sees_curio(curio_shell: Shell) -> None:  # R7
    shell = curio_shell
    shell.ok("import sniffio")
    assert shell.ok("sniffio.current_async_library()") == "curio"
    assert shell.ok("await curio.sleep(0); sniffio.current_async_library()") == "curio"


def test_switching_away_cancels_the_kernel_tasks(curio_shell: Shell) -> None:  # R8
    shell = curio_shell
    runner = autoawait_runners.curio_runner
    shell.ok(
        "cleaned = []\n"
        "async def forever():\n"
        "    try:\n"
        "        await curio.sleep(1000)\n"
        "    finally:\n"
        "        cleaned.append(1)\n"
        "ts = [await curio.spawn(forever, daemon=True) for _ in range(3)]"
    )
    thread = runner.thread
    shell.output()
    shell.ok("%autoawait asyncio")
    assert shell.output().count("curio runner closed: cancelled 3 background tasks") == 1
    assert shell.ns["cleaned"] == [1, 1, 1]
    assert thread is not None and not thread.is_alive()
    shell.ok("%autoawait curio")
    assert runner.thread is not thread
    assert shell.ok("await curio.sleep(0) and 'fresh'") == "fresh"
