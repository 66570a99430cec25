"""The ``uvloop`` runner and ``c.AutoawaitRunners.loop_factory`` (``_uvloop``, ``_config``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Shell, fresh_shell
from IPython.core.interactiveshell import InteractiveShell
from kernel import Kernel
from traitlets.config import Config

pytest.importorskip("uvloop")

TICKER = (
    "ticks = []\n"
    "async def ticker():\n"
    "    while True:\n"
    "        ticks.append(1)\n"
    "        await asyncio.sleep(0.01)\n"
    "t = asyncio.create_task(ticker())"
)


@pytest.fixture
def uvloop_shell(ipshell: Shell) -> Shell:
    ipshell.ok("%autoawait uvloop")
    ipshell.ok("import asyncio")
    return ipshell


def test_the_session_runs_on_uvloop_and_lives_between_cells(uvloop_shell: Shell) -> None:
    shell = uvloop_shell  # R1, R2, R3, R8
    assert shell.ok("type(asyncio.get_running_loop()).__module__").startswith("uvloop")
    shell.ok(TICKER)
    shell.ok("n = len(ticks); await asyncio.sleep(0.2)")
    assert shell.ok("len(ticks) > n") is True
    shell.output()
    shell.ok("%autoawait asyncio")
    assert "uvloop runner closed: cancelled 1 background task" in shell.output()


def test_a_nested_asyncio_run_on_uvloop_runs_on_a_loop_of_its_own(uvloop_shell: Shell) -> None:
    # N1 on a uvloop session loop, which cannot be re-entered: asyncio.run() in a cell runs
    # on a fresh loop, as without the extension, while the session waits for it.
    shell = uvloop_shell
    shell.ok("async def loop_kind():\n    return type(asyncio.get_running_loop()).__module__")
    shell.ok(TICKER)
    assert shell.ok("asyncio.run(loop_kind())") == "asyncio.unix_events"
    # The session waits for it, as for any call a cell makes: nothing of it runs meanwhile.
    shell.ok("before = len(ticks); asyncio.run(asyncio.sleep(0.1)); during = len(ticks) - before")
    assert shell.ns["during"] == 0
    shell.ok("await asyncio.sleep(0.2)")
    assert shell.ok("len(ticks) > before")  # and goes on
    # Running the session loop itself from a cell cannot be: one clear error, at once.
    result = shell.run(
        "refused = loop_kind(); asyncio.get_event_loop().run_until_complete(refused)"
    )
    assert isinstance(result.error_in_exec, RuntimeError)
    assert "cannot re-enter a running Loop" in str(result.error_in_exec)
    # The refused coroutine is closed, not left to warn "never awaited" cells later (F6).
    assert shell.ok("import inspect; inspect.getcoroutinestate(refused)") == "CORO_CLOSED"
    assert shell.ok("await asyncio.sleep(0, 'still here')") == "still here"


@pytest.fixture
def configured(capfd: pytest.CaptureFixture[str]) -> Iterator[tuple[Config, InteractiveShell]]:
    config = Config()
    with fresh_shell(config) as ip:
        yield config, ip


def test_loop_factory_gives_the_thread_runner_its_loop(
    configured: tuple[Config, InteractiveShell], capfd: pytest.CaptureFixture[str]
) -> None:  # S5
    config, ip = configured
    config.AutoawaitRunners.loop_factory = "uvloop.new_event_loop"
    config.AutoawaitRunners.default = "thread"
    ip.update_config(config)
    ip.run_line_magic("load_ext", "autoawait_runners")
    ip.run_cell("import asyncio\nkind = type(asyncio.get_running_loop()).__module__")
    assert ip.user_ns["kind"].startswith("uvloop")
    # The asyncio runner re-enters its loop between cells: uvloop's cannot be. One line.
    capfd.readouterr()
    ip.run_line_magic("autoawait", "asyncio")
    err = capfd.readouterr().err
    assert "use the thread runner with this loop_factory" in err and "Traceback" not in err
    assert str(ip.loop_runner) == "thread"
    ip.run_line_magic("unload_ext", "autoawait_runners")
    import autoawait_runners

    assert autoawait_runners.thread_runner.loop_factory is None  # unloading puts it back


def test_a_bad_loop_factory_is_one_line(
    configured: tuple[Config, InteractiveShell], capfd: pytest.CaptureFixture[str]
) -> None:  # F5
    config, ip = configured
    config.AutoawaitRunners.loop_factory = "no_such_module.new_event_loop"
    ip.update_config(config)
    ip.run_line_magic("load_ext", "autoawait_runners")
    capfd.readouterr()
    for runner in ("thread", "asyncio"):
        ip.run_line_magic("autoawait", runner)
        err = capfd.readouterr().err
        assert (
            f"the {runner} runner could not start: c.AutoawaitRunners.loop_factory = "
            "'no_such_module.new_event_loop' cannot be imported: No module named "
            "'no_such_module'"
        ) in err, err
        assert "Traceback" not in err and err.strip().count("\n") == 0, err


@pytest.mark.kernel
def test_the_uvloop_runner_in_a_kernel(kernel: Kernel) -> None:  # K1
    kernel.ok("%load_ext autoawait_runners")
    kernel.ok("%autoawait uvloop")
    kernel.ok("import asyncio\n" + TICKER)
    out = kernel.ok(
        "n = len(ticks)\nawait asyncio.sleep(0.2)\n"
        "print(type(asyncio.get_running_loop()).__module__, len(ticks) > n)"
    )
    assert "uvloop" in out and "True" in out, out
