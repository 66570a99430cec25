"""Tasks belong to cells (B2): each task knows the cell that started it, directly or through
the tasks it started; ``%tasks`` shows it and groups by it; a notebook cell run again meets
what its earlier runs left running as ``c.AutoawaitRunners.rerun`` says."""

from __future__ import annotations

import re

import pytest
from conftest import LIBRARY, SUPPORT, Shell
from kernel import Kernel

#: A parent task that starts its child later, while another cell runs: the child is the
#: parent's cell's all the same.
FAMILY = (
    "import autoawait_test_helpers as h\n"
    "async def child():\n"
    "    await lib.sleep(3600)\n"
    "async def parent(delay):\n"
    "    await lib.sleep(delay)\n"
    "    await h.background(child)\n"
    "    await lib.sleep(3600)\n"
)


def rows(out: str) -> list[str]:
    """The table's task rows (after its title and header; headings left out)."""
    lines = out.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("id "))
    return [line for line in lines[start + 1 :] if re.match(r"\d", line)]


def cell_column(out: str) -> dict[str, str]:
    """Each task row's coroutine -> its cell column (the coroutines differ here)."""
    found = {}
    for row in rows(out):
        match = re.search(r"(In \[\d+\]|-) .* (\w+)\(\) ", row)
        assert match, row
        found.setdefault(match[2], match[1])
        if found[match[2]] != match[1]:
            found[match[2]] += " " + match[1]
    return found


#: Every persistent runner, uvloop's too (a thread runner on another loop class).
RUNNERS = {**LIBRARY, "uvloop": "asyncio"}


@pytest.fixture(params=list(RUNNERS))
def family_shell(
    request: pytest.FixtureRequest, ipshell: Shell, monkeypatch: pytest.MonkeyPatch
) -> Shell:
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.syspath_prepend(str(SUPPORT))
    ipshell.ok(f"%autoawait {request.param}")
    ipshell.ok(f"import {RUNNERS[request.param]} as lib\n" + FAMILY)
    ipshell.output()
    return ipshell


def test_a_task_belongs_to_the_cell_that_started_it_or_its_starter(family_shell: Shell) -> None:
    # B2: the child is made while a later cell runs, by a task of the earlier one.
    shell = family_shell
    first = shell.ip.execution_count
    shell.ok("await h.background(parent, 0.2)")
    second = shell.ip.execution_count
    shell.ok("await lib.sleep(0.6)\nasync def alone():\n    await lib.sleep(3600)")
    third = shell.ip.execution_count
    shell.ok("await h.background(alone)\nawait lib.sleep(0.05)")
    shell.output()
    shell.ok("%tasks")
    out = shell.output()
    assert cell_column(out) == {
        "parent": f"In [{first}]",
        "child": f"In [{first}]",
        "alone": f"In [{third}]",
    }, (second, out)
    shell.ok("%tasks where 2")  # the child, numbered second
    assert f"of the cell In [{first}], waiting in:" in shell.output()


def test_tasks_tree_groups_the_tasks_by_their_cell(family_shell: Shell) -> None:
    # B2: a heading row per cell, oldest first, its tasks under it; "tree" as "--tree".
    shell = family_shell
    first = shell.ip.execution_count
    shell.ok("await h.background(parent, 0)\nawait lib.sleep(0.05)")
    second = shell.ip.execution_count
    shell.ok("await h.background(child)\nawait lib.sleep(0.05)")
    shell.output()
    for form in ("%tasks --tree", "%tasks tree"):
        shell.ok(form)
        out = shell.output()
        lines = out.strip().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("id "))
        listed = [
            line if line.startswith("In [") else re.findall(r"(\w+)\(\)", line)[0]
            for line in lines[start + 1 :]
        ]
        assert listed[0] == f"In [{first}]" and listed[-2:] == [f"In [{second}]", "child"], out
        assert sorted(listed[1:-2]) == ["child", "parent"], out
        assert all(len(line) <= 100 for line in lines), out


@pytest.mark.parametrize("runner", ["asyncio", "thread"])
def test_a_notebooks_table_has_the_cell_and_the_headings(ipshell: Shell, runner: str) -> None:
    shell = ipshell
    shell.ok(f"%autoawait {runner}")
    shell.ok("import asyncio\nasync def idle():\n    await asyncio.sleep(3600)")
    count = shell.ip.execution_count
    shell.ok("t = asyncio.create_task(idle())\nawait asyncio.sleep(0)")
    html = shell.ok(
        "from IPython.utils.capture import capture_output\n"
        "with capture_output() as captured:\n"
        "    get_ipython().run_line_magic('tasks', 'tree')\n"
        "captured.outputs[0].data['text/html']"
    )
    assert "<th>cell</th>" in html and f"<td>In [{count}]</td>" in html, html
    assert f'<th colspan="7" style="text-align:left">In [{count}]</th>' in html, html
    shell.ok("t.cancel()")


