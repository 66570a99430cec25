"""The notebooks in examples/ run top to bottom in a real kernel (DESIGN K2), and show what
they say they show. Any cell that raises fails the test (nbclient's default)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from conftest import TIMEOUT
from kernel import kernel_manager

pytestmark = pytest.mark.kernel

EXAMPLES = Path(__file__).parent.parent / "examples"
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


def run_notebook(name: str, tmp: Path) -> list[str]:
    """Execute a notebook in a fresh kernel; return each code cell's output as text."""
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    manager = kernel_manager(tmp)
    try:
        nbclient.NotebookClient(
            notebook,
            km=manager,
            timeout=TIMEOUT * 2,
            resources={"metadata": {"path": str(tmp)}},
        ).execute()
    finally:
        Path(manager.connection_file).unlink(missing_ok=True)  # it holds the kernel's key
    return [text_of(cell) for cell in notebook.cells if cell.cell_type == "code"]


def text_of(cell: dict[str, Any]) -> str:
    """What a cell shows, as plain text (pytest colours its output: the codes go)."""
    pieces = []
    for output in cell["outputs"]:
        if output["output_type"] == "stream":
            pieces.append(output["text"])
        elif output["output_type"] in ("execute_result", "display_data"):
            pieces.append(output["data"].get("text/plain", "") + "\n")
        elif output["output_type"] == "error":
            pieces.append("\n".join(output["traceback"]) + "\n")
    return ANSI_CODE.sub("", "".join(pieces))


def cell_with(outputs: list[str], text: str) -> str:
    """The output of the first cell that shows ``text``."""
    for output in outputs:
        if text in output:
            return output
    raise AssertionError(f"no cell shows {text!r}; outputs:\n" + "\n---\n".join(outputs))


def number_after(output: str, label: str) -> int:
    return int(output.split(label, 1)[1].split()[0])


def test_tour_notebook(tmp_path: Path) -> None:
    outputs = run_notebook("tour.ipynb", tmp_path)
    assert not list(tmp_path.glob("*.json")), "the kernel's connection file (its key) is left"
    assert "runner: asyncio (" in outputs[0], outputs[0]  # loading selects it (K1)
    cell_with(outputs, "one asyncio loop for the session")  # the catalogue
    assert number_after(cell_with(outputs, "ticks so far:"), "ticks so far:") >= 2
    assert "RuntimeError: this task failed in the background" in cell_with(
        outputs, "background task broken ('broken')"
    )
    assert number_after(cell_with(outputs, "ticks during asyncio.run:"), "run:") >= 2
    cell_with(outputs, "Wall time:")  # M1
    cell_with(outputs, "3 runs, 100 loops each")
    cell_with(outputs, "1 task in the asyncio session")  # M2
    cell_with(outputs, "nesting shim is on")
    cell_with(outputs, "asyncio runner closed: cancelled 1 background task")
    cell_with(outputs, "'autoawait_runners-thread'")
    assert number_after(cell_with(outputs, "ticks in half a second:"), "second:") >= 2
    cell_with(outputs, "thread runner closed: cancelled 1 background task")
    assert number_after(cell_with(outputs, "trio ticks:"), "ticks:") >= 2
    cell_with(outputs, "trio runner closed: cancelled 1 background task")
    assert outputs[-1].strip() == "True"  # the kernel's own integration is back
    assert sum("Traceback" in output for output in outputs) == 1  # the one shown on purpose


def test_trio_nursery_notebook(tmp_path: Path) -> None:
    outputs = run_notebook("trio_nursery.ipynb", tmp_path)
    cell_with(outputs, "first items: [1, 2, 3, 4, 5]")
    cell_with(outputs, "no more items: True")
    cell_with(outputs, "timed out: True")
    assert "ValueError: a background task failed" in cell_with(outputs, "background task")
    cell_with(outputs, "same nursery: True")
    # consumer and producer ended when the producer was stopped; "forever" is left.
    cell_with(outputs, "trio runner closed: cancelled 1 background task")


def test_pytest_asyncio_notebook(tmp_path: Path) -> None:
    outputs = run_notebook("pytest_asyncio.ipynb", tmp_path)
    report = cell_with(outputs, "passed")
    assert "3 passed" in report
    assert "failed" not in report
    assert "warning" not in report
    cell_with(outputs, "pytest exit code: 0")
    assert outputs[-1].strip() == "True"


def test_debug_live_asyncio_notebook(tmp_path: Path) -> None:
    outputs = run_notebook("debug_live_asyncio.ipynb", tmp_path)
    assert "ValueError: unlucky item 13" in cell_with(
        outputs, "background task consumer ('consumer')"
    )
    cell_with(outputs, "consumer stopped: True\nbacklog grows: True")
    assert "in producer" in cell_with(outputs, "Stack for <Task pending name='producer'")
    cell_with(outputs, "backlog drained: True")
    cell_with(outputs, "got an item: True")
    cell_with(outputs, "the cell gave up; producer alive: True")
    cell_with(outputs, "asyncio runner closed: cancelled 2 background tasks")


def test_the_widgets_notebook_says_at_once_that_no_one_can_answer_under_nbclient(
    tmp_path: Path,
) -> None:  # K2
    # nbclient (nbconvert --execute, papermill) asks for no input: nobody moves the slider,
    # and the loop would wait for its 300 s timeout.
    outputs = run_notebook("widgets.ipynb", tmp_path)
    cell_with(outputs, "No one can move the slider here")
    assert "Move the slider" not in "".join(outputs)


def test_background_notebook(tmp_path: Path) -> None:  # B1, K2
    outputs = run_notebook("background.ipynb", tmp_path)
    cell_with(outputs, "cells run meanwhile; readings so far:")
    cell_with(outputs, "(background)")  # %tasks lists it
    cell_with(outputs, "total: 30")
    cell_with(outputs, "the background cell failed: the sensor went away")
    cell_with(outputs, "cancelled")
    cell_with(outputs, "BackgroundCellCancelled")
    grouped = cell_with(outputs, "ticker")  # B2: under its cell's heading
    assert re.search(r"In \[\d+\]", grouped), grouped
    cell_with(outputs, "no blocked session loop seen")  # B3: nothing held it here
