"""%tasks (M2): list, show and cancel the session's tasks, under every persistent runner."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
from conftest import LIBRARY, SUPPORT, TIMEOUT, Shell, send_sigint_when
from kernel import Kernel

from autoawait_runners._ipython._tasks_magic import WIDTH

TICKER = (
    "cleaned = []\n"
    "async def ticker(period):\n"
    "    try:\n"
    "        while True:\n"
    "            await lib.sleep(period)\n"
    "    finally:\n"
    "        cleaned.append(period)"
)


@pytest.fixture
def tasks_shell(any_shell: Shell, monkeypatch: pytest.MonkeyPatch) -> Shell:
    monkeypatch.syspath_prepend(str(SUPPORT))
    any_shell.ok("import autoawait_test_helpers as h")
    any_shell.ok(TICKER)
    any_shell.output()
    return any_shell


def rows(out: str) -> list[str]:
    """The table's rows (after its title and header; not --tree's headings, a cell's)."""
    lines = out.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("id "))
    return [line for line in lines[start + 1 :] if not line.startswith("In [")]


def test_no_tasks_is_one_line(tasks_shell: Shell) -> None:
    tasks_shell.ok("%tasks")
    assert re.fullmatch(r"no background tasks in the [\w-]+ session\n", tasks_shell.output())


def test_the_list_shows_each_background_task_and_where_it_waits(tasks_shell: Shell) -> None:
    shell = tasks_shell
    shell.ok("a = await h.background(ticker, 10)\nb = await h.background(ticker, 20)")
    shell.ok("await lib.sleep(0)")
    shell.output()
    shell.ok("%tasks")
    out = shell.output()
    assert out.startswith("2 tasks in the "), out
    assert rows(out)[0].split()[:1] == ["1"] and rows(out)[1].split()[:1] == ["2"]
    for row in rows(out):
        assert "waiting" in row and "ticker()" in row and re.search(r"In\[\d+\]:5", row), row
    assert "(cell)" not in out  # the cell that asks is not background work
    shell.ok("%tasks --all")
    assert "running (cell)" in shell.output()


def test_ids_stay_with_their_task_and_cancel_runs_its_clean_up(tasks_shell: Shell) -> None:
    shell = tasks_shell
    shell.ok("a = await h.background(ticker, 10)\nb = await h.background(ticker, 20)")
    shell.ok("await lib.sleep(0)\n%tasks")
    shell.output()
    shell.ok("%tasks cancel 1")
    assert "task 1 (" in shell.output()
    shell.ok("await h.until(lambda: cleaned == [10])")  # its finally ran
    shell.ok("c = await h.background(ticker, 30)")
    shell.ok("await lib.sleep(0)")
    shell.output()
    shell.ok("%tasks")
    listed = [row.split()[0] for row in rows(shell.output())]
    assert listed == ["2", "3"], listed  # the old id is not reused; the others keep theirs


def test_where_shows_the_await_chain_down_to_the_line(tasks_shell: Shell) -> None:
    shell = tasks_shell
    shell.ok("a = await h.background(ticker, 10)\nawait lib.sleep(0)\n%tasks")
    shell.output()
    shell.ok("%tasks where 1")
    out = shell.output()
    assert out.startswith("task 1 (") and "waiting in:" in out
    assert re.search(r"In\[\d+\]:5 in ticker\n +await lib.sleep\(period\)", out), out


def test_bad_input_is_a_one_line_error(tasks_shell: Shell) -> None:
    shell = tasks_shell
    for line, message in [
        ("%tasks cancel 99", "no task 99 in the "),
        ("%tasks where", "%tasks takes --all, --tree, 'where ID', 'cancel ID' or 'blocked'"),
        ("%tasks --everything", "%tasks takes --all"),
    ]:
        result = shell.run(line)
        assert type(result.error_in_exec).__name__ == "UsageError", line
        out = shell.output()
        assert message in out and "Traceback" not in out, out


@pytest.mark.parametrize("runner", ["trio", "curio"])
def test_the_runners_and_the_librarys_own_tasks_are_not_cancelled(
    ipshell: Shell, runner: str
) -> None:
    shell = ipshell
    shell.ok(f"%autoawait {runner}")
    shell.output()
    shell.ok("%tasks --all")
    own = [row for row in rows(shell.output()) if "(cell)" not in row]
    assert own
    for row in own:
        result = shell.run(f"%tasks cancel {row.split()[0]}")
        assert type(result.error_in_exec).__name__ == "UsageError", row
        assert re.search(r"is the (runner|trio|curio)'s own", shell.output()), row
    shell.ok("%tasks --all")
    assert len([row for row in rows(shell.output()) if "(cell)" not in row]) == len(own)


