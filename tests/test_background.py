"""``%%background`` (B1): a cell run as a task of the session, under every persistent
runner; in a programmatic shell, a real terminal and a real kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import LIBRARY, PERSISTENT, TIMEOUT, IPythonPty, Shell, fresh_shell, start_with_runner

#: A background cell that waits for the cell after it (an event of its library) to set it.
WAITS_FOR_GO = {
    "asyncio": "import asyncio\ngo = asyncio.Event()",
    "trio": "import trio\ngo = trio.Event()",
    "curio": "import curio\ngo = curio.Event()",
}


def _go(runner: str) -> str:
    return WAITS_FOR_GO[LIBRARY[runner]]


def _set_go(runner: str) -> str:
    return "await go.set()" if LIBRARY[runner] == "curio" else "go.set()"


def test_a_background_cell_ends_at_once_and_shows_its_value_once_as_its_out(
    any_shell: Shell,
) -> None:  # B1
    any_shell.ok(_go(_runner(any_shell)))
    number = any_shell.ip.execution_count
    any_shell.ok("%%background\nprint('started')\nawait go.wait()\nx = 41\nx + 1")
    assert not any_shell.ns["_bg"][number].done()  # the cell ended, its code waits
    any_shell.output()
    any_shell.ok(_set_go(_runner(any_shell)))
    assert any_shell.ok(f"await _bg[{number}]") == 42
    shown = any_shell.output()
    assert shown.count(f"Out[{number}]: 42") == 1, shown
    assert f"In [{number}] (background) finished" in shown
    assert any_shell.ns["Out"][number] == 42
    assert any_shell.ns["x"] == 41  # the cell's names are the session's, as any cell's


def _runner(shell: Shell) -> str:
    return str(shell.ip.loop_runner)


def test_a_background_failure_is_shown_once_as_a_cell_traceback_and_raised_where_awaited(
    any_shell: Shell,
) -> None:  # B1, R9
    any_shell.ok(_go(_runner(any_shell)))
    number = any_shell.ip.execution_count
    any_shell.ok(f"%%background\nawait go.wait()\n\n1 / 0  # the line {number}")
    any_shell.output()
    any_shell.ok(_set_go(_runner(any_shell)))
    result = any_shell.run(f"await _bg[{number}]")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    shown = any_shell.output()
    assert f"In [{number}] (background) failed" in shown
    assert f"In[{number}], line 4" in shown, shown  # the cell's own line
    assert "_background" not in shown  # none of the extension's frames
    # Shown once: by the background cell; the cell that awaited it shows its own.
    assert shown.count(f"1 / 0  # the line {number}") == 2, shown


def test_a_background_exception_group_shows_the_cells_frames_only(ipshell: Shell) -> None:
    # B1, R9: an exception group is shown from its own traceback.
    number = ipshell.ip.execution_count
    ipshell.ok(
        "%%background\nimport asyncio\nawait asyncio.sleep(0)\n"
        "raise ExceptionGroup('both', [ValueError(1)])"
    )
    ipshell.run("await asyncio.sleep(0.05)")
    shown = ipshell.output()
    assert f"In [{number}] (background) failed" in shown
    assert "ExceptionGroup: both" in shown, shown
    assert "_background" not in shown, shown


def test_tasks_lists_a_background_cell_and_cancelling_it_runs_its_finally(
    any_shell: Shell,
) -> None:  # B1, M2
    number = any_shell.ip.execution_count
    any_shell.ok(
        "%%background\ntry:\n    await lib.sleep(1000)\nfinally:\n    print('finally ran')"
    )
    any_shell.ok("await lib.sleep(0.01)")
    any_shell.output()
    any_shell.ok("%tasks")
    listed = any_shell.output()
    assert f"In [{number}] (background)" in listed
    assert f"In[{number}]:3" in listed  # where it waits
    task_id = next(
        line.split()[0] for line in listed.splitlines() if f"In [{number}] (background)" in line
    )
    any_shell.ok(f"%tasks cancel {task_id}")
    result = any_shell.run(f"await _bg[{number}]")
    assert type(result.error_in_exec).__name__ == "BackgroundCellCancelled"
    shown = any_shell.output()
    assert "finally ran" in shown
    assert f"In [{number}] (background) cancelled" in shown


def test_a_background_cells_tasks_copy_its_context(any_shell: Shell) -> None:  # B1, R4
    any_shell.ok("import contextvars\nwho = contextvars.ContextVar('who', default='session')")
    number = any_shell.ip.execution_count
    any_shell.ok("%%background\nwho.set('background')\nawait lib.sleep(0)\nwho.get()")
    assert any_shell.ok(f"await _bg[{number}]") == "background"
    assert any_shell.ok("who.get()") == "session"  # its own context, as a task has


def test_a_background_cell_counts_and_is_kept_in_history_as_any_cell(ipshell: Shell) -> None:
    # B1, F8: the same cells without the extension count the same way.
    cells = ["%%background\n1", "2"]
    with fresh_shell() as plain:
        first = plain.execution_count
        plain.run_cell("%%time\n1", store_history=True)
        plain.run_cell("2", store_history=True)
        counted_without = plain.execution_count - first
    first = ipshell.ip.execution_count
    for cell in cells:
        ipshell.ok(cell)
    assert ipshell.ip.execution_count - first == counted_without == 2
    assert ipshell.ns["In"][first] == "get_ipython().run_cell_magic('background', '', '1\\n')"


def test_the_handles_come_back_after_a_reset(ipshell: Shell) -> None:  # B1
    ipshell.ok("%reset -f")
    number = ipshell.ip.execution_count
    ipshell.ok("%%background\n'still ' + 'there'")
    assert ipshell.ok(f"await _bg[{number}]") == "still there"


def test_a_syntax_error_fails_the_cell_that_asked(ipshell: Shell) -> None:  # B1
    result = ipshell.run("%%background\nawait (")
    assert isinstance(result.error_in_exec, SyntaxError)
    assert ipshell.ns["_bg"] == {}


@pytest.mark.parametrize("runner", ["sync", "embed"])
def test_without_a_session_loop_one_line_says_why_not(ipshell: Shell, runner: str) -> None:
    ipshell.ok(f"%autoawait {runner}")
    ipshell.output()
    result = ipshell.run("%%background\nprint('ran')")
    shown = ipshell.output()
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "%%background needs a session loop that runs between cells" in shown
    assert "ran" not in shown
    assert len(shown.strip().splitlines()) == 1, shown


def test_ending_the_session_cancels_a_background_cell_and_says_so_once(ipshell: Shell) -> None:
    # B1, R8: a background cell is background work of the session.
    ipshell.ok("%autoawait thread")
    ipshell.ok("import asyncio")
    ipshell.ok(
        "%%background\ntry:\n    await asyncio.sleep(1000)\nfinally:\n    print('cleaned up')"
    )
    ipshell.ok("await asyncio.sleep(0.01)")
    ipshell.output()
    ipshell.ok("%autoawait asyncio")
    shown = ipshell.output()
    assert "cleaned up" in shown
    assert "thread runner closed: cancelled 1 background task" in shown
    assert "(background) cancelled" not in shown  # the runner's line says it


# -- a real terminal --------------------------------------------------------------------------


def _until(path: Path) -> str:
    """A line that awaits, under any library, until ``path`` exists."""
    return f"await h.until(lambda: __import__('os').path.exists({str(path)!r}))"


def _type_a_background_cell(ipy: IPythonPty, line: str) -> int:
    """Type ``%%background`` and one line of body at the prompt; return the cell's number."""
    number = ipy.count - 1  # the prompt waiting now
    ipy.child.sendline("%%background")
    ipy.child.sendline(line)
    ipy.child.sendline("")
    ipy.child.sendline("")  # a cell magic's body ends at the second empty line
    return number


