"""Fixtures that drive real IPython: a programmatic shell, and `ipython` in a pty."""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

SUPPORT = Path(__file__).parent / "support"


def pytest_configure(config: pytest.Config) -> None:
    # A coroutine never awaited (or any other RuntimeWarning), and an exception ignored in a
    # destructor, are defects here: this test run is free of them (F6). Set here, not in
    # pyproject.toml, which would also govern the pytest that ipytest runs inside a notebook
    # cell (tests/test_kernel_nesting.py), and fail it where it is meant to fail otherwise.
    config.addinivalue_line("filterwarnings", "error::RuntimeWarning")
    config.addinivalue_line("filterwarnings", "error::pytest.PytestUnraisableExceptionWarning")
    # pexpect forks a pseudo-terminal's child from this (multi-threaded) test process; the
    # child execs at once (Python 3.12+ warns of fork in threaded processes in general).
    config.addinivalue_line(
        "filterwarnings", "ignore:This process .* is multi-threaded:DeprecationWarning"
    )
    # Nothing of the user's IPython profile is read or written: not its history (kernels,
    # embedded programs and pty sessions would add their cells, which then come back as
    # suggestions at the user's own prompt), not its startup files or config (which would
    # change the sessions under test). Every IPython the run starts, in this process or in
    # another, uses a directory of the run's own, whose profile keeps history in memory too
    # (for the programs that embed IPython and load the profile's config); checked at the end.
    ipython_dir = Path(tempfile.mkdtemp(prefix="autoawait-tests-ipython-"))
    profile = ipython_dir / "profile_default"
    profile.mkdir()
    (profile / "ipython_config.py").write_text("c.HistoryManager.hist_file = ':memory:'\n")
    os.environ["IPYTHONDIR"] = str(ipython_dir)
    config.stash[IPYTHON_DIR] = ipython_dir


IPYTHON_DIR = pytest.StashKey[Path]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ipython_dir = session.config.stash.get(IPYTHON_DIR, None)
    if ipython_dir is None:
        return
    # A shell writes its history when it ends (at exit, for some): a history file made at
    # all is the defect, rows or none yet.
    written = sorted(str(path.relative_to(ipython_dir)) for path in ipython_dir.rglob("*.sqlite"))
    shutil.rmtree(ipython_dir, ignore_errors=True)
    if written:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nthe tests made history files in their IPython directory: {written}")


#: A script's first lines, for a shell in a fresh process: its history in memory (nothing
#: made in the run's IPython directory, which the run checks), as ``fresh_shell``'s.
SCRIPT_SHELL = (
    "from IPython.core.interactiveshell import InteractiveShell\n"
    "from traitlets.config import Config\n"
    "config = Config()\n"
    "config.HistoryManager.hist_file = ':memory:'\n"
    "ip = InteractiveShell.instance(config=config)\n"
)


def require(what: str, present: bool, *, unless: str) -> None:
    """Skip the test without ``what``; fail it instead where the environment variable
    ``unless`` is 1 (CI's suites that install it: a missing piece is a defect there)."""
    if present:
        return
    if os.environ.get(unless) == "1":
        pytest.fail(f"{what} is missing, and {unless}=1 says it is installed")
    pytest.skip(f"{what} is missing")


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


#: Generous: the machines are shared and noisy.
TIMEOUT = 30.0


class Shell:
    """A real InteractiveShell with the extension loaded, and helpers to run cells."""

    def __init__(self, shell: InteractiveShell, capfd: pytest.CaptureFixture[str]) -> None:
        self.ip = shell
        self.capfd = capfd

    def run(self, cell: str) -> Any:
        """Run a cell like the terminal does; return its ExecutionResult."""
        return self.ip.run_cell(cell, store_history=True)

    def ok(self, cell: str) -> Any:
        """Run a cell that must succeed; return its value."""
        result = self.run(cell)
        if result.error_before_exec or result.error_in_exec:
            out, err = self.capfd.readouterr()
            raise AssertionError(f"cell failed: {cell!r}\n{out}\n{err}")
        return result.result

    def output(self) -> str:
        """Everything printed (stdout and stderr, by any thread) since the last call."""
        out, err = self.capfd.readouterr()
        return out + err

    @property
    def ns(self) -> dict[str, Any]:
        return self.ip.user_ns  # type: ignore[no-any-return]


@contextmanager
def fresh_shell(config: Config | None = None) -> Iterator[InteractiveShell]:
    """A new InteractiveShell (with ``config``), the extension unloaded and the shell gone at
    the end."""
    InteractiveShell.clear_instance()
    config = config if config is not None else Config()
    config.HistoryManager.hist_file = ":memory:"  # nothing written to the user's profile
    ip = InteractiveShell.instance(colors="nocolor", config=config)
    try:
        yield ip
    finally:
        if "autoawait_runners" in ip.extension_manager.loaded:
            ip.run_line_magic("unload_ext", "autoawait_runners")
        ip.history_manager.end_session()
        # IPython registers each shell's exit operations with atexit: that kept every test's
        # shell alive to the end of the run, and each one's reset collected garbage then
        # (90 s of a test run's exit went to it).
        atexit.unregister(ip.atexit_operations)
        InteractiveShell.clear_instance()


