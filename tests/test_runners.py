"""The R-behaviours of DESIGN.md, checked for every persistent asyncio-family runner.

Each test runs against a real InteractiveShell with the extension loaded, once with the
``asyncio`` runner and once with the ``thread`` runner (the ``runner_shell`` fixture).
Ctrl-C is a real SIGINT sent to this process once the cell has reached the point under test.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from conftest import LIBRARY, TIMEOUT, Shell, send_sigint_when

import autoawait_runners


def test_objects_from_one_cell_are_usable_in_the_next(runner_shell: Shell) -> None:  # R1
    runner_shell.ok("import asyncio")
    runner_shell.ok(
        "lock = asyncio.Lock(); queue = asyncio.Queue(); done = asyncio.Event()\n"
        "async def worker():\n"
        "    item = await queue.get()\n"
        "    async with lock:\n"
        "        done.set()\n"
        "    return item * 2\n"
        "task = asyncio.create_task(worker())"
    )
    runner_shell.ok("await queue.put(21)")
    runner_shell.ok("await asyncio.wait_for(done.wait(), 10)")
    assert runner_shell.ok("await task") == 42


def test_plain_cells_see_the_session_loop(runner_shell: Shell) -> None:  # R3
    runner = runner_shell.ip.loop_runner
    runner_shell.ok("import asyncio, threading")
    assert runner_shell.ok("asyncio.get_running_loop()") is runner.loop
    runner_shell.ok("async def f(): return 'scheduled'\nt = asyncio.create_task(f())")
    assert runner_shell.ok("await t") == "scheduled"
    expected = runner.thread if runner_shell.name == "thread" else threading.main_thread()
    assert runner_shell.ok("threading.current_thread()") is expected
    # What libraries look at to tell which loop they run in (anyio, httpx: sniffio).
    runner_shell.ok("import sniffio")
    assert runner_shell.ok("sniffio.current_async_library()") == "asyncio"
    assert runner_shell.ok("asyncio.current_task() is not None") is True
    # A task a plain cell starts has taken its first step when the cell ends.
    runner_shell.ok("steps = []\nasync def g(): steps.append(1)")
    runner_shell.ok("t2 = asyncio.create_task(g())")
    assert runner_shell.ok("steps") == [1]
    assert runner_shell.ok("asyncio.run(f())") == "scheduled"  # nested, from a plain cell


def test_await_cells_run_in_the_runner_thread(runner_shell: Shell) -> None:
    runner = runner_shell.ip.loop_runner
    runner_shell.ok("import asyncio, threading")
    thread = runner_shell.ok("await asyncio.sleep(0); threading.current_thread()")
    expected = runner.thread if runner_shell.name == "thread" else threading.main_thread()
    assert thread is expected


def test_ctrl_c_cancels_the_cell_at_its_await(runner_shell: Shell) -> None:  # R5
    shell = runner_shell
    shell.ns["at_await"] = at_await = threading.Event()
    shell.ok("import asyncio; log = []")
    shell.ok(
        "async def ticker():\n"
        "    while True:\n"
        "        await asyncio.sleep(0.01)\n"
        "        log.append('tick')\n"
        "bg = asyncio.create_task(ticker())"
    )
    sender = send_sigint_when(at_await)
    result = shell.run(
        "cell_task = asyncio.current_task()\n"
        "asyncio.get_running_loop().call_soon(at_await.set)\n"
        "try:\n"
        "    await asyncio.sleep(60)\n"
        "    log.append('resumed')\n"
        "except asyncio.CancelledError:\n"
        "    log.append('saw cancellation')\n"
        "    raise\n"
        "finally:\n"
        "    log.append('finally ran')\n"
    )
    sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert isinstance(result.error_in_exec, __import__("asyncio").CancelledError)
    out = shell.output()
    assert "KeyboardInterrupt" in out
    assert "autoawait_runners" not in out  # R9: no plumbing in the traceback
    assert "tasks.py" not in out, out  # it ends at the cell's await, not in asyncio.sleep
    assert shell.ns["log"].count("saw cancellation") == 1
    assert "finally ran" in shell.ns["log"]
    # Nothing of the cell resumes later; background work is untouched; the runner works.
    assert shell.ok("cell_task.done()") is True
    shell.ok("n = len(log); await asyncio.sleep(0.1)")
    assert "resumed" not in shell.ns["log"]
    assert shell.ok("bg.done()") is False
    assert shell.ok("log.count('tick') > n - 3") is True
    assert shell.ok("await asyncio.sleep(0, 'still usable')") == "still usable"


def test_second_ctrl_c_interrupts_a_cell_that_swallowed_the_first(runner_shell: Shell) -> None:
    shell = runner_shell  # R5: a cell that ignores cancellation
    first, second = threading.Event(), threading.Event()
    shell.ns.update(first=first, second=second)
    shell.ok("import asyncio; log = []")
    senders = [send_sigint_when(first), send_sigint_when(second)]
    result = shell.run(
        "loop = asyncio.get_running_loop()\n"
        "loop.call_soon(first.set)\n"
        "try:\n"
        "    await asyncio.sleep(60)\n"
        "except asyncio.CancelledError:\n"
        "    log.append('swallowed')\n"
        "loop.call_soon(second.set)\n"
        "await asyncio.sleep(60)\n"
        "log.append('resumed')\n"
    )
    for sender in senders:
        sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert shell.ns["log"] == ["swallowed"]


def test_background_failure_is_reported_by_the_next_prompt(runner_shell: Shell) -> None:  # R6
    shell = runner_shell
    shell.ok("import asyncio; go = asyncio.Event(); alive = []")
    shell.ok(
        "async def doomed():\n"
        "    await go.wait()\n"
        "    raise ValueError('doomed task failed')\n"
        "async def survivor():\n"
        "    while True:\n"
        "        alive.append(1)\n"
        "        await asyncio.sleep(0.01)\n"
        "t1 = asyncio.create_task(doomed(), name='doomed')\n"
        "t2 = asyncio.create_task(survivor())"
    )
    shell.output()
    shell.ok("go.set(); await asyncio.sleep(0.05)")
    out = shell.output()
    assert f"background task doomed ('doomed') of the {shell.name} session failed" in out
    assert "ValueError: doomed task failed" in out
    assert out.count("ValueError: doomed task failed") == 1
    # Reported once only, and the loop and the other tasks live on.
    shell.ok("await asyncio.sleep(0.05)")
    assert "doomed" not in shell.output()
    assert shell.ok("t2.done()") is False


def test_failure_of_an_awaited_task_is_not_reported_twice(runner_shell: Shell) -> None:  # R6
    shell = runner_shell
    shell.ok("import asyncio")
    shell.ok("async def fails(): raise KeyError('handled')")
    shell.output()
    value = shell.ok(
        "results = await asyncio.gather(*(fails() for _ in range(3)), return_exceptions=True)\n"
        "len(results)"
    )
    assert value == 3
    assert "background task" not in shell.output()


def test_sniffio_and_anyio_see_asyncio_in_every_cell(runner_shell: Shell) -> None:  # R7
    shell = runner_shell
    shell.ok("import sniffio, anyio")
    assert shell.ok("sniffio.current_async_library()") == "asyncio"
    assert shell.ok("await anyio.sleep(0); sniffio.current_async_library()") == "asyncio"
    shell.ok("async def child(): return anyio.get_current_task().name")
    value = shell.ok(
        "async with anyio.create_task_group() as tg:\n    tg.start_soon(child)\n'anyio ok'"
    )
    assert value == "anyio ok"


def test_a_cell_run_from_a_cell_runs_and_awaits_as_without_the_extension(
    runner_shell: Shell,
) -> None:  # F8 (tests/test_run_magic.py: %run of .ipy files and notebooks)
    shell = runner_shell
    shell.ok("ok = get_ipython().run_cell('inner = 1 + 1').success")
    assert shell.ns["ok"] is True
    assert shell.ns["inner"] == 2
    shell.ok("awaited = get_ipython().run_cell('import asyncio; await asyncio.sleep(0); x = 3')")
    assert shell.ns["awaited"].success, shell.ns["awaited"].error_in_exec
    assert shell.ns["x"] == 3


SERVER = """
import asyncio
events = []
async def connection(closing):
    try:
        await closing.wait()
        events.append("connection closed by its server")
    except asyncio.CancelledError:
        events.append("connection cancelled under its server")
        raise