@pytest.mark.pty
@pytest.mark.parametrize("runner", ["asyncio", "thread", "trio", "curio"])
def test_background_output_goes_above_the_idle_prompt_and_keeps_the_line_typed(
    ipython_pty: type[IPythonPty], runner: str, tmp_path: Path
) -> None:  # B1
    go = tmp_path / "go"
    ipy = start_with_runner(ipython_pty, runner)
    number = _type_a_background_cell(
        ipy, f"print('tick one'); {_until(go)}; print('tick two'); 'do' + 'ne'"
    )
    ipy.expect("tick one")
    ipy.prompt()  # back at once: the cell waits in the background
    ipy.child.send("half")  # typed, not entered
    ipy.expect_drawn("half")
    go.touch()
    ipy.expect("tick two")
    ipy.expect_drawn(f"In [{number}] (background) finished")
    ipy.expect_drawn(f"Out[{number}]: 'done'")
    ipy.expect_drawn("half")  # the prompt drawn again under it, with what was typed
    ipy.child.sendline(" = 5")  # and the line goes on: `half = 5`
    ipy.prompt()
    ipy.cell("print(half * 2)", "10")
    ipy.cell(f"print(await _bg[{number}])", "done")
    ipy.exit()


@pytest.mark.pty
@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_ctrl_c_at_the_prompt_leaves_a_background_cell_running(
    ipython_pty: type[IPythonPty], runner: str, tmp_path: Path
) -> None:  # B1, R5
    go = tmp_path / "go"
    ipy = start_with_runner(ipython_pty, runner)
    number = _type_a_background_cell(ipy, f"{_until(go)}; print('still ' + 'here')")
    ipy.prompt()
    ipy.child.send("junk")
    ipy.expect_drawn("junk")
    ipy.child.sendintr()  # at the idle prompt: the line typed goes, nothing else
    ipy.child.sendline("await h.sleeper()")
    ipy.expect("sleeper: waiting")
    ipy.child.sendintr()  # another cell's Ctrl-C
    ipy.expect("KeyboardInterrupt")
    ipy.prompt()
    go.touch()
    ipy.expect("still here")
    ipy.expect_drawn(f"In [{number}] (background) finished")
    ipy.exit()


