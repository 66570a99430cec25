"""F8: ``%run`` of a script, an ``.ipy`` file or a notebook, with or without ``await``, does
what it does without the extension, under every runner.

An ``.ipy`` file's and a notebook's cells run inside the cell that runs ``%run``: one that
awaits waits in that cell's task (a portal, or parked in an asyncio loop). Each test runs the
same files without the extension and under each runner, and compares what they print.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PERSISTENT, IPythonPty, Shell, fresh_shell

RUNNERS = [*PERSISTENT, "uvloop"]

#: A top-level await in the runner's own library, whichever that is (sniffio says).
AWAIT_A_SLEEP = """\
import sniffio
library = sniffio.current_async_library()
if library == "trio":
    import trio as sleeper
elif library == "curio":
    import curio as sleeper
else:
    import asyncio as sleeper
await sleeper.sleep(0.01)
"""

FILES = {
    "plain.py": "ran = ['plain.py']\nprint('plain.py ran')\n",
    "plain.ipy": "ran.append('plain.ipy')\nprint('plain.ipy ran', len(ran))\n",
    "awaits.ipy": AWAIT_A_SLEEP + "ran.append('awaits.ipy')\nprint('awaits.ipy ran', len(ran))\n",
}

NOTEBOOK_CELLS = [
    AWAIT_A_SLEEP + "ran.append('notebook cell 1')",
    "ran.append('notebook cell 2')\nprint('notebook ran', len(ran))",
]


def write_files(folder: Path) -> None:
    for name, text in FILES.items():
        (folder / name).write_text(text)
    cells = [
        {"cell_type": "code", "id": f"cell-{n}", "metadata": {}, "outputs": [], "source": source}
        for n, source in enumerate(NOTEBOOK_CELLS)
    ]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "awaits.ipynb").write_text(json.dumps(notebook))


def run_them(shell: Shell, folder: Path) -> str:
    shell.ok(f"import os\nos.chdir({str(folder)!r})")
    for name in ("plain.py", "plain.ipy", "awaits.ipy", "awaits.ipynb"):
        shell.ok(f"%run {name}")
    shell.ok("print('names', ran)")
    return shell.output()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_files(tmp_path)
    return tmp_path


@pytest.mark.parametrize("runner", RUNNERS)
def test_run_of_ipy_files_and_notebooks_that_await_works_as_without_the_extension(
    runner: str, folder: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:  # F8
    monkeypatch.chdir(folder)  # each shell changes it: put back at the end
    with fresh_shell() as ip:
        plain = run_them(Shell(ip, capfd), folder)
    with fresh_shell() as ip:
        shell = Shell(ip, capfd)
        shell.ok("%load_ext autoawait_runners")
        shell.ok(f"%autoawait {runner}")
        shell.output()
        with_runner = run_them(shell, folder)
    expected = [
        "plain.py ran",
        "plain.ipy ran 2",
        "awaits.ipy ran 3",
        "notebook ran 5",
        "names ['plain.py', 'plain.ipy', 'awaits.ipy', 'notebook cell 1', 'notebook cell 2']",
    ]
    assert plain.splitlines() == expected, plain
    assert with_runner.splitlines() == expected, with_runner


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_cell_run_by_run_cell_can_await(runner: str, ipshell: Shell) -> None:  # F8
    shell = ipshell
    shell.ok(f"%autoawait {runner}")
    shell.ok(f"ip = get_ipython()\nsource = {AWAIT_A_SLEEP + 'value = 42'!r}")
    shell.ok("succeeded = ip.run_cell(source).success")
    assert shell.ns["succeeded"] is True
    assert shell.ns["value"] == 42


def test_a_cell_run_from_a_cell_that_does_not_say_so_is_one_clear_error(ipshell: Shell) -> None:
    # A cell that runs cells is told from its source (%run, run_cell); one that runs a cell
    # some other way, under a runner whose loop cannot be parked in, is refused in one line.
    ipshell.ok("%autoawait trio")
    ipshell.ok(
        f"ip = get_ipython()\nsource = {AWAIT_A_SLEEP!r}\nrun = getattr(ip, 'run_' + 'cell')"
    )
    ipshell.ok("succeeded = run(source).success")
    assert ipshell.ns["succeeded"] is False
    assert "can await only when the outer cell runs it itself" in ipshell.output()


@pytest.mark.pty
@pytest.mark.parametrize("runner", [None, *RUNNERS])
def test_ctrl_c_in_an_ipy_files_await_interrupts_it_as_without_the_extension(
    runner: str | None, ipython_pty: type[IPythonPty], tmp_path: Path
) -> None:  # F8, R5
    script = tmp_path / "slow.ipy"
    script.write_text(
        AWAIT_A_SLEEP.replace("sleeper.sleep(0.01)", "sleeper.sleep(0)")
        + "print('sleeping' + ' now', flush=True)\n"
        + "await sleeper.sleep(30)\n\n"
        + "print('the next cell' + ' of the file ran')\n"
    )
    options = (
        ()
        if runner is None
        else ("--ext=autoawait_runners", f"--AutoawaitRunners.default={runner}")
    )
    ipy = ipython_pty(*options)
    ipy.child.sendline(f"%run {script}")
    ipy.expect("sleeping now")
    ipy.wait_until_asleep("epoll")  # at its await, not still in its print
    ipy.interrupt("KeyboardInterrupt")
    ipy.cell("print('usable', 'still')", "usable still")
    ipy.exit()
    assert "the next cell of the file ran" not in ipy.text()


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_cell_that_runs_cells_sets_what_the_next_cell_sees(runner: str, ipshell: Shell) -> None:
    # R4: such a cell runs in a portal (trio, trio-guest, curio, uvloop): the portal's
    # greenlet runs in the cell's own context, not a greenlet's empty one.
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok("import contextvars\nv = contextvars.ContextVar('v', default='unset')")
    ipshell.ok("_ = v.set('set'); get_ipython().run_cell('seen_inside = v.get()')")
    assert ipshell.ns["seen_inside"] == "set"
    assert ipshell.ok("v.get()") == "set"


def test_a_trio_cell_in_a_portal_sets_what_the_next_cell_sees(ipshell: Shell) -> None:  # R4
    ipshell.ok("%autoawait trio")
    ipshell.ok("%nest trio on")
    ipshell.ok("import contextvars\nv = contextvars.ContextVar('v', default='unset')")
    ipshell.ok("_ = v.set('set')")
    assert ipshell.ok("v.get()") == "set"
