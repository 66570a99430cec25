"""embed() and aembed() inside running programs (DESIGN E1-E4), in a pseudo-terminal.

Each test runs ``tests/support/embed_hosts.py``: a real program (asyncio.run, trio.run or
no loop) that embeds IPython, typed at like a person would.

What a cell prints for a test to wait on is one string, written at once: the host prints its
ticks meanwhile (from another thread in some modes), and ``print``'s pieces are separate
writes a tick can land between. It is split in the source (``'cell' + ' waiting'``) so that the
echo of the typed line does not match it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time

import pytest
from conftest import SUPPORT, TIMEOUT, IPythonPty, Shell
from kernel import Kernel

import autoawait_runners
from autoawait_runners._embed import _embed

pytestmark = pytest.mark.pty


def host(ipython_pty: type[IPythonPty], mode: str) -> IPythonPty:
    return ipython_pty(program=[str(SUPPORT / "embed_hosts.py"), mode])


def leave(ipy: IPythonPty, *expect: str) -> None:
    """Exit the embedded shell; the host goes on to the end."""
    import pexpect

    ipy.child.sendline("exit")
    for pattern in expect:
        ipy.expect(pattern)
    ipy.expect("host: done")
    ipy.child.expect(pexpect.EOF)


@pytest.mark.parametrize("mode", ["asyncio-embed", "asyncio-aembed", "asyncio-ipython-embed"])
def test_asyncio_host_await_cells_run_on_its_loop(
    ipython_pty: type[IPythonPty], mode: str
) -> None:  # E1, E3
    ipy = host(ipython_pty, mode)
    if mode != "asyncio-ipython-embed":  # IPython's own embed() has IPython's banner
        assert "await cells run on this program's asyncio loop" in ipy.text()
    ipy.expect("host tick")  # the host's ticker runs while the prompt waits
    ipy.cell("a = await answer; print(f'the answer is {a}')", "the answer is 42")  # a host future
    ipy.cell(
        "n = ticks[0]; await asyncio.sleep(0.5); print(f'ticks during the cell: {ticks[0] - n}')",
        r"ticks during the cell: [1-9]",
    )
    # Ctrl-C cancels the cell only: the host's ticker lives on.
    ipy.child.sendline("print('cell' + ' waiting'); await asyncio.sleep(30)")
    ipy.expect("cell waiting")
    ipy.child.sendintr()
    ipy.expect("KeyboardInterrupt")
    ipy.prompt()
    ipy.cell("print(f'ticker alive: {not ticking.done()}')", "ticker alive: True")
    leave(ipy, "host: resumed, ticker alive: True")


def test_trio_host_embed_runs_await_cells_on_a_helper_run(
    ipython_pty: type[IPythonPty],
) -> None:  # E2
    pytest.importorskip("trio")
    ipy = host(ipython_pty, "trio-embed")
    assert "await cells run in a helper trio run in another thread" in ipy.text()
    ipy.cell("await trio.sleep(0.05); print('slept' + ' in trio')", "slept in trio")
    ipy.child.sendline("print('cell' + ' waiting'); await trio.sleep(30)")
    ipy.expect("cell waiting")
    ipy.child.sendintr()
    ipy.expect("KeyboardInterrupt")
    ipy.prompt()
    leave(ipy, "host: resumed")


def test_trio_host_with_a_greenback_portal_runs_await_cells_in_the_host_task(
    ipython_pty: type[IPythonPty],
) -> None:  # E2
    pytest.importorskip("trio")
    pytest.importorskip("greenback")
    ipy = host(ipython_pty, "trio-embed-greenback")
    assert "await cells run in this trio task" in ipy.text()
    ipy.expect("host tick")  # while the prompt waits: the host runs on (docs/embed.rst)
    ipy.cell(
        "n = ticks[0]; await trio.sleep(0.5); print(f'ticks during the cell: {ticks[0] - n}')",
        r"ticks during the cell: [1-9]",
    )
    leave(ipy, "host: resumed")


def test_trio_host_aembed_keeps_the_host_running(ipython_pty: type[IPythonPty]) -> None:  # E3
    pytest.importorskip("trio")
    ipy = host(ipython_pty, "trio-aembed")
    assert "await cells run in this trio task" in ipy.text()
    ipy.expect("host tick")  # while the prompt waits
    ipy.cell(
        "n = ticks[0]; await trio.sleep(0.5); print(f'ticks during the cell: {ticks[0] - n}')",
        r"ticks during the cell: [1-9]",
    )
    ipy.child.sendline("print('cell' + ' waiting'); await trio.sleep(30)")
    ipy.expect("cell waiting")
    ipy.child.sendintr()
    ipy.expect("KeyboardInterrupt")
    ipy.prompt()
    ipy.expect("host tick")  # the host's nursery was not cancelled
    leave(ipy, "host: resumed")


@pytest.mark.parametrize(
    "mode", ["asyncio-embed", "asyncio-aembed", "trio-embed", "trio-aembed", "asyncio-to-thread"]
)
def test_ctrl_c_in_the_shell_is_the_shells_and_the_program_carries_on(
    ipython_pty: type[IPythonPty], mode: str
) -> None:  # F7
    """Without it the program's own handler had the press: asyncio.run's cancelled the
    program's main task, trio's waited for the loop the shell holds up, and a shell in a
    worker thread left the KeyboardInterrupt to the main thread."""
    if mode.startswith("trio"):
        pytest.importorskip("trio")
    ipy = host(ipython_pty, mode)
    for cell in ("sum(1 for _ in iter(int, 1))", "import time; time.sleep(30)"):
        if cell.startswith("import time") and mode == "asyncio-to-thread":
            continue  # a worker thread gets it when the call returns (docs/embed.rst)
        ipy.child.sendline(f"print('cell' + ' busy'); {cell}")
        ipy.expect("cell busy")
        if "time.sleep" in cell:
            ipy.wait_until_asleep()
        ipy.interrupt("KeyboardInterrupt")
    await_cell = "await trio.sleep(30)" if mode.startswith("trio") else "await asyncio.sleep(30)"
    ipy.child.sendline(f"import asyncio, trio; print('cell' + ' waiting'); {await_cell}")
    ipy.expect("cell waiting")
    ipy.interrupt("KeyboardInterrupt")
    ipy.cell("print('still' + ' here')", "still here")
    leave(ipy, "host: resumed")


def test_a_shell_in_a_worker_thread_says_when_ctrl_c_cannot_reach_it(
    ipython_pty: type[IPythonPty],
) -> None:  # F7
    ipy = host(ipython_pty, "thread-asyncio-embed")
    assert "Ctrl-C goes to the program's main thread, not to cells here" in ipy.text()
    leave(ipy, "host: resumed")


def test_embed_with_no_loop_runs_await_cells(ipython_pty: type[IPythonPty]) -> None:  # E4
    ipy = host(ipython_pty, "no-loop")
    assert "await cells run on an asyncio loop of this shell's own" in ipy.text()
    ipy.cell("import asyncio")
    ipy.cell("async def f(): return 'from a task'")
    ipy.cell("t = await asyncio.sleep(0, result=asyncio.create_task(f()))")
    ipy.cell("print(await t)", "from a task")  # the loop persists between cells
    leave(ipy, "host: resumed after")


def test_a_host_that_crashes_while_the_shell_is_open_is_reported(
    ipython_pty: type[IPythonPty],
) -> None:
    import pexpect

    ipy = host(ipython_pty, "asyncio-crash")
    ipy.expect("the program cancelled the embedded shell")
    ipy.expect("RuntimeError: the host crashed")
    ipy.child.expect(pexpect.EOF)


# -- the strategy, programmatically --------------------------------------------------------


def test_strategy_follows_the_loop_running_here() -> None:
    assert _embed.host_description() == "await cells run on an asyncio loop of this shell's own"

    async def inside_asyncio() -> str:
        return _embed.host_description()

    assert "this program's asyncio loop" in asyncio.run(inside_asyncio())
    trio = pytest.importorskip("trio")

    async def inside_trio() -> str:
        return _embed.host_description()

    assert "helper trio run" in trio.run(inside_trio)


def test_embed_runner_in_a_plain_shell_uses_a_private_loop(ipshell: Shell) -> None:
    ipshell.ok("%autoawait embed")
    assert ipshell.ip.loop_runner is autoawait_runners.embed_runner
    ipshell.ok("import asyncio\nasync def f(): return asyncio.get_running_loop()")
    first = ipshell.ok("await f()")
    assert first is ipshell.ok("await f()")  # one loop for the session
    assert ipshell.ok("await asyncio.sleep(0, result='awaited')") == "awaited"


def test_embed_runner_runs_on_a_loop_running_below() -> None:
    """What the prompt of IPython.embed(using=...) inside asyncio.run() relies on."""

    async def host() -> object:
        async def cell() -> object:
            await asyncio.sleep(0)
            return asyncio.get_running_loop()

        return autoawait_runners.embed_runner(cell())

    assert isinstance(asyncio.run(host()), asyncio.AbstractEventLoop)
    assert sys.modules.get("autoawait_runners._embed._embed") is not None


@pytest.mark.parametrize("hosts_signal_handler", [False, True], ids=["plain", "add_signal_handler"])
def test_ctrl_c_reaches_a_cell_on_a_loop_below_whichever_thread_the_system_gives_it(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, hosts_signal_handler: bool
) -> None:  # E1, R5: with a wake-up fd of the program's loop, nothing is said about it
    monkeypatch.syspath_prepend(str(SUPPORT))
    from autoawait_test_helpers import interrupt_from_another_thread

    async def host() -> None:
        loop = asyncio.get_running_loop()
        if hosts_signal_handler:  # makes the loop's own pipe the signal wake-up fd
            loop.add_signal_handler(signal.SIGUSR1, lambda: None)

        async def cell() -> None:
            threading.Thread(target=interrupt_from_another_thread, daemon=True).start()
            await asyncio.sleep(2 * TIMEOUT)

        started = time.monotonic()
        try:
            with pytest.raises(KeyboardInterrupt):
                autoawait_runners.embed_runner(cell())
            # Not woken, the loop would run the handler when the sleep ends, and the cell
            # would end the same way: but a whole sleep late.
            assert time.monotonic() - started < TIMEOUT
        finally:
            if hosts_signal_handler:
                loop.remove_signal_handler(signal.SIGUSR1)

    asyncio.run(host())
    assert "wake-up fd" not in "".join(capfd.readouterr())


@pytest.mark.kernel
def test_embed_runner_in_a_kernel_runs_cells_on_the_kernels_loop(kernel: Kernel) -> None:
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok("%autoawait embed")
    kernel.ok(
        "import asyncio\n"
        "kernel_loop = asyncio.get_running_loop()  # a plain cell runs inside the kernel's loop\n"
        "answer = kernel_loop.create_future()\n"
        "kernel_loop.call_later(0.05, answer.set_result, 7)"
    )
    output = kernel.ok("print('got', await answer, asyncio.get_running_loop() is kernel_loop)")
    assert "got 7 True" in output


@pytest.mark.kernel
@pytest.mark.parametrize("call", ["autoawait_runners.embed()", "await autoawait_runners.aembed()"])
def test_embed_in_a_kernel_reads_lines_from_the_input_box(kernel: Kernel, call: str) -> None:
    kernel.ok("import asyncio\nkernel_loop = asyncio.get_running_loop()\nimport autoawait_runners")
    output, reply = kernel.execute(
        f"{call}\nprint('after the shell')",
        input_lines=[
            "await asyncio.sleep(0)",
            "print('on the kernel loop:', asyncio.get_running_loop() is kernel_loop)",
            "exit",
        ],
    )
    assert reply["status"] == "ok", output
    assert "on the kernel loop: True" in output
    assert "after the shell" in output


@pytest.mark.parametrize("mode", ["asyncio-embed", "asyncio-aembed", "no-loop"])
def test_the_embedded_shell_has_the_extensions_magics(
    ipython_pty: type[IPythonPty], mode: str
) -> None:  # E1, E3, E4
    ipy = host(ipython_pty, mode)
    ipy.cell("%autoawait", "embed")  # the runner stays the embed strategy, and says so
    ipy.cell("%autoawait --list", "one trio.run for the session")
    ipy.cell("%nest", "nesting shim is (on|off)")
    ipy.cell("import asyncio")
    ipy.cell("%nest on")
    ipy.cell("print('nested:', asyncio.run(asyncio.sleep(0, result=7)))", "nested: 7")
    ipy.cell("%tasks --all", "the embed runner keeps no session of its own")  # embed.rst
    ipy.cell("%time await asyncio.sleep(0.1)", "Wall time:")
    assert "ModuleNotFoundError" not in ipy.text() and "UsageError: Line magic" not in ipy.text()
    leave(ipy)
