"""The differential suite's machinery: what a session is, how each host runs one, how a
transcript is normalised and compared, and the list of known differences (F8).

The corpus (``corpus.py``) is data: sessions made of :class:`Cell` s. This module runs a
session in the host without the extension (``plain``) and under each runner, in one of three
hosts:

``shell``
   A programmatic ``InteractiveShell`` in a child process (``shell_host.py``), one fresh
   shell per session; the sessions of one run share the process.
``terminal``
   A real ``ipython`` in a pseudo-terminal, typed at; the sessions of one run share it (each
   starts from ``%reset -f``), but for those with start-up files, configuration, an
   environment of their own, or that unload the extension, exit or open windows.
``kernel``
   A real kernel through jupyter_client; the sessions of one run share a kernel (each
   starts from ``%reset -f``), but for those with start-up files, configuration or an
   environment of their own.

Every run of a host (a *group* of sessions) is independent of the others, so they go side
by side in a few threads; each test waits for the group it needs.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

HERE = Path(__file__).parent
DIFFERENCES = HERE / "differences.txt"

#: Generous: the machine is shared and noisy. A cell waits at most this long for anything.
TIMEOUT = 30.0

#: The runners compared with the host without the extension, and the library their cells
#: await with (the one ``lib`` names in a session's cells).
LIBRARY = {
    "asyncio": "asyncio",
    "thread": "asyncio",
    "uvloop": "asyncio",
    "trio": "trio",
    "trio-guest": "trio",
    "curio": "curio",
}
RUNNERS = tuple(LIBRARY)
ANY_LIBRARY = ("asyncio", "trio", "curio")

Host = Literal["shell", "terminal", "kernel"]


# -- what a session is ---------------------------------------------------------------------


@dataclass(frozen=True)
class Frontend:
    """What the frontend does while a kernel cell runs, once the cell printed ``after`` (a
    regular expression; its first group, if any, is the comm the action is for).

    ``comm_msg`` sends ``data`` to the comm (a widget's state from its view), ``comm_close``
    closes the comm from the frontend's side.
    """

    after: str
    action: Literal["comm_msg", "comm_close"]
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    """One cell a person runs, and what they do while it runs.

    ``code`` may name ``<RUNNER>``: the runner's name under the extension, IPython's own
    runner of the same library in the host without it; and ``<LIB>``, the library (files
    and start-up files may too). ``plain`` is what the host without
    the extension runs instead (a cell about the extension itself, ``%unload_ext``; the
    same number of cells keeps the same ``In [n]``). ``input``: (prompt, line) pairs, each
    line typed once its prompt is shown (``input()``, a debugger). ``interrupt``: press
    Ctrl-C once the cell printed this (and, in a terminal, sleeps). ``idle``: then leave the
    prompt idle this many seconds. ``frontend``: what a kernel's frontend does meanwhile.
    """

    code: str
    plain: str | None = None
    input: tuple[tuple[str, str], ...] = ()
    interrupt: str | None = None
    idle: float = 0.0
    frontend: tuple[Frontend, ...] = ()


@dataclass(frozen=True)
class Session:
    """A user session: cells, and everything around them the host needs.

    ``shows``: regular expressions the host without the extension must print (the behaviour
    the session is about: a session that prints nothing proves nothing). ``libraries``: the
    libraries the cells are written for (``lib`` is imported as each one, unseen, and the
    session runs under that library's runners, compared with IPython's own runner of that
    library); None: the cells await nothing library-specific, every runner runs them and the
    host's default is the baseline. ``files``: created in the working directory;
    ``startup``: the profile's ``startup/`` files; ``config``: lines of the profile's config
    file (``ipython_config.py``, or ``ipython_kernel_config.py`` for a kernel); ``env``: the
    host's environment (these three give the session a host process of its own); ``fresh``:
    a host process of its own all the same (a session that unloads the extension in a
    terminal, exits, or leaves a GUI behind); a terminal of its own also shows its start and
    its exit. ``needs``: modules that must be importable (``"display"``: an X
    display), else the session is skipped; ``when``: the versions it applies to
    (``"ipykernel>=7"``). ``sort_lines``: the order of a cell's lines is not the behaviour
    (threads printing side by side).
    """

    name: str
    about: str
    host: Host
    cells: tuple[Cell | str, ...]
    shows: tuple[str, ...]
    libraries: tuple[str, ...] | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    startup: Mapping[str, str] = field(default_factory=dict)
    config: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    fresh: bool = False
    needs: tuple[str, ...] = ()
    when: str = ""
    sort_lines: bool = False

    def __post_init__(self) -> None:
        if self.host == "shell" and (self.startup or self.config):
            raise ValueError(f"{self.name}: start-up files and config need an application host")
        if not self.shows:
            raise ValueError(f"{self.name}: say what the host without the extension shows")

    @property
    def steps(self) -> list[Cell]:
        return [cell if isinstance(cell, Cell) else Cell(cell) for cell in self.cells]

    @property
    def runners(self) -> list[str]:
        if self.libraries is None:
            return list(RUNNERS)
        return [runner for runner in RUNNERS if LIBRARY[runner] in self.libraries]

    def library(self, runner: str) -> str | None:
        """The library ``lib`` names when ``runner`` runs the session (None: not imported)."""
        return None if self.libraries is None else LIBRARY[runner]

    @property
    def own_process(self) -> bool:
        return self.fresh or bool(self.startup or self.config or self.env)


# -- which versions are here ---------------------------------------------------------------


def _version(module: str) -> tuple[int, ...]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version(module)
    except PackageNotFoundError:
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


@functools.cache
def versions() -> dict[str, tuple[int, ...]]:
    return {
        "python": sys.version_info[:3],
        "ipython": _version("ipython"),
        "ipykernel": _version("ipykernel"),
    }


_OPERATORS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a[: len(b)] == b,
}


def holds(condition: str) -> bool:
    """Whether every word of ``condition`` (``ipykernel>=7 python<3.12``) holds here."""
    here = versions()
    for word in condition.split():
        match = re.fullmatch(r"(python|ipython|ipykernel)(>=|<|==)([\d.]+)", word)
        if match is None:
            raise ValueError(f"not a condition: {word!r}")
        name, operator, wanted = match.groups()
        if not _OPERATORS[operator](here[name], tuple(int(p) for p in wanted.split("."))):
            return False
    return True


def missing_needs(session: Session) -> list[str]:
    """What the session needs that is not here."""
    import importlib.util

    lacking = []
    for need in session.needs:
        if need == "display":
            if shutil.which("Xvfb") is None:
                lacking.append("Xvfb")
        elif importlib.util.find_spec(need) is None:
            lacking.append(need)
    return lacking


# -- the list of known differences ---------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    session: str
    runner: str
    condition: str
    reason: str
    line: int


def read_differences(path: Path = DIFFERENCES) -> list[Difference]:
    """``SESSION RUNNER [CONDITION...]`` lines. An entry's reason: the comment of its section
    (a comment block whose first line starts with ``-- ``), then the comment lines right
    above its run of entries; a blank line ends a comment."""
    entries: list[Difference] = []
    section: list[str] = []
    reason: list[str] = []
    in_section = after_entry = False
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            reason, in_section, after_entry = [], False, False
        elif line.startswith("#"):
            text = line.lstrip("#").strip()
            if text.startswith("-- "):
                section, reason, in_section = [text[3:]], [], True
            elif in_section:
                section.append(text)
            else:
                if after_entry:
                    reason = []
                reason.append(text)
            after_entry = False
        else:
            name, runner, *condition = line.split()
            why = " ".join(section + reason)
            entries.append(Difference(name, runner, " ".join(condition), why, number))
            in_section, after_entry = False, True
    return entries


def listed(session: str, runner: str, entries: Iterable[Difference]) -> Difference | None:
    """The entry that lists this session under this runner here, if any."""
    for entry in entries:
        if entry.session == session and entry.runner == runner and holds(entry.condition):
            return entry
    return None


# -- normalising a transcript --------------------------------------------------------------

_ESCAPE = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-B]|\x1b[=>]"
)
#: Every line the extension prints starts so (docs/architecture.rst, "How the extension
#: speaks"). It is removed to the end of its line wherever it starts: a terminal's echo of
#: Ctrl-C, or what another thread was printing, may come first on that line.
_EXTENSION_TEXT = re.compile(r"autoawait_runners: .*$")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\s?(?:ns|[µμ]s|us|ms|s)\b")
_UUID = re.compile(
    r"\b[0-9a-f]{32}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
)
_TEMPORARY = re.compile(r"/tmp/[^\s'\"):,]+")
_PID = re.compile(r"\bpid=\d+")


def normalise(text: str, places: Mapping[str, str] = {}, *, sort_lines: bool = False) -> str:
    """A cell's output as the comparison sees it: without the extension's own lines,
    terminal escapes, carriage returns and the terminal's echo of Ctrl-C; memory addresses,
    durations, ids, process ids and temporary paths replaced by placeholders (``places``: a
    path -> its placeholder); trailing spaces and blank lines at either end dropped."""
    # The terminal's echo of Ctrl-C lands wherever the press came, among what was printed.
    text = _ESCAPE.sub("", text).replace("\r\n", "\n").replace("\r", "").replace("^C", "")
    for path, placeholder in sorted(places.items(), key=lambda item: -len(item[0])):
        text = text.replace(path, placeholder)
    lines = []
    for line in text.split("\n"):
        if "autoawait_runners: " in line:
            line = _EXTENSION_TEXT.sub("", line)
            if not line.removeprefix("[stderr] ").strip():
                continue
        line = _ADDRESS.sub("0x…", line)
        line = _UUID.sub("<id>", line)
        line = _TEMPORARY.sub("<tmp>", line)
        line = _PID.sub("pid=<pid>", line)
        line = _DURATION.sub("<duration>", line)
        lines.append(line.rstrip())
    if sort_lines:
        lines.sort()
    return "\n".join(lines).strip("\n")


def render(session: Session, outputs: list[tuple[str, str]], places: Mapping[str, str]) -> str:
    """The session's transcript: each cell's code as written (``<RUNNER>`` and all), then
    its normalised output. A host's own parts (a terminal's start and exit) are shown only
    when something is left of them."""
    parts = []
    for title, output in outputs:
        body = normalise(output, places, sort_lines=session.sort_lines)
        if title.startswith("(") and not body:
            continue
        parts.append(f">>> {title}".rstrip())
        if body:
            parts.append(body)
    return "\n".join(parts)


def compare(plain: str, runner: str, name: str) -> str:
    """A unified diff of the two transcripts ('' if they are the same)."""
    return "\n".join(
        difflib.unified_diff(
            plain.splitlines(),
            runner.splitlines(),
            "without the extension",
            name,
            lineterm="",
        )
    )


# -- runs and the groups that share a host process ----------------------------------------


@dataclass
class Run:
    """Running a session: without the extension (``runner`` None) or under a runner, with
    ``lib`` naming ``library``."""

    runner: str | None
    library: str | None

    @property
    def name(self) -> str:
        """``plain``, ``plain-trio``, ``thread``, ``thread-asyncio``: ``-LIB`` when ``lib``
        is imported."""
        return (self.runner or "plain") + (f"-{self.library}" if self.library else "")

    def substitute(self, code: str) -> str:
        """``<RUNNER>``: the runner, or IPython's own runner of the library; ``<LIB>``: the
        library."""
        library = self.library or "asyncio"
        return code.replace("<RUNNER>", self.runner or library).replace("<LIB>", library)


def baseline(session: Session, runner: str) -> Run:
    return Run(None, session.library(runner))


@dataclass
class Group:
    """Sessions of one host and run that share a host process."""

    host: Host
    run: Run
    sessions: list[Session]
    directory: Path

    @property
    def workdir(self) -> Path:
        return self.directory / "work"

    @property
    def ipythondir(self) -> Path:
        return self.directory / "ipython"

    @property
    def places(self) -> dict[str, str]:
        return {str(self.workdir): "<workdir>", str(self.ipythondir): "<ipythondir>"}

    def prepare(self) -> None:
        """The working directory with every session's files, the profile with its start-up
        files and config (the extension and runner in it, or IPython's runner)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        profile = self.ipythondir / "profile_default"
        (profile / "startup").mkdir(parents=True)
        made: dict[str, str] = {}
        for session in self.sessions:
            for relative, content in session.files.items():
                if made.setdefault(relative, content) != content:
                    raise ValueError(f"two sessions of one group make {relative} differently")
                path = self.workdir / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(self.run.substitute(content))
        lines = []
        if self.sessions[0].own_process:
            [session] = self.sessions
            for name, content in session.startup.items():
                (profile / "startup" / name).write_text(self.run.substitute(content))
            lines.append(session.config)
        run = self.run
        if run.runner is None:
            if run.library not in (None, "asyncio"):
                lines.append(f"c.InteractiveShell.loop_runner = {run.library!r}")
        else:
            lines.append('c.InteractiveShellApp.extensions.append("autoawait_runners")')
            lines.append(f"c.AutoawaitRunners.default = {run.runner!r}")
        if run.library and self.host == "terminal":
            # A kernel imports it with a silent request instead: exec_lines run before the
            # kernel's loop does, which is a session of their own ("startup-kernel").
            lines.append(
                f"c.InteractiveShellApp.exec_lines.insert(0, 'import {run.library} as lib')"
            )
        config = "ipython_kernel_config.py" if self.host == "kernel" else "ipython_config.py"
        (profile / config).write_text("\n".join(lines) + "\n")

    def environment(self, display: str | None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            IPYTHONDIR=str(self.ipythondir),
            # The session's files import from any host (the shell host's script is elsewhere).
            PYTHONPATH=os.pathsep.join([str(self.workdir), os.environ.get("PYTHONPATH", "")]),
            PYTHON_COLORS="0",
        )
        if display is not None:
            env["DISPLAY"] = display
        for session in self.sessions:
            env.update(session.env)
        return env


class HostFailed(Exception):
    """The host died or stopped answering: ``outputs``, the cells it finished, and what it
    printed after them in the message."""

    def __init__(self, message: str, outputs: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.outputs = outputs or []


#: A group's outcome: each session's cell outputs (raw), or why the host could not run it.
Outcome = dict[str, "list[tuple[str, str]] | HostFailed"]


def run_group(group: Group, display: str | None) -> Outcome:
    group.prepare()
    host = {"shell": run_shell, "terminal": run_terminal, "kernel": run_kernel}[group.host]
    return host(group, group.environment(display))


# -- the shell host ------------------------------------------------------------------------


def run_shell(group: Group, env: dict[str, str]) -> Outcome:
    job = {
        "run": group.run.runner or "plain",
        "library": group.run.library,
        "sessions": [
            {
                "name": session.name,
                "cells": [
                    {
                        "code": group.run.substitute(
                            cell.plain
                            if group.run.runner is None and cell.plain is not None
                            else cell.code
                        ),
                        "input": list(cell.input),
                    }
                    for cell in session.steps
                ],
            }
            for session in group.sessions
        ],
    }
    job_path = group.directory / "job.json"
    job_path.write_text(json.dumps(job))
    output_path, results_path = group.directory / "output", group.directory / "results"
    process = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "shell_host.py"),
            str(job_path),
            str(output_path),
            str(results_path),
        ],
        cwd=group.workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its Ctrl-C and its children are its own
    )
    last, seen = time.monotonic(), 0
    while process.poll() is None:
        time.sleep(0.05)
        count = len(results_path.read_text().splitlines()) if results_path.exists() else 0
        if count != seen:
            last, seen = time.monotonic(), count
        elif time.monotonic() - last > 2 * TIMEOUT:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            break
    output = output_path.read_bytes() if output_path.exists() else b""
    records = (
        [json.loads(line) for line in results_path.read_text().splitlines()]
        if results_path.exists()
        else []
    )
    outcome: Outcome = {}
    position = 0
    for session in group.sessions:
        cells = [record for record in records if record["session"] == session.name]
        titles = [step.code for step in session.steps] + ["(end)"]
        outputs = [
            (title, output[r["start"] : r["end"]].decode(errors="replace"))
            for title, r in zip(titles, cells, strict=False)
        ]
        if len(cells) < len(titles):
            rest = output[position:].decode(errors="replace")
            outcome[session.name] = HostFailed(
                f"the shell host stopped (exit status {process.returncode}) in cell "
                f"{len(cells) + 1}; it printed:\n{rest[-3000:]}",
                outputs,
            )
            break
        position = cells[-1]["end"] if cells else position
        outcome[session.name] = outputs
    for session in group.sessions:
        outcome.setdefault(session.name, HostFailed("not run: the host died in a session before"))
    return outcome


