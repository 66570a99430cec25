"""The nesting shim (DESIGN N1-N6): code that runs its own loop, inside a running loop.

Cells run in a real InteractiveShell with the extension loaded (which turns the shim on),
under each asyncio-family runner. Outside the shell, the shim is driven by its functions.
"""

from __future__ import annotations

import asyncio
import asyncio.runners
import contextvars
import subprocess
import sys

import pytest
from conftest import LIBRARY, SCRIPT_SHELL, Shell

import autoawait_runners
from autoawait_runners._nesting import _parking

SLEEPY = """
import asyncio, contextvars, time
async def double(x, delay=0.01):
    await asyncio.sleep(delay)
    return 2 * x
def sync_library(x):
    # what a synchronous library does: run its own event loop
    return asyncio.run(double(x))
"""


@pytest.fixture
def nested_shell(runner_shell: Shell) -> Shell:
    runner_shell.ok(SLEEPY)
    return runner_shell


# -- N1: the calls work, and behave as they would outside -----------------------------------


def test_asyncio_run_works_in_plain_and_await_cells(nested_shell: Shell) -> None:
    assert nested_shell.ok("sync_library(21)") == 42
    assert nested_shell.ok("await asyncio.sleep(0); sync_library(4)") == 8
    assert nested_shell.ok("asyncio.run(double(5))") == 10


def test_every_way_of_running_a_loop_works_in_a_cell(nested_shell: Shell) -> None:
    assert nested_shell.ok("asyncio.get_running_loop().run_until_complete(double(1))") == 2
    assert nested_shell.ok("asyncio.new_event_loop().run_until_complete(double(2))") == 4
    nested_shell.ok("with asyncio.Runner() as runner:\n    result = runner.run(double(3))")
    assert nested_shell.ns["result"] == 6
    assert nested_shell.ok("await asyncio.sleep(0)\nasyncio.Runner().run(double(4))") == 8


def test_a_loop_runner_loop_is_its_own(nested_shell: Shell) -> None:
    nested_shell.ok(
        "async def which_loop(): return asyncio.get_running_loop()\n"
        "with asyncio.Runner() as runner:\n"
        "    first = runner.run(which_loop())\n"
        "    second = runner.run(which_loop())\n"
        "    own = runner.get_loop()"
    )
    ns = nested_shell.ns
    assert ns["first"] is ns["second"] is ns["own"]
    assert ns["own"] is not nested_shell.ip.loop_runner.loop


def test_exceptions_propagate_out_of_the_nested_call(nested_shell: Shell) -> None:
    nested_shell.ok(
        "async def fail(): raise LookupError('from inside')\n"
        "try:\n"
        "    asyncio.run(fail())\n"
        "except LookupError as exc:\n"
        "    caught = str(exc)"
    )
    assert nested_shell.ns["caught"] == "from inside"
    result = nested_shell.run("asyncio.run(fail())")
    assert isinstance(result.error_in_exec, LookupError)


def test_timeouts_and_task_groups_work_inside(nested_shell: Shell) -> None:
    nested_shell.ok(
        "async def timed_out():\n"
        "    try:\n"
        "        async with asyncio.timeout(0.05):\n"
        "            await asyncio.sleep(30)\n"
        "    except TimeoutError:\n"
        "        return 'timed out'\n"
        "async def grouped():\n"
        "    async with asyncio.TaskGroup() as group:\n"
        "        tasks = [group.create_task(double(i)) for i in range(5)]\n"
        "    return [t.result() for t in tasks]"
    )
    assert nested_shell.ok("asyncio.run(timed_out())") == "timed out"
    assert nested_shell.ok("asyncio.run(grouped())") == [0, 2, 4, 6, 8]


def test_context_variables_are_copied_in_as_asyncio_run_does(nested_shell: Shell) -> None:
    nested_shell.ok(
        "var = contextvars.ContextVar('var', default='unset')\n"
        "var.set('from the cell')\n"
        "async def read_and_write():\n"
        "    seen = var.get()\n"
        "    var.set('from inside')\n"
        "    return seen"
    )
    assert nested_shell.ok("asyncio.run(read_and_write())") == "from the cell"
    assert nested_shell.ok("var.get()") == "from the cell"


