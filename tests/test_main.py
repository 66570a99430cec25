"""``python -m autoawait_runners`` and ``autoawait-ipython``: IPython with the extension and a
runner, in one command (``__main__``); everything that is not a runner is IPython's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IPythonPty

IPYTHON_OPTIONS = ["--no-banner", "--colors=nocolor", "--HistoryManager.hist_file=:memory:"]


def command(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command run as a user runs it, without a terminal; its output and status."""
    return subprocess.run(
        [sys.executable, "-m", "autoawait_runners", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.pty
@pytest.mark.parametrize("runner", [["trio"], ["--runner", "trio-guest"], []])
def test_one_command_starts_a_session_with_the_runner(
    ipython_pty: type[IPythonPty], runner: list[str]
) -> None:
    ipy = ipython_pty(program=["-m", "autoawait_runners", *runner, *IPYTHON_OPTIONS])
    expected = runner[-1] if runner else "asyncio"
    library = expected.split("-")[0]
    ipy.cell("%autoawait", f"runner: {expected}")
    ipy.cell("import sniffio; await __import__(sniffio.current_async_library()).sleep(0)")
    ipy.cell("print('library:', sniffio.current_async_library())", f"library: {library}")
    ipy.exit()


@pytest.mark.pty
def test_the_banner_names_the_runner(ipython_pty: type[IPythonPty]) -> None:
    ipy = ipython_pty(program=["-m", "autoawait_runners", "thread", "--colors=nocolor"])
    assert "autoawait_runners: the thread runner (%autoawait --list for the others)" in ipy.text()
    ipy.exit()


@pytest.mark.pty
def test_the_banner_names_the_runner_the_session_has(
    ipython_pty: type[IPythonPty], tmp_path: Path
) -> None:
    # The config file's default, not asyncio (the line was written before the config was
    # read); and IPython's own runner when the one asked for cannot start.
    profile = tmp_path / "profile_default"
    profile.mkdir()
    (profile / "ipython_config.py").write_text('c.AutoawaitRunners.default = "trio"\n')
    env = {"IPYTHONDIR": str(tmp_path)}
    ipy = ipython_pty(program=["-m", "autoawait_runners", "--colors=nocolor"], env=env)
    assert "autoawait_runners: the trio runner (%autoawait --list for the others)" in ipy.text()
    assert "asyncio runner" not in ipy.text()
    ipy.exit()
    bad = "--AutoawaitRunners.loop_factory=no_such_module.new_loop"
    ipy = ipython_pty(
        program=["-m", "autoawait_runners", "asyncio", bad, "--colors=nocolor"], env=env
    )
    text = ipy.text()
    assert "the asyncio runner could not start: c.AutoawaitRunners.loop_factory" in text
    assert "autoawait_runners: IPython's own asyncio runner" in text
    assert "autoawait_runners: the asyncio runner (" not in text
    ipy.exit()


def test_a_script_runs_as_ipython_runs_it(tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("import sys\nprint('hello from', __name__, sys.argv[1:])\n")
    for args in (
        ["hello.py", "one"],
        ["trio", "hello.py", "one"],
        ["--runner=thread", "hello.py", "one"],
    ):
        done = command(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "hello from __main__ ['one']" in done.stdout
        assert "unknown runner" not in done.stderr
    done = command("-c", "print(6 * 7)")
    assert done.returncode == 0 and done.stdout.strip().endswith("42"), done


def test_a_runners_name_is_the_runner_beside_a_folder_or_file_of_that_name(
    tmp_path: Path,
) -> None:
    # A trio checkout is a folder named trio: the first argument is still the runner (it was
    # taken for a script: "File 'trio/__main__.py' doesn't exist", and with -c the session
    # silently had asyncio).
    (tmp_path / "trio").mkdir()
    (tmp_path / "trio" / "README.rst").write_text("trio\n")
    show = "print('runner:', get_ipython().loop_runner)"
    done = command("trio", "-c", show, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("runner: trio"), done
    # A script named as a runner is ./NAME, and runs as plain IPython runs it.
    (tmp_path / "curio").write_text("import sys\nprint('script ran', sys.argv[1:])\n")
    done = command("./curio", "one", cwd=tmp_path)
    plain = subprocess.run(
        [sys.executable, "-m", "IPython", "./curio", "one"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert plain.returncode == 0 and "script ran ['one']" in plain.stdout, plain
    assert done.returncode == 0 and done.stdout == plain.stdout, (done, plain)
    done = command("curio", "-c", show, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("runner: curio") and "script ran" not in done.stdout


def test_an_unknown_runner_is_an_error_with_its_close_matches() -> None:
    for args in (["tiro"], ["--runner", "tiro"], ["--runner=tiro", "-c", "pass"]):
        done = command(*args)
        assert done.returncode == 2, done
        assert done.stderr.strip() == (
            "autoawait-ipython: unknown runner 'tiro'; did you mean trio? (--list shows them all)"
        ), done.stderr
        assert done.stdout == ""  # no session started
    done = command("--runner")
    assert done.returncode == 2 and "--runner needs a runner's name" in done.stderr


def test_list_prints_the_catalogue() -> None:
    done = command("--list")
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()[1:]]
    assert names == ["asyncio", "thread", "trio", "trio-guest", "curio", "uvloop", "embed", "sync"]
    # No session here: no "active" column (it was always empty).
    assert done.stdout.splitlines()[0].split() == ["name", "library", "installed", "description"]


def test_help_opens_with_this_commands_usage_and_the_runners() -> None:
    done = command("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: autoawait-ipython [RUNNER | --runner RUNNER]")
    ours, _, ipythons = done.stdout.partition("IPython's options:")
    assert "trio-guest" in ours and "--list" in ours
    assert "--profile" in ipythons  # then IPython's own help


def test_ipythons_subcommands_are_ipythons(tmp_path: Path) -> None:
    done = command("profile", "list", f"--ipython-dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    assert "ipython --profile=<name>" in done.stdout  # what `ipython profile list` says


def test_help_all_lists_the_extensions_options_with_ipythons() -> None:  # issue 23 (3)
    done = command("--help-all")
    assert done.returncode == 0, done.stderr
    assert "--AutoawaitRunners.default=<Unicode>" in done.stdout
    assert "--TerminalInteractiveShell." in done.stdout
