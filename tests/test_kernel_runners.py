"""Every runner of the catalogue in a real Jupyter kernel, driven through jupyter_client
(DESIGN K1): selectable, output reaches the client, objects persist between cells,
background tasks run while the kernel is idle, and a kernel interrupt behaves as Ctrl-C
does in the terminal (R5)."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import LIBRARY, PERSISTENT, SUPPORT, TIMEOUT
from kernel import Kernel, kernel_manager

pytestmark = pytest.mark.kernel

#: runner -> the library's sleep, for cells that wait (its module is the library).
SLEEP = {
    "asyncio": "asyncio.sleep",
    "thread": "asyncio.sleep",
    "embed": "asyncio.sleep",
    "trio": "trio.sleep",
    "trio-guest": "trio.sleep",
    "curio": "curio.sleep",
}

#: runner -> how a user starts a background task under that runner.
START_IN_BACKGROUND = {
    "asyncio": "background = asyncio.create_task(ticker())",
    "thread": "background = asyncio.create_task(ticker())",
    "embed": "background = asyncio.create_task(ticker())",
    "trio": "import autoawait_runners\nautoawait_runners.trio_nursery().start_soon(ticker)",
    "trio-guest": "import autoawait_runners\nautoawait_runners.trio_nursery().start_soon(ticker)",
    "curio": "background = await curio.spawn(ticker, daemon=True)",
}


def library(runner: str) -> str:
    return SLEEP[runner].split(".")[0]


def select(kernel: Kernel, runner: str) -> None:
    pytest.importorskip(library(runner))
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok(f"%autoawait {runner}")
    kernel.ok(f"import {library(runner)}")


def interrupted(kernel: Kernel, code: str, *, interrupt_after: str | Sequence[str]) -> str:
    """Run a cell, interrupting the kernel as ``Kernel.execute`` says; the cell must end
    with KeyboardInterrupt (R5). Returns its output."""
    output, reply = kernel.execute(code, interrupt_after=interrupt_after)
    assert reply["status"] == "error", output
    assert reply["ename"] == "KeyboardInterrupt", reply
    return output


def start_ticker(kernel: Kernel, runner: str, ticks: Path) -> None:
    """A background task that appends a line to ``ticks`` on every tick."""
    kernel.ok(f"def tick():\n    with open({str(ticks)!r}, 'a') as f:\n        f.write('tick\\n')")
    kernel.ok(
        "async def ticker():\n"
        "    while True:\n"
        "        tick()\n"
        f"        await {SLEEP[runner]}(0.02)\n" + START_IN_BACKGROUND[runner]
    )


def count(ticks: Path) -> int:
    return len(ticks.read_text().splitlines()) if ticks.exists() else 0


def wait_for_ticks(ticks: Path, more_than: int) -> int:
    deadline = time.monotonic() + TIMEOUT
    while count(ticks) <= more_than + 5:
        assert time.monotonic() < deadline, f"no progress: {count(ticks)} ticks, was {more_than}"
        time.sleep(0.05)
    return count(ticks)


@pytest.mark.parametrize("runner", list(SLEEP))
def test_runner_output_reaches_the_client_and_objects_persist(kernel: Kernel, runner: str) -> None:
    select(kernel, runner)
    sleep = f"await {SLEEP[runner]}(0)"
    assert "printed by a plain cell" in kernel.ok("print('printed by a plain cell')")
    assert "printed by an await cell" in kernel.ok(f"{sleep}\nprint('printed by an await cell')")
    kernel.ok(f"{sleep}\nmade_in_a_cell = ['kept']")
    assert "['kept']" in kernel.ok(f"{sleep}\nmade_in_a_cell")  # an execute_result
    assert "41" in kernel.ok("40 + 1")
    if runner != "embed":  # R4: the persistent runners run every cell in one context
        kernel.ok("import contextvars\nvar = contextvars.ContextVar('var')")
        kernel.ok(f"{sleep}\nvar.set('set in a cell')")
        assert "set in a cell" in kernel.ok("var.get('not seen')")


@pytest.mark.parametrize("runner", PERSISTENT)
def test_background_tasks_run_while_the_kernel_is_idle(
    kernel: Kernel, runner: str, tmp_path: Path
) -> None:  # K1, R2
    select(kernel, runner)
    ticks = tmp_path / "ticks"
    start_ticker(kernel, runner, ticks)
    # No cell runs from here on: the ticks come from the background task alone.
    wait_for_ticks(ticks, count(ticks))


def test_an_empty_default_keeps_the_kernels_own_integration(tmp_path: Path) -> None:  # K1
    kernel = Kernel(tmp_path, ("--AutoawaitRunners.default=",))
    try:
        kernel.ok("%load_ext autoawait_runners")
        assert "the kernel's own asyncio integration" in kernel.ok("%autoawait")
    finally:
        kernel.shutdown()


def test_a_kernel_interrupt_right_after_loading_stops_an_awaiting_cell(kernel: Kernel) -> None:
    # K1, R5: loading selects the asyncio runner in a kernel too. The kernel's own asyncio
    # integration (kept by loading before) let the cell sleep its 60 s after the interrupt.
    kernel.ok("%load_ext autoawait_runners\nimport asyncio")
    output = interrupted(
        kernel,
        "try:\n"
        "    print('cell started', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "finally:\n"
        "    print('finally ran', flush=True)",
        interrupt_after="cell started",
    )
    assert "finally ran" in output


@pytest.mark.parametrize("runner", [*PERSISTENT, "embed"])
def test_a_kernel_interrupt_cancels_the_cell_and_only_the_cell(
    kernel: Kernel, runner: str, tmp_path: Path
) -> None:  # K1, R5
    select(kernel, runner)
    ticks = tmp_path / "ticks"
    start_ticker(kernel, runner, ticks)
    sleep = SLEEP[runner]
    output = interrupted(
        kernel,
        "try:\n"
        "    print('cell started', flush=True)\n"
        f"    await {sleep}(60)\n"
        "    print('cell resumed')\n"
        "finally:\n"
        "    print('finally ran', flush=True)",
        interrupt_after="cell started",
    )
    assert "finally ran" in output
    # The background task lives on, idle or not; the runner still runs cells; nothing of
    # the interrupted cell comes back in them.
    wait_for_ticks(ticks, count(ticks))
    later = kernel.ok(f"await {sleep}(0.2)\nprint('next cell ran')")
    assert "next cell ran" in later
    assert "cell resumed" not in later
    wait_for_ticks(ticks, count(ticks))


@pytest.mark.parametrize("runner", PERSISTENT)
def test_a_kernel_interrupt_of_a_busy_cell_shows_only_the_cell(
    kernel: Kernel, runner: str
) -> None:  # K1, R5, R9
    select(kernel, runner)
    output = interrupted(
        kernel,
        # No flush=True: Ctrl-C could land in the flush, legitimately.
        "print('cell spinning')\nwhile True:\n    pass",
        interrupt_after="cell spinning",
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)  # the kernel's colours
    assert "while True" in output
    assert not re.search(r"autoawait_runners[/\\][\w/\\]*\.py", output), output


def test_the_kernels_own_integration_can_be_selected_again(kernel: Kernel) -> None:  # K1, S2
    kernel.ok("import asyncio\nkernel_loop = asyncio.get_running_loop()")
    kernel.ok("%load_ext autoawait_runners")
    assert re.search(r"asyncio +asyncio +yes +\*", kernel.ok("%autoawait --list"))
    kernel.ok("%autoawait kernel")
    assert re.search(r"kernel +asyncio +yes +\*", kernel.ok("%autoawait --list"))
    kernel.ok("%autoawait thread")
    kernel.ok("t = asyncio.create_task(asyncio.sleep(60))")
    out = kernel.ok("%autoawait kernel")
    assert "thread runner closed: cancelled 1 background task" in out, out
    assert "True" in kernel.ok("await asyncio.sleep(0)\nasyncio.get_running_loop() is kernel_loop")
    assert "the kernel's own asyncio integration" in kernel.ok("%autoawait")


def test_loading_in_a_kernel_selects_the_asyncio_runner_on_the_kernels_loop(
    kernel: Kernel,
) -> None:  # K1
    kernel.ok("import asyncio\nkernel_loop = asyncio.get_running_loop()")
    kernel.ok("%load_ext autoawait_runners")
    assert "runner: asyncio (" in kernel.ok("%autoawait")
    # The asyncio runner runs its session on the kernel's loop.
    assert "True" in kernel.ok("await asyncio.sleep(0)\nasyncio.get_running_loop() is kernel_loop")
    kernel.ok("%autoawait thread")
    assert "False" in kernel.ok("await asyncio.sleep(0)\nasyncio.get_running_loop() is kernel_loop")
    # Unloading gives the kernel its own integration back.
    kernel.ok("%autoawait thread")
    kernel.ok("%unload_ext autoawait_runners")
    assert "True" in kernel.ok("await asyncio.sleep(0)\nasyncio.get_running_loop() is kernel_loop")


def test_closing_the_asyncio_runner_cancels_its_tasks_not_the_kernels(kernel: Kernel) -> None:
    # A task of the kernel's own integration, made before the runner's session existed.
    kernel.ok("import asyncio\noutside = asyncio.create_task(asyncio.sleep(100))")
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok("%autoawait asyncio")
    kernel.ok(
        "async def started_by_a_task():\n"
        "    return asyncio.create_task(asyncio.sleep(100))\n"
        "inside = asyncio.create_task(asyncio.sleep(100))\n"
        "grandchild = await asyncio.create_task(started_by_a_task())"
    )
    assert "cancelled 2 background tasks" in kernel.ok("%autoawait thread")
    output = kernel.ok(
        "print('inside', inside.cancelled(), 'grandchild', grandchild.cancelled(),"
        " 'outside', outside.done())"
    )
    assert "inside True grandchild True outside False" in output


@pytest.mark.parametrize("runner", [*PERSISTENT, "embed"])
def test_a_kernel_interrupt_stops_a_busy_cell_where_it_is(kernel: Kernel, runner: str) -> None:
    select(kernel, runner)  # R5: Python code (no await) gets KeyboardInterrupt in place
    output = interrupted(
        kernel,
        f"await {SLEEP[runner]}(0)\n"
        "try:\n"
        "    print('busy', flush=True)\n"
        "    while True:\n"
        "        pass\n"
        "finally:\n"
        "    print('finally ran', flush=True)",
        interrupt_after="busy",
    )
    assert "finally ran" in output
    assert "still usable" in kernel.ok(f"await {SLEEP[runner]}(0)\nprint('still usable')")


def test_the_sync_runner_is_selectable_and_turns_autoawait_off(kernel: Kernel) -> None:
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok("%autoawait sync")
    assert "runner: sync" in kernel.ok("%autoawait")
    assert "3" in kernel.ok("1 + 2")
    output, reply = kernel.execute("import asyncio\nawait asyncio.sleep(0)")
    assert reply["status"] == "error"
    assert reply["ename"] == "SyntaxError", output


@pytest.mark.parametrize("runner", ["asyncio", "thread", "embed", "curio"])
def test_the_third_interrupt_gives_the_kernel_back_from_a_cell_that_swallows_them(
    kernel: Kernel, runner: str
) -> None:  # R5 (curio delivers a task's cancellation once: each press cancels again)
    select(kernel, runner)
    output = interrupted(
        kernel,
        "swallowed = 0\n"
        "while True:\n"
        "    try:\n"
        "        print(f'waiting after {swallowed}', flush=True)\n"
        f"        await {SLEEP[runner]}(60)\n"
        "    except BaseException:\n"
        "        swallowed += 1",
        interrupt_after=[f"waiting after {n}" for n in range(3)],
    )
    assert "the cell ignored cancellation; its task was left pending" in output
    assert "kernel is back" in kernel.ok(f"await {SLEEP[runner]}(0)\nprint('kernel is back')")
    if runner in ("asyncio", "thread"):  # embed has no session of its own to end
        # Ending the session tries once more, and says what it could not end.
        ending = kernel.ok("%autoawait sync")
        assert "left running: a cell given up on after Ctrl-C (not ended 1 s after" in ending


@pytest.mark.parametrize("runner", list(SLEEP))
def test_an_interrupt_delivered_to_another_thread_still_wakes_a_sleeping_cell(
    kernel: Kernel, runner: str
) -> None:  # R5: the system may hand a process's SIGINT to any of a kernel's threads
    select(kernel, runner)
    kernel.ok("import threading\nfrom autoawait_test_helpers import interrupt_from_another_thread")
    output = interrupted(
        kernel,
        "threading.Thread(target=interrupt_from_another_thread, daemon=True).start()\n"
        f"await {SLEEP[runner]}(600)",
        interrupt_after=[],
    )
    assert "KeyboardInterrupt" in output
    assert "kernel is back" in kernel.ok(f"await {SLEEP[runner]}(0)\nprint('kernel is back')")


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_configuration_selects_a_runner_when_the_kernel_starts(tmp_path: Path, runner: str) -> None:
    pytest.importorskip(runner)
    started = Kernel(
        tmp_path,
        ("--IPKernelApp.extensions=autoawait_runners", f"--AutoawaitRunners.default={runner}"),
    )
    try:
        assert f"runner: {runner} (" in started.ok("%autoawait")
        started.ok(f"import {library(runner)}")
        assert "configured" in started.ok(f"await {SLEEP[runner]}(0)\nprint('configured')")
    finally:
        started.shutdown()


#: A session's use: background work left running, a nested asyncio.run().
SESSION_WORK = {
    "asyncio": "asyncio.create_task(asyncio.sleep(100))\nasyncio.run(asyncio.sleep(0))",
    "trio-guest": "import autoawait_runners\n"
    "autoawait_runners.trio_nursery().start_soon(trio.sleep, 100)\n"
    "asyncio.run(asyncio.sleep(0))",
}


@pytest.mark.parametrize("runner", list(SESSION_WORK))
def test_an_ended_session_leaves_the_kernel_as_it_found_it(kernel: Kernel, runner: str) -> None:
    # F8. The runners whose session is the kernel's own loop (the others' is their own
    # thread, as in tests/test_leaks.py): trio's async generator hooks stayed installed.
    kernel.ok(
        "import asyncio\nfrom autoawait_test_helpers import process_state\nbefore = process_state()"
    )
    select(kernel, runner)
    kernel.ok(f"await {SLEEP[runner]}(0)\n" + SESSION_WORK[runner])
    kernel.ok("%unload_ext autoawait_runners")
    after = kernel.ok(
        "now = process_state()\n"
        "print('changed:', {key: (v, now[key]) for key, v in before.items() if v != now[key]})"
    )
    assert "changed: {}" in after, after


@pytest.mark.parametrize("runner", ["trio", "trio-guest"])
def test_an_abandoned_async_generator_is_closed_by_its_own_library(
    kernel: Kernel, runner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # F8, as tests/test_trio.py checks in a shell: in a kernel, trio-guest's run is a guest
    # of the kernel's loop, and a nested asyncio.run() in its cells waits on that loop.
    monkeypatch.syspath_prepend(str(SUPPORT))
    import trio
    from autoawait_test_helpers import abandon_generators

    plain: list[str] = []  # the host without the extension
    trio.run(abandon_generators, plain)
    select(kernel, runner)
    kernel.ok("from autoawait_test_helpers import abandon_generators\nclosed = []")
    output = kernel.ok("await abandon_generators(closed)\nprint('closed:', closed)")
    assert f"closed: {plain}" in output and "Error" not in output, output


#: A task and a thread that print until told to stop, and count their lines.
TICKERS = """\
import threading, time
from autoawait_test_helpers import background, sleep, until
ticks = {'task': 0, 'thread': 0}
stop = threading.Event()
async def task_ticks():
    while not stop.is_set():
        ticks['task'] += 1
        print('task tick', flush=True)
        await sleep(0.02)