def test_trio_guest_knows_the_cell_of_its_asyncio_tasks(ipshell: Shell) -> None:
    # B2, under trio-guest: a trio cell's asyncio tasks (made on the host loop) too.
    shell = ipshell
    shell.ok("%autoawait trio-guest")
    shell.ok("import asyncio, trio\nasync def on_asyncio():\n    await asyncio.sleep(3600)")
    count = shell.ip.execution_count
    shell.ok("t = asyncio.get_running_loop().create_task(on_asyncio())\nawait trio.sleep(0.05)")
    shell.output()
    shell.ok("%tasks")
    out = shell.output()
    [row] = rows(out)
    assert f"In [{count}]" in row and "asyncio" in row, out
    shell.ok("t.cancel()")


# -- a notebook cell run again (c.AutoawaitRunners.rerun) -------------------------------------

TICKER = (
    "import autoawait_test_helpers as h\n"
    "cleaned = []\n"
    "async def ticker(period):\n"
    "    try:\n"
    "        while True:\n"
    "            await lib.sleep(period)\n"
    "    finally:\n"
    "        cleaned.append(period)\n"
)

#: The notebook cell run again: what it finds cleaned up, then its poller.
POLLER = "print('cleaned:', sorted(cleaned))\npoller = await h.background(ticker, 10)"

#: Under trio-guest the cell starts an asyncio poller on the host loop too.
ASYNCIO_POLLER = (
    "\nimport asyncio\n"
    "async def aticker():\n"
    "    try:\n"
    "        await asyncio.sleep(3600)\n"
    "    finally:\n"
    "        cleaned.append(0)\n"
    "asyncio.get_running_loop().create_task(aticker())"
)

WARNING = re.compile(
    r"^autoawait_runners: this cell's earlier runs left (\d) tasks? running: (.*); "
    r"see c\.AutoawaitRunners\.rerun$",
    re.MULTILINE,
)


@pytest.mark.kernel
@pytest.mark.parametrize("runner", list(RUNNERS))
def test_a_notebook_cell_run_again_warns_cancels_or_keeps(kernel: Kernel, runner: str) -> None:
    # B2: rerun = 'warn' (the default), 'cancel', 'keep', told by the cell's cellId.
    if runner == "uvloop":
        pytest.importorskip("uvloop")
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok(f"%autoawait {runner}")
    kernel.ok(f"import {RUNNERS[runner]} as lib\n" + TICKER)
    poller = POLLER + (ASYNCIO_POLLER if runner == "trio-guest" else "")
    per_run = 2 if runner == "trio-guest" else 1

    def run_again() -> str:
        return kernel.ok(poller, cell_id="poller-cell")

    out, reply = kernel.execute(poller, cell_id="poller-cell")
    assert "autoawait_runners" not in out, out
    count = reply["execution_count"]
    kernel.ok("import sys; sys.stdout.flush()", cell_id="another-cell")  # not the same cell
    out = run_again()
    warning = WARNING.search(out)
    assert warning and int(warning[1]) == per_run, out
    assert warning[2].count(f"(In [{count}])") == per_run and "ticker" in warning[2], out
    assert "cleaned: []" in out  # warned only
    assert "2 tasks in" in kernel.ok("%tasks") if per_run == 1 else True

    kernel.ok("%config AutoawaitRunners.rerun = 'cancel'")
    out = run_again()
    # Both earlier runs' pollers ended, their finally blocks run, before this run's code.
    assert f"cleaned: {sorted([10, 10] + [0, 0] * (per_run - 1))}" in out, out
    assert "autoawait_runners" not in out, out
    left = kernel.ok("await lib.sleep(0.05)\n%tasks")
    assert f"{per_run} task{'s' if per_run > 1 else ''} in" in left, left

    kernel.ok("%config AutoawaitRunners.rerun = 'keep'")
    out = run_again()
    assert "autoawait_runners" not in out, out
    assert f"{2 * per_run} tasks in" in kernel.ok("%tasks")


