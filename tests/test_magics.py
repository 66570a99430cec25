"""%time, %%time, %timeit and %%timeit with await (M1), under every persistent runner."""

from __future__ import annotations

import atexit
import threading

import pytest
from conftest import (
    PERSISTENT,
    SUPPORT,
    TIMEOUT,
    IPythonPty,
    Shell,
    send_sigint_when,
    start_with_runner,
)
from kernel import Kernel
from traitlets.config import Config

from autoawait_runners._ipython._timing_magics import await_timing_magics


@pytest.fixture
def timing_shell(any_shell: Shell, monkeypatch: pytest.MonkeyPatch) -> Shell:
    monkeypatch.syspath_prepend(str(SUPPORT))
    any_shell.ok("import autoawait_test_helpers as h")
    any_shell.ok("async def answer():\n    await lib.sleep(0.05)\n    return 42")
    any_shell.output()
    return any_shell


def test_time_await_prints_ipythons_lines_and_returns_the_value(timing_shell: Shell) -> None:
    shell = timing_shell
    shell.ok("x = %time await answer()")
    out = shell.output()
    assert "CPU times: user" in out and "Wall time:" in out, out
    assert shell.ns["x"] == 42
    assert shell.ok("%time await answer()") == 42  # an expression: its value is the cell's


def test_cell_time_with_await_defines_its_names_and_shows_the_last_value(
    timing_shell: Shell,
) -> None:
    shell = timing_shell
    assert shell.ok("%%time\nvalue = await answer()\ndoubled = value * 2\ndoubled") == 84
    assert shell.ns["value"] == 42 and shell.ns["doubled"] == 84
    assert "Wall time:" in shell.output()


def test_timeit_await_takes_ipythons_options(timing_shell: Shell) -> None:
    shell = timing_shell
    shell.ok("r = %timeit -o -q -n 20 -r 3 await lib.sleep(0)")
    result = shell.ns["r"]
    assert type(result).__name__ == "TimeitResult"
    assert (result.loops, result.repeat, len(result.all_runs)) == (20, 3, 3)
    assert "per loop" not in shell.output()  # -q
    shell.ok("%timeit -n 5 -r 2 -p 2 await lib.sleep(0)")
    assert "per loop (mean ± std. dev. of 2 runs, 5 loops each)" in shell.output()


def test_cell_timeit_runs_an_awaiting_setup_once_per_run(timing_shell: Shell) -> None:
    shell = timing_shell
    shell.ok("setups = []")
    shell.ok(
        "%%timeit -n 4 -r 3 v = await answer(); setups.append(v)\n"
        "assert v == 42\n"
        "await lib.sleep(0)"
    )
    assert shell.ns["setups"] == [42, 42, 42]
    assert "3 runs, 4 loops each" in shell.output()


def test_timed_code_runs_in_the_session_while_background_work_goes_on(
    timing_shell: Shell,
) -> None:
    shell = timing_shell
    shell.ok(
        "ticks = []\n"
        "async def ticker():\n"
        "    while True:\n"
        "        ticks.append(1)\n"
        "        await lib.sleep(0.01)"
    )
    shell.ok("t = await h.background(ticker)")
    shell.ok("before = len(ticks)\n%time await lib.sleep(0.3)\nduring = len(ticks) - before")
    assert shell.ns["during"] >= 5, shell.ns["during"]
    # Objects of the session work in timed code: a background task answers it.
    shell.ok("ping, pong = h.new_event(), h.new_event()")
    shell.ok("async def ponger():\n    await ping.wait()\n    pong.set()")
    shell.ok("p = await h.background(ponger)")
    shell.ok("%time ping.set(); await pong.wait()")


def test_sync_uses_are_left_to_ipython(timing_shell: Shell) -> None:
    shell = timing_shell
    assert "run_line_magic('time', '1 + 1')" in shell.ip.transform_cell("%time 1 + 1")
    assert shell.ok("%time 6 * 7") == 42
    shell.ok("%timeit -n 3 -r 2 6 * 7")
    assert "2 runs, 3 loops each" in shell.output()