# -- a real kernel ----------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("runner", PERSISTENT)
def test_a_background_cells_output_and_value_go_to_its_own_cell_after_others_ran(
    kernel: Any, runner: str
) -> None:  # B1, K5
    pytest.importorskip(LIBRARY[runner])
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok(f"%autoawait {runner}")
    kernel.ok(_go(runner))
    code = (
        "%%background\nprint('one')\nawait go.wait()\nprint('two')\n"
        "from IPython.display import display\ndisplay('shown')\n40 + 2"
    )
    msg_id = kernel.client.execute(code)
    reply = kernel.client.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok"  # the reply came while the code waits
    number = reply["content"]["execution_count"]
    other = kernel.ok(f"print('other'); {_set_go(runner)}")
    assert "two" not in other and "42" not in other
    seen = kernel.outputs_of(msg_id, until=("execute_result", "error"))
    printed = "".join(text for kind, text in seen if kind == "stream")
    assert printed == "one\ntwo\n", seen
    assert ("display_data", "'shown'") in seen, seen
    assert seen[-1] == ("execute_result", f"{number}: 42"), seen


@pytest.mark.kernel
@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_a_background_failure_goes_to_its_own_cell_and_an_interrupt_elsewhere_spares_it(
    kernel: Any, runner: str
) -> None:  # B1, R5
    pytest.importorskip(LIBRARY[runner])
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok(f"%autoawait {runner}")
    kernel.ok(_go(runner))
    msg_id = kernel.client.execute("%%background\nawait go.wait()\nraise ValueError('late')")
    kernel.client.get_shell_msg(timeout=TIMEOUT)
    sleep = f"{LIBRARY[runner]}.sleep"
    output, reply = kernel.execute(
        f"print('waiting'); await {sleep}(60)", interrupt_after="waiting"
    )
    assert reply["ename"] == "KeyboardInterrupt", output
    kernel.ok(_set_go(runner))
    seen = kernel.outputs_of(msg_id, until=("error",))
    assert seen[-1][0] == "error" and "ValueError: late" in seen[-1][1], seen