@pytest.mark.kernel
@pytest.mark.parametrize("runner", ["asyncio", "thread"])
def test_a_plain_cell_run_again_ends_the_earlier_runs_tasks_first(
    kernel: Kernel, runner: str
) -> None:
    # B2: a cell without await run again, with rerun = 'cancel'.
    kernel.ok(f"%load_ext autoawait_runners\n%autoawait {runner}")
    kernel.ok("import asyncio as lib\n" + TICKER)
    kernel.ok("%config AutoawaitRunners.rerun = 'cancel'")
    cell = "print('cleaned:', cleaned)\nt = lib.get_running_loop().create_task(ticker(10))"
    kernel.ok(cell, cell_id="plain-cell")
    out = kernel.ok(cell, cell_id="plain-cell")
    assert "cleaned: [10]" in out, out


@pytest.mark.kernel
def test_a_rerun_waits_a_bounded_time_for_a_task_that_does_not_end(kernel: Kernel) -> None:
    # B2: 'cancel' waits for the cancelled tasks at most the shutdown timeout, then says so.
    kernel.ok("%load_ext autoawait_runners\n%autoawait thread")
    kernel.ok(
        "import asyncio\n"
        "async def stubborn():\n"
        "    while True:\n"
        "        try:\n"
        "            await asyncio.sleep(3600)\n"
        "        except asyncio.CancelledError:\n"
        "            pass\n"
        "%config AutoawaitRunners.rerun = 'cancel'"
    )
    cell = "t = asyncio.create_task(stubborn())\nawait asyncio.sleep(0)"
    kernel.ok(cell, cell_id="stubborn-cell")
    out = kernel.ok(cell, cell_id="stubborn-cell")
    assert re.search(
        r"autoawait_runners: 1 task of this cell's earlier runs still running 1 s after "
        r"cancellation: stubborn\(\) \(In \[\d+\]\)",
        out,
    ), out


@pytest.mark.kernel
def test_without_the_extension_a_cell_run_again_leaves_two_pollers(kernel: Kernel) -> None:
    # The host without the extension: nothing is said or done (docs/background.rst).
    kernel.ok(
        "import asyncio\nasync def ticker():\n    while True:\n        await asyncio.sleep(10)"
    )
    cell = "t = asyncio.create_task(ticker())\nawait asyncio.sleep(0)"
    first = kernel.ok(cell, cell_id="poller-cell")
    second = kernel.ok(cell, cell_id="poller-cell")
    assert first == second == ""
    out = kernel.ok("sum(t.get_coro().__qualname__ == 'ticker' for t in asyncio.all_tasks())")
    assert out.strip().endswith("2"), out


# -- %%background cells (B1) are cells like any other ------------------------------------------


def test_a_background_cell_and_its_tasks_belong_to_its_cell(family_shell: Shell) -> None:
    # B2 with B1: the cell's task, and the tasks it starts, are the cell's.
    shell = family_shell
    number = shell.ip.execution_count
    shell.ok("%%background\nawait h.background(child)\nawait lib.sleep(3600)")
    shell.ok("await lib.sleep(0.05)")
    shell.output()
    shell.ok("%tasks")
    out = shell.output()
    listed = rows(out)
    assert len(listed) == 2, out
    assert all(re.search(rf"\s+In \[{number}\]\s", row) for row in listed), out
    shell.ok("%tasks tree")
    assert f"\nIn [{number}]\n" in shell.output()


@pytest.mark.kernel
@pytest.mark.parametrize("runner", list(RUNNERS))
def test_a_background_cell_run_again_cancels_its_earlier_run_first(
    kernel: Kernel, runner: str
) -> None:
    # B2 with B1: rerun = 'cancel' ends the earlier run's task before the new run starts.
    if runner == "uvloop":
        pytest.importorskip("uvloop")
    kernel.ok(f"%load_ext autoawait_runners\n%autoawait {runner}")
    kernel.ok(f"import {RUNNERS[runner]} as lib\ncleaned = []")
    kernel.ok("%config AutoawaitRunners.rerun = 'cancel'")
    cell = "%%background\ntry:\n    await lib.sleep(3600)\nfinally:\n    cleaned.append(1)"
    kernel.ok(cell, cell_id="background-cell")
    kernel.ok(cell, cell_id="background-cell")
    assert kernel.ok("print(cleaned)").strip() == "[1]"
    listed = kernel.ok("await lib.sleep(0.05)\n%tasks")
    assert "1 task in" in listed and "(background)" in listed, listed
