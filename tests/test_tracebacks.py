"""Tracebacks show the user's code only (R9): no frame of the runner's, however the
exception got there (``_tracebacks``)."""

from __future__ import annotations

import os
import re
import signal
import threading

import pytest
from conftest import TIMEOUT, Shell, fresh_shell, send_sigint_when
from IPython.core.interactiveshell import InteractiveShell

#: A traceback entry in one of this package's files, as IPython prints it.
RUNNER_FRAME = re.compile(r"File .*autoawait_runners[/\\][\w/\\]*\.py")


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


#: A frame of a traceback as IPython prints it: the cell's, or a file's and its function.
SHOWN_FRAME = re.compile(r"^(Cell In\[\d+\], line \d+|File \S+:\d+, in \w+)", re.MULTILINE)


def frames_shown(out: str) -> list[str]:
    """The frames of a shown traceback, without the cell's number or the files' places."""
    return [re.sub(r"\[\d+\]|:\d+|/\S+/", "", frame) for frame in SHOWN_FRAME.findall(out)]


@pytest.mark.parametrize("runner", ["trio", "trio-guest"])
def test_a_refused_trio_run_shows_the_frames_it_shows_without_the_extension(
    capfd: pytest.CaptureFixture[str], runner: str
) -> None:  # F6, R9: trio.run() in a trio cell, %nest trio off
    pytest.importorskip("trio")
    cell = "import trio\nawait trio.sleep(0)\ntrio.run(trio.sleep, 0)"
    shown_by = {}
    for host in ("without the extension", "with it"):
        with fresh_shell() as ip:
            if host == "with it":
                ip.run_line_magic("load_ext", "autoawait_runners")
                ip.run_line_magic("autoawait", runner)
            else:
                ip.run_line_magic("autoawait", "trio")  # IPython's own: a trio.run per cell
            capfd.readouterr()
            result = ip.run_cell(cell, store_history=True)
            assert "from inside a run()" in str(result.error_in_exec)
            out = "".join(capfd.readouterr())
            shown_by[host] = out
    out = shown_by["with it"]
    assert not RUNNER_FRAME.search(out), out
    assert "%nest trio on runs it on the session loop" in out, out
    assert frames_shown(out) == frames_shown(shown_by["without the extension"]), shown_by


@pytest.mark.parametrize(
    "call",
    [
        "asyncio.run(1)",  # asyncio's own message, as asyncio.run says it
        "import anyio; anyio.run(lambda: 1)",
    ],
)
def test_a_nested_run_the_shim_refuses_shows_the_cell_and_the_message(
    runner_shell: Shell, call: str
) -> None:  # F6, R9
    shell = runner_shell
    shell.ok("import asyncio")
    shell.output()
    result = shell.run(f"await asyncio.sleep(0)\n{call}")
    assert isinstance(result.error_in_exec, (ValueError, TypeError))
    out = shown(shell)
    assert call in out and str(result.error_in_exec) in out, out
    assert not RUNNER_FRAME.search(out), out


def test_run_until_complete_refused_on_uvloop_shows_the_cell_and_the_message(
    ipshell: Shell,
) -> None:  # F6, R9: the shim cannot re-enter uvloop's compiled loop
    pytest.importorskip("uvloop")
    shell = ipshell
    shell.ok("%autoawait uvloop")
    shell.ok("import asyncio")
    shell.output()
    result = shell.run(
        "await asyncio.sleep(0)\nasyncio.get_running_loop().run_until_complete(asyncio.sleep(0))"
    )
    assert isinstance(result.error_in_exec, RuntimeError)
    out = shown(shell)
    assert "cannot re-enter a running Loop" in out, out
    assert frames_shown(out) == ["Cell In, line 2"], out


@pytest.mark.parametrize(
    ("cell", "error"),
    [
        ("autoawait_runners.trio_nursery()", "no trio session is running"),
        ("asyncio.get_running_loop().set_task_factory(3)", "task factory must be a callable"),
    ],
)
def test_an_error_the_extension_raises_for_the_user_shows_the_cell_and_the_message(
    ipshell: Shell, cell: str, error: str
) -> None:  # F6: as a library's own error shows (the cell's line, then the message)
    shell = ipshell
    shell.ok("import asyncio, autoawait_runners")
    shell.output()
    result = shell.run(f"await asyncio.sleep(0)\n{cell}")
    assert error in str(result.error_in_exec)
    out = shown(shell)
    assert error in out and not RUNNER_FRAME.search(out), out
    assert frames_shown(out) == ["Cell In, line 2"], out


def test_a_closing_within_a_closing_keeps_tracebacks_quiet_until_the_outer_one_ends(
    ipshell: Shell,
) -> None:  # F6: a cell given up on is closed quietly, however deep the closing
    from autoawait_runners._core._tracebacks import closing_quietly

    def show_one() -> None:
        try:
            raise ZeroDivisionError("shown?")
        except ZeroDivisionError:
            ipshell.ip.showtraceback()

    ipshell.output()
    with closing_quietly():
        with closing_quietly():
            pass
        show_one()
    assert "shown?" not in ipshell.output()
    show_one()
    assert "shown?" in ipshell.output()