def test_nested_calls_nest_again(nested_shell: Shell) -> None:
    nested_shell.ok("async def outer():\n    return sync_library(10) + asyncio.run(double(1))")
    assert nested_shell.ok("asyncio.run(outer())") == 22


@pytest.mark.skipif(sys.version_info < (3, 12), reason="loop_factory is new in Python 3.12")
def test_asyncio_run_with_a_loop_factory_gets_that_loop(nested_shell: Shell) -> None:
    nested_shell.ok(
        "class MyLoop(asyncio.SelectorEventLoop): pass\n"
        "async def loop_type(): return type(asyncio.get_running_loop()).__name__"
    )
    assert nested_shell.ok("asyncio.run(loop_type(), loop_factory=MyLoop)") == "MyLoop"
    assert nested_shell.ok("asyncio.run(loop_type())") != "MyLoop"


# -- N2: on the same loop, the loop keeps running --------------------------------------------


def test_background_tasks_keep_running_during_a_nested_call(nested_shell: Shell) -> None:
    nested_shell.ok(
        "ticks = []\n"
        "async def ticker():\n"
        "    while True:\n"
        "        ticks.append(time.monotonic())\n"
        "        await asyncio.sleep(0.005)\n"
        "ticking = asyncio.create_task(ticker())"
    )
    nested_shell.ok(
        "before = len(ticks)\nasyncio.run(asyncio.sleep(0.3))\nduring = len(ticks) - before"
    )
    # Without progress it would be 0 (1 at most, for a tick already due). 0.3 s at 5 ms per
    # tick is 60: the bound is loose for a busy machine.
    assert nested_shell.ns["during"] >= 5
    nested_shell.ok("ticking.cancel()")


def test_a_nested_call_can_await_objects_of_the_running_loop(nested_shell: Shell) -> None:
    nested_shell.ok(
        "answer = asyncio.get_running_loop().create_future()\n"
        "async def answer_later():\n"
        "    await asyncio.sleep(0.05)\n"
        "    answer.set_result(42)\n"
        "answerer = asyncio.create_task(answer_later())\n"
        "async def wait_for_answer(): return await answer"
    )
    assert nested_shell.ok("asyncio.run(wait_for_answer())") == 42


def test_nested_calls_from_two_tasks_do_not_wait_for_each_other(nested_shell: Shell) -> None:
    # nest_asyncio runs nested loops recursively on one stack, so a call can return only
    # after every call nested after it has: measured with nest_asyncio, a 0.2 s call first
    # in and a 1.0 s call last in both returned at 1.05 s. Here each returns when its own
    # work is done.
    nested_shell.ok(
        "finished = {}\n"
        "def blocking_sleep(name, seconds):\n"
        "    asyncio.run(asyncio.sleep(seconds))\n"
        "    finished[name] = time.monotonic()\n"
        "async def first_in():\n"
        "    blocking_sleep('first in', 0.2)\n"
        "async def last_in():\n"
        "    await asyncio.sleep(0.05)\n"
        "    blocking_sleep('last in', 2.0)\n"
        "start = time.monotonic()\n"
        "await asyncio.gather(first_in(), last_in())"
    )
    finished, start = nested_shell.ns["finished"], nested_shell.ns["start"]
    assert finished["first in"] < finished["last in"]
    # Last in, first out would hold the first call until 2.05 s.
    assert finished["first in"] - start < 1.5


def test_an_outer_timeout_fires_around_a_nested_call(nested_shell: Shell) -> None:
    nested_shell.ok(
        "start = time.monotonic()\n"
        "try:\n"
        "    async with asyncio.timeout(0.1):\n"
        "        sync_library_result = asyncio.run(asyncio.sleep(30))\n"
        "except TimeoutError:\n"
        "    outcome = 'timed out'\n"
        "elapsed = time.monotonic() - start"
    )
    assert nested_shell.ns["outcome"] == "timed out"
    assert nested_shell.ns["elapsed"] < 10
    # The cancellation was delivered once: the cell's next await is not cancelled again.
    nested_shell.ok("await asyncio.sleep(0.01); after = 'still fine'")
    assert nested_shell.ns["after"] == "still fine"