def thread_ticks():
    while not stop.is_set():
        ticks['thread'] += 1
        print('thread tick', flush=True)
        time.sleep(0.02)
"""
#: A cell that runs while both print a few more lines.
MEANWHILE = "seen = dict(ticks)\nawait until(lambda: all(ticks[k] > seen[k] + 3 for k in ticks))"


def where_a_cells_task_and_thread_print(kernel: Kernel) -> dict[str, str]:
    """Where the lines that a cell's task and thread print while later cells run go: under
    the cell that started them, or under the cells running when they are printed."""
    kernel.ok(TICKERS)
    started = kernel.client.execute(
        "threading.Thread(target=thread_ticks, daemon=True).start()\nawait background(task_ticks)"
    )
    later = {kernel.client.execute(MEANWHILE) for _ in range(2)}
    last = kernel.client.execute("stop.set()")
    under = kernel.parents_of_output(("task tick", "thread tick"), until_idle=last)
    return {
        text: "under the cell that started them"
        if parents == {started}
        else "under the cells running"
        if later <= parents
        else f"elsewhere: {parents}"
        for text, parents in under.items()
    }


@pytest.fixture(scope="module")
def without_the_extension(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """:func:`where_a_cells_task_and_thread_print` in a kernel without the extension."""
    kernel = Kernel(tmp_path_factory.mktemp("kernel-plain"))
    try:
        return where_a_cells_task_and_thread_print(kernel)
    finally:
        kernel.shutdown()


@pytest.mark.parametrize("runner", [*PERSISTENT, "uvloop"])
def test_a_cells_task_and_thread_print_where_they_do_without_the_extension(
    kernel: Kernel, runner: str, without_the_extension: dict[str, str]
) -> None:  # K5, F8: on ipykernel 6 and 7 alike
    pytest.importorskip(LIBRARY.get(runner, runner))
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok(f"%autoawait {runner}")
    assert where_a_cells_task_and_thread_print(kernel) == without_the_extension
    # What the kernels promise: a task's lines stay under its cell; 6 keeps a thread's
    # there too, 7 sends them to the cell running.
    import ipykernel

    thread = "under the cell that started them"
    if int(ipykernel.__version__.split(".")[0]) >= 7:
        thread = "under the cells running"
    assert without_the_extension == {
        "task tick": "under the cell that started them",
        "thread tick": thread,
    }


def an_old_kernel_ending(tmp: Path, runner: str, how: str) -> tuple[str, int | None]:
    """Start a kernel with ``runner`` selected, run a cell that
    awaits a 30 s sleep, and end the kernel ``how``: a client's restart (which interrupts,
    then asks it to shut down), or a shutdown request alone. The old kernel's stderr (its
    log) and its exit status."""
    options = ("--IPKernelApp.extensions=autoawait_runners", f"--AutoawaitRunners.default={runner}")
    manager = kernel_manager(tmp, options)
    # Killed only if it has not ended in TIMEOUT (jupyter_client's default: 2.5 s): on a
    # loaded machine ipykernel's own ending can take 20 s (its control thread flushes output
    # to an IOPub thread already stopped, twice, 10 s each), with the extension or without.
    manager.shutdown_wait_time = TIMEOUT * 2
    library = LIBRARY.get(runner, "asyncio")
    with (tmp / "old.err").open("w") as old_log, (tmp / "new.err").open("w") as new_log:
        manager.start_kernel(stderr=old_log)
        old_process = manager.provisioner.process  # type: ignore[union-attr]
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=TIMEOUT * 2)
            waiting = client.execute(
                f"import {library}\nprint('waiting', flush=True)\nawait {library}.sleep(30)"
            )
            while True:
                message = client.get_iopub_msg(timeout=TIMEOUT)
                if message["parent_header"].get("msg_id") != waiting:
                    continue
                if message["msg_type"] == "stream" and "waiting" in message["content"]["text"]:
                    break
                assert message["msg_type"] != "error", message["content"]
            if how == "restart":
                manager.restart_kernel(now=False, stderr=new_log)
            else:
                manager.request_shutdown()
                manager.finish_shutdown()
            exit_status = old_process.wait(TIMEOUT)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
            Path(manager.connection_file).unlink(missing_ok=True)
    return (tmp / "old.err").read_text(), exit_status


@pytest.mark.parametrize("how", ["restart", "shutdown request"])
@pytest.mark.parametrize("runner", [*PERSISTENT, "uvloop"])
def test_a_kernel_ended_during_an_await_cell_ends_by_itself_with_nothing_in_its_log(
    tmp_path: Path, runner: str, how: str
) -> None:  # F8: it logged a ZMQError, and a shutdown request alone left it to be killed
    pytest.importorskip(LIBRARY.get(runner, runner))
    # Without the extension the old kernel mostly exits by itself too, but not always: on a
    # loaded machine ipykernel now and then logs its own race at a restart (an interrupted
    # cell's reply sent on the socket the shutdown closed: the same ZMQError) or "IOStream.flush
    # timed out", or is killed (its control thread's last "idle" sent to an IOPub already
    # closed at exit: about one restart in ten on Python 3.15; the extension waits for that
    # thread). The runner's kernel is held to its own exit and no error, every time.
    log, status = an_old_kernel_ending(tmp_path, runner, how)
    assert status == 0, log
    assert "Error" not in log and "Traceback" not in log, log


def in_a_subshell(kernel: Kernel, code: str) -> str:
    """Run a cell in a new subshell of the kernel (ipykernel 7's kernel subshells, as a
    frontend's second console on one kernel does); its output, once its request is idle."""
    client = kernel.client
    client.control_channel.send(client.session.msg("create_subshell_request", {}))
    reply = client.get_control_msg(timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok", reply["content"]
    request = client.session.msg(
        "execute_request",
        {"code": code, "silent": False, "store_history": True, "user_expressions": {}},
    )
    request["header"]["subshell_id"] = reply["content"]["subshell_id"]
    client.shell_channel.send(request)
    [output] = kernel._outputs([request["header"]["msg_id"]])
    return output


@pytest.mark.parametrize("runner", [*PERSISTENT, "uvloop"])
def test_a_subshells_cell_ends_under_its_own_request(kernel: Kernel, runner: str) -> None:
    # K5, F8: ipykernel 7 keeps the request a subshell's cell answers in its thread's
    # context; given the main shell's cell's values after the cell, the subshell said "idle"
    # for the main shell's request, and its own never ended (ipykernel's test_thread_ids)
    pytest.importorskip(LIBRARY.get(runner, runner))
    import ipykernel

    if int(ipykernel.__version__.split(".")[0]) < 7:
        pytest.skip("kernel subshells came with ipykernel 7")
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok(f"%autoawait {runner}")
    kernel.ok("import threading")
    assert in_a_subshell(kernel, "print('from the subshell')") == "from the subshell\n"
    assert kernel.ok("print('from the main shell')") == "from the main shell\n"


@pytest.mark.parametrize("runner", [*PERSISTENT, "uvloop"])
def test_a_server_a_cell_runs_stops_on_a_kernel_interrupt(kernel: Kernel, runner: str) -> None:
    # F9: the loop of asyncio.run() in a cell adds its signal handlers; a kernel interrupt
    # (SIGINT) reaches the server, which shuts down cleanly, and the cell returns, as in a
    # script. Under the loop-thread runners the main thread, parked in the kernel's loop,
    # installs them for the loop thread (_core._loop_signals); they used to fail there
    # ("set_wakeup_fd only works in main thread").
    pytest.importorskip("hypercorn")
    pytest.importorskip(LIBRARY.get(runner, runner))
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok(f"%autoawait {runner}")
    kernel.ok("import asyncio, signal\nfrom asgi_server import app, config, serve")  # support/
    output, reply = kernel.execute(
        "asyncio.run(serve(app, config)); print('served')", interrupt_after="serving"
    )
    assert reply["status"] == "ok", output
    assert output.splitlines()[-2:] == ["lifespan shutdown", "served"], output
    # The handlers went with the server's loop: an interrupt reaches cells again.
    assert "default_int_handler" in kernel.ok("print(signal.getsignal(signal.SIGINT))")
    interrupted(
        kernel,
        "import time\nprint('sleeping', flush=True)\nwhile True:\n    time.sleep(0.05)",
        interrupt_after="sleeping",
    )