def test_rows_fit_a_terminal_and_a_notebook_gets_a_table(tasks_shell: Shell) -> None:
    shell = tasks_shell
    shell.ok(
        "async def a_coroutine_with_a_name_long_enough_to_need_cutting_down_to_size(period):\n"
        "    await ticker(period)\n"
        "long_name = a_coroutine_with_a_name_long_enough_to_need_cutting_down_to_size"
    )
    shell.ok("a = await h.background(long_name, 9)")
    shell.ok("await lib.sleep(0)")
    shell.output()
    shell.ok("%tasks --all")
    out = shell.output()
    assert all(len(line) <= WIDTH for line in out.splitlines()), out
    from autoawait_runners._ipython._tasks_magic import TaskTable

    table = TaskTable([("1", "name", "In [1]", "waiting", "1.0s", "f()", "In[1]:2")], [0], "1 task")
    data, _ = shell.ip.display_formatter.format(table)
    assert "<table>" in data["text/html"] and "In[1]:2" in data["text/html"]
    assert "In[1]:2" in data["text/plain"]


def test_a_failure_nobody_has_retrieved_yet_is_listed(runner_shell: Shell) -> None:
    shell = runner_shell  # asyncio and thread: a failure is left to the cell until it ends
    shell.ok("import asyncio\nasync def boom():\n    raise ValueError('boom')")
    shell.output()
    shell.ok("b = asyncio.create_task(boom())\nawait asyncio.sleep(0.05)\n%tasks")
    out = shell.output()
    assert re.search(r"failed +[0-9.]+s +boom\(\)", out), out


def test_trio_tasks_show_as_a_tree_of_nurseries(ipshell: Shell) -> None:
    shell = ipshell
    shell.ok("%autoawait trio")
    shell.ok(
        "import trio, autoawait_runners\n"
        "async def child():\n"
        "    await trio.sleep_forever()\n"
        "async def parent():\n"
        "    async with trio.open_nursery() as nursery:\n"
        "        nursery.start_soon(child)\n"
        "        nursery.start_soon(child)\n"
        "autoawait_runners.trio_nursery().start_soon(parent)\n"
        "await trio.sleep(0.05)"
    )
    shell.output()
    shell.ok("%tasks --tree")
    names = [row.split()[1:2] for row in rows(shell.output())]
    assert names == [["__main__.parent"], ["__main__.child"], ["__main__.child"]], names
    shell.ok("%tasks --tree")
    out = shell.output()
    indented = [row for row in rows(out) if re.match(r"\d+ +  __main__.child", row)]
    assert len(indented) == 2, out