def test_cancelling_a_task_cancels_its_nested_call(nested_shell: Shell) -> None:
    nested_shell.ok(
        "cleaned_up = asyncio.Event()\n"
        "started = asyncio.Event()\n"
        "async def inner():\n"
        "    started.set()\n"
        "    try:\n"
        "        await asyncio.sleep(30)\n"
        "    finally:\n"
        "        cleaned_up.set()\n"
        "async def caller():\n"
        "    asyncio.run(inner())\n"
        "task = asyncio.create_task(caller())\n"
        "await asyncio.wait_for(started.wait(), 10)\n"
        "task.cancel()\n"
        "await asyncio.wait_for(cleaned_up.wait(), 10)\n"
        "await asyncio.wait([task], timeout=10)"
    )
    assert nested_shell.ok("task.cancelled()") is True


# -- N3: code that does not nest runs what it ran before ----------------------------------


def test_tasks_and_futures_stay_asyncios_own(ipshell: Shell) -> None:
    import _asyncio

    assert autoawait_runners.is_nesting()
    assert asyncio.Task is _asyncio.Task
    assert asyncio.Future is _asyncio.Future
    assert ipshell.ok("import asyncio; type(asyncio.current_task())") is _asyncio.Task


# -- N4: on and off ------------------------------------------------------------------------


def current_objects() -> dict[str, object]:
    return {
        "run": asyncio.run,
        "runners.run": asyncio.runners.run,
        "Runner.run": asyncio.Runner.run,
        "run_until_complete": asyncio.BaseEventLoop.run_until_complete,
    }


#: As asyncio has them, taken when the tests are collected (before any shell loads us).
ORIGINALS = current_objects()


def identical_to_originals() -> bool:
    return all(current_objects()[name] is ORIGINALS[name] for name in ORIGINALS)


def test_off_restores_the_original_objects_and_on_nests_again(nested_shell: Shell) -> None:
    assert not identical_to_originals()
    nested_shell.ok("%nest off")
    assert identical_to_originals()
    # asyncio's own refusal (3.11) leaves the coroutine unclosed: close it here.
    result = nested_shell.run(
        "coro = double(1)\ntry:\n    asyncio.run(coro)\nfinally:\n    coro.close()"
    )
    assert isinstance(result.error_in_exec, RuntimeError)
    nested_shell.ok("%nest on")
    assert nested_shell.ok("sync_library(1)") == 2


def test_unload_ext_restores_the_original_objects(ipshell: Shell) -> None:
    trio = pytest.importorskip("trio")
    original_trio_run = trio._core.run  # where trio.run comes from
    ipshell.ok("%autoawait trio")
    assert not identical_to_originals()
    assert trio.run is not original_trio_run
    ipshell.ok("%unload_ext autoawait_runners")
    assert identical_to_originals()
    assert trio.run is original_trio_run
    assert "nest" not in ipshell.ip.magics_manager.magics["line"]


def test_the_functions_and_the_context_manager(ipshell: Shell) -> None:
    ipshell.ok("%unload_ext autoawait_runners")
    assert not autoawait_runners.is_nesting()
    with autoawait_runners.nesting():
        assert autoawait_runners.is_nesting()
        assert asyncio.run(nested_asyncio_run()) == "nested"
    assert identical_to_originals()
    autoawait_runners.nest_on()
    autoawait_runners.nest_on()  # idempotent
    with autoawait_runners.nesting():
        pass
    assert autoawait_runners.is_nesting()  # was on before the block: stays on
    autoawait_runners.nest_off()
    autoawait_runners.nest_off()
    assert identical_to_originals()


async def nested_asyncio_run() -> str:
    async def inner() -> str:
        return "nested"

    return asyncio.run(inner())


def test_nest_magic_says_the_state_and_strategy(ipshell: Shell) -> None:
    ipshell.output()
    ipshell.ok("%nest")
    assert "nesting shim is on" in ipshell.output()
    ipshell.ok("%nest off")
    assert "nesting shim is off" in ipshell.output()
    result = ipshell.run("%nest sideways")
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "%nest takes on, off, trio on or trio off, not 'sideways'" in ipshell.output()
    assert not autoawait_runners.is_nesting()