# -- the terminal host ---------------------------------------------------------------------

_INPUT_ENDS = "\x1b[?2004l"  # prompt_toolkit leaves bracketed paste mode: the input is taken
_PROMPT_BEGINS = "\x1b[?2004h"


class _Recorder:
    def __init__(self) -> None:
        self.pieces: list[str] = []

    def write(self, data: str) -> None:
        self.pieces.append(data)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(self.pieces)


def _asleep(pid: int) -> bool:
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):
            if "nanosleep" in (task / "wchan").read_text():
                return True
    return False


_INNER_PROMPT = re.compile(re.escape(_PROMPT_BEGINS) + "(.*?)" + re.escape(_INPUT_ENDS), re.S)
_ERASE_DOWN = "\x1b[J"


def _as_typed(prompt: re.Match[str]) -> str:
    """A prompt the cell showed (the debugger's), drawn and redrawn as keys came: its last
    drawing, the line as typed (how often it was redrawn depends on timing)."""
    drawings = [_ESCAPE.sub("", part).strip("\r\n") for part in prompt[1].split(_ERASE_DOWN)]
    return next((drawing for drawing in reversed(drawings) if drawing.strip()), "") + "\n"


def _cell_output(chunk: str) -> str:
    """What a cell printed, from what the terminal showed between sending it and the next
    prompt: after the input was taken, before the next prompt is drawn; the prompts of a
    debugger it ran, as typed at."""
    start = chunk.find(_INPUT_ENDS)
    end = chunk.rfind(_PROMPT_BEGINS)
    if start < 0:
        return chunk
    output = chunk[start + len(_INPUT_ENDS) : end if end > start else len(chunk)]
    return _INNER_PROMPT.sub(_as_typed, output)