async def serve(started):
    closing = asyncio.Event()
    client = asyncio.create_task(connection(closing))
    started.set()
    try:
        await asyncio.Event().wait()
    finally:
        closing.set()
        await client
        events.append("server shut down")
started = asyncio.Event()
server = asyncio.create_task(serve(started))
await started.wait()
"""


@pytest.mark.parametrize("runner", ["asyncio", "thread", "uvloop"])
def test_a_session_ends_the_tasks_cells_started_first_and_theirs_after(
    ipshell: Shell, runner: str
) -> None:  # R8, F8: a server's shutdown ran in a script's order, not all at once
    # Cancelled together, a server's own tasks (hypercorn's connections and lifespan) were
    # gone before its clean-up ran: "Lifespan failure in shutdown". A script that cancels
    # its server and waits ends them in the server's order.
    pytest.importorskip(LIBRARY.get(runner, runner))
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok(SERVER)
    ipshell.output()
    ipshell.ok("%autoawait thread" if runner == "asyncio" else "%autoawait asyncio")
    assert ipshell.ns["events"] == ["connection closed by its server", "server shut down"]
    assert "cancelled 2 background tasks" in ipshell.output()


@pytest.mark.parametrize("target", ["asyncio", "thread"])
def test_switching_cancels_background_tasks_with_one_line(
    runner_shell: Shell, target: str
) -> None:  # R8
    shell = runner_shell
    shell.ok("import asyncio; cleaned = []")
    shell.ok(
        "async def forever():\n"
        "    try:\n"
        "        await asyncio.sleep(1000)\n"
        "    finally:\n"
        "        cleaned.append(1)\n"
        "tasks = [asyncio.create_task(forever()) for _ in range(3)]"
    )
    old = shell.ip.loop_runner
    shell.output()
    shell.ok(f"%autoawait {target}")
    out = shell.output()
    if target == shell.name:
        assert "cancelled" not in out  # selecting the active runner changes nothing
        assert shell.ns["cleaned"] == []
        return
    assert out.count("cancelled 3 background tasks") == 1
    assert shell.ns["cleaned"] == [1, 1, 1]
    assert not old.started
    assert old.loop is None
    # Selecting the closed runner again starts a fresh session.
    shell.ok(f"%autoawait {shell.name}")
    assert shell.ok("await asyncio.sleep(0, 'fresh')") == "fresh"
    assert old.started and old.loop is not None


def test_third_ctrl_c_abandons_a_cell_that_swallows_every_interrupt(runner_shell: Shell) -> None:
    shell = runner_shell  # R5: the prompt comes back even from a hostile cell
    events = [threading.Event() for _ in range(3)]
    shell.ns["events"] = events
    shell.ok("import asyncio; swallowed = []")
    senders = [send_sigint_when(event) for event in events]
    result = shell.run(
        "loop = asyncio.get_running_loop()\n"
        "for event in events:\n"
        "    loop.call_soon(event.set)\n"
        "    try:\n"
        "        await asyncio.sleep(60)\n"
        "    except BaseException:\n"
        "        swallowed.append(1)\n"
        "while True:\n"
        "    try:\n"
        "        await asyncio.sleep(60)\n"
        "    except BaseException:\n"
        "        swallowed.append(1)\n"
    )
    for sender in senders:
        sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert "the cell ignored cancellation; its task was left pending" in shell.output()
    assert len(shell.ns["swallowed"]) >= 2
    assert shell.ok("await asyncio.sleep(0, 'prompt is back')") == "prompt is back"
    # %tasks names it as the cell it is, and says where it waits (it still runs). Its
    # number: IPython 9 moves the count on after a cell given up on, 8 does not.
    shell.output()
    shell.ok("%tasks")
    listed = shell.output()
    row = next(line for line in listed.splitlines() if "given up on" in line)
    named = re.search(r"In \[(\d+)\] \(given up on\)", row)
    assert named is not None and "<cell>" in row, listed
    number = named.group(1)
    assert f"In[{number}]:10" in row, listed  # the await it is parked at
    shell.ok(f"%tasks where {row.split()[0]}")
    where = shell.output()
    assert f"In[{number}]:10 in <module>" in where and "no frames" not in where, where


@pytest.mark.parametrize("raised", ["SystemExit(3)", "KeyboardInterrupt()"])
def test_a_background_task_raising_systemexit_or_ctrl_c_is_a_reported_failure(
    runner_shell: Shell, raised: str
) -> None:  # F1
    # asyncio lets these end run_forever (the task also keeps them): the session loop, and
    # IPython with it, must live on.
    shell = runner_shell
    shell.ok(
        "import asyncio\n"
        "async def boom():\n"
        "    await asyncio.sleep(0.05)\n"
        f"    raise {raised}\n"
        "doomed = asyncio.create_task(boom())"
    )
    shell.output()
    assert shell.ok("await asyncio.wait([doomed], timeout=30); 'cell went on'") == "cell went on"
    assert shell.ok("await asyncio.sleep(0, 'next cell')") == "next cell"
    report = shell.output()
    assert report.count("background task boom of the") == 1
    assert raised.split("(")[0] in report
    assert "autoawait_runners/" not in report and "base_events" not in report  # user frames
    assert isinstance(shell.ok("doomed.exception()"), (SystemExit, KeyboardInterrupt))


def test_a_failure_the_cell_retrieves_is_shown_once(runner_shell: Shell) -> None:  # F6
    shell = runner_shell
    shell.ok("import asyncio\nasync def boom():\n    raise LookupError('mine')")
    shell.output()
    result = shell.run("b = asyncio.create_task(boom())\nawait asyncio.sleep(0.5)\nawait b")
    assert isinstance(result.error_in_exec, LookupError)
    shell.ok("await asyncio.sleep(0.3)")  # a report would be due by now
    assert "background task" not in shell.output()
    # One the cell leaves alone is still reported, by the end of the cell at the latest.
    shell.run("c = asyncio.create_task(boom())\nawait asyncio.sleep(0.5)")
    assert "background task boom of the" in shell.output()


def test_a_cell_that_stops_the_loop_costs_no_other_cell_or_task(runner_shell: Shell) -> None:
    shell = runner_shell  # F4
    shell.ok(
        "import asyncio\n"
        "cleaned = []\n"
        "async def background():\n"
        "    try:\n"
        "        await asyncio.sleep(100)\n"
        "    finally:\n"
        "        cleaned.append('clean-up ran')\n"
        "t = asyncio.create_task(background())"
    )
    shell.ok("asyncio.get_running_loop().stop()")
    assert shell.ok("await asyncio.sleep(0.05, 'next cell')") == "next cell"
    assert shell.ok("x = 1; t.done()") is False
    shell.output()
    shell.ok("%autoawait sync")
    assert shell.ns["cleaned"] == ["clean-up ran"]
    assert "cancelled 1 background task" in shell.output()


BROKEN_POLICY = """
import asyncio
class BrokenPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self):
        raise OSError("no loops today")