def test_an_awaited_value_that_is_not_awaitable_fails_as_in_a_cell(timing_shell: Shell) -> None:
    result = timing_shell.run("%time await 5")
    assert isinstance(result.error_in_exec, TypeError)
    assert "await" in str(result.error_in_exec)  # the wording changed in Python 3.14


def test_ctrl_c_stops_a_timing_run(timing_shell: Shell) -> None:  # R5
    shell = timing_shell
    shell.ns["timing"] = timing = threading.Event()
    sender = send_sigint_when(timing)
    result = shell.run("%timeit -n 1 -r 1 timing.set(); await lib.sleep(60)")
    sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert shell.ok("await lib.sleep(0); 'usable'") == "usable"


@pytest.mark.parametrize("magic", ["%time", "%timeit -n 1 -r 1"])
def test_ctrl_c_in_timed_code_shows_the_timed_line(timing_shell: Shell, magic: str) -> None:
    # R5, F6: the traceback goes through the code the magic compiled; it showed "Could not
    # get source, probably due dynamically evaluated source code." (as IPython's own %time
    # and %timeit of code without await still do), now the line being timed.
    shell = timing_shell
    shell.ns["timing"] = timing = threading.Event()
    shell.output()
    sender = send_sigint_when(timing)
    result = shell.run(f"{magic} timing.set(); await lib.sleep(60)")
    sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    out = shell.output()
    assert "Could not get source" not in out, out
    assert "----> 1 timing.set(); await lib.sleep(60)" in out, out


def test_an_error_in_a_timeit_setup_shows_its_line(timing_shell: Shell) -> None:  # M1, F6
    shell = timing_shell
    result = shell.run("%%timeit -n 1 -r 1 x = 1 / 0\nawait lib.sleep(0)")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    out = shell.output()
    assert "Could not get source" not in out, out
    assert "----> 2 x = 1 / 0" in out, out


@pytest.mark.parametrize("magic", ["%time", "%timeit -n 1 -r 1"])
def test_ipythons_own_timing_of_code_without_await_shows_no_other_source(
    timing_shell: Shell, magic: str
) -> None:  # F8: as without the extension; it showed the lines an await cell had timed
    shell = timing_shell
    shell.run(f"{magic} await lib.sleep(0); 1 / 0")
    shell.output()
    shell.run(f"{magic} 1 / 0")  # IPython's own magic, same file name (8.18's %time shows
    out = shell.output()  # the error itself, and the cell has none)
    assert "ZeroDivisionError" in out and "await lib.sleep(0)" not in out, out


def test_without_autoawait_the_magics_are_ipythons(ipshell: Shell) -> None:
    ipshell.ok("%autoawait False")
    assert "run_line_magic('time', 'await f()')" in ipshell.ip.transform_cell("%time await f()")


def test_unloading_removes_the_rewrite_and_the_magics(ipshell: Shell) -> None:
    ipshell.ok("%unload_ext autoawait_runners")
    assert "atime" not in ipshell.ip.transform_cell("%time await f()")
    assert "atime" not in ipshell.ip.magics_manager.magics["line"]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (
            "x = get_ipython().run_line_magic('time', 'await f()')\n",
            "x = (await get_ipython().run_line_magic('atime', 'await f()'))\n",
        ),
        (  # non-ASCII before the call's end: offsets are in bytes
            "get_ipython().run_line_magic('timeit', \"await f('é')\")\n",
            "(await get_ipython().run_line_magic('atimeit', \"await f('é')\"))\n",
        ),
        (
            "get_ipython().run_cell_magic('time', '', 'async with lock:\\n    pass\\n')\n",
            "(await get_ipython().run_cell_magic('atime', '', 'async with lock:\\n    pass\\n'))\n",
        ),
        (  # 'await' in a string only: not awaiting code
            "get_ipython().run_line_magic('time', \"print('await')\")\n",
            "get_ipython().run_line_magic('time', \"print('await')\")\n",
        ),
        (  # other magics are not touched
            "get_ipython().run_line_magic('prun', 'await f()')\n",
            "get_ipython().run_line_magic('prun', 'await f()')\n",
        ),
    ],
)
def test_the_rewrite_sends_only_awaiting_timing_magics(cell: str, expected: str) -> None:
    assert "".join(await_timing_magics(cell.splitlines(keepends=True))) == expected