def test_config_can_leave_the_shim_off(ipshell: Shell) -> None:
    ipshell.ok("%unload_ext autoawait_runners")
    ipshell.ip.config.AutoawaitRunners.nest = False
    ipshell.ok("%load_ext autoawait_runners")
    assert not autoawait_runners.is_nesting()
    assert identical_to_originals()


def test_the_shim_serves_a_loop_outside_ipython() -> None:
    """A plain program (no IPython) that nests: the mechanism on its own."""
    order: list[str] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        ticker = loop.call_later(0.01, order.append, "timer ran during the nested call")
        value = loop.run_until_complete(asyncio.sleep(0.05, result=7))
        order.append("nested call returned")
        assert ticker.cancelled() is False
        assert _parking.parked_calls(loop) == 0
        return value

    with autoawait_runners.nesting():
        assert asyncio.run(main()) == 7
    assert order == ["timer ran during the nested call", "nested call returned"]


# -- N7: no nested call loses or holds up other work -----------------------------------------


def test_a_task_sharing_the_parked_callers_context_still_runs() -> None:
    # ipykernel 7 runs every cell in one Context. A caller parked in a nested call is still
    # inside it; a task made in the same Context must not lose its first step meanwhile.
    # (nest-asyncio2's test_shared_context checks the same.)
    shared = contextvars.copy_context()
    loop = asyncio.new_event_loop()

    async def answer() -> int:
        return 42

    async def caller() -> asyncio.Task[int]:
        task = loop.create_task(answer(), context=shared)
        loop.run_until_complete(asyncio.sleep(0.01))
        return task

    try:
        with autoawait_runners.nesting():
            task = loop.run_until_complete(loop.create_task(caller(), context=shared))
            loop.run_until_complete(asyncio.sleep(0.01))
        assert task.result() == 42
    finally:
        loop.close()


def test_tasks_sharing_a_parked_calls_context_run_meanwhile_and_see_its_variables() -> None:
    # ipykernel 7 runs every message's handler in one Context, and keeps cells in order with
    # a lock. While the first cell is parked in asyncio.run(), a comm message's handler (a
    # task in that Context) runs, as it would between two of the cell's steps (a cell
    # awaiting a widget needs it); the queued cells wait for the lock, and run in order.
    shared = contextvars.copy_context()
    current = contextvars.ContextVar("current", default="nobody")
    order: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        cells_in_turn = asyncio.Lock()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        async def cell(name: str, nested: float) -> None:
            async with cells_in_turn:
                current.set(name)
                if nested:
                    asyncio.run(asyncio.sleep(nested))
                order.append(f"{name} (saw {current.get()})")

        async def comm_message() -> None:
            order.append(f"comm (saw {current.get()})")

        ticking = asyncio.create_task(ticker())
        cells = [
            loop.create_task(cell(name, nested), context=shared)
            for name, nested in (("A", 0.2), ("B", 0), ("C", 0.05), ("D", 0))
        ]
        await asyncio.sleep(0.05)  # A is parked
        await loop.create_task(comm_message(), context=shared)
        await asyncio.wait(cells, timeout=30)
        ticking.cancel()
        assert all(task.done() for task in cells)
        assert ticks >= 5  # the loop went on while A was parked

    with autoawait_runners.nesting():
        asyncio.run(main())
    assert order == ["comm (saw A)", "A (saw A)", "B (saw B)", "C (saw C)", "D (saw D)"]


def test_a_background_task_parked_in_a_nested_call_holds_up_no_cell(nested_shell: Shell) -> None:
    # The asyncio runner used to run its loop on the caller's stack: a background task
    # parked there kept the cell (and the prompt) waiting until its nested call returned.
    nested_shell.ok(
        "async def parked():\n"
        "    asyncio.run(asyncio.sleep(60))\n"
        "p = asyncio.ensure_future(parked())\n"
        "await asyncio.sleep(0.05)"
    )
    assert nested_shell.ok("p.done()") is False
    assert nested_shell.ok("await asyncio.sleep(0.01, 'later cells run')") == "later cells run"
    assert nested_shell.ok("sync_library(3)") == 6  # and nest themselves
    nested_shell.ok("p.cancel()\nawait asyncio.wait([p], timeout=30)")
    assert nested_shell.ok("p.cancelled()") is True