"""


def test_a_broken_loop_policy_costs_at_most_a_cell_and_never_the_way_out(
    ipshell: Shell,
) -> None:  # F4
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # policies: deprecated in 3.14
        original = asyncio.get_event_loop_policy()
        try:
            ipshell.ok("%autoawait thread")
            ipshell.ok(BROKEN_POLICY + "asyncio.set_event_loop_policy(BrokenPolicy())")
            ipshell.output()
            ipshell.ok("%autoawait asyncio")  # refused, in one line
            out = ipshell.output()
            assert "the asyncio runner could not start: asyncio cannot make an event loop" in out
            assert out.count("\n") == 1
            assert ipshell.ip.loop_runner is autoawait_runners.thread_runner
            # Broken once selected, before its first cell: the way out still works.
            ipshell.ok("asyncio.set_event_loop_policy(None)")
            ipshell.ok("%autoawait asyncio\nasyncio.set_event_loop_policy(BrokenPolicy())")
            ipshell.output()
            assert ipshell.ok("1 + 1") == 2
            assert "cannot run its session (OSError: no loops today)" in ipshell.output()
            ipshell.ok("%autoawait sync")
            assert ipshell.ip.loop_runner is not autoawait_runners.asyncio_runner
            assert ipshell.ok("'sync selected'") == "sync selected"
        finally:
            asyncio.set_event_loop_policy(original)


def test_a_flood_of_like_failures_is_one_traceback_and_an_exact_count(
    runner_shell: Shell,
) -> None:  # F6
    shell = runner_shell
    shell.ok(
        "import asyncio\n"
        "async def flaky(i):\n"
        "    raise ValueError('flood')\n"
        "async def other():\n"
        "    raise KeyError('different')\n"
        "tasks = [asyncio.create_task(flaky(i)) for i in range(300)]\n"
        "tasks.append(asyncio.create_task(other()))\n"
        "done, _ = await asyncio.wait(tasks, timeout=30)"
    )
    report = shell.output()
    assert report.count("background task flaky of the") == 1
    assert report.splitlines().count("ValueError: flood") == 1  # one traceback
    assert "... and 299 more failures like it (flaky(): ValueError: flood)" in report
    assert report.count("background task other of the") == 1  # another kind is shown on its own
    assert shell.ok("await asyncio.sleep(0, 'loop keeps pace')") == "loop keeps pace"


def test_a_job_left_in_the_executor_holds_up_no_switch(runner_shell: Shell) -> None:  # F7
    # A job still running in the loop's default executor cannot be stopped; switching
    # runner waits for it no longer than the shutdown timeout, and says what runs on.
    runner_shell.ok("import asyncio, threading; release = threading.Event()")
    runner_shell.ok("job = asyncio.get_running_loop().run_in_executor(None, release.wait, 60)")
    runner_shell.output()
    started = time.monotonic()
    runner_shell.ok("%autoawait trio")
    took = time.monotonic() - started
    runner_shell.ns["release"].set()
    out = runner_shell.output()
    assert took < 30, f"the switch waited {took:.1f} s for the executor's job"
    assert "left running: 1 executor job" in out, out
    assert "Error" not in out, out  # no stray InvalidStateError traceback


def test_reports_and_tasks_work_with_a_task_factory_of_the_users(runner_shell: Shell) -> None:
    # F7: a cell that sets its own task factory keeps it (it is called, and is what
    # get_task_factory() gives), and the session still reports failures and lists tasks.
    shell = runner_shell
    shell.ok(
        "import asyncio\n"
        "made = []\n"
        "def factory(loop, coro, **options):\n"
        "    made.append(asyncio.Task(coro, loop=loop, **options))\n"
        "    return made[-1]\n"
        "asyncio.get_running_loop().set_task_factory(factory)"
    )
    assert shell.ok("asyncio.get_running_loop().get_task_factory() is factory") is True
    shell.ok("async def boom():\n    raise ValueError('boom')")
    shell.output()
    shell.ok("held = asyncio.create_task(boom()); waiting = asyncio.create_task(asyncio.sleep(60))")
    shell.ok("await asyncio.sleep(0.05)")
    assert "background task boom of the" in shell.output()
    shell.ok("%tasks")
    assert "sleep()" in shell.output()
    assert shell.ok("len(made)") >= 2
    shell.ok("waiting.cancel()")


def test_a_task_that_outlasts_its_cancellation_gets_one_line_and_its_clean_up_now(
    runner_shell: Shell,
) -> None:  # R8, F2: one true line, and no clean-up left for interpreter exit
    shell = runner_shell
    shell.ok(
        "import asyncio\n"
        "ended = []\n"
        "async def stubborn():\n"
        "    try:\n"
        "        while True:\n"
        "            try:\n"
        "                await asyncio.sleep(100)\n"
        "            except asyncio.CancelledError:\n"
        "                pass\n"
        "    finally:\n"
        "        ended.append(asyncio.sleep.__name__)  # needs the namespace\n"
        "t = asyncio.create_task(stubborn(), name='stubborn')"
    )
    shell.output()
    shell.ok("%autoawait trio")
    out = shell.output()
    name = shell.ip.loop_runner_map[shell.name][0].name  # type: ignore[attr-defined]
    assert out.count(f"{name} runner closed") == 1, out
    assert "cancelled 1 background task; left running: 'stubborn' running stubborn()" in out
    assert "not ended 1 s after cancellation" in out
    assert shell.ns["ended"] == ["sleep"]  # its clean-up ran at close, namespace and all


@pytest.mark.parametrize("inner_factory", [False, True])
@pytest.mark.parametrize("runner", ["asyncio", "thread", "uvloop"])
def test_debug_mode_says_a_task_was_made_where_the_cells_code_made_it(
    ipshell: Shell, runner: str, inner_factory: bool
) -> None:  # F8: it named the session's task factory, as aiomonitor's hook did
    pytest.importorskip(LIBRARY.get(runner, runner))
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok(
        "import asyncio\n"
        "loop = asyncio.get_running_loop()\n"
        "loop.set_debug(True)\n"
        + (
            "loop.set_task_factory(lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw))\n"
            if inner_factory
            else ""
        )
        + "async def forever():\n"
        "    await asyncio.sleep(100)\n"
        "task = asyncio.create_task(forever())  # the line\n"
        "made = [(frame.name, frame.line) for frame in task._source_traceback]\n"
        "task.cancel()\n"
        "loop.set_debug(False)\n"
        "loop.set_task_factory(None)"
    )
    made = ipshell.ns["made"]
    lines = [line for _, line in made]
    mine = lines.index("task = asyncio.create_task(forever())  # the line")
    after = [name for name, _ in made[mine + 1 :]]
    # As without the extension (measured with asyncio.run and uvloop.run): asyncio's
    # create_task, then, with a factory of the code's own, the loop's create_task (uvloop's
    # is compiled: no frame) and the factory's frame; nothing of the session's.
    loops_own = [] if runner == "uvloop" else ["create_task"]
    assert after == (["create_task", *loops_own, "<lambda>"] if inner_factory else ["create_task"])