@pytest.fixture
def ipshell(capfd: pytest.CaptureFixture[str]) -> Iterator[Shell]:
    """A fresh InteractiveShell with autoawait_runners loaded (asyncio runner active)."""
    with fresh_shell() as ip:
        ip.run_line_magic("load_ext", "autoawait_runners")
        yield Shell(ip, capfd)


#: The persistent runners (R1-R9) -> the library their cells await with. Tests of every
#: persistent runner take their names from here.
LIBRARY = {
    "asyncio": "asyncio",
    "thread": "asyncio",
    "trio": "trio",
    "trio-guest": "trio",
    "curio": "curio",
}
PERSISTENT = list(LIBRARY)


@pytest.fixture(params=list(LIBRARY))
def any_shell(request: pytest.FixtureRequest, ipshell: Shell) -> Shell:
    """The shell with each persistent runner selected in turn; `lib` is its library."""
    ipshell.ok(f"%autoawait {request.param}")
    ipshell.ok(f"import {LIBRARY[request.param]} as lib")
    return ipshell


# -- what a session may leave behind in the process ------------------------------------------


def process_state() -> dict[str, Any]:
    """What a session may change in the process around the shell (F8): what any code sees
    (``autoawait_test_helpers.process_state``), and asyncio's loops and the threads."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "autoawait_test_helpers", SUPPORT / "autoawait_test_helpers.py"
    )
    assert spec is not None and spec.loader is not None
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    return {
        **helpers.process_state(),
        "asyncio's running loop": asyncio._get_running_loop(),
        "asyncio's event loop": event_loop_of_this_thread(),
        # trio's own thread cache keeps an idle worker 10 s for its next use, whatever
        # used it (trio-guest waits for I/O in one): trio's, not the session's.
        "threads": {
            thread.name
            for thread in threading.enumerate()
            if not thread.name.startswith("Trio thread ")
        },
    }


def event_loop_of_this_thread() -> tuple[Any, bool | None]:
    """The loop ``asyncio.get_event_loop()`` gives this thread (outside a running loop),
    and whether it is closed, read without making one (which it does when there is none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # policies, Python 3.14
        policy = asyncio.get_event_loop_policy()
    loop = getattr(getattr(policy, "_local", None), "_loop", None)
    return loop, (loop.is_closed() if loop is not None else None)


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed, readably: the entries of a mapping, the items of a list."""
    found = []
    for key, old in before.items():
        new = after[key]
        if old == new:
            continue
        if isinstance(old, dict):
            keys = {k for k in old.keys() | new.keys() if old.get(k, None) != new.get(k, None)}
            found += [f"{key}[{k!r}]: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(keys)]
        elif isinstance(old, list):
            added = [item for item in new if item not in old]
            gone = [item for item in old if item not in new]
            found.append(f"{key}: added {added!r}, gone {gone!r}")
        else:
            found.append(f"{key}: {old!r} -> {new!r}")
    return found


def send_sigint_when(event: threading.Event) -> threading.Thread:
    """Send a real SIGINT to this process once `event` is set (from a helper thread)."""

    def run() -> None:
        if event.wait(TIMEOUT):
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Any]:
    """A fresh Jupyter kernel for one test (see kernel.py)."""
    from kernel import Kernel

    started = Kernel(tmp_path)
    try:
        yield started
    finally:
        started.shutdown()


@pytest.fixture(params=["asyncio", "thread"])
def runner_shell(request: pytest.FixtureRequest, ipshell: Shell) -> Shell:
    """The shell with each persistent asyncio-family runner selected in turn."""
    ipshell.ok(f"%autoawait {request.param}")
    ipshell.name = request.param  # type: ignore[attr-defined]
    return ipshell


# -- a real ipython in a pseudo-terminal ----------------------------------------------------


class IPythonPty:
    """`ipython` in a pty, typed at like a person would."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, program: list[str] | None = None
    ) -> None:
        import pexpect

        full_env = dict(os.environ)
        full_env.update(
            PROMPT_TOOLKIT_NO_CPR="1",
            # Python 3.14+ colours the tracebacks it prints to a terminal itself.
            PYTHON_COLORS="0",
            PYTHONPATH=os.pathsep.join([str(SUPPORT), full_env.get("PYTHONPATH", "")]),
            TERM="xterm",
        )
        full_env.update(env or {})
        self.count = 1
        # `program`: a script that embeds IPython, instead of `ipython` itself.
        argv = program or [
            "-m",
            "IPython",
            "--no-banner",
            "--colors=nocolor",
            "--no-confirm-exit",
            "--HistoryManager.hist_file=:memory:",
            *args,
        ]
        self.child = pexpect.spawn(
            sys.executable,
            argv,
            encoding="utf-8",
            timeout=TIMEOUT,
            dimensions=(50, 250),
            env=full_env,
        )
        self.transcript: list[str] = []
        self.child.logfile_read = _Recorder(self.transcript)
        self.child.expect(r"In \[(\d+)\]:")  # a startup script may have run cells already
        self.count = int(self.child.match.group(1)) + 1

    def prompt(self) -> None:
        """Wait for the next input prompt."""
        self.child.expect(rf"In \[{self.count}\]:")
        self.count += 1

    def next_prompt(self) -> None:
        """Wait for the next input prompt, whatever its number (a cell given up on with
        Ctrl-C leaves the count as it was under IPython 8, and moves it on under 9)."""
        self.child.expect(r"In \[(\d+)\]:")
        self.count = int(self.child.match.group(1)) + 1

    def wait_until_asleep(self, waits_in: str = "nanosleep") -> None:
        """Wait until a thread of the process sleeps in the kernel, in ``time.sleep``
        (``waits_in="epoll"``: in a loop's wait for events, the cell suspended at its
        await): a Ctrl-C pressed just before it starts is handled before the sleep, which
        then runs to its end (CPython looks at signals only when the call is cut short), or
        finds the cell still running its code (it is raised there, not at the await)."""
        deadline = time.monotonic() + TIMEOUT
        tasks = Path(f"/proc/{self.child.pid}/task")
        while time.monotonic() < deadline:
            for task in tasks.glob("*"):
                with suppress(OSError):
                    if waits_in in (task / "wchan").read_text():
                        return
            time.sleep(0.01)
        pytest.fail(f"no thread of the process went to sleep in {waits_in}")

    def interrupt(self, *expect: str) -> None:
        """Press Ctrl-C, wait for each expected pattern, then the next prompt."""
        self.child.sendintr()
        for pattern in expect:
            self.expect(pattern)
        self.next_prompt()

    def cell(self, line: str, *expect: str) -> None:
        """Type a one-line cell, wait for each expected pattern, then the next prompt."""
        self.child.sendline(line)
        for pattern in expect:
            self.expect(pattern)
        self.prompt()

    def expect(self, pattern: str) -> None:
        self.child.expect(pattern)

    def expect_drawn(self, text: str) -> None:
        """Wait for ``text`` on the screen, whatever escape sequences the terminal's redraws
        put between its characters (a completion inserted in the middle of a word)."""
        between = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"
        self.child.expect(between.join(re.escape(char) for char in text))

    def text(self) -> str:
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", "".join(self.transcript))

    def exit(self) -> None:
        import pexpect

        self.child.sendline("exit")
        self.child.expect(pexpect.EOF)
        self.child.close()

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


