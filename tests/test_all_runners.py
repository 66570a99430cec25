"""R-behaviours whose test reads the same for every persistent runner."""

from __future__ import annotations

import gc
import signal
import threading
import weakref

from conftest import TIMEOUT, Shell, send_sigint_when


def test_context_variables_set_in_a_cell_are_seen_by_the_next(any_shell: Shell) -> None:  # R4
    shell = any_shell
    shell.ok("import contextvars; var = contextvars.ContextVar('var')")
    shell.ok("_ = var.set('plain')")
    assert shell.ok("var.get()") == "plain"
    shell.ok("await lib.sleep(0); _ = var.set('awaited')")
    assert shell.ok("await lib.sleep(0); var.get()") == "awaited"


def test_values_and_tracebacks_look_like_plain_cells(any_shell: Shell) -> None:  # R9
    shell = any_shell
    shell.output()
    assert shell.ok("await lib.sleep(0); 6 * 7") == 42
    assert "Out[" in shell.output() and shell.ns["_"] == 42
    shell.ok("async def inner():\n    await lib.sleep(0)\n    raise RuntimeError('user error')")
    result = shell.run("await inner()")
    assert isinstance(result.error_in_exec, RuntimeError)
    out = shell.output()
    assert "raise RuntimeError('user error')" in out
    assert "await inner()" in out
    assert "autoawait_runners" not in out  # no plumbing in the traceback


def test_ctrl_c_interrupts_a_cell_busy_in_python_code(any_shell: Shell) -> None:  # R5
    shell = any_shell
    shell.ns["busy"] = busy = threading.Event()
    shell.ok("log = []")
    sender = send_sigint_when(busy)  # a real SIGINT, once the cell spins
    result = shell.run(
        "try:\n"
        "    busy.set()\n"
        "    while True:\n"
        "        pass\n"
        "finally:\n"
        "    log.append('finally ran')"
    )
    sender.join(TIMEOUT)
    assert type(result.error_in_exec) is KeyboardInterrupt
    assert shell.ns["log"] == ["finally ran"]
    assert shell.ok("await lib.sleep(0); 1 + 1") == 2


def test_processes_a_cell_starts_get_ctrl_c_as_without_the_extension(any_shell: Shell) -> None:
    # F7: a thread that blocks SIGINT passes the blocked mask to every process it starts,
    # which then ignores Ctrl-C for good; no runner's thread may block it.
    any_shell.ok(
        "import subprocess\n"
        "status = subprocess.run(['cat', '/proc/self/status'], capture_output=True, text=True)"
    )
    lines = any_shell.ns["status"].stdout.splitlines()
    blocked = int(next(line for line in lines if line.startswith("SigBlk:")).split()[1], 16)
    assert not blocked & (1 << (signal.SIGINT - 1)), f"SIGINT blocked in the child: {blocked:x}"


def test_nothing_of_a_cell_outlives_reset_or_xdel(any_shell: Shell) -> None:  # F7
    # The runner must not keep the last cell's value (a big array, a connection closed by
    # __del__) past %reset -f or %xdel, run from code as IPython's own tests do.
    any_shell.ok("class Big: pass")
    for forget in ("%reset -f", "%xdel big"):
        any_shell.run("big = Big(); big")  # the cell's value: shown, kept in Out and _
        alive = weakref.ref(any_shell.ns["big"])
        any_shell.ip.run_line_magic(*forget[1:].split(" ", 1))
        gc.collect()
        assert alive() is None, f"{forget}: {gc.get_referrers(alive())}"
        any_shell.ok("class Big: pass")
