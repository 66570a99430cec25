"""Tracebacks show the user's code only (R9): no frame of the runner's, however the
exception got there (``_tracebacks``)."""

from __future__ import annotations

import os
import re
import signal
import threading

import pytest
from conftest import TIMEOUT, Shell, send_sigint_when
from IPython.core.interactiveshell import InteractiveShell

#: A traceback entry in one of this package's files, as IPython prints it.
RUNNER_FRAME = re.compile(r"File .*autoawait_runners[/\\]_\w+\.py")


def shown(shell: Shell) -> str:
    out = shell.output()
    assert "Traceback" in out, out
    return out


def test_ctrl_c_in_a_busy_cell_shows_only_the_cell(any_shell: Shell) -> None:  # R5, R9
    shell = any_shell
    shell.ns["busy"] = busy = threading.Event()
    shell.output()
    sender = send_sigint_when(busy)
    result = shell.run("busy.set()\nwhile True:\n    pass")
    sender.join(TIMEOUT)
    assert type(result.error_in_exec) is KeyboardInterrupt
    out = shown(shell)
    assert "while True:" in out and not RUNNER_FRAME.search(out), out


@pytest.mark.parametrize("where", ["plain", "await"])
def test_ctrl_c_in_a_nested_run_shows_the_users_frames_only(
    runner_shell: Shell, where: str
) -> None:  # R9, N3
    shell = runner_shell
    shell.ns["busy"] = busy = threading.Event()
    shell.ok("import asyncio\nasync def spin():\n    busy.set()\n    while True:\n        pass")
    shell.output()
    sender = send_sigint_when(busy)
    prefix = "await asyncio.sleep(0)\n" if where == "await" else ""
    result = shell.run(prefix + "asyncio.run(spin())")
    sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    out = shown(shell)
    assert "in spin()" in out and not RUNNER_FRAME.search(out), out


def test_an_error_in_a_nested_run_shows_the_users_frames_only(runner_shell: Shell) -> None:
    # R9, N1: where asyncio.run's own frames would be, the shim's are not shown
    shell = runner_shell
    shell.ok("import asyncio\nasync def fail():\n    raise ValueError('from the nested run')")
    shell.output()
    result = shell.run("asyncio.run(fail())")
    assert isinstance(result.error_in_exec, ValueError)
    out = shown(shell)
    assert "raise ValueError('from the nested run')" in out and not RUNNER_FRAME.search(out), out


def test_giving_up_on_a_cell_shows_no_frame(runner_shell: Shell) -> None:  # R5, R9
    shell = runner_shell
    shell.ns["ready"] = ready = threading.Event()
    shell.ok(
        "import asyncio\n"
        "async def stubborn():\n"
        "    while True:\n"
        "        try:\n"
        "            ready.set()\n"
        "            await asyncio.sleep(30)\n"
        "        except BaseException:\n"
        "            pass"
    )
    shell.output()

    def press_three_times() -> None:
        for _ in range(3):  # each once the cell waits again
            if not ready.wait(TIMEOUT):
                return
            ready.clear()
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=press_three_times, daemon=True)
    sender.start()
    result = shell.run("await stubborn()")
    sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    out = shown(shell)
    assert "the cell ignored cancellation" in out
    assert not RUNNER_FRAME.search(out) and "File " not in out, out


def test_an_error_of_the_runners_own_keeps_its_frames() -> None:  # R9
    # What is cut is what a user did not cause; a failure inside the runner says where.
    from autoawait_runners._core._tracebacks import cut_plumbing

    def ours() -> None:
        exec(compile("raise RuntimeError('runner bug')", cut_plumbing.__code__.co_filename, "exec"))

    try:
        ours()
    except RuntimeError as exc:
        before = exc.__traceback__
        cut_plumbing(exc)
        assert exc.__traceback__ is before
        tb, files = exc.__traceback__, []
        while tb is not None:
            files.append(tb.tb_frame.f_code.co_filename)
            tb = tb.tb_next
        assert files[-1] == cut_plumbing.__code__.co_filename


def test_a_showtraceback_set_on_the_class_is_honoured(
    ipshell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:  # F7: as IPython's own test_set_show_tracebacks_none/_noop expect
    monkeypatch.setattr(InteractiveShell, "showtraceback", None)
    result = ipshell.run("assert False, 'shown?'")
    assert isinstance(result.error_in_exec, TypeError), result.error_in_exec
    assert str(result.error_in_exec) == "'NoneType' object is not callable"
    monkeypatch.setattr(InteractiveShell, "showtraceback", lambda *args, **kwargs: None)
    ipshell.output()
    result = ipshell.run("assert False, 'not shown'")
    assert isinstance(result.error_in_exec, AssertionError)
    assert "not shown" not in ipshell.output()