def test_switching_runner_ends_a_background_task_parked_in_a_nested_call(
    nested_shell: Shell,
) -> None:
    nested_shell.ok(
        "cleaned = []\n"
        "async def parked():\n"
        "    try:\n"
        "        asyncio.run(asyncio.sleep(60))\n"
        "    finally:\n"
        "        cleaned.append(True)\n"
        "p = asyncio.ensure_future(parked())\n"
        "await asyncio.sleep(0.05)"
    )
    nested_shell.output()
    nested_shell.ok("%autoawait sync")
    assert nested_shell.ns["cleaned"] == [True]
    assert "cancelled 1 background task" in nested_shell.output()


# -- N8: anyio.run, and private loops of any class ------------------------------------------

ANYIO = """
import anyio, sniffio
async def library_and_double(x):
    await anyio.sleep(0.01)
    return sniffio.current_async_library(), 2 * x
"""


def test_anyio_run_nests_like_asyncio_run(nested_shell: Shell) -> None:
    pytest.importorskip("anyio")
    nested_shell.ok(ANYIO)
    assert nested_shell.ok("anyio.run(library_and_double, 1)") == ("asyncio", 2)
    assert nested_shell.ok("await asyncio.sleep(0)\nanyio.run(library_and_double, 2)") == (
        "asyncio",
        4,
    )


