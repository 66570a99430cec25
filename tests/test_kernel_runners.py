"""Every runner of the catalogue in a real Jupyter kernel, driven through jupyter_client
(DESIGN K1: selectable, output reaches the client, objects persist between cells)."""

from __future__ import annotations

import pytest
from kernel import Kernel, kernel

__all__ = ["kernel"]

pytestmark = pytest.mark.kernel

#: runner -> (import, an await cell that sleeps).
RUNNERS = {
    "asyncio": ("import asyncio", "await asyncio.sleep(0)"),
    "thread": ("import asyncio", "await asyncio.sleep(0)"),
    "trio": ("import trio", "await trio.sleep(0)"),
    "curio": ("import curio", "await curio.sleep(0)"),
    "embed": ("import asyncio", "await asyncio.sleep(0)"),
}


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_runner_output_reaches_the_client_and_objects_persist(kernel: Kernel, runner: str) -> None:
    library, sleep = RUNNERS[runner]
    pytest.importorskip(library.split()[1])
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok(f"%autoawait {runner}")
    kernel.ok(library)
    assert "printed by a plain cell" in kernel.ok("print('printed by a plain cell')")
    assert "printed by an await cell" in kernel.ok(f"{sleep}\nprint('printed by an await cell')")
    kernel.ok(f"{sleep}\nmade_in_a_cell = ['kept']")
    assert "['kept']" in kernel.ok(f"{sleep}\nmade_in_a_cell")  # an execute_result
    assert "41" in kernel.ok("40 + 1")
