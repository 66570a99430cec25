"""A real `ipython` in a pseudo-terminal: idle progress (R2), real Ctrl-C (R5), failures
reported while idle (R6) and exit (R8), for every persistent runner."""

from __future__ import annotations

import os
import re
import time

import pexpect
import pytest
from conftest import PERSISTENT, TIMEOUT, IPythonPty, start_with_runner

pytestmark = pytest.mark.pty


def failure_line(runner: str, task: str = "fail_later") -> str:
    """How every runner announces a background task that failed."""
    return rf"background task {task} of the {runner} session failed"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("runner", PERSISTENT)
def test_background_tasks_progress_while_the_prompt_is_idle(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # R2
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("t = await h.background(h.tick, 0.05)")
    # No cell runs from here on: the ticks can only come from the idle prompt.
    ipy.expect("tick 2")
    wall, cpu = time.monotonic(), cpu_seconds(ipy.child.pid)
    ipy.expect("tick 12")
    wall, cpu = time.monotonic() - wall, cpu_seconds(ipy.child.pid) - cpu
    # A spinning loop would use a whole core; waiting on timers uses next to nothing.
    assert cpu < 0.5 * wall, (cpu, wall)
    ipy.exit()


@pytest.mark.parametrize("runner", [*PERSISTENT, "uvloop"])
def test_ctrl_c_cancels_the_cell_and_nothing_resumes(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # R5
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("t = await h.background(h.tick, 0.1)")
    ipy.child.sendline("await h.sleeper()")
    ipy.expect("sleeper: waiting")
    ipy.child.sendintr()
    ipy.expect("cleanup ran")
    ipy.expect("KeyboardInterrupt")
    ipy.prompt()
    ipy.expect("tick [0-9]+")  # the background task lives on, at the idle prompt
    ipy.cell("await h.sleep(0.3); print('usable', 'still')", "usable still")
    assert "sleeper: resumed" not in ipy.text()
    ipy.exit()


@pytest.mark.parametrize("runner", PERSISTENT)
def test_ctrl_c_stops_a_cell_busy_in_python_code(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # R5
    ipy = start_with_runner(ipython_pty, runner)
    ipy.child.sendline("h.busy()")
    ipy.expect("busy: spinning")
    ipy.child.sendintr()
    ipy.expect("busy cleanup ran")
    ipy.expect("KeyboardInterrupt")
    ipy.prompt()
    ipy.cell("await h.sleep(0); print('usable', 'still')", "usable still")
    ipy.exit()


@pytest.mark.parametrize("runner", PERSISTENT)
def test_background_failure_is_shown_while_idle(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # R6
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("t = await h.background(h.tick, 0.1); f = await h.background(h.fail_later, 0.3)")
    ipy.expect(failure_line(runner))
    ipy.expect("ValueError: background failure")
    ipy.expect("tick [0-9]+")  # the loop lives on
    ipy.exit()


@pytest.mark.parametrize("runner", PERSISTENT)
def test_exit_cancels_background_tasks_promptly(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # R8
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("ts = [await h.background(h.sleeper) for _ in range(2)]")
    ipy.cell("await h.until(lambda: h.waiting == 2); print('both', 'waiting')", "both waiting")
    started = time.monotonic()
    ipy.exit()
    elapsed = time.monotonic() - started
    text = ipy.text()
    assert f"{runner} runner closed: cancelled 2 background tasks" in text
    assert text.count("cleanup ran") == 2
    assert "Task was destroyed" not in text and "Traceback" not in text
    assert ipy.child.exitstatus == 0
    assert elapsed < 10, elapsed  # the target is 2 s (see benchmarks); this catches hangs


@pytest.mark.parametrize("runner", PERSISTENT)
def test_clean_up_at_exit_still_sees_the_session_namespace(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # F2, R8
    # Terminal IPython clears the user namespace as soon as its main loop ends: the session
    # must end (and its tasks' clean-up run) before that.
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("import json")
    ipy.cell(
        "t = await h.background(h.sleeper_with_cleanup, lambda: print('saw', json.dumps([1])))"
    )
    ipy.cell("await h.until(lambda: h.waiting == 1); print('task', 'waiting')", "task waiting")
    ipy.exit()
    text = ipy.text()
    assert "saw [1]" in text
    assert "NameError" not in text and "Traceback" not in text
    assert ipy.child.exitstatus == 0


@pytest.mark.parametrize("runner", PERSISTENT)
@pytest.mark.parametrize("what", ["exit", "ctrl-c"])
def test_a_background_sys_exit_or_ctrl_c_at_the_idle_prompt_kills_nothing(
    ipython_pty: type[IPythonPty], runner: str, what: str
) -> None:  # F1, R6
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell(f"f = await h.background(h.raise_later, 0.3, {what!r})")
    # No cell runs from here on: the prompt is idle when the task raises.
    ipy.expect(failure_line(runner, "raise_later"))
    ipy.expect("SystemExit: 3" if what == "exit" else "KeyboardInterrupt")
    ipy.cell("print('still', 'alive')", "still alive")
    ipy.exit()
    assert ipy.child.exitstatus == 0


@pytest.mark.parametrize("runner", ["asyncio", "thread"])
def test_a_failure_flood_at_the_idle_prompt_coalesces_and_the_loop_keeps_pace(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # F6, R2
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("f = await h.background(h.flood, 300, 0.01)")
    ipy.expect("ValueError: flood")  # the first is shown, while the prompt is idle
    ipy.cell("await h.until(lambda: h.spawned == 300, 60); print('all', 'spawned')", "all spawned")
    ipy.cell("print('still', 'alive')", "still alive")
    text = ipy.text()
    shown = text.count("flaky of the")
    counted = sum(int(n) for n in re.findall(r"\.\.\. and (\d+) more failures? like it", text))
    assert shown + counted == 300  # every failure shown or counted, exactly
    assert shown <= 20  # was one traceback per failure: 300
    ipy.exit()


def test_gui_off_leaves_idle_progress_alone(ipython_pty: type[IPythonPty]) -> None:  # R2, F3
    # The prompt's input hook is the user's (%gui's); the session's is composed with it at
    # each prompt, so %gui with no argument has nothing of ours to remove.
    ipy = start_with_runner(ipython_pty, "asyncio")
    ipy.cell("%gui", "No event loop hook running.")
    ipy.cell("t = await h.background(h.tick, 0.05)")
    ipy.expect("tick 2")  # no cell runs: only the idle prompt can run the loop
    ipy.exit()


def test_simple_prompt_says_that_idle_progress_cannot_be_had(
    ipython_pty: type[IPythonPty],
) -> None:  # R2
    ipy = ipython_pty("--simple-prompt")
    ipy.cell("%load_ext autoawait_runners")
    ipy.cell("import autoawait_test_helpers as h")
    ipy.cell(
        "t = await h.background(h.sleeper)",  # when it first matters: a background task
        "--simple-prompt reads input with no event loop: asyncio background tasks run only",
    )
    ipy.cell("t2 = await h.background(h.sleeper)")
    ipy.exit()
    assert ipy.text().count("--simple-prompt reads input") == 1


@pytest.mark.parametrize("runner", ["thread", "trio", "curio"])
def test_ctrl_c_stops_a_background_task_that_never_yields(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # F3
    # The loop runs in its own thread, held by a task that never yields: a cell sent to it
    # cannot start. The second Ctrl-C interrupts the task; the cell is cancelled, and the
    # session serves the next one.
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("f = await h.background(h.hog)")
    ipy.expect("hog: spinning")
    waiting = ipy.count - 1  # the number of the prompt the cell is typed at
    ipy.child.sendline("print('never', 'ran')")
    # A Ctrl-C typed before the cell is handed over is the prompt's key press, not a
    # signal to the cell: press again until the second one the cell gets has landed.
    for _ in range(20):
        ipy.child.sendintr()
        if ipy.child.expect(["the loop is busy in other code", pexpect.TIMEOUT], timeout=1) == 0:
            break
    else:
        pytest.fail("Ctrl-C never reached the hog")
    # One line says what became of the cell (F6), not a bare CancelledError.
    ipy.expect("KeyboardInterrupt: the cell did not run: Ctrl-C cancelled it while it waited")
    # Numbered and kept as an interrupted cell is: the next prompt's number does not repeat.
    ipy.prompt()
    ipy.cell(f"print(In[{waiting}].upper())", r"PRINT\('NEVER', 'RAN'\)")
    ipy.cell("await h.sleep(0); print('usable', 'again')", "usable again")
    assert "never ran" not in ipy.text()
    assert "CancelledError" not in ipy.text()
    ipy.exit()


@pytest.mark.parametrize("runner", ["asyncio", "trio-guest"])
def test_ctrl_c_stops_a_task_that_holds_the_idle_prompt_and_keeps_what_was_typed(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # F3, F6
    # The asyncio runner's loop runs in the prompt's input hook (trio-guest's trio run is
    # a guest of it). A task that never yields holds the prompt, in raw mode, where Ctrl-C
    # is a key that nothing reads: once the loop has been busy a moment, Ctrl-C is a signal
    # again, and interrupts the task.
    import termios

    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("f = await h.background(h.hog)")

    def terminal_signals() -> bool:  # the pty's two ends share one set of modes
        return bool(termios.tcgetattr(ipy.child.child_fd)[3] & termios.ISIG)

    deadline = time.monotonic() + TIMEOUT
    while not terminal_signals():
        assert time.monotonic() < deadline, "Ctrl-C never became a signal again"
        time.sleep(0.05)
    ipy.child.send("print('typed', 'while', 'frozen')")
    ipy.child.sendintr()
    # The task is reported with its own frames, under either runner the same: not the
    # handler's that raised KeyboardInterrupt in it; the prompt is back with what was typed.
    ipy.expect(rf"background task hog of the {runner} session failed")
    ipy.expect(r"in hog\s")
    ipy.expect("KeyboardInterrupt")
    report = ipy.text()[ipy.text().index("background task hog") :]
    assert "autoawait_runners" not in report.split("\n", 1)[1], report
    ipy.child.sendline("")
    ipy.expect("typed while frozen")
    ipy.next_prompt()
    while terminal_signals():  # raw mode again at the prompt
        assert time.monotonic() < deadline + TIMEOUT, "the prompt stayed out of raw mode"
        time.sleep(0.05)
    ipy.cell("%tasks", f"no background tasks in the {runner} session")
    assert "escaped interact" not in ipy.text()
    ipy.exit()


@pytest.mark.parametrize("runner", ["asyncio", "thread"])
def test_one_ctrl_c_cancels_a_private_loop_run_in_a_cell(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # F3, R5
    # asyncio.Runner runs a loop of its own in the cell; in the thread runner's thread it
    # sleeps in its selector, where an exception sent from the main thread waited for it.
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("import asyncio")
    ipy.child.sendline("with asyncio.Runner() as r: r.run(h.sleeper())")
    ipy.expect("sleeper: waiting")
    started = time.monotonic()
    ipy.interrupt("cleanup ran", "KeyboardInterrupt")
    assert time.monotonic() - started < 20  # the sleeper waits 100 s
    ipy.cell("await h.sleep(0); print('usable', 'again')", "usable again")
    assert "sleeper: resumed" not in ipy.text()
    ipy.exit()


def test_ctrl_c_in_a_c_call_of_a_thread_cell_says_what_happens(
    ipython_pty: type[IPythonPty],
) -> None:  # F3
    # An exception sent to another thread lands only when it runs Python code again: the
    # first press says so, and the cell gets KeyboardInterrupt when the call returns.
    ipy = start_with_runner(ipython_pty, "thread")
    ipy.cell("import time")
    ipy.child.sendline("print('sleeping', 'now', flush=True); time.sleep(3)")
    ipy.expect("sleeping now")
    ipy.wait_until_asleep()
    ipy.interrupt(
        "the cell is in a C call \\(time.sleep, say\\): KeyboardInterrupt comes when it returns",
        "2 more stop waiting",
        "KeyboardInterrupt",
    )
    ipy.cell("print('usable', 'again')", "usable again")
    ipy.exit()


def test_ctrl_d_exits_at_once_while_a_thread_cell_is_stuck_in_a_c_call(
    ipython_pty: type[IPythonPty],
) -> None:  # F3, R8
    # The third press gives the prompt back; the cell still holds the runner's thread (a
    # C call cannot be interrupted from another thread). Exiting waits the shutdown timeout
    # for it, not the 60 s of the call: well within the pty's timeout.
    ipy = start_with_runner(ipython_pty, "thread")
    ipy.cell("import time")
    ipy.child.sendline("print('sleeping', 'now', flush=True); time.sleep(60)")
    ipy.expect("sleeping now")
    ipy.wait_until_asleep()
    ipy.child.sendintr()
    ipy.expect("2 more stop waiting")
    ipy.child.sendintr()
    ipy.expect("one more Ctrl-C stops waiting")
    ipy.interrupt("later cells wait for it \\(exit by Ctrl-D does not\\)")
    ipy.child.sendcontrol("d")
    ipy.expect("thread runner closed: cancelled 0 background tasks; left running: its thread")
    ipy.child.expect(pexpect.EOF)
    assert "KeyboardInterrupt" in ipy.text()


#: runner -> the cells that set up nesting, and how a cell runs its own loop.
NESTED_RUN = {
    "asyncio": (["import asyncio"], "asyncio.run(h.{fn}({args}))"),
    "thread": (["import asyncio"], "asyncio.run(h.{fn}({args}))"),
    "trio": (["import trio", "%nest trio on"], "trio.run(h.{fn}, {args})"),
}


@pytest.mark.parametrize("runner", list(NESTED_RUN))
def test_ctrl_c_interrupts_a_nested_run(ipython_pty: type[IPythonPty], runner: str) -> None:
    # R5 with the nesting shim: a cell waiting in asyncio.run() (trio.run()) is cancelled as
    # at an await; one busy in Python code inside it gets KeyboardInterrupt there.
    ipy = start_with_runner(ipython_pty, runner)
    setup, nested_run = NESTED_RUN[runner]
    for cell in setup:
        ipy.cell(cell)
    ipy.cell("t = await h.background(h.tick, 0.1)")
    ipy.child.sendline(nested_run.format(fn="sleeper", args=""))
    ipy.expect("sleeper: waiting")
    ipy.interrupt("cleanup ran", "KeyboardInterrupt")
    ipy.child.sendline(nested_run.format(fn="busy_async", args=""))
    ipy.expect("busy: spinning")
    ipy.interrupt("busy cleanup ran", "KeyboardInterrupt")
    ipy.expect("tick [0-9]+")  # the background task lives on
    again = nested_run.format(fn="sleep", args="0")
    ipy.cell(f"print('nested', 'again', {again})", "nested again None")
    assert "sleeper: resumed" not in ipy.text()
    ipy.exit()


@pytest.mark.parametrize("runner", ["asyncio", "thread"])
def test_a_cell_abandoned_in_a_nested_run_holds_up_no_later_cell(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # N7, R5
    # The abandoned cell stays parked inside asyncio.run(), inside the session's Context:
    # the next cell must not need that Context (it failed with "cannot enter context").
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("import asyncio")
    ipy.child.sendline("asyncio.run(h.stubborn(6))")
    ipy.expect("stubborn: waiting")
    for swallowed in (1, 2):
        ipy.wait_until_asleep("epoll")  # at its await: a press in its print raises there
        ipy.child.sendintr()
        ipy.expect(f"stubborn: swallowed {swallowed}")
        ipy.expect("stubborn: waiting")
    ipy.wait_until_asleep("epoll")
    ipy.child.sendintr()  # the third: the prompt comes back, the cell is left behind
    ipy.expect("KeyboardInterrupt")
    ipy.next_prompt()
    ipy.cell("print('next', 'cell', 1 + 1)", "next cell 2")
    ipy.cell("await asyncio.sleep(0); print('await', 'cell')", "await cell")
    assert "cannot enter context" not in ipy.text()
    ipy.exit()


@pytest.mark.parametrize("runner", ["asyncio", "thread"])
def test_a_background_task_parked_in_a_nested_run_holds_up_neither_cell_nor_prompt(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # N7
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("import asyncio")
    ipy.cell(
        "p = h.nest_in_background(600); await asyncio.sleep(0.1); print('cell', 'ended')",
        "cell ended",
    )
    # The prompt is back and serves cells while the nested call is still parked.
    ipy.cell("print('parked', 'still', not p.done())", "parked still True")
    ipy.cell("t = await h.background(h.tick, 0.05)")
    ipy.expect("tick 2")  # the idle prompt keeps the loop running
    ipy.cell(
        "p.cancel(); await asyncio.wait([p], timeout=30); print('cancelled', p.cancelled())",
        "cancelled True",
    )
    ipy.exit()


def test_tab_after_autoawait_offers_runner_names_only(ipython_pty: type[IPythonPty]) -> None:
    # S3: in a real terminal, the completion menu lists the magic's arguments, not the
    # Python keywords jedi would offer for an empty word.
    ipy = ipython_pty()
    ipy.cell("%load_ext autoawait_runners")
    ipy.child.send("%autoawait ")
    ipy.child.send("\t")
    ipy.expect("curio")
    ipy.child.send("\t")  # move into the menu: it stays on screen
    ipy.expect("--list")
    menu = ipy.text().rsplit("%autoawait", 1)[1]
    for keyword in (" and ", " not ", " import "):
        assert keyword not in menu, menu
    ipy.child.send("\r")  # take the selected name
    ipy.child.send("\r")  # and run the line
    ipy.next_prompt()
    ipy.child.send("%autoawait cu\t")
    ipy.expect_drawn("%autoawait curio")
    ipy.child.send("\r")
    ipy.expect("curio")
    ipy.next_prompt()
    ipy.exit()


@pytest.mark.parametrize("runner", PERSISTENT)
def test_background_tasks_run_at_the_idle_prompt_under_gui_qt(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # R2: a GUI event loop has the prompt's input hook; the session loop runs on
    pytest.importorskip("PySide6")
    ipy = start_with_runner(ipython_pty, runner, env={"QT_QPA_PLATFORM": "offscreen"})
    ipy.cell("%gui qt")
    ipy.cell("t = await h.background(h.tick, 0.01)")
    ipy.expect("tick 50")  # no cell runs: only the idle prompt, with Qt's input hook
    ipy.cell("print('usable', 'still')", "usable still")
    ipy.exit()


@pytest.mark.parametrize("runner", [*PERSISTENT, "uvloop"])
def test_one_ctrl_c_ends_a_shell_command_the_cell_runs(
    ipython_pty: type[IPythonPty], runner: str
) -> None:
    # F7: the command gets Ctrl-C as it would without the extension (with SIGINT blocked in
    # the runner's thread, it inherited the mask: the prompt came back only when it ended).
    ipy = start_with_runner(ipython_pty, runner)
    # The command says whether it inherited SIGINT blocked (the fault), then waits for the
    # press itself: a press between its print and a sleep would be held until the sleep
    # ended (in any Python: a signal handled just before a C call does not cut it short).
    # No braces in it: IPython would expand them in the command line.
    ipy.cell("import sys")
    script = (
        "import signal; inherited = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT]); "
        "print('sleeping', 6 * 7, 'blocked:', signal.SIGINT in inherited, flush=True); "
        "signal.sigtimedwait([signal.SIGINT], 120); raise KeyboardInterrupt"
    )
    ipy.child.sendline(f'!{{sys.executable}} -c "{script}"')
    ipy.expect("sleeping 42 blocked: False")
    ipy.interrupt("KeyboardInterrupt")  # the prompt within the pty's 30 s, not after 120 s
    ipy.cell("print('after', _exit_code)", "after -2")
    ipy.exit()


SWALLOWER = (
    "async def swallower(n):\n"
    "    while True:\n"
    "        try:\n"
    "            print('waiting', n, flush=True)\n"
    "            await asyncio.sleep(100)\n"
    "        except BaseException:\n"
    "            print('swallowed', n, flush=True)\n"
)


@pytest.mark.parametrize(
    "runner, other", [("asyncio", "thread"), ("thread", "asyncio"), ("uvloop", "asyncio")]
)
def test_exit_ends_cells_given_up_on_that_swallow_every_cancellation(
    ipython_pty: type[IPythonPty], runner: str, other: str
) -> None:  # R8, F2: the session; exit printed their lines without end. (uvloop,
    # R5: its loop waits in C, where a second press took it for busy and raised into it.)
    ipy = start_with_runner(ipython_pty, runner)
    ipy.cell("import asyncio")
    ipy.cell(f"exec({SWALLOWER!r})")

    def give_up_on(n: int) -> None:
        ipy.child.sendline(f"await swallower({n})")
        ipy.expect(f"waiting {n}")
        for press in range(3):
            ipy.wait_until_asleep("epoll")  # at its await
            ipy.child.sendintr()
            if press < 2:
                ipy.expect(f"swallowed {n}")
                ipy.expect(f"waiting {n}")
        ipy.expect("KeyboardInterrupt")
        ipy.next_prompt()

    give_up_on(1)
    ipy.cell(f"%autoawait {other}")  # the first cell's session ends here
    ipy.cell(f"%autoawait {runner}")
    give_up_on(2)
    before = len(ipy.text())
    started = time.monotonic()
    ipy.child.sendline("exit")
    ipy.child.expect(pexpect.EOF, timeout=TIMEOUT)
    took = time.monotonic() - started
    at_exit = ipy.text()[before:]
    assert at_exit.count("swallowed") < 10, at_exit[-2000:]
    assert f"{runner} runner closed" in at_exit, at_exit
    assert "a cell given up on after Ctrl-C" in at_exit, at_exit
    assert "Traceback" not in at_exit and "GeneratorExit" not in at_exit, at_exit
    assert took < TIMEOUT / 2, took