class _Terminal:
    """``ipython`` in a pseudo-terminal, typed at as a person types (a multi-line cell is
    pasted); what each cell printed, as the terminal showed it."""

    def __init__(self, group: Group, env: dict[str, str]) -> None:
        import pexpect

        env.update(PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
        self.recorder = _Recorder()
        self.child = pexpect.spawn(
            sys.executable,
            [
                "-m",
                "IPython",
                "--no-banner",
                "--colors=nocolor",
                "--no-confirm-exit",
                "--HistoryManager.hist_file=:memory:",
            ],
            cwd=str(group.workdir),
            env=env,
            encoding="utf-8",
            timeout=TIMEOUT,
            dimensions=(50, 250),
        )
        self.child.logfile_read = self.recorder
        self.mark = 0

    def start(self) -> str:
        """What the terminal showed before the first prompt."""
        self.child.expect(r"In \[\d+\]:")
        shown = self.recorder.text()
        return shown[: shown.find(_PROMPT_BEGINS)]

    def cell(self, code: str, cell: Cell | None = None) -> str:
        cell = cell or Cell(code)
        child = self.child
        self.mark = len(self.recorder.text())
        child.send(f"\x1b[200~{code}\x1b[201~\r" if "\n" in code else code + "\r")
        child.expect_exact(_INPUT_ENDS)
        for prompt, line in cell.input:
            child.expect(prompt)
            child.sendline(line)
        if cell.interrupt is not None:
            child.expect(cell.interrupt)
            deadline = time.monotonic() + TIMEOUT
            while not _asleep(child.pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            child.sendintr()
        child.expect(r"In \[\d+\]:")
        shown = _cell_output(self.recorder.text()[self.mark :])
        if cell.idle:
            time.sleep(cell.idle)
        return shown

    def exit(self) -> str:
        """What exiting showed (atexit functions, the runner's end), and how it ended."""
        import pexpect

        self.mark = len(self.recorder.text())
        self.child.send("exit\r")
        self.child.expect(pexpect.EOF)
        self.child.close()
        shown = _cell_output(self.recorder.text()[self.mark :])
        if self.child.exitstatus or self.child.signalstatus:
            shown += f"\n(exit status {self.child.exitstatus}, signal {self.child.signalstatus})"
        return shown

    def failure(self, exc: Exception, outputs: list[tuple[str, str]]) -> HostFailed:
        shown = self.recorder.text()[self.mark :]
        return HostFailed(
            f"the terminal stopped answering in cell {len(outputs)} ({type(exc).__name__}); "
            f"it showed:\n{_cell_output(shown)[-3000:]}",
            outputs,
        )

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


def run_terminal(group: Group, env: dict[str, str]) -> Outcome:
    """Each session's cells; between two sessions of one terminal, ``%reset -f`` (and
    ``lib`` again). A session with a terminal of its own also shows its start and exit."""
    import pexpect

    terminal = _Terminal(group, env)
    outcome: Outcome = {}
    own = group.sessions[0].own_process
    try:
        start = terminal.start()
        for index, session in enumerate(group.sessions):
            outputs: list[tuple[str, str]] = [("(start)", start)] if own else []
            try:
                if index:
                    between = "%reset -f"
                    if group.run.library:
                        between += f"\nimport {group.run.library} as lib"
                    terminal.cell(between)
                for cell in session.steps:
                    code = cell.plain if group.run.runner is None and cell.plain else cell.code
                    outputs.append((cell.code, terminal.cell(group.run.substitute(code), cell)))
                if own:
                    outputs.append(("(exit)", terminal.exit()))
            except (pexpect.TIMEOUT, pexpect.EOF) as exc:
                outcome[session.name] = terminal.failure(exc, outputs)
                break
            outcome[session.name] = outputs
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        failure = terminal.failure(exc, [])
        return {session.name: failure for session in group.sessions}
    finally:
        terminal.close()
    for session in group.sessions:
        outcome.setdefault(
            session.name, HostFailed("not run: the terminal failed a session before")
        )
    return outcome


# -- the kernel host -----------------------------------------------------------------------


class _KernelSession:
    """Everything the kernel sent for each cell of a session, by the cell it names as its
    parent (a task's or thread's output belongs to the cell the kernel says, whenever it
    comes)."""

    def __init__(self, client: Any, manager: Any) -> None:
        self.client = client
        self.manager = manager
        self.items: dict[str, list[tuple[str, str]]] = {}
        self.idle: set[str] = set()

    def execute(self, code: str, *, silent: bool = False, cell: Cell | None = None) -> str:
        cell = cell or Cell(code)
        msg_id = self.client.execute(
            code, silent=silent, store_history=not silent, allow_stdin=bool(cell.input)
        )
        self.items[msg_id] = []
        inputs = list(cell.input)
        actions = list(cell.frontend)
        deadline = time.monotonic() + TIMEOUT
        while msg_id not in self.idle:
            if time.monotonic() > deadline:
                raise HostFailed(f"the kernel did not finish the cell {code!r}")
            if inputs and self.client.stdin_channel.msg_ready():
                request = self.client.get_stdin_msg(timeout=TIMEOUT)
                _prompt, line = inputs.pop(0)
                self.items[msg_id].append(("stdout", request["content"]["prompt"] + line + "\n"))
                self.client.input(line)
            self._pump(0.05)
            if actions:
                printed = "".join(text for kind, text in self.items[msg_id] if kind == "stdout")
                match = re.search(actions[0].after, printed)
                if match:
                    self._frontend(actions.pop(0), match)
        return msg_id

    def _frontend(self, action: Frontend, match: re.Match[str]) -> None:
        comm_id = match.group(1) if match.groups() else ""
        content: dict[str, Any] = {"comm_id": comm_id, "data": dict(action.data)}
        message = self.client.session.msg(action.action, content)
        self.client.shell_channel.send(message)

    def _pump(self, timeout: float) -> None:
        try:
            message = self.client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return
        parent = message["parent_header"].get("msg_id")
        kind, content = message["msg_type"], message["content"]
        if parent not in self.items:
            return
        items = self.items[parent]
        if kind == "status" and content["execution_state"] == "idle":
            self.idle.add(parent)
        elif kind == "stream":
            items.append((content["name"], content["text"]))
        elif kind == "execute_result":
            items.append(("rich", f"Out: {content['data'].get('text/plain', '')}\n"))
        elif kind == "display_data":
            items.append(("rich", f"[display] {content['data'].get('text/plain', '')}\n"))
        elif kind == "update_display_data":
            items.append(("rich", f"[update] {content['data'].get('text/plain', '')}\n"))
        elif kind == "clear_output":
            items.append(("rich", "[clear]\n"))
        elif kind == "error":
            items.append(("rich", "\n".join(content["traceback"]) + "\n"))

    def idle_for(self, seconds: float) -> None:
        """The kernel idle (no request), its output still collected."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(0.05)

    def settle(self) -> None:
        """Wait for output still on its way (each cell's streams are flushed by the time a
        later cell has ended)."""
        msg_id = self.execute("import sys; sys.stdout.flush(); sys.stderr.flush()", silent=True)
        del self.items[msg_id]
        self.idle_for(0.3)

    def output(self, msg_id: str) -> str:
        """One cell's output: stdout and what it displayed in order, then its stderr."""
        main, errors = [], []
        for kind, text in self.items[msg_id]:
            (errors if kind == "stderr" else main).append(text)
        stderr = "".join(errors)
        lines = [f"[stderr] {line}" for line in stderr.splitlines()]
        return "".join(main) + ("\n" + "\n".join(lines) if lines else "")


def run_kernel(group: Group, env: dict[str, str]) -> Outcome:
    from kernel import kernel_manager

    manager = kernel_manager(group.directory)
    outcome: Outcome = {}
    try:
        manager.start_kernel(cwd=str(group.workdir), env=env)
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=2 * TIMEOUT)
    except Exception as exc:  # the kernel never came up: every session says why
        failure = HostFailed(f"the kernel did not start: {exc!r}")
        with suppress(Exception):
            manager.shutdown_kernel(now=True)
        return {session.name: failure for session in group.sessions}
    try:
        for index, session in enumerate(group.sessions):
            state = _KernelSession(client, manager)
            try:
                if index:
                    state.execute("%reset -f", silent=True)
                if group.run.library:
                    state.execute(f"import {group.run.library} as lib", silent=True)
                msg_ids = []
                for cell in session.steps:
                    code = cell.plain if group.run.runner is None and cell.plain else cell.code
                    msg_ids.append(state.execute(group.run.substitute(code), cell=cell))
                    if cell.idle:
                        state.idle_for(cell.idle)
                state.settle()
                outcome[session.name] = [
                    (cell.code, state.output(msg_id))
                    for cell, msg_id in zip(session.steps, msg_ids, strict=True)
                ]
            except HostFailed as failure:
                outcome[session.name] = failure
                break
    finally:
        with suppress(Exception):
            client.stop_channels()
        with suppress(Exception):
            manager.shutdown_kernel(now=True)
        with suppress(OSError):
            Path(manager.connection_file).unlink()
    for session in group.sessions:
        outcome.setdefault(session.name, HostFailed("not run: the kernel failed a session before"))
    return outcome


# -- the whole suite -----------------------------------------------------------------------


class Xvfb:
    """An X server on a free display, for the sessions that open windows."""

    def __init__(self) -> None:
        read, write = os.pipe()
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-nolisten", "tcp", "-screen", "0", "800x600x24"],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as pipe:
            self.display = ":" + pipe.readline().strip()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


class Suite:
    """Runs the groups the selected comparisons need, a few side by side, each once."""

    def __init__(self, directory: Path, workers: int) -> None:
        self.directory = directory
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="differential")
        self.futures: dict[tuple[str, str], Future[Outcome]] = {}
        self.groups: dict[tuple[str, str], Group] = {}
        self.timings: dict[str, float] = {}
        self._lock = threading.Lock()
        self._xvfb: Xvfb | None = None

    def plan(self, wanted: Iterable[tuple[Session, Run]]) -> None:
        """Group what is wanted (plain runs once per session and library) and start it, the
        host processes that cost most first."""
        shared: dict[tuple[str, str], Group] = {}
        groups: list[Group] = []
        seen: set[tuple[str, str]] = set()
        for session, run in wanted:
            if (session.name, run.name) in seen:
                continue
            seen.add((session.name, run.name))
            if session.own_process:
                group = Group(
                    session.host, run, [session], self.directory / f"{session.name}--{run.name}"
                )
                groups.append(group)
            else:
                key = (session.host, run.name)
                if key not in shared:
                    shared[key] = Group(
                        session.host, run, [], self.directory / f"{session.host}--{run.name}"
                    )
                    groups.append(shared[key])
                shared[key].sessions.append(session)
            self.groups[(session.name, run.name)] = group if session.own_process else shared[key]
        cost = {"kernel": 0, "terminal": 1, "shell": 2}
        groups.sort(key=lambda group: cost[group.host])
        if any("display" in session.needs for group in groups for session in group.sessions):
            self._xvfb = Xvfb()
        for group in groups:
            future = self.executor.submit(self._run, group)
            for session in group.sessions:
                self.futures[(session.name, group.run.name)] = future

    def _run(self, group: Group) -> Outcome:
        started = time.monotonic()
        try:
            return run_group(group, self._xvfb.display if self._xvfb else None)
        finally:
            with self._lock:
                self.timings[group.directory.name] = time.monotonic() - started

    def outputs(self, session: Session, run: Run) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """The session's raw cell outputs under ``run``, and the group's paths to normalise;
        raises HostFailed if the host could not run it."""
        outcome = self.futures[(session.name, run.name)].result()[session.name]
        if isinstance(outcome, HostFailed):
            raise outcome
        return outcome, self.groups[(session.name, run.name)].places

    def transcript(self, session: Session, run: Run) -> str:
        """The session's normalised transcript under ``run``; if the host failed, what it
        finished and how it failed."""
        places = self.groups[(session.name, run.name)].places
        try:
            outputs, places = self.outputs(session, run)
        except HostFailed as failure:
            rendered = render(session, failure.outputs, places)
            message = normalise(str(failure), places)
            return f"{rendered}\n(the host failed) {message}".lstrip("\n")
        return render(session, outputs, places)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self._xvfb is not None:
            self._xvfb.stop()
