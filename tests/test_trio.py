"""The R-behaviours of DESIGN.md for the ``trio`` runner, in a real InteractiveShell."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from conftest import SUPPORT, TIMEOUT, Shell, send_sigint_when

import autoawait_runners

pytest.importorskip("trio")


@pytest.fixture(params=["trio", "trio-guest"])
def trio_shell(request: pytest.FixtureRequest, ipshell: Shell) -> Shell:
    """A shell with a trio runner: ``trio`` (its run in a thread of its own) or
    ``trio-guest`` (in the main thread, a guest of the session's asyncio loop): every
    behaviour here holds under both."""
    ipshell.ok(f"%autoawait {request.param}")
    ipshell.ok("import trio, autoawait_runners")
    ipshell.name = request.param  # type: ignore[attr-defined]
    return ipshell


def runner_of(shell: Shell) -> Any:
    return shell.ip.loop_runner


def test_channels_events_and_system_tasks_outlive_their_cell(trio_shell: Shell) -> None:  # R1
    shell = trio_shell
    shell.ok("send, receive = trio.open_memory_channel(10); done = trio.Event()")
    shell.ok(
        "async def echo():\n"
        "    async for item in receive:\n"
        "        if item is None:\n"
        "            done.set()\n"
        "            return\n"
        "        results.append(item * 2)\n"
        "results = []\n"
        "trio.lowlevel.spawn_system_task(echo)"
    )
    shell.ok("await send.send(21)")
    shell.ok("await send.send(None)")
    shell.ok("with trio.fail_after(10):\n    await done.wait()")
    assert shell.ns["results"] == [42]


def test_session_nursery_tasks_run_between_cells(trio_shell: Shell) -> None:  # R1, R2
    shell = trio_shell
    if shell.name == "trio-guest":  # type: ignore[attr-defined]
        pytest.skip(
            "trio-guest runs between cells when its host loop does: the terminal prompt's "
            "input hook (tests/test_terminal.py), a kernel's loop (tests/test_kernel_runners.py)"
        )
    shell.ns["reached"] = reached = threading.Event()
    shell.ok(
        "ticks = []\n"
        "async def ticker():\n"
        "    while True:\n"
        "        ticks.append(1)\n"
        "        if len(ticks) == 5:\n"
        "            reached.set()\n"
        "        await trio.sleep(0.01)\n"
        "nursery = autoawait_runners.trio_nursery()\n"
        "nursery.start_soon(ticker)"
    )
    # No cell runs while we wait: the ticks come from the session running on its own.
    assert reached.wait(TIMEOUT)
    assert shell.ok("len(nursery.child_tasks)") == 1


def test_plain_cells_run_in_the_session(trio_shell: Shell) -> None:  # R3
    runner = runner_of(trio_shell)
    shell = trio_shell
    shell.ok("import threading")
    assert shell.ok("trio.lowlevel.current_trio_token()") is not None
    # trio's own thread, or the main thread (trio-guest); signal.signal works in both (in
    # trio's thread, the main thread sets it).
    main = shell.name == "trio-guest"  # type: ignore[attr-defined]
    expected = threading.main_thread() if main else runner.thread
    assert shell.ok("threading.current_thread()") is expected
    shell.ok("import signal; handler = lambda *args: None")
    before = signal.getsignal(signal.SIGUSR1)
    try:
        shell.ok("old = signal.signal(signal.SIGUSR1, handler)")
        assert signal.getsignal(signal.SIGUSR1) is shell.ns["handler"]
    finally:
        signal.signal(signal.SIGUSR1, before)
    token = shell.ok("trio.lowlevel.current_trio_token()")
    assert shell.ok("await trio.sleep(0); trio.lowlevel.current_trio_token()") is token


def test_ctrl_c_cancels_only_the_cell(trio_shell: Shell) -> None:  # R5
    shell = trio_shell
    shell.ns["at_await"] = at_await = threading.Event()
    shell.ok(
        "log = []\n"
        "async def ticker():\n"
        "    while True:\n"
        "        await trio.sleep(0.01)\n"
        "        log.append('tick')\n"
        "autoawait_runners.trio_nursery().start_soon(ticker)"
    )
    sender = send_sigint_when(at_await)
    result = shell.run(
        "trio.lowlevel.current_trio_token().run_sync_soon(at_await.set)\n"
        "try:\n"
        "    await trio.sleep(60)\n"
        "    log.append('resumed')\n"
        "finally:\n"
        "    log.append('finally ran')\n"
    )
    sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    out = shell.output()
    assert "KeyboardInterrupt" in out and "Cancelled" not in out
    # The traceback ends at the cell's await, not in how trio waits (five frames of it).
    assert "_timeouts.py" not in out and "_traps.py" not in out, out
    assert "finally ran" in shell.ns["log"]
    shell.ok("n = log.count('tick'); await trio.sleep(0.1)")
    assert "resumed" not in shell.ns["log"]
    assert shell.ok("log.count('tick') > n") is True  # the background task lives on
    assert shell.ok("len(autoawait_runners.trio_nursery().child_tasks)") == 1


def test_a_shielded_clean_up_after_ctrl_c_runs_to_the_end(trio_shell: Shell) -> None:  # F3
    # The sleeps inside the shield end by their own deadlines: those cancellations are not
    # the interruption, and must not be turned into KeyboardInterrupt.
    shell = trio_shell
    shell.ns["at_await"] = at_await = threading.Event()
    sender = send_sigint_when(at_await)
    result = shell.run(
        "steps = []\n"
        "trio.lowlevel.current_trio_token().run_sync_soon(at_await.set)\n"
        "try:\n"
        "    await trio.sleep(60)\n"
        "finally:\n"
        "    with trio.CancelScope(shield=True):\n"
        "        await trio.sleep(0.2)\n"
        "        steps.append('step 1')\n"
        "        with trio.move_on_after(0.05):\n"
        "            await trio.sleep(10)\n"
        "        steps.append('step 2')\n"
    )
    sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert shell.ns["steps"] == ["step 1", "step 2"]
    assert "Cancelled" not in shell.output()


def test_failing_background_task_is_reported_and_the_session_lives(trio_shell: Shell) -> None:
    shell = trio_shell  # R6
    shell.ok(
        "alive = []\n"
        "async def survivor():\n"
        "    while True:\n"
        "        alive.append(1)\n"
        "        await trio.sleep(0.01)\n"
        "async def doomed():\n"
        "    await trio.sleep(0.01)\n"
        "    raise ValueError('doomed trio task')\n"
        "nursery = autoawait_runners.trio_nursery()\n"
        "nursery.start_soon(survivor); nursery.start_soon(doomed)"
    )
    shell.output()
    shell.ok("await trio.sleep(0.2)")
    out = shell.output()
    assert f"background task doomed of the {shell.name} session failed" in out  # type: ignore[attr-defined]
    assert out.count("ValueError: doomed trio task") == 1
    assert "_trio.py" not in out  # the traceback starts in the user's code
    assert shell.ok("len(nursery.child_tasks)") == 1
    assert shell.ok("n = len(alive); await trio.sleep(0.05); len(alive) > n") is True


def test_sniffio_and_anyio_see_trio(trio_shell: Shell) -> None:  # R7
    shell = trio_shell
    shell.ok("import sniffio, anyio")
    assert shell.ok("sniffio.current_async_library()") == "trio"
    assert shell.ok("await anyio.sleep(0); sniffio.current_async_library()") == "trio"
    value = shell.ok(
        "async def child(): pass\n"
        "async with anyio.create_task_group() as tg:\n"
        "    tg.start_soon(child)\n"
        "'anyio ok'"
    )
    assert value == "anyio ok"


def test_switching_away_cancels_the_session(trio_shell: Shell) -> None:  # R8
    shell = trio_shell
    runner = runner_of(shell)
    name = shell.name  # type: ignore[attr-defined]
    shell.ok(
        "cleaned = []\n"
        "async def forever():\n"
        "    try:\n"
        "        await trio.sleep_forever()\n"
        "    finally:\n"
        "        cleaned.append(1)\n"
        "for _ in range(3):\n"
        "    autoawait_runners.trio_nursery().start_soon(forever)"
    )
    nursery = autoawait_runners.trio_nursery()
    shell.output()
    shell.ok("%autoawait asyncio")
    assert shell.output().count(f"{name} runner closed: cancelled 3 background tasks") == 1
    assert shell.ns["cleaned"] == [1, 1, 1]
    assert not runner.started
    if name == "trio":
        assert runner.thread is None and not any(
            thread.name == "autoawait_runners-trio" for thread in threading.enumerate()
        )
    with pytest.raises(RuntimeError, match="%autoawait trio or %autoawait trio-guest"):
        autoawait_runners.trio_nursery()
    shell.ok(f"%autoawait {name}")  # a fresh session
    assert shell.ok("(await trio.sleep(0)) or 'fresh'") == "fresh"
    assert autoawait_runners.trio_nursery() is not nursery


def test_a_crashed_session_is_reported_and_the_next_cell_starts_a_new_one(
    trio_shell: Shell,
) -> None:
    shell = trio_shell  # a system task that fails ends trio.run: trio's own rule
    shell.ok("async def boom():\n    raise ValueError('system task failed')")
    shell.ok("async def bystander():\n    await trio.sleep_forever()")
    shell.ok("autoawait_runners.trio_nursery().start_soon(bystander)")
    nursery = autoawait_runners.trio_nursery()
    old = runner_of(shell).thread if shell.name == "trio" else None  # type: ignore[attr-defined]
    shell.run("trio.lowlevel.spawn_system_task(boom); await trio.sleep(5)")
    # The run ends right after this cell; a cell sent while it is ending is cancelled with
    # it (trio's teardown), so wait for the end before asking for a fresh session.
    if old is not None:
        old.join(TIMEOUT)
    assert shell.ok("await trio.sleep(0); 'fresh'") == "fresh"
    assert autoawait_runners.trio_nursery() is not nursery
    out = shell.output()
    assert "ValueError('system task failed')" in out
    assert f"the {shell.name} session ended unexpectedly" in out  # type: ignore[attr-defined]
    assert "background tasks lost: bystander" in out  # F6: what the crash took
    assert "in boom" in out and "raise ValueError('system task failed')" in out  # its traceback
    assert "the next cell starts a new one" in out
    if old is not None:
        assert runner_of(shell).thread is not old
        assert not old.is_alive()


# -- trio.run() from synchronous code in a cell (the nesting shim's trio side) -------------

NESTED = (
    "async def double(x):\n"
    "    await trio.sleep(0.01)\n"
    "    return 2 * x\n"
    "def sync_library(x):\n"
    "    return trio.run(double, x)"
)


@pytest.fixture
def nesting_trio_shell(trio_shell: Shell) -> Shell:
    trio_shell.ok("%nest trio on")
    return trio_shell


def test_trio_run_in_a_cell_runs_on_the_session_loop(nesting_trio_shell: Shell) -> None:
    shell = nesting_trio_shell
    shell.ok(NESTED)
    assert shell.ok("sync_library(21)") == 42
    assert shell.ok("await trio.sleep(0); sync_library(5)") == 10
    shell.ok("async def token(): return trio.lowlevel.current_trio_token()")
    assert shell.ok("trio.run(token) is trio.lowlevel.current_trio_token()") is True


def test_session_tasks_progress_during_a_nested_trio_run(nesting_trio_shell: Shell) -> None:
    shell = nesting_trio_shell
    shell.ok(
        "ticks = []\n"
        "async def ticker():\n"
        "    while True:\n"
        "        ticks.append(1)\n"
        "        await trio.sleep(0.005)\n"
        "autoawait_runners.trio_nursery().start_soon(ticker)"
    )
    shell.ok("before = len(ticks); trio.run(trio.sleep, 0.3); during = len(ticks) - before")
    assert shell.ns["during"] >= 5  # 60 at 5 ms a tick; none if the loop were frozen


def test_nested_trio_run_errors_and_cancel_scopes_behave(nesting_trio_shell: Shell) -> None:
    shell = nesting_trio_shell
    shell.ok(
        "async def fail(): raise LookupError('from inside')\n"
        "try:\n"
        "    trio.run(fail)\n"
        "except LookupError as exc:\n"
        "    caught = str(exc)"
    )
    assert shell.ns["caught"] == "from inside"
    shell.ok(
        "start = trio.current_time()\n"
        "with trio.move_on_after(0.05) as scope:\n"
        "    trio.run(trio.sleep, 30)\n"
        "elapsed = trio.current_time() - start"
    )
    assert shell.ns["scope"].cancelled_caught and shell.ns["elapsed"] < 10
    result = shell.run("trio.run(trio.lowlevel.current_trio_token)")  # not an async function
    assert isinstance(result.error_in_exec, TypeError)
    shell.ok(NESTED)
    assert shell.ok("sync_library(1)") == 2  # the session lives on


def test_trio_cells_nest_only_when_asked_and_say_how(trio_shell: Shell) -> None:
    shell = trio_shell
    shell.ok(NESTED)
    result = shell.run("sync_library(1)")  # the default: trio cells are not in a portal
    assert "from inside a run()" in str(result.error_in_exec)
    assert "%nest trio on" in str(result.error_in_exec)
    shell.ok("%nest trio on")
    assert shell.ok("sync_library(1)") == 2
    shell.output()
    shell.ok("%nest")
    assert "trio.run() in a trio-runner cell runs in the cell's task" in shell.output()
    shell.ok("%nest trio off")
    result = shell.run("sync_library(1)")
    assert "from inside a run()" in str(result.error_in_exec)
    shell.ok("%nest off")
    result = shell.run("sync_library(1)")
    assert "%nest trio on" not in str(result.error_in_exec)  # trio's own message


def test_closing_counts_system_tasks_that_cells_spawned(trio_shell: Shell) -> None:  # R8
    shell = trio_shell
    shell.ok(
        "cleaned = []\n"
        "async def waits():\n"
        "    try:\n"
        "        await trio.sleep_forever()\n"
        "    finally:\n"
        "        cleaned.append(1)\n"
        "autoawait_runners.trio_nursery().start_soon(waits)\n"
        "trio.lowlevel.spawn_system_task(waits)\n"
        "await trio.sleep(0.01)"
    )
    shell.output()
    shell.ok("%autoawait asyncio")
    name = shell.name  # type: ignore[attr-defined]
    assert f"{name} runner closed: cancelled 2 background tasks" in shell.output()
    assert shell.ns["cleaned"] == [1, 1]


def test_the_session_nursery_starts_servers_the_trio_way(trio_shell: Shell) -> None:  # R1
    shell = trio_shell
    shell.ok(
        "import autoawait_runners\n"
        "nursery = autoawait_runners.trio_nursery()\n"
        "async def echo(stream):\n"
        "    async for data in stream:\n"
        "        await stream.send_all(data)"
    )
    # trio.serve_tcp reports its listeners through task_status.started().
    port = shell.ok(
        "listeners = await nursery.start(trio.serve_tcp, echo, 0, name='echo server')\n"
        "listeners[0].socket.getsockname()[1]"
    )
    assert isinstance(port, int) and port > 0
    reply = shell.ok(
        f"stream = await trio.open_tcp_stream('127.0.0.1', {port})\n"
        "await stream.send_all(b'ping')\n"
        "reply = await stream.receive_some(4)\n"
        "await stream.aclose()\n"
        "reply"
    )
    assert reply == b"ping"  # the server runs on between cells
    assert shell.ok("[task.name for task in nursery.child_tasks]") == ["echo server"]
    # An error before started() is raised by start(), not reported in the background.
    shell.ok(
        "async def cannot_bind(*, task_status=trio.TASK_STATUS_IGNORED):\n"
        "    raise OSError('address in use')"
    )
    shell.output()
    result = shell.run("await nursery.start(cannot_bind)")
    assert isinstance(result.error_in_exec, OSError)
    assert "background task" not in shell.output()


def test_an_abandoned_async_generator_is_closed_by_its_own_library(
    trio_shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:  # F8
    monkeypatch.syspath_prepend(str(SUPPORT))
    import trio
    from autoawait_test_helpers import abandon_generators

    # The host without the extension: trio.run, and asyncio.run in it (in a thread: this
    # one has the session's trio run, under trio-guest).
    plain: list[str] = []
    host = threading.Thread(target=trio.run, args=(abandon_generators, plain))
    host.start()
    host.join(TIMEOUT)
    trio_shell.output()
    trio_shell.ok("from autoawait_test_helpers import abandon_generators\nclosed = []")
    trio_shell.ok("await abandon_generators(closed)")
    # Each clean-up runs in its own library: under trio-guest, asyncio's hooks were those
    # of its cells (asyncio closed trio's generator: 'Task got bad yield'), and trio's
    # those of a nested asyncio.run() in a kernel (trio closed asyncio's).
    assert plain == ["trio's generator closed", "asyncio's generator closed"]
    assert trio_shell.ns["closed"] == plain
    assert "Error" not in trio_shell.output()