@pytest.mark.kernel
@pytest.mark.parametrize("runner", ["the kernel's own", "asyncio", "thread", "trio", "embed"])
def test_timing_magics_await_in_a_kernel(kernel: Kernel, runner: str) -> None:  # M1, K1
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok("%autoawait kernel" if runner == "the kernel's own" else f"%autoawait {runner}")
    lib = "trio" if runner == "trio" else "asyncio"
    kernel.ok(f"import {lib} as lib\nasync def answer():\n    await lib.sleep(0.05)\n    return 42")
    out = kernel.ok("x = %time await answer()\nprint('x is', x)")
    assert "Wall time:" in out and "x is 42" in out, out
    out = kernel.ok("%%timeit -n 3 -r 2\nawait lib.sleep(0)")
    assert "2 runs, 3 loops each" in out, out


@pytest.mark.pty
@pytest.mark.parametrize("runner", PERSISTENT)
def test_ctrl_c_stops_timeit_await_in_a_terminal(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # M1, R5
    ipy = start_with_runner(ipython_pty, runner)
    ipy.child.sendline("%timeit -n 1 -r 1 print('timing', 'now'); await h.sleep(60)")
    ipy.expect("timing now")
    ipy.interrupt("KeyboardInterrupt")
    ipy.cell("%time await h.sleep(0.1)", "Wall time: [0-9.]+ ms")
    ipy.exit()
    assert "Could not get source" not in ipy.text(), ipy.text()  # F6


def test_each_magics_help_is_complete_in_itself(ipshell: Shell) -> None:
    # What `%tasks?` shows in a terminal: no reStructuredText, no page of docs an installed
    # package does not have, every form of the magic, lines a terminal shows whole.
    magics = ipshell.ip.magics_manager.magics
    for name, forms in {
        "autoawait": ("--list", "on|off"),
        "nest": ("trio on|off",),
        "tasks": ("--all", "--tree", "where ID", "cancel ID"),
        "atime": ("%%atime", "--no-raise-error"),
        "atimeit": ("%%atimeit", "-n N", "-r R"),
    }.items():
        help_text = magics["line"][name].__doc__ or ""
        assert "``" not in help_text and "docs/" not in help_text and ":func:" not in help_text
        assert all(form in help_text for form in forms), (name, help_text)
        assert max(map(len, help_text.splitlines())) <= 92, (name, help_text)


def test_an_error_in_timed_code_shows_the_line_as_typed(ipshell: Shell) -> None:  # M1
    ipshell.ok("import asyncio\nasync def boom():\n    await asyncio.sleep(0)\n    1 / 0")
    ipshell.output()
    result = ipshell.run("x = %time await boom()")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    out = ipshell.output()
    assert "----> 1 x = %time await boom()" in out, out
    assert "run_line_magic" not in out, out


def test_timing_magics_see_an_embedded_shells_names() -> None:  # M1
    # An embedded shell's names are the caller's locals over its module's globals: the timed
    # code sees both, as the shell's cells do, and what it assigns stays in the shell.
    import types

    from IPython.terminal.embed import InteractiveShellEmbed

    host = types.ModuleType("host")
    exec(
        "import asyncio\nasync def answer():\n    await asyncio.sleep(0)\n    return 42", vars(host)
    )
    InteractiveShellEmbed.clear_instance()
    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # nothing written to the profile
    shell = InteractiveShellEmbed(user_module=host, user_ns={"here": 7}, config=config)
    try:
        shell.run_line_magic("load_ext", "autoawait_runners")
        for cell in (
            "x = %time await answer()",
            "%time y = await answer() + here",
            "%timeit -n 2 -r 1 await asyncio.sleep(0, here)",
        ):
            result = shell.run_cell(cell)
            assert result.success, (cell, result.error_in_exec)
        assert shell.user_ns["x"] == 42 and shell.user_ns["y"] == 49
    finally:
        shell.run_line_magic("unload_ext", "autoawait_runners")
        atexit.unregister(shell.atexit_operations)
        InteractiveShellEmbed.clear_instance()
