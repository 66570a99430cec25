"""The nesting shim in a real Jupyter kernel (N6, K3), driven through jupyter_client."""

from __future__ import annotations

import pytest
from kernel import Kernel

pytestmark = pytest.mark.kernel

DOUBLE = """
import asyncio
async def double(x):
    await asyncio.sleep(0.01)
    return 2 * x
"""

PYTEST_ASYNCIO_CELL = """%%ipytest -qq
import asyncio
import pytest
import pytest_asyncio

@pytest_asyncio.fixture
async def queue():
    return asyncio.Queue()

@pytest.mark.asyncio
async def test_queue_round_trip(queue):
    await queue.put(21)
    assert 2 * await queue.get() == 42

@pytest.mark.asyncio
async def test_sleep_and_gather():
    results = await asyncio.gather(*(asyncio.sleep(0.01, result=i) for i in range(3)))
    assert results == [0, 1, 2]
"""


def test_asyncio_run_works_in_kernel_cells_after_load_ext(kernel: Kernel) -> None:
    output, reply = kernel.execute(DOUBLE + "asyncio.run(double(1))")
    assert reply["status"] == "error"
    assert "cannot be called from a running event loop" in output
    kernel.ok("%load_ext autoawait_runners")
    assert "4" in kernel.ok("asyncio.run(double(2))")
    assert "6" in kernel.ok("await asyncio.sleep(0)\nasyncio.run(double(3))")
    assert "8" in kernel.ok("asyncio.get_running_loop().run_until_complete(double(4))")


def test_pytest_asyncio_tests_in_a_cell_run_through_ipytest(kernel: Kernel) -> None:
    kernel.ok("import ipytest\nipytest.autoconfig(run_in_thread=False)")
    # Without the shim, this is the failure that started the project.
    output, _ = kernel.execute(PYTEST_ASYNCIO_CELL)
    assert "cannot be called from a running event loop" in output
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok(PYTEST_ASYNCIO_CELL)
    assert kernel.ok("print('exit code', int(ipytest.exit_code))").strip() == "exit code 0"


RUN_ALL = [
    "import asyncio\nasyncio.run(asyncio.sleep(1))\nprint('cell A ran')",
    "print('cell B ran')",
    "await asyncio.sleep(0.01)\nprint('cell C ran')",
    "asyncio.run(asyncio.sleep(0.2))\nprint('cell D ran')",
    "print('cell E ran')",
]


@pytest.mark.parametrize("runner", ["the kernel's own", "asyncio", "thread"])
def test_run_all_loses_no_cell_queued_behind_a_nested_run(kernel: Kernel, runner: str) -> None:
    # N7: ipykernel 7 runs every cell in one Context, which the cell parked in asyncio.run()
    # holds; a task stepping in it meanwhile was dropped, and the queued cells never ran.
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok("%autoawait kernel" if runner == "the kernel's own" else f"%autoawait {runner}")
    results = kernel.execute_queued(RUN_ALL)
    assert [reply["status"] for _, reply in results] == ["ok"] * len(RUN_ALL)
    assert [output.strip() for output, _ in results] == [f"cell {name} ran" for name in "ABCDE"]
    assert kernel.ok("print('after')").strip() == "after"
