"""The nesting shim in a real Jupyter kernel (N6, K3), driven through jupyter_client."""

from __future__ import annotations

import pytest
from kernel import Kernel, kernel

__all__ = ["kernel"]

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