class _Recorder:
    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, data: str) -> None:
        self.into.append(data)

    def flush(self) -> None:
        pass


def start_with_runner(
    ipython_pty: type[IPythonPty], runner: str, env: dict[str, str] | None = None
) -> IPythonPty:
    """An ``ipython`` with the extension loaded, ``runner`` selected and the test helpers
    imported as ``h`` (tests/support/autoawait_test_helpers.py)."""
    ipy = ipython_pty(env=env)
    ipy.cell("%load_ext autoawait_runners")
    ipy.cell(f"%autoawait {runner}")
    ipy.cell("import autoawait_test_helpers as h")
    return ipy


@pytest.fixture
def ipython_pty() -> Iterator[type[IPythonPty]]:
    """A factory of `ipython` processes in pseudo-terminals, all killed at the end."""
    started: list[IPythonPty] = []

    class Tracked(IPythonPty):
        def __init__(self, *args: str, **kwargs: Any) -> None:
            started.append(self)
            super().__init__(*args, **kwargs)

    yield Tracked
    for pty in started:
        # Shown by pytest only when the test failed: the process as it was left (where each
        # thread waits, which signals it blocks or has pending, the terminal's modes), and
        # what the terminal showed, to the end.
        print(_process_state(pty.child))
        pty.close()
        print(f"--- the terminal's last 3000 characters:\n{pty.text()[-3000:]}")


def _process_state(child: Any) -> str:
    """Each thread's name, state, kernel wait channel and signal masks, and whether the
    terminal sends signals (ISIG): what a failed Ctrl-C test needs to say why."""
    import termios

    lines = [f"--- process {child.pid}, alive: {child.isalive()}"]
    for task in sorted(Path(f"/proc/{child.pid}/task").glob("*")):
        try:
            status = dict(
                line.split(":\t", 1) for line in (task / "status").read_text().splitlines()
            )
            wchan = (task / "wchan").read_text()
        except (OSError, ValueError):
            continue
        fields = ("Name", "State", "SigBlk", "SigPnd", "ShdPnd", "SigCgt")
        lines.append(" ".join(f"{f}={status.get(f, '?')}" for f in fields) + f" wchan={wchan}")
    with suppress(OSError, ValueError, termios.error):  # closed with the process
        lflag = termios.tcgetattr(child.child_fd)[3]
        lines.append(f"terminal ISIG: {bool(lflag & termios.ISIG)}")
    return "\n".join(lines)
