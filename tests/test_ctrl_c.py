"""The SIGINT handler's guards (F3; rule 1 of ``_ctrl_c``) with real signals, for every runner,
and its taking one press at a time.

The other rules (where a press goes, giving up, code that does not yield, C calls) are
tested where a person meets them: tests/test_terminal.py, test_runners.py, test_trio.py
and test_curio.py.
"""

from __future__ import annotations

import _signal
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

import pytest
from conftest import LIBRARY, SUPPORT, TIMEOUT, Shell


@pytest.fixture
def sigint_restored() -> Iterator[None]:
    """Whatever a test does to SIGINT's handler is undone after it."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


WAIT_FOR_THE_HANDLER = (
    "waited = 0\n"
    "while not got and waited < 600:  # the signal reaches the main thread's handler\n"
    "    await lib.sleep(0.05); waited += 1\n"
)


def test_a_sigint_handler_of_the_users_own_gets_ctrl_c(
    any_shell: Shell, sigint_restored: None
) -> None:  # F3
    # Installed in the main thread, where signal handlers live (a library's, or the
    # program's around embed()); the thread runners run even plain cells in their thread.
    shell = any_shell
    got: list[int] = []

    def users_own(signum: int, frame: object) -> None:
        got.append(signum)

    signal.signal(signal.SIGINT, users_own)
    shell.ns["got"] = got
    shell.output()
    shell.ok("import os, signal")
    # The cell is not interrupted: the press is the user's handler's.
    shell.ok("os.kill(os.getpid(), signal.SIGINT)\n" + WAIT_FOR_THE_HANDLER + "finished = True")
    assert got == [signal.SIGINT] and shell.ns["finished"]
    assert "SIGINT has a handler of its own (" in shell.output()
    assert signal.getsignal(signal.SIGINT) is users_own


def test_every_new_handler_of_the_users_is_named_once(
    ipshell: Shell, sigint_restored: None
) -> None:  # F3: a new handler often lands at the address of one gone (CI saw it)
    ipshell.ok("import asyncio")
    for _ in range(3):

        def users_own(signum: int, frame: object) -> None:
            pass

        signal.signal(signal.SIGINT, users_own)
        ipshell.output()
        ipshell.ok("await asyncio.sleep(0)")
        assert "SIGINT has a handler of its own (" in ipshell.output()
        ipshell.ok("await asyncio.sleep(0)")
        assert "SIGINT has a handler of its own (" not in ipshell.output()  # once
        signal.signal(signal.SIGINT, signal.default_int_handler)
        del users_own


def test_a_sigint_handler_a_cell_installs_outlives_the_cell(
    ipshell: Shell, sigint_restored: None
) -> None:  # F3: put back only if still in place (asyncio: cells run in the main thread)
    ipshell.ok("import asyncio, signal\ndef users_own(signum, frame): pass")
    ipshell.ok(
        "await asyncio.sleep(0); _ = signal.signal(signal.SIGINT, users_own)\n"
        "await asyncio.sleep(0)"
    )
    assert signal.getsignal(signal.SIGINT) is ipshell.ns["users_own"]


def test_without_a_handler_of_the_users_the_default_one_is_back_after_each_cell(
    any_shell: Shell,
) -> None:  # F3, F8: and in the cell, code sees it too, as without the extension
    shell = any_shell
    seen = shell.ok("import signal\nawait lib.sleep(0)\nsignal.getsignal(signal.SIGINT)")
    assert seen is signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


#: Runners whose cells run in the main thread, where ``signal.signal`` works.
IN_THE_MAIN_THREAD = ["asyncio", "trio-guest"]


@pytest.mark.parametrize("runner", [None, *IN_THE_MAIN_THREAD])
def test_a_handler_kept_in_one_cell_and_restored_in_the_next_leaves_ctrl_c_as_it_was(
    runner: str | None, ipshell: Shell, sigint_restored: None
) -> None:  # F8: the kept handler was a closure of the runner's; after %unload_ext, Ctrl-C
    # ended in "RuntimeError: Event loop is closed" (plain IPython: KeyboardInterrupt)
    shell = ipshell
    if runner is None:
        shell.ok("%unload_ext autoawait_runners")  # the host without the extension
        shell.ok("import asyncio as lib")
    else:
        shell.ok(f"%autoawait {runner}")
        shell.ok("import trio as lib" if runner == "trio-guest" else "import asyncio as lib")
    shell.ok("import os, signal\ndef mine(signum, frame): pass")
    shell.ok("await lib.sleep(0)\nkept = signal.signal(signal.SIGINT, mine)")
    assert shell.ns["kept"] is signal.default_int_handler
    shell.ok("await lib.sleep(0)\nback = signal.signal(signal.SIGINT, kept)")
    assert shell.ns["back"] is shell.ns["mine"]
    if runner is not None:
        shell.ok("%unload_ext autoawait_runners")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    result = shell.run("os.kill(os.getpid(), signal.SIGINT)\nimport time; time.sleep(30)")
    assert type(result.error_in_exec) is KeyboardInterrupt


def test_a_handler_of_ours_installed_after_its_cell_acts_as_the_one_it_replaced(
    ipshell: Shell, sigint_restored: None
) -> None:  # F8: kept some other way than signal.signal (the C function), put back later
    ipshell.ok("import asyncio, os, signal, _signal")
    ipshell.ok("await asyncio.sleep(0)\nours = _signal.getsignal(signal.SIGINT)")
    assert ipshell.ns["ours"] is not signal.default_int_handler
    ipshell.ok("%unload_ext autoawait_runners")
    ipshell.ok("_ = _signal.signal(signal.SIGINT, ours)")
    result = ipshell.run("os.kill(os.getpid(), signal.SIGINT)\nimport time; time.sleep(30)")
    assert type(result.error_in_exec) is KeyboardInterrupt


@pytest.mark.parametrize("runner", IN_THE_MAIN_THREAD)
def test_a_cell_that_puts_the_handler_back_is_still_interrupted_by_ctrl_c(
    runner: str, ipshell: Shell, sigint_restored: None
) -> None:  # F8, R5: putting back the shell's handler puts back the runner's routing
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok("import trio as lib" if runner == "trio-guest" else "import asyncio as lib")
    result = ipshell.run(
        "import os, signal\n"
        "kept = signal.signal(signal.SIGINT, lambda signum, frame: None)\n"
        "_ = signal.signal(signal.SIGINT, kept)\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    await lib.sleep(30)\n"
        "finally:\n"
        "    clean_up_ran = True"
    )
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert ipshell.ns["clean_up_ran"] is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_trio_run_in_an_asyncio_cell_takes_ctrl_c_as_without_the_extension(
    ipshell: Shell, sigint_restored: None
) -> None:  # F8: trio.run installs its own handler over Python's default one, which is
    # what it sees in a cell now; Ctrl-C ends the run with KeyboardInterrupt, as in plain
    # IPython, and the runner's routing is back after it
    ipshell.ok("import asyncio, os, signal, trio")
    ipshell.ok(
        "async def interrupted():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    await trio.sleep(30)"
    )
    result = ipshell.run("await asyncio.sleep(0)\ntrio.run(interrupted)")
    assert type(result.error_in_exec) is KeyboardInterrupt
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    result = ipshell.run("os.kill(os.getpid(), signal.SIGINT)\nawait asyncio.sleep(30)")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)


def test_a_wakeup_fd_set_by_other_code_is_not_displaced(ipshell: Shell) -> None:  # F3
    # The asyncio runner is the one that uses the wake-up fd (its loop sleeps in the main
    # thread); a loop's add_signal_handler, or another library, may have set one already.
    theirs, other_end = socket.socketpair()
    theirs.setblocking(False)
    before = signal.set_wakeup_fd(theirs.fileno())
    try:
        ipshell.output()
        ipshell.ok(
            "import asyncio, signal\nawait asyncio.sleep(0)\n"
            "inside = signal.set_wakeup_fd(-1); _ = signal.set_wakeup_fd(inside)"
        )
        assert ipshell.ns["inside"] == theirs.fileno()
        assert "other code set the signal wake-up fd" in ipshell.output()
        assert signal.set_wakeup_fd(-1) == theirs.fileno()
    finally:
        signal.set_wakeup_fd(before)
        theirs.close()
        other_end.close()


def test_a_real_ctrl_c_still_interrupts_once_the_users_handler_is_gone(
    any_shell: Shell, sigint_restored: None
) -> None:  # F3: nothing of the user's handler stays behind
    shell = any_shell
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    shell.ok("import os, signal\nawait lib.sleep(0)")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    result = shell.run("os.kill(os.getpid(), signal.SIGINT)\nawait lib.sleep(30)")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)


def test_a_cell_sets_the_processs_signal_handler(any_shell: Shell) -> None:
    # F8: only the main thread may; under the thread, uvloop, trio and curio runners the
    # cell runs in the loop thread, and the main thread, which waits for it, sets it.
    shell = any_shell
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        shell.ok(
            "import signal\nawait lib.sleep(0)\n_ = signal.signal(signal.SIGUSR1, signal.SIG_IGN)"
        )
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
        assert shell.ok("signal.signal(signal.SIGUSR1, _) is signal.SIG_IGN")  # given back
        assert signal.getsignal(signal.SIGUSR1) == previous
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize(
    ("runner", "code", "way_out"),
    [
        (
            "uvloop",
            "asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, print)",
            "%autoawait asyncio runs cells in the main thread",
        ),
        (
            "trio",
            "with trio.open_signal_receiver(signal.SIGUSR1):\n    pass",
            "%autoawait trio-guest runs cells in the main thread",
        ),
    ],
)
def test_what_still_needs_the_main_thread_says_why_and_what_to_use(
    ipshell: Shell, runner: str, code: str, way_out: str
) -> None:  # F3: uvloop's own loop, and trio, ask for the main thread themselves
    pytest.importorskip(runner)
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok(f"import asyncio, signal, {runner}")
    ipshell.output()
    result = ipshell.run(f"await {LIBRARY.get(runner, 'asyncio')}.sleep(0)\n{code}")
    out = ipshell.output()
    assert result.error_in_exec is not None, out
    assert f"the {runner} runner runs cells in a thread of its own" in out
    assert way_out in out


@pytest.mark.parametrize("runner", [None, *IN_THE_MAIN_THREAD])
def test_a_cell_sees_no_wakeup_fd_as_without_the_extension(
    runner: str | None, ipshell: Shell
) -> None:  # F8: the runner's own (it wakes the session loop for Ctrl-C) is "none" to code
    if runner is None:
        ipshell.ok("%unload_ext autoawait_runners")
        ipshell.ok("import asyncio as lib")
    else:
        ipshell.ok(f"%autoawait {runner}")
        ipshell.ok("import trio as lib" if runner == "trio-guest" else "import asyncio as lib")
    theirs, other_end = socket.socketpair()
    theirs.setblocking(False)
    try:
        ipshell.ns["theirs"] = theirs
        ipshell.ok(
            "import signal\nawait lib.sleep(0)\n"
            "found = signal.set_wakeup_fd(theirs.fileno())\n"
            "await lib.sleep(0)\n"
            "back = signal.set_wakeup_fd(found)"
        )
        assert ipshell.ns["found"] == -1
        assert ipshell.ns["back"] == theirs.fileno()
        assert signal.set_wakeup_fd(-1) == -1  # after the cell: as it was
    finally:
        theirs.close()
        other_end.close()


class _SlowTerminal:
    """stderr as a slow terminal shows it: a line takes a moment to write. While the line
    that says Ctrl-C interrupts a task that does not yield is being written (inside the
    press's handler), one more press comes: it lands inside that handler."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.pressed_while_writing = threading.Event()

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        if "interrupting it" in text and not self.pressed_while_writing.is_set():
            self.pressed_while_writing.set()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the handler runs here, inside the one writing this line
        return written

    def flush(self) -> None:
        self._stream.flush()


HOG = (
    "import threading\n"
    "spinning, spins, stop = threading.Event(), 0, False\n"
    "async def hog():\n"
    "    global spins\n"
    "    await h.sleep(0.05)\n"
    "    spinning.set()\n"
    "    while not stop:  # never yields\n"
    "        spins += 1"
)


def stops_spinning(ns: dict[str, object]) -> bool:
    """Whether the hog's count stands still (it was interrupted) within the timeout. (Not
    its ``finally``: CPython 3.13.0 skips the ``finally`` around such a loop when another
    thread raises in it.)"""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        before = ns["spins"]
        time.sleep(0.1)
        if ns["spins"] == before:
            return True
    return False


@pytest.mark.parametrize("runner", ["thread", "trio", "curio"])
def test_a_press_during_the_one_that_interrupts_a_busy_loop_does_not_undo_it(
    ipshell: Shell, runner: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # F3, rules 3 and 4 of _ctrl_c
    # A cell waits behind a task that never yields; the second Ctrl-C interrupts that task.
    # A third press that lands while the second's handler still runs (Python runs a signal
    # handler between any two bytecodes, its own handler's too; a loaded machine delivers
    # presses late and close together) gives up waiting for the cell, as it should, but
    # must not cut the second one short: the task stayed, and the next cell waited behind
    # it for good.
    shell = ipshell
    monkeypatch.syspath_prepend(str(SUPPORT))
    shell.ok(f"%autoawait {runner}")
    shell.ok("import autoawait_test_helpers as h")
    shell.ok(HOG)
    shell.ok("await h.background(hog)")
    try:
        assert shell.ns["spinning"].wait(TIMEOUT)
        terminal = _SlowTerminal(sys.stderr)
        monkeypatch.setattr(sys, "stderr", terminal)
        returned = threading.Event()

        def press_until_the_task_is_interrupted() -> None:
            # Pressed while the runner has Ctrl-C (the cell waits), once a second: a press
            # before the hand-over is no press for the cell, and two close together can
            # arrive as one signal.
            while not (returned.is_set() or terminal.pressed_while_writing.is_set()):
                # The handler in place (signal.getsignal shows code the shell's one, F8).
                pressed = _signal.getsignal(signal.SIGINT) is not signal.default_int_handler
                if pressed:
                    os.kill(os.getpid(), signal.SIGINT)
                returned.wait(1.0 if pressed else 0.01)

        presser = threading.Thread(target=press_until_the_task_is_interrupted, daemon=True)
        presser.start()
        result = shell.run("print('never', 'ran')")
        returned.set()
        presser.join(TIMEOUT)
        assert terminal.pressed_while_writing.is_set()
        assert isinstance(result.error_in_exec, KeyboardInterrupt)
        assert stops_spinning(shell.ns), "the task that never yields runs on"
        monkeypatch.undo()
        assert shell.ok("await h.sleep(0); 'the next cell ran'") == "the next cell ran"
    finally:
        shell.ns["stop"] = True  # a task left running must not spin on after the test


def test_a_sigint_handed_to_another_thread_wakes_a_private_loop_run_in_a_cell(
    ipshell: Shell, sigint_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:  # R5, F3: the system may hand a process's SIGINT to any of its threads
    # The main thread sleeps in asyncio.Runner's own loop, which watched no wake-up fd: the
    # handler ran only when that loop next woke (a flaky terminal test, under load).
    monkeypatch.syspath_prepend(str(SUPPORT))
    ipshell.ok("import asyncio, threading")
    ipshell.ok("from autoawait_test_helpers import interrupt_from_another_thread")
    started = time.monotonic()
    result = ipshell.run(
        "threading.Thread(target=interrupt_from_another_thread, daemon=True).start()\n"
        "with asyncio.Runner() as runner:\n"
        "    runner.run(asyncio.sleep(600))"
    )
    assert isinstance(result.error_in_exec, KeyboardInterrupt), result.error_in_exec
    assert time.monotonic() - started < TIMEOUT
