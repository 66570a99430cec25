"""Loading, unloading and selecting runners: the S-behaviours of DESIGN.md."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SCRIPT_SHELL, SUPPORT, Shell, fresh_shell
from IPython.core.async_helpers import _asyncio_runner
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import autoawait_runners
from autoawait_runners._ipython._catalogue import BUILTIN_ENTRY_POINTS, GROUP, Catalogue

ROOT = Path(__file__).parent.parent


@pytest.fixture
def demo_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install the demo plugin distribution: a real .dist-info on sys.path."""
    dist = tmp_path / "autoawait_demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: autoawait-demo-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [{GROUP}]
            fresh = demo_runner_plugin:FreshLoopRunner
            missing = demo_runner_plugin:NeedsMissingLibrary
            failing = demo_runner_plugin:FailsToStart
            broken = demo_plugin_broken:anything
            asyncio = demo_runner_plugin:FreshLoopRunner
            nothing = demo_runner_plugin:returns_none
            number = demo_runner_plugin:returns_a_number
            interrupted = demo_runner_plugin:interrupted
            closefails = demo_runner_plugin:CloseFails
            """
        )
    )
    monkeypatch.syspath_prepend(str(SUPPORT))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield


def test_builtins_are_registered_through_the_entry_point_group() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert declared[GROUP] == BUILTIN_ENTRY_POINTS
    from importlib.metadata import entry_points

    installed = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    assert installed.items() >= BUILTIN_ENTRY_POINTS.items()


def test_dotted_paths_are_the_catalogue_objects() -> None:
    catalogue = Catalogue()
    for name in BUILTIN_ENTRY_POINTS:  # every built-in, so a new one cannot be forgotten
        attribute = f"{name.replace('-', '_')}_runner"
        assert attribute in autoawait_runners.__all__
        assert getattr(autoawait_runners, attribute) is catalogue[name].runner()


#: Imported only when something needs them.
OPTIONAL = ("trio", "curio", "greenback", "ipykernel")
#: ... and greenlet, a dependency that %load_ext does not import either: the asyncio runner
#: runs its loop in greenlets from its first cell, the other runners only when a call nests.
LAZY = (*OPTIONAL, "greenlet")


def test_importing_runners_does_not_import_their_libraries() -> None:  # P3
    code = (
        "import sys, autoawait_runners as a\n"
        "a.trio_runner, a.trio_guest_runner, a.curio_runner, a.asyncio_runner, a.thread_runner\n"
        f"print(sorted(m for m in {LAZY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_asyncio_cells_after_load_ext_import_no_optional_library() -> None:  # P3
    code = (
        "import sys\n" + SCRIPT_SHELL + "ip.run_line_magic('load_ext', 'autoawait_runners')\n"
        f"print(sorted(m for m in {LAZY!r} if m in sys.modules))\n"
        "ip.run_cell('import asyncio\\nx = 1')\n"
        "ip.run_cell('await asyncio.sleep(0)')\n"
        f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "[]"]


def test_plugins_are_looked_for_only_when_a_name_is_not_a_builtin_one() -> None:  # P3, S6
    # Reading every distribution's entry points (and importing importlib.metadata) was a
    # third of %load_ext; the built-in runners never need it.
    code = (
        "import sys\n"
        + SCRIPT_SHELL
        + "def read(): print('metadata read:', 'importlib.metadata' in sys.modules)\n"
        "read()\n"
        "ip.run_line_magic('load_ext', 'autoawait_runners')\n"
        "ip.run_line_magic('autoawait', 'thread')\n"
        "ip.run_cell('import asyncio\\nawait asyncio.sleep(0)')\n"
        "read()\n"
        "ip.run_line_magic('autoawait', '--list')\n"
        "read()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    already, after_cells, after_listing = re.findall(r"metadata read: (\w+)", out.stdout)
    if already == "True":
        pytest.skip("this IPython imports importlib.metadata itself")
    assert (after_cells, after_listing) == ("False", "True"), out.stdout


def test_loading_selects_the_asyncio_runner_and_unloading_restores_everything() -> None:
    with fresh_shell() as ip:
        before = {
            "loop_runner": ip.loop_runner,
            "trio_runner": ip.trio_runner,
            "autoawait": ip.autoawait,
            "magic": ip.magics_manager.magics["line"]["autoawait"],
        }
        class_map = dict(InteractiveShell.loop_runner_map)
        assert before["loop_runner"] is _asyncio_runner
        ip.run_line_magic("load_ext", "autoawait_runners")
        assert ip.loop_runner is autoawait_runners.asyncio_runner
        assert ip.trio_runner is autoawait_runners.asyncio_runner  # every cell goes through it
        assert ip.loop_runner_map["thread"][0] is autoawait_runners.thread_runner
        assert InteractiveShell.loop_runner_map == class_map  # the shared map is untouched
        ip.run_cell("%autoawait thread")
        ip.run_line_magic("unload_ext", "autoawait_runners")
        after = {
            "loop_runner": ip.loop_runner,
            "trio_runner": ip.trio_runner,
            "autoawait": ip.autoawait,
            "magic": ip.magics_manager.magics["line"]["autoawait"],
        }
        assert after == before
        assert all(after[k] is before[k] for k in ("loop_runner", "trio_runner", "magic"))
        assert "loop_runner_map" not in vars(ip)
        assert InteractiveShell.loop_runner_map == class_map
        assert not autoawait_runners.thread_runner.started
        assert not autoawait_runners.asyncio_runner.started
        assert "%autoawait" not in ip.strdispatchers["complete_command"].strs


def test_unload_from_a_cell_closes_the_runner_after_that_cell(ipshell: Shell) -> None:  # R8
    ipshell.ok("import asyncio; t = asyncio.create_task(asyncio.sleep(100))")
    runner = ipshell.ip.loop_runner
    ipshell.output()
    ipshell.ok("%unload_ext autoawait_runners")
    assert "cancelled 1 background task" in ipshell.output()
    assert not runner.started
    assert ipshell.ok("t.cancelled()") is True


def test_bare_autoawait_names_the_active_runner(ipshell: Shell) -> None:  # S1
    ipshell.ok("%autoawait")
    assert ipshell.output().startswith("autoawait is on; runner: asyncio (")
    ipshell.ok("%autoawait thread")
    ipshell.ok("%autoawait off")
    ipshell.ok("%autoawait")
    assert ipshell.output().startswith("autoawait is off; runner: thread (")
    ipshell.ok("%autoawait on")
    assert ipshell.ip.autoawait is True
    assert ipshell.ip.loop_runner is autoawait_runners.thread_runner


def test_list_shows_the_catalogue(ipshell: Shell) -> None:  # S2
    ipshell.ok("%autoawait --list")
    lines = ipshell.output().splitlines()
    assert lines[0].split() == ["name", "library", "installed", "active", "description"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == [
        "asyncio",
        "thread",
        "trio",
        "trio-guest",
        "curio",
        "uvloop",
        "embed",
        "sync",
    ]
    assert rows["asyncio"].split()[:4] == ["asyncio", "asyncio", "yes", "*"]
    assert "one asyncio loop for the session" in rows["asyncio"]
    assert "*" not in rows["thread"]
    ipshell.ok("%autoawait thread")
    ipshell.ok("%autoawait -l")
    rows = {line.split()[0]: line for line in ipshell.output().splitlines()[1:]}
    assert rows["thread"].split()[3] == "*"


def test_tab_completion_offers_runner_names(ipshell: Shell) -> None:  # S3
    from IPython.core.completer import provisionalcompleter

    def complete(line: str) -> set[str]:
        with provisionalcompleter():
            return {c.text for c in ipshell.ip.Completer.completions(line, len(line))}

    assert complete("%autoawait th") == {"thread"}
    assert complete("autoawait th") == {"thread"}  # automagic form
    # Only what the magic takes: no Python keywords or names from jedi.
    names = {"asyncio", "thread", "trio", "trio-guest", "curio", "uvloop", "embed", "sync"} | {
        "--list",
        "on",
        "off",
    }
    assert complete("%autoawait ") == names
    assert complete("%autoawait --l") == {"--list"}
    assert complete("%nest ") == {"on", "off", "trio"}
    assert complete("%nest trio o") == {"on", "off"}
    assert complete("%tasks --") == {"--all", "--tree"}
    assert "print" in complete("pri")  # everything else completes as before


def test_the_kernels_own_integration_is_refused_outside_a_kernel(ipshell: Shell) -> None:
    ipshell.output()
    ipshell.ok("%autoawait kernel")
    assert "in a kernel only" in ipshell.output()
    assert str(ipshell.ip.loop_runner) == "asyncio"  # unchanged
    ipshell.output()
    ipshell.ok("%autoawait --list")
    assert not [line for line in ipshell.output().splitlines() if line.startswith("kernel ")]


def test_unknown_name_suggests_close_matches_and_changes_nothing(ipshell: Shell) -> None:  # S4
    # A word a magic does not take: IPython's UsageError, one line (as %config Foo).
    result = ipshell.run("%autoawait thraed")
    assert type(result.error_in_exec).__name__ == "UsageError"
    out = ipshell.output()
    assert out.count("\n") == 1 and "Traceback" not in out
    assert "unknown runner 'thraed'; did you mean thread?" in out
    assert ipshell.ip.loop_runner is autoawait_runners.asyncio_runner


def test_a_quoted_name_is_the_name(ipshell: Shell) -> None:  # S4: typed as a string
    ipshell.ok("%autoawait 'thread'")
    assert ipshell.ip.loop_runner is autoawait_runners.thread_runner
    ipshell.ok('%autoawait "asyncio"')
    assert ipshell.ip.loop_runner is autoawait_runners.asyncio_runner


def test_a_coroutine_function_is_not_taken_for_a_runner(ipshell: Shell) -> None:  # S4, F5
    # IPython takes any callable; asyncio.sleep as the runner lost every await cell after.
    ipshell.output()
    ipshell.ok("%autoawait asyncio.sleep")
    assert "'asyncio.sleep' is not a loop runner: it is a coroutine function" in ipshell.output()
    assert ipshell.ip.loop_runner is autoawait_runners.asyncio_runner
    assert ipshell.ok("import asyncio; await asyncio.sleep(0, 'still here')") == "still here"


@pytest.mark.parametrize(
    ("factory", "line"),
    [
        ("no_such_module.new_loop", "= 'no_such_module.new_loop' cannot be imported: No module"),
        ("os.getcwd", "= 'os.getcwd' made a str, not an event loop"),
    ],
)
def test_a_loop_factory_that_makes_no_loop_is_one_line_naming_the_option(
    tmp_path: Path, factory: str, line: str
) -> None:  # F5: one line, about the option the user set (not about `default`, never set)
    out = run_ipython_with_config(
        tmp_path,
        "c.InteractiveShellApp.extensions = ['autoawait_runners']\n"
        f"c.AutoawaitRunners.loop_factory = {factory!r}\n",
        "%autoawait",
    )
    ours = [text for text in out.stderr.splitlines() if text.startswith("autoawait_runners:")]
    assert len(ours) == 1, out.stderr
    assert f"c.AutoawaitRunners.loop_factory {line}" in ours[0]
    assert "Traceback" not in out.stderr


def test_ipython_forms_keep_working(ipshell: Shell) -> None:
    ipshell.ok("%autoawait sync")
    assert ipshell.ip.autoawait is False
    assert ipshell.ip.trio_runner is None  # plain cells are IPython's again
    assert not autoawait_runners.asyncio_runner.started
    ipshell.ok("%autoawait autoawait_runners.thread_runner")
    assert ipshell.ip.loop_runner is autoawait_runners.thread_runner
    assert ipshell.ip.trio_runner is autoawait_runners.thread_runner
    assert ipshell.ok("import asyncio; await asyncio.sleep(0, 'dotted')") == "dotted"
    ipshell.ok("import asyncio\ndef my_runner(coro):\n    return asyncio.run(coro)")
    ipshell.ok("%autoawait my_runner")
    assert ipshell.ip.loop_runner is ipshell.ns["my_runner"]
    assert not autoawait_runners.thread_runner.started
    assert ipshell.ok("await asyncio.sleep(0, 'user runner')") == "user runner"
    ipshell.ok("%autoawait no.such.module_runner")
    assert "cannot import 'no.such.module_runner'" in ipshell.output()
    assert ipshell.ip.loop_runner is ipshell.ns["my_runner"]


def test_plugins_appear_and_behave_like_builtins(ipshell: Shell, demo_plugin: None) -> None:
    ipshell.ok("%unload_ext autoawait_runners")  # S6: reload to discover the new plugin
    ipshell.ok("%load_ext autoawait_runners")
    ipshell.output()
    ipshell.ok("%autoawait --list")
    rows = {line.split()[0]: line for line in ipshell.output().splitlines()[1:]}
    assert "demo plugin: a fresh asyncio loop per cell" in rows["fresh"]
    assert "cannot be loaded (ImportError: demo plugin is broken on purpose)" in rows["broken"]
    assert "no: pip install autoawait-no-such-library" in rows["missing"]
    assert "demo plugin" not in rows["asyncio"]  # a plugin cannot take a built-in name
    ipshell.ok("%autoawait fresh")
    assert str(ipshell.ip.loop_runner) == "fresh"
    assert ipshell.ok("import asyncio; await asyncio.sleep(0, 'plugin')") == "plugin"
    ipshell.ok("%autoawait")
    assert "runner: fresh (demo plugin" in ipshell.output()
    import demo_runner_plugin

    ipshell.ok("%autoawait asyncio")
    assert demo_runner_plugin.closed == ["fresh"]  # switching away closes it


def test_missing_library_prints_the_install_command(ipshell: Shell, demo_plugin: None) -> None:
    ipshell.ok("%unload_ext autoawait_runners")
    ipshell.ok("%load_ext autoawait_runners")
    ipshell.output()
    refused_in_one_line(
        ipshell,
        missing="pip install autoawait-no-such-library",
        broken="the broken runner cannot be loaded: ImportError",
        failing="the failing runner could not start: port 1 is not available",
    )


def refused_in_one_line(ipshell: Shell, **messages: str) -> None:
    """%autoawait NAME for each name: one line, with its message; the runner stays.
    (The first name that is not a built-in one has plugins looked for: what they declare
    wrong is said then, each in a line of its own, which is not counted here.)"""
    for name, message in messages.items():
        ipshell.ok(f"%autoawait {name}")
        out = "".join(
            line
            for line in ipshell.output().splitlines(keepends=True)
            if "a built-in name: left out" not in line
        )
        assert message in out and out.count("\n") == 1, out
        assert ipshell.ip.loop_runner is autoawait_runners.asyncio_runner


def test_broken_plugins_are_one_line_each_and_change_nothing(
    ipshell: Shell, demo_plugin: None
) -> None:  # F5, S6
    ipshell.ok("%unload_ext autoawait_runners")
    ipshell.ok("%load_ext autoawait_runners")
    ipshell.output()
    ipshell.ok("%autoawait --list")  # nothing a plugin does breaks the listing
    out = ipshell.output()
    # Said when plugins are first looked for: here, the listing.
    taken = "autoawait-demo-plugin declares the runner 'asyncio', a built-in name: left out"
    assert taken in out, out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "cannot be loaded (its entry point gave None, not a loop runner" in rows["nothing"]
    assert "its entry point gave 42, not a loop runner" in rows["number"]
    assert "cannot be loaded (KeyboardInterrupt" in rows["interrupted"]
    assert "pip install ?" not in rows["broken"]
    refused_in_one_line(
        ipshell,
        nothing="the nothing runner cannot be loaded: its entry point gave None",
        number="the number runner cannot be loaded",
        interrupted="the interrupted runner cannot be loaded",
    )
    assert ipshell.ok("import asyncio; await asyncio.sleep(0, 'still fine')") == "still fine"
    ipshell.output()
    ipshell.ok("%autoawait closefails")
    ipshell.ok("%autoawait asyncio")
    out = ipshell.output()
    assert "closing the closefails runner failed: RuntimeError: cannot close" in out
    assert out.count("\n") == 1 and "Traceback" not in out
    assert ipshell.ip.loop_runner is autoawait_runners.asyncio_runner


def test_builtin_runners_name_their_extra_for_install() -> None:  # S4
    # What a missing library prints (shown for real with a plugin above): for built-ins,
    # the distribution's extra.
    catalogue = Catalogue()
    assert catalogue["trio"].install_command == 'pip install "autoawait-runners[trio]"'
    assert catalogue["curio"].install_command == 'pip install "autoawait-runners[curio]"'


def test_config_default_selects_a_runner_at_start(capfd: pytest.CaptureFixture[str]) -> None:
    config = Config()  # S5, programmatically
    config.AutoawaitRunners.default = "thread"
    with fresh_shell(config) as ip:
        ip.run_line_magic("load_ext", "autoawait_runners")
        assert ip.loop_runner is autoawait_runners.thread_runner
        ip.run_line_magic("unload_ext", "autoawait_runners")
        config.AutoawaitRunners.default = "thred"
        ip.update_config(config)
        ip.run_line_magic("load_ext", "autoawait_runners")
        out = capfd.readouterr()
        assert "c.AutoawaitRunners.default: unknown runner 'thred'; did you mean thread?" in (
            out.err
        )
        assert "the asyncio runner is used instead" in out.err  # F5: still one of ours
        assert ip.loop_runner is autoawait_runners.asyncio_runner


def run_ipython_with_config(
    tmp_path: Path, config: str, code: str
) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "ipython_config.py").write_text(config)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "IPython",
            f"--profile-dir={profile}",
            "--colors=nocolor",
            "--HistoryManager.hist_file=:memory:",
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_config_magic_lists_shows_and_sets_the_options(ipshell: Shell) -> None:  # S5
    # As IPython's own configurables (%config InlineBackend): listed, shown with values and
    # help, set in the session with the effect each option's help says.
    from autoawait_runners._nesting._shim import is_nesting

    shell = ipshell
    shell.output()
    shell.ok("%config")
    assert "    AutoawaitRunners\n" in shell.output()
    shell.ok("%config AutoawaitRunners")
    shown = shell.output()
    assert "AutoawaitRunners.default=<Unicode>" in shown and "Current: 'asyncio'" in shown
    assert "AutoawaitRunners.loop_factory=<Unicode>" in shown
    try:
        shell.ok("%config AutoawaitRunners.nest = False")
        assert not is_nesting()  # at once, as %nest off
        shell.ok("%config AutoawaitRunners.nest = True")
        assert is_nesting()
        pytest.importorskip("uvloop")
        shell.ok("%config AutoawaitRunners.loop_factory = 'uvloop.new_event_loop'")
        shell.ok("%autoawait thread")  # a session started after it
        shell.ok("import asyncio")
        loop = shell.ok("await asyncio.sleep(0, asyncio.get_running_loop())")
        assert type(loop).__module__.startswith("uvloop")
        assert shell.ok("%config AutoawaitRunners.loop_factory") == "uvloop.new_event_loop"
    finally:
        shell.ok("%config AutoawaitRunners.loop_factory = ''")
    # Unset, asyncio's own loops again (the asyncio runner refuses uvloop's).
    assert autoawait_runners.asyncio_runner.loop_factory is None
    assert autoawait_runners.thread_runner.loop_factory is None
    shell.ok("%unload_ext autoawait_runners")
    assert not any(type(c).__name__ == "AutoawaitRunners" for c in shell.ip.configurables)


def test_config_file_selects_a_runner_at_start_up(tmp_path: Path) -> None:  # S5, for real
    out = run_ipython_with_config(
        tmp_path,
        'c.InteractiveShellApp.extensions = ["autoawait_runners"]\n'
        'c.AutoawaitRunners.default = "thread"\n',
        "%autoawait",
    )
    assert out.returncode == 0, out.stderr
    assert "autoawait is on; runner: thread (" in out.stdout


def test_bad_config_value_is_a_warning_not_a_crash(tmp_path: Path) -> None:  # S5
    out = run_ipython_with_config(
        tmp_path,
        'c.InteractiveShellApp.extensions = ["autoawait_runners"]\n'
        'c.AutoawaitRunners.default = "tiro"\n',
        "%autoawait",
    )
    assert out.returncode == 0, out.stderr
    assert "c.AutoawaitRunners.default: unknown runner 'tiro'; did you mean trio?" in out.stderr
    assert "Traceback" not in out.stderr
    assert "autoawait is on; runner: asyncio (" in out.stdout  # F5: the fallback


@pytest.mark.parametrize(
    ("setting", "line"),
    [
        ("nest = 'yes please'", "c.AutoawaitRunners.nest = 'yes please' is not valid"),
        ("default = 3", "c.AutoawaitRunners.default = 3 is not valid"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_and_the_extension_loads(
    tmp_path: Path, setting: str, line: str
) -> None:  # F5
    out = run_ipython_with_config(
        tmp_path,
        f'c.InteractiveShellApp.extensions = ["autoawait_runners"]\nc.AutoawaitRunners.{setting}\n',
        "%nest\n%autoawait",
    )
    assert out.returncode == 0, out.stderr
    ours = [text for text in out.stderr.splitlines() if text.startswith("autoawait_runners:")]
    assert len(ours) == 1 and ours[0].startswith(f"autoawait_runners: {line}"), out.stderr
    assert "Traceback" not in out.stderr
    assert "nesting shim is on" in out.stdout  # the extension loaded, with its defaults
    assert "autoawait is on; runner: asyncio (" in out.stdout


def test_dotted_path_in_config_works_without_the_extension(tmp_path: Path) -> None:
    out = run_ipython_with_config(
        tmp_path,
        'c.InteractiveShell.loop_runner = "autoawait_runners.thread_runner"\n',
        "import asyncio, threading, sys\n"
        "name = await asyncio.sleep(0, threading.current_thread().name)\n"
        "print(name, 'autoawait_runners._ipython._extension' in sys.modules)",
    )
    assert out.returncode == 0, out.stderr
    assert "autoawait_runners-thread False" in out.stdout


def test_extension_adopts_a_runner_set_by_dotted_path(tmp_path: Path) -> None:
    out = run_ipython_with_config(
        tmp_path,
        'c.InteractiveShell.loop_runner = "autoawait_runners.thread_runner"\n'
        'c.InteractiveShellApp.extensions = ["autoawait_runners"]\n',
        "import threading; print(threading.current_thread().name)",
    )
    assert out.returncode == 0, out.stderr
    assert "autoawait_runners-thread" in out.stdout  # plain cells run in its thread too
