"""Eager task factories (F8, R6, M2): ``loop.set_task_factory(asyncio.eager_task_factory)``
in a cell works under every runner with an asyncio loop as it does in IPython without the
extension: tasks take their first step as they are made, a task that fails in that step is
reported by its coroutine's name, and ``%tasks`` lists the ones still running.

An eager task that ends in its first step has no coroutine any more: ``Task.get_coro()``
gives None (Python 3.12.5+, 3.13) or crashes the interpreter (3.12.0-3.12.4): these tests
kill the test run on Python 3.12.1 if the session asks it.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from conftest import Shell, fresh_shell

pytestmark = pytest.mark.skipif(
    not hasattr(asyncio, "eager_task_factory"), reason="eager task factories came in Python 3.12"
)

#: The runners whose session has an asyncio loop (trio-guest's cells run inside it), and
#: how a cell of each awaits a pause.
PAUSE = {
    "asyncio": "await asyncio.sleep({})",
    "thread": "await asyncio.sleep({})",
    "uvloop": "await asyncio.sleep({})",
    "trio-guest": "await trio.sleep({})",
}

DEFINITIONS = (
    "import asyncio, gc\n"
    "steps = []\n"
    "async def forever():\n"
    "    steps.append('first step')\n"
    "    await asyncio.sleep(60)\n"
    "async def boom():\n"
    "    raise ValueError('boom')\n"
    "async def other():\n"
    "    raise ValueError('boom')"
)


def eager_session(pause: str) -> list[str]:
    """The cells: each starts with an await, so that IPython without the extension runs it
    on its loop too (a plain cell there has no running loop)."""
    now = pause.format(0)
    return [
        DEFINITIONS,
        f"{now}\nloop = asyncio.get_running_loop()\n"
        "loop.set_task_factory(asyncio.eager_task_factory)",
        f"{now}\nt = loop.create_task(forever())\nsteps_at_once = list(steps)",
        f"{now}\nlisted = t in asyncio.all_tasks(loop)",
        f"{now}\nfailed = [loop.create_task(boom()), loop.create_task(other())]",
        # Without the extension the failures are logged when the tasks are collected.
        f"{pause.format(0.3)}\ndel failed\ngc.collect()",
        "alive = True",
    ]


def run_cells(shell: Shell, cells: list[str]) -> None:
    for cell in cells:
        shell.ok(cell)


def test_eager_tasks_run_eagerly_and_fail_under_their_own_names_as_without_the_extension(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # F8: IPython without the extension (its own asyncio runner, on its one loop).
    with fresh_shell() as ip:
        host = Shell(ip, capfd)
        try:
            with caplog.at_level(logging.ERROR, logger="asyncio"):
                run_cells(host, eager_session(PAUSE["asyncio"]))
        finally:
            host.ok("t.cancel(); loop.set_task_factory(None)")  # the loop is IPython's, shared
        assert host.ns["steps_at_once"] == ["first step"]  # eager: before create_task returned
        assert host.ns["listed"] is True and host.ns["alive"] is True
        logged = caplog.text
        assert "in boom" in logged and "in other" in logged, logged


@pytest.mark.parametrize("runner", list(PAUSE))
def test_eager_tasks_run_eagerly_and_fail_under_their_own_names(
    ipshell: Shell, runner: str
) -> None:
    # F8 (as the test above finds without the extension), R6, F6: each failure reported
    # once, named by its coroutine, none counted "like" the other; M2: %tasks lists them.
    shell = ipshell
    shell.ok(f"%autoawait {runner}")
    shell.ok("import trio")
    cells = eager_session(PAUSE[runner])
    run_cells(shell, cells[:4])
    assert shell.ns["steps_at_once"] == ["first step"]
    assert shell.ns["listed"] is True
    shell.output()
    shell.ok("%tasks")
    listing = shell.output()
    assert re.search(r"\bwaiting +\S+ +forever\(\)", listing), listing
    run_cells(shell, cells[4:])
    out = shell.output()
    for name in ("boom", "other"):
        assert out.count(f"background task {name} of the {runner} session failed:") == 1, out
    assert "like it" not in out and "NoneType" not in out, out
    assert shell.ns["alive"] is True
    shell.ok("t.cancel()")


@pytest.mark.parametrize("runner", list(PAUSE))
def test_an_eager_failure_not_retrieved_yet_is_listed_and_the_session_ends_cleanly(
    ipshell: Shell, runner: str
) -> None:
    # M2: a task that failed in its first step is listed by %tasks (failed) until reported;
    # R8: the session's own tasks at its end are not made eager (the runner made them from
    # outside its loop, where an eager first step would run without it).
    shell = ipshell
    shell.ok(f"%autoawait {runner}")
    shell.ok(DEFINITIONS)
    shell.ok(
        "asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)\n"
        "t = asyncio.get_running_loop().create_task(forever())"
    )
    shell.output()
    shell.ok("b = asyncio.get_running_loop().create_task(boom())\n%tasks")
    listing = shell.output()
    assert re.search(r"\bfailed +\S+ +boom\(\)", listing), listing
    assert "background task boom of the" in listing  # reported as the cell ended
    shell.ok("%autoawait sync")
    out = shell.output()
    assert f"{runner} runner closed: cancelled 1 background task\n" in out, out
    assert "failed" not in out and "Error" not in out, out