def test_anyio_imported_in_the_cell_that_runs_it_nests(ipshell: Shell) -> None:
    pytest.importorskip("anyio")
    # A fresh process, so that anyio is imported by the cell after the shim is on.
    code = (
        SCRIPT_SHELL + "ip.run_line_magic('load_ext', 'autoawait_runners')\n"
        "import sys; assert 'anyio' not in sys.modules\n"
        "ip.run_cell('import anyio\\nasync def one(): return 1\\nresult = anyio.run(one)')\n"
        "print(ip.user_ns['result'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "1", out.stderr


def test_anyio_run_with_the_trio_backend_nests_in_trio_cells(ipshell: Shell) -> None:
    pytest.importorskip("trio")
    pytest.importorskip("anyio")
    ipshell.ok("%autoawait trio")
    ipshell.ok("%nest trio on")
    ipshell.ok(ANYIO)
    assert ipshell.ok("anyio.run(library_and_double, 3, backend='trio')") == ("trio", 6)
    assert ipshell.ok(
        "import trio\nawait trio.sleep(0)\nanyio.run(library_and_double, 4, backend='trio')"
    ) == ("trio", 8)


UVLOOP = """
import uvloop
async def loop_class():
    await asyncio.sleep(0.01)
    return type(asyncio.get_running_loop()).__module__.split('.')[0]
"""


def test_a_private_uvloop_loop_runs_inside_a_cell(nested_shell: Shell) -> None:
    pytest.importorskip("uvloop")
    nested_shell.ok(UVLOOP)
    nested_shell.ok(
        "with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:\n"
        "    by_runner = runner.run(loop_class())"
    )
    assert nested_shell.ns["by_runner"] == "uvloop"
    assert nested_shell.ok("uvloop.new_event_loop().run_until_complete(loop_class())") == "uvloop"
    assert nested_shell.ok("await asyncio.sleep(0)\nuvloop.run(loop_class())") == "uvloop"
    uvloop_option = "backend_options={'use_uvloop': True}"
    assert nested_shell.ok(f"import anyio\nanyio.run(loop_class, {uvloop_option})") == "uvloop"
    if sys.version_info >= (3, 12):
        assert (
            nested_shell.ok("asyncio.run(loop_class(), loop_factory=uvloop.new_event_loop)")
            == "uvloop"
        )


HOG = """
import asyncio, os, signal, threading, time
parked, hog_busy = threading.Event(), threading.Event()

async def hog():
    # A background task busy in Python code most of the time, yielding now and then.
    while True:
        hog_busy.set()
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            pass
        hog_busy.clear()
        await asyncio.sleep(0.001)

async def sleeper():
    parked.set()
    try:
        await asyncio.sleep(100)
    finally:
        print("cleanup ran")

def press_while_the_hog_runs():
    # Ctrl-C once the cell waits in its nested call and the hog runs Python code.
    parked.wait(30)
    while not hog_busy.wait(30) or not hog_busy.is_set():
        pass
    os.kill(os.getpid(), signal.SIGINT)
"""


def test_ctrl_c_while_another_task_runs_goes_to_the_parked_cell_not_that_task(
    nested_shell: Shell,
) -> None:  # R5: a press while a background task runs is the cell's
    nested_shell.ok(HOG)
    nested_shell.ok("h = asyncio.create_task(hog())")
    nested_shell.ok("threading.Thread(target=press_while_the_hog_runs, daemon=True).start()")
    nested_shell.output()
    result = nested_shell.run("asyncio.run(sleeper())")
    output = nested_shell.output()
    assert isinstance(result.error_in_exec, KeyboardInterrupt), output
    assert "cleanup ran" in output
    assert nested_shell.ok("h.done()") is False, output  # the hog was not interrupted
    nested_shell.ok("h.cancel()")


# -- N1, F8: scripts pasted into a plain cell, under every runner ----------------------------

#: A synchronous script's ways of running its own loop, each asking sniffio (as anyio, httpx
#: and every anyio-based client do) which library runs its code.
PASTED_SCRIPT = """
import asyncio, anyio, sniffio
async def which_library():
    await anyio.sleep(0)
    return sniffio.current_async_library()
"""
PASTED_FORMS = {
    "asyncio.run": "asyncio.run(which_library())",
    "asyncio.Runner": "asyncio.Runner().run(which_library())",
    "run_until_complete": "asyncio.new_event_loop().run_until_complete(which_library())",
    "anyio.run": "anyio.run(which_library)",
    "anyio.run trio": "anyio.run(which_library, backend='trio')",
}
#: (runner, form) -> the start of the error it gives where it cannot work (docs/nesting.rst,
#: "Pasted scripts"); every other pair answers as without the extension.
PASTED_REFUSED = {
    ("trio", "anyio.run trio"): "RuntimeError: Attempted to call run() from inside a run()",
    ("trio-guest", "anyio.run trio"): "RuntimeError: Attempted to call run() from inside a run()",
}


@pytest.mark.parametrize("form", list(PASTED_FORMS))
@pytest.mark.parametrize("runner", ["asyncio", "thread", "uvloop", "trio", "trio-guest", "curio"])
def test_a_pasted_script_sees_the_library_it_runs(ipshell: Shell, runner: str, form: str) -> None:
    # trio marks its run for sniffio: inside a trio cell's asyncio.run(), anyio took asyncio's
    # code for trio's ("Task got bad yield"), and anyio.run() refused to start; an asyncio
    # cell's task made anyio.run(backend='trio') refuse. Without the extension a plain cell
    # runs outside any loop, and each form answers its own library.
    pytest.importorskip("anyio")
    for library in ("trio", "curio", "uvloop"):
        if library in runner or ("trio" in form and library == "trio"):
            pytest.importorskip(library)
    ipshell.ok(f"%autoawait {runner}")
    ipshell.ok(PASTED_SCRIPT)
    ipshell.output()
    refused = PASTED_REFUSED.get((runner, form))
    result = ipshell.run(f"answer = {PASTED_FORMS[form]}")
    if refused is None:
        expected = "trio" if form.endswith("trio") else "asyncio"
        assert result.error_in_exec is None, ipshell.output()
        assert ipshell.ns["answer"] == expected
    else:
        assert f"{type(result.error_in_exec).__name__}: {result.error_in_exec}".startswith(refused)
    library = LIBRARY.get(runner, "asyncio")
    ipshell.ok(f"import {library}\nawait {library}.sleep(0)")  # the session goes on
