"""The examples run as documented (the README's quick start uses examples/tour.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import IPythonPty

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.pty
def test_tour_runs_and_leaves_a_live_session(ipython_pty: type[IPythonPty]) -> None:
    ipy = ipython_pty("-i", str(EXAMPLES / "tour.py"))
    text = ipy.text()
    assert "tour> %autoawait --list" in text
    assert "RuntimeError: this task failed in the background" in text
    assert "asyncio runner closed: cancelled 1 background task" in text
    assert "thread runner closed: cancelled 1 background task" in text
    assert "trio runner closed: cancelled 1 background task" in text
    assert "Out[15]: True" in text  # curio_running() in a cell of the curio runner
    assert "Out[8]: 'autoawait_runners-thread'" in text
    assert text.count("Traceback") == 1  # the background failure the tour shows on purpose
    assert re.search(r"ticks during asyncio.run: [1-9]", text)
    assert "Wall time:" in text and "3 runs, 100 loops each" in text  # M1
    assert "1 task in the asyncio session" in text  # M2
    ipy.cell("print('ticking', not task.done(), len(ticks) > 0)", "ticking True True")
    ipy.exit()


def test_debugging_a_live_program_example(ipython_pty: type[IPythonPty]) -> None:
    ipy = ipython_pty(program=[str(EXAMPLES / "debug_live_asyncio.py")])
    assert "A live program" in ipy.text()
    ipy.cell(
        "n = stats['consumed']; await asyncio.sleep(0.5); print('consumed', stats['consumed'] > n)",
        "consumed True",
    )
    ipy.cell("item = await queue.get(); print('got', 'item', item > 0)", "got item True")
    ipy.child.sendline("exit")
    ipy.expect("program: back from the shell at")