@pytest.mark.skipif(
    not hasattr(asyncio, "capture_call_graph"), reason="asyncio's call graphs are new in 3.14"
)
@pytest.mark.parametrize("runner", ["asyncio", "thread"])
def test_asyncio_tasks_show_as_a_tree_of_who_awaits_whom(ipshell: Shell, runner: str) -> None:
    shell = ipshell
    shell.ok(f"%autoawait {runner}")
    shell.ok(
        "import asyncio\n"
        "async def child():\n"
        "    await asyncio.sleep(3600)\n"
        "async def gathers():\n"
        "    await asyncio.gather(asyncio.create_task(child()), asyncio.create_task(child()))\n"
        "async def groups():\n"
        "    async with asyncio.TaskGroup() as group:\n"
        "        group.create_task(child())\n"
        "async def awaits():\n"
        "    await asyncio.create_task(child())\n"
        "parents = [asyncio.create_task(f()) for f in (gathers, groups, awaits)]\n"
        "alone = asyncio.create_task(child())\n"
        "await asyncio.sleep(0.05)"
    )
    shell.output()
    shell.ok("%tasks --tree")
    out = shell.output()
    # The name column is indented by depth; the coroutine column names the function.
    name_at = next(line for line in out.splitlines() if line.startswith("id ")).index("name")
    tree = [
        ((row.index("Task-") - name_at) // 2, re.findall(r"(\w+)\(\)", row)[0]) for row in rows(out)
    ]
    assert tree == [
        (0, "gathers"),
        (1, "child"),
        (1, "child"),
        (0, "groups"),
        (1, "child"),
        (0, "awaits"),
        (1, "child"),
        (0, "child"),
    ], out
    assert "flat" not in out
    shell.ok("%tasks")  # without --tree: oldest first, none indented
    assert all(re.match(r"\d+ +Task-", row) for row in rows(shell.output()))
    shell.ok("for task in parents: task.cancel()\nalone.cancel()\nawait asyncio.sleep(0.05)")


@pytest.mark.kernel
@pytest.mark.parametrize("runner", ["asyncio", "thread", "trio"])
def test_tasks_in_a_kernel(kernel: Kernel, runner: str) -> None:  # M2, K1
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok(f"%autoawait {runner}")
    lib = "trio" if runner == "trio" else "asyncio"
    kernel.ok(f"import {lib} as lib\n" + TICKER)
    if runner == "trio":
        kernel.ok(
            "import autoawait_runners\nautoawait_runners.trio_nursery().start_soon(ticker, 10)"
        )
    else:
        kernel.ok("t = lib.create_task(ticker(10))")
    out = kernel.ok("await lib.sleep(0.05)\n%tasks")
    assert "1 task in the " in out and "ticker()" in out, out


def test_task_names_are_shown_escaped(tasks_shell: Shell) -> None:
    # A name is whatever its creator chose: a newline or an escape sequence in it must not
    # split a row or recolour the terminal.
    shell = tasks_shell
    shell.ok("t = await h.background(ticker, 10, name='two\\nlines \\x1b[31mred')")
    shell.output()
    shell.ok("%tasks")
    out = shell.output()
    assert "\x1b" not in out and len(rows(out)) == 1, out
    assert "two\\nlines \\x1b[31mred" in out, out


TRIO_AND_ASYNCIO = (
    "import asyncio, trio, autoawait_runners\n"
    "cleaned = []\n"
    "async def trio_ticker():\n"
    "    while True:\n"
    "        await trio.sleep(10)\n"
    "async def asyncio_ticker(period):\n"
    "    try:\n"
    "        while True:\n"
    "            await asyncio.sleep(period)\n"
    "    finally:\n"
    "        cleaned.append(period)\n"
    "autoawait_runners.trio_nursery().start_soon(trio_ticker)\n"
    "loop = asyncio.get_running_loop()\n"
    "a = loop.create_task(asyncio_ticker(10)); b = loop.create_task(asyncio_ticker(20))"
)


def test_trio_guest_lists_and_cancels_its_asyncio_tasks_too(ipshell: Shell) -> None:
    # M2: a trio-guest cell runs inside the session's asyncio loop and can start asyncio
    # tasks there; %tasks lists them beside the trio tasks, each row with its library, and
    # cancels them; R8: the session's end cancels as many as %tasks listed.
    shell = ipshell
    shell.ok("%autoawait trio-guest")
    shell.ok(TRIO_AND_ASYNCIO)
    shell.ok("await trio.sleep(0.05)")
    shell.output()
    shell.ok("%tasks")
    out = shell.output()
    assert out.startswith("3 tasks in the trio-guest session"), out
    assert re.search(r"^id +name +cell +library +state", out, re.MULTILINE), out
    listed = {re.findall(r"(\w+)\(\)", row)[0]: row.split() for row in rows(out)}
    assert listed["trio_ticker"][4] == "trio", out
    assert listed["asyncio_ticker"][4] == "asyncio", out
    asyncio_ids = [row.split()[0] for row in rows(out) if " asyncio " in row]
    assert len(asyncio_ids) == 2, out
    shell.ok(f"%tasks cancel {asyncio_ids[0]}")
    assert f"task {asyncio_ids[0]} (" in shell.output()
    shell.ok("await trio.sleep(0.05)")
    assert shell.ns["cleaned"] == [10]  # its finally ran
    shell.ok("%tasks where " + asyncio_ids[1])
    assert "asyncio, waiting" in shell.output()
    shell.ok("%tasks")
    assert shell.output().startswith("2 tasks in the trio-guest session")
    shell.ok("%autoawait sync")
    assert "trio-guest runner closed: cancelled 2 background tasks\n" in shell.output()
    assert shell.ns["cleaned"] == [10, 20]


@pytest.mark.kernel
def test_trio_guest_lists_its_asyncio_tasks_in_a_kernel(kernel: Kernel) -> None:  # M2, K1
    # On a kernel's loop (borrowed), the asyncio tasks a trio-guest cell starts are the
    # session's, the kernel's own are not.
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok("%autoawait trio-guest")
    kernel.ok(TRIO_AND_ASYNCIO)
    out = kernel.ok("await trio.sleep(0.05)\n%tasks")
    assert "3 tasks in the trio-guest session" in out and out.count("asyncio_ticker()") == 2, out
    out = kernel.ok("%autoawait sync")
    assert "trio-guest runner closed: cancelled 3 background tasks" in out, out


@pytest.mark.parametrize("runner", ["asyncio", "thread", "curio"])
def test_a_cell_given_up_on_is_listed_at_once(ipshell: Shell, runner: str) -> None:
    # M2: a cell that swallowed its cancellations, given up on at the third Ctrl-C, still
    # runs; the very next %tasks lists it, as "In [n] (given up on)" (it was hidden as the
    # session's cell until another cell ran). (Under trio a cancelled scope stays cancelled:
    # such a cell spins, and the runner's thread with it: docs/magics.rst.)
    shell = ipshell
    lib = LIBRARY[runner]
    pytest.importorskip(lib)
    shell.ok(f"%autoawait {runner}")
    shell.ok(f"import {lib} as lib")
    events = [threading.Event() for _ in range(3)]
    shell.ns["events"] = events
    shell.ok("swallowed = []")
    senders = [send_sigint_when(event) for event in events]
    result = shell.run(
        "for event in events:\n"
        "    try:\n"
        "        event.set()\n"
        "        await lib.sleep(60)\n"
        "    except BaseException:\n"
        "        swallowed.append(1)\n"
        "while True:\n"
        "    try:\n"
        "        await lib.sleep(60)\n"
        "    except BaseException:\n"
        "        swallowed.append(1)\n"
    )
    for sender in senders:
        sender.join(TIMEOUT)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    shell.output()
    shell.ok("%tasks")
    listed = shell.output()
    assert re.search(r"In \[\d+\] \(given up on\)", listed), listed
