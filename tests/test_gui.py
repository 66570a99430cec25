"""``%gui`` and ``%matplotlib`` in a real terminal, under every runner, each session compared
with the same session in IPython without the extension (F8).

Tk runs under Xvfb (Debian's ``xvfb``: a display of its own, started here), Qt offscreen
(PySide6, the ``gui`` extra). A test that cannot run for want of one of them is skipped;
with ``AUTOAWAIT_REQUIRE_GUI=1`` (CI, where they are installed) it fails instead.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest
from conftest import PERSISTENT, TIMEOUT, IPythonPty, has_module, require, start_with_runner

pytestmark = [pytest.mark.pty, pytest.mark.gui]

T = TypeVar("T")

RUNNERS = [*PERSISTENT, "uvloop"]
#: The runners whose session loop runs in the main thread: only the prompt runs it.
#: Set by CI where the GUI tests must run: a missing piece fails them, never skips them.
REQUIRED_BY = "AUTOAWAIT_REQUIRE_GUI"
MAIN_THREAD = ["asyncio", "trio-guest"]
#: How long the idle prompt is watched; the GUI timer and the session task tick every 50 ms.
WINDOW = 1.5
TICKS = r"ticks: gui (\d+) session (\d+)"


@pytest.fixture(scope="module")
def x_display() -> Iterator[str]:
    """An X display of the module's own: Xvfb on a display number it picks (-displayfd)."""
    require("Xvfb (the Debian package xvfb)", shutil.which("Xvfb") is not None, unless=REQUIRED_BY)
    require("tkinter", has_module("tkinter"), unless=REQUIRED_BY)
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp", "-screen", "0", "800x600x24"],
        pass_fds=[write_end],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    number = b""
    try:
        while not number.endswith(b"\n"):
            if not select.select([read_end], [], [], TIMEOUT)[0]:
                pytest.fail("Xvfb did not say which display it took")
            chunk = os.read(read_end, 16)
            if not chunk:
                pytest.fail(f"Xvfb ended at once (status {server.wait()})")
            number += chunk
        yield f":{number.decode().strip()}"
    finally:
        os.close(read_end)
        server.terminate()
        server.wait(TIMEOUT)


def gui_env(toolkit: str, display: str | None) -> dict[str, str]:
    """What a session of ``toolkit`` needs: Tk an X display, Qt its offscreen platform."""
    if toolkit in ("qt", "matplotlib qt"):
        require("PySide6 (the gui extra)", has_module("PySide6"), unless=REQUIRED_BY)
        # IPython's Qt hook stands down on Linux without DISPLAY, even offscreen; matplotlib
        # wants one it can open.
        return {"QT_QPA_PLATFORM": "offscreen", "DISPLAY": display or ":0"}
    assert display is not None
    return {"DISPLAY": display}


def session(ipython_pty: type[IPythonPty], runner: str, env: dict[str, str]) -> IPythonPty:
    """``ipython`` with the extension and ``runner``, the test helpers as ``h`` and the GUI
    helpers as ``g``."""
    ipy = start_with_runner(ipython_pty, runner, env=env)
    ipy.cell("import autoawait_gui_helpers as g")
    return ipy


def ticks_at_the_idle_prompt(ipy: IPythonPty, gui: str, runner: str | None) -> tuple[int, int]:
    """Turn ``gui`` on (``%gui tk``, ``%matplotlib qt``...), start its timer (and a session
    task, with the extension), then count their ticks over :data:`WINDOW` with no cell
    running."""
    magic, _, toolkit = gui.rpartition(" ")
    ipy.cell(f"%{magic or 'gui'} {toolkit}")
    ipy.cell(f"w = g.start_{'matplotlib' if magic else toolkit}_timer()")
    if runner is not None:
        ipy.cell("t = await h.background(g.count_session_ticks)")
    ipy.cell(f"g.report_ticks_after({WINDOW})")
    ipy.expect(TICKS)
    gui_ticks, session_ticks = ipy.child.match.group(1), ipy.child.match.group(2)
    ipy.cell("print('still', 'here')", "still here")
    return int(gui_ticks), int(session_ticks)


def idle_cpu(ipy: IPythonPty, runner: str | None) -> float:
    """The process's CPU use (% of a core) at the idle prompt, a GUI window open and nothing
    ticking (a session task waits)."""
    ipy.cell("g.stop_ticking()")
    if runner is not None:
        ipy.cell("s = await h.background(h.sleep, 3600)")
    ipy.cell("g.report_cpu_after(2)")
    ipy.expect(r"cpu: ([\d.]+) %")
    return float(ipy.child.match.group(1))


#: Cells whose output, in a terminal, is IPython's own words about GUI event loops: none
#: active, one refused while another is on, an unknown one (the list of those it knows).
GUI_MAGICS = ["%gui", "%gui tk", "%gui asyncio", "%gui tk", "%gui", "%gui", "%gui bogus"]


def outputs(ipy: IPythonPty, cells: list[str]) -> list[str]:
    """What each cell printed (its echo and the prompts left out, escapes removed)."""
    printed = []
    for cell in cells:
        ipy.child.sendline(cell)
        ipy.prompt()
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", ipy.child.before)
        printed.append(text.split("\r\r\n", 1)[-1].strip())
    return printed


@dataclass
class TkSession:
    """What a session with Tk showed: the GUI magics' words, the ticks of a Tk timer and of
    a session task over :data:`WINDOW` at the idle prompt, then the idle CPU."""

    magics: list[str]
    ticks: tuple[int, int]
    cpu: float


def tk_session(ipy: IPythonPty, runner: str | None) -> TkSession:
    magics = outputs(ipy, GUI_MAGICS)  # and none is on after them
    ticks = ticks_at_the_idle_prompt(ipy, "tk", runner)
    return TkSession(magics, ticks, idle_cpu(ipy, runner))


class Without:
    """Sessions in IPython without the extension, each run once for the module."""

    def __init__(self) -> None:
        self._seen: dict[str, object] = {}
        self._started: list[IPythonPty] = []

    def ran(self, gui: str, env: dict[str, str], run: Callable[[IPythonPty], T]) -> T:
        """What ``run`` gave in a session of ``gui`` without the extension (as ``session``
        makes them, less the extension)."""
        if gui not in self._seen:
            ipy = IPythonPty(env=env)
            self._started.append(ipy)
            ipy.cell("import autoawait_test_helpers as h")
            ipy.cell("import autoawait_gui_helpers as g")
            self._seen[gui] = run(ipy)
            ipy.exit()
        return self._seen[gui]  # type: ignore[return-value]

    def close(self) -> None:
        for ipy in self._started:
            ipy.close()


@pytest.fixture(scope="module")
def without_extension() -> Iterator[Without]:
    without = Without()
    yield without
    without.close()


def assert_ticks_as_without(
    gui: str, runner: str, counts: tuple[int, int], without: tuple[int, int]
) -> None:
    gui_ticks, session_ticks = counts
    print(f"{gui} under {runner}: {counts}; without the extension: {without}")
    # The GUI's own events run at the idle prompt about as often as without the extension
    # (fault: 0-1 ticks under asyncio and trio-guest, %gui refused; a crash of IPython under
    # the thread runners, whose cells make the window in their loop thread)...
    assert gui_ticks >= max(without[0] // 2, 5), (gui, runner, counts, without)
    # ... and so does the session's background task (R2): 50 ms ticks.
    assert session_ticks >= WINDOW / 0.05 / 3, (gui, runner, counts, without)


@pytest.mark.parametrize("runner", RUNNERS)
def test_tk_at_the_idle_prompt_as_without_the_extension(
    ipython_pty: type[IPythonPty], x_display: str, without_extension: Without, runner: str
) -> None:  # F8, R2, P4
    env = gui_env("tk", x_display)
    without = without_extension.ran("tk", env, lambda ipy: tk_session(ipy, None))
    ipy = session(ipython_pty, runner, env)
    seen = tk_session(ipy, runner)
    # %gui's words are IPython's, the same (fault: "Shell is already running a different
    # gui event loop for autoawait_runners" for %gui tk, nothing for %gui with none on).
    assert seen.magics == without.magics
    assert "No event loop hook running." in without.magics[0]
    assert_ticks_as_without("tk", runner, seen.ticks, without.ticks)
    # Nothing polls (measured on two loaded cores: 0.2 % without the extension, 0.4-0.6 %
    # with it); uvloop takes turns with the GUI (every 20 ms): about 2 %.
    print(f"idle CPU with a Tk window: {seen.cpu} % under {runner}, {without.cpu} % without")
    assert seen.cpu < (4.0 if runner == "uvloop" else 2.0), seen.cpu
    assert "autoawait_runners:" not in ipy.text()  # nothing failed, nothing to say
    ipy.exit()


@pytest.mark.parametrize("runner", MAIN_THREAD)
def test_a_qt_timer_ticks_at_the_idle_prompt_as_without_the_extension(
    ipython_pty: type[IPythonPty], without_extension: Without, runner: str
) -> None:  # F8, R2
    env = gui_env("qt", None)
    without = without_extension.ran(
        "qt", env, lambda ipy: ticks_at_the_idle_prompt(ipy, "qt", None)
    )
    ipy = session(ipython_pty, runner, env)
    assert_ticks_as_without("qt", runner, ticks_at_the_idle_prompt(ipy, "qt", runner), without)
    assert "autoawait_runners:" not in ipy.text()
    ipy.exit()


@pytest.mark.parametrize("runner", ["thread", "trio"])
def test_qt_stays_in_the_main_thread_under_the_thread_runners(
    ipython_pty: type[IPythonPty], runner: str
) -> None:  # F8, a listed difference (docs/runners.rst): these runners' cells run in their
    # loop thread, and Qt's GUI belongs in the main one (widgets made and served in another
    # thread hang IPython at exit): Qt runs there, as IPython runs it, so a timer a cell
    # makes gets no events. The session runs on, and nothing fails.
    ipy = session(ipython_pty, runner, gui_env("qt", None))
    gui_ticks, session_ticks = ticks_at_the_idle_prompt(ipy, "qt", runner)
    assert gui_ticks == 0
    assert session_ticks >= WINDOW / 0.05 / 3
    assert "autoawait_runners:" not in ipy.text()
    ipy.exit()


@pytest.mark.parametrize(
    ("backend", "runner"),
    # One runner of each way the GUI is served (the %gui tests above take every runner).
    [("tk", "asyncio"), ("tk", "trio-guest"), ("tk", "trio"), ("qt", "asyncio")],
)
def test_a_matplotlib_timer_ticks_at_the_idle_prompt_as_without_the_extension(
    ipython_pty: type[IPythonPty],
    x_display: str,
    without_extension: Without,
    backend: str,
    runner: str,
) -> None:  # F8, R2: %matplotlib goes through the same enable_gui as %gui
    require("matplotlib (the gui extra)", has_module("matplotlib"), unless=REQUIRED_BY)
    gui = f"matplotlib {backend}"
    env = gui_env(gui, x_display)
    without = without_extension.ran(gui, env, lambda ipy: ticks_at_the_idle_prompt(ipy, gui, None))
    ipy = session(ipython_pty, runner, env)
    assert_ticks_as_without(gui, runner, ticks_at_the_idle_prompt(ipy, gui, runner), without)
    ipy.exit()


@pytest.mark.parametrize("runner", [*MAIN_THREAD, "trio"])
def test_ctrl_c_at_the_idle_prompt_and_in_a_cell_with_a_gui_on(
    ipython_pty: type[IPythonPty], x_display: str, runner: str
) -> None:  # R5, F3: the prompt's Ctrl-C is a key, as without the extension
    ipy = session(ipython_pty, runner, gui_env("tk", x_display))
    ipy.cell("%gui tk")
    ipy.cell("w = g.start_tk_timer()")
    ipy.cell("t = await h.background(h.tick, 0.05)")
    ipy.expect("tick 5")  # the session runs at the prompt, the GUI waiting in it
    ipy.child.send("discarded")
    ipy.expect("discarded")
    ipy.child.sendintr()  # at the idle prompt, a key: what was typed is dropped
    ipy.cell("print('typed', 'after')", "typed after")  # not "discardedprint(...)"
    ipy.child.sendline("print('sleeping', 6 * 7); await h.sleep(60)")
    ipy.expect("sleeping 42")
    ipy.interrupt("KeyboardInterrupt")  # in a cell, a signal, as ever
    ipy.cell("g.report_ticks_after(1)")
    ipy.expect(r"ticks: gui ([1-9]\d*) session")  # the GUI still runs at the prompt
    ipy.exit()


def test_unloading_leaves_the_prompt_as_it_was(ipython_pty: type[IPythonPty]) -> None:
    # The prompt's hook is composed by wrapping pt_app's prompt methods on the instance:
    # %unload_ext takes the wrappers away, and the class's own methods are back.
    ipy = start_with_runner(ipython_pty, "asyncio")
    ipy.cell("pt_app = get_ipython().pt_app")
    ipy.cell(
        "print('wrapped:', sorted(set(vars(pt_app)) & {'prompt', 'prompt_async'}))",
        r"wrapped: \['prompt', 'prompt_async'\]",
    )
    ipy.cell("%unload_ext autoawait_runners")
    ipy.cell(
        "print('wrapped:', sorted(set(vars(pt_app)) & {'prompt', 'prompt_async'}))",
        r"wrapped: \[\]",
    )
    ipy.exit()


def test_gui_asyncio_says_what_it_costs_the_session(ipython_pty: type[IPythonPty]) -> None:
    # A listed difference (docs/runners.rst): under %gui asyncio IPython reads input on its
    # own asyncio loop and calls no input hook, so the session loop stands still at the
    # prompt; one line says so (it was refused: "a different gui event loop for
    # autoawait_runners"). %gui turns it off, and the session runs at the prompt again.
    ipy = start_with_runner(ipython_pty, "asyncio")
    ipy.cell(
        "%gui asyncio",
        "%gui asyncio reads input on IPython's own loop: asyncio background tasks run only",
    )
    ipy.cell("%gui")
    ipy.cell("t = await h.background(h.tick, 0.05)")
    ipy.expect("tick 3")  # no cell runs: the idle prompt again
    ipy.exit()


def test_a_gui_hook_that_fails_is_one_line_and_the_session_goes_on(
    ipython_pty: type[IPythonPty], x_display: str
) -> None:  # F8, F3: a Tk window made in the main thread (asyncio), served by the thread
    # runner in its loop thread: Tcl refuses. Without the extension IPython would end.
    ipy = session(ipython_pty, "asyncio", gui_env("tk", x_display))
    ipy.cell("%gui tk")
    ipy.cell("w = g.start_tk_timer()")
    ipy.cell("%autoawait thread")
    ipy.expect("the tk event loop failed at the prompt")
    ipy.cell("t = await h.background(h.tick, 0.05)")
    ipy.expect("tick 3")  # the thread runner's session runs on
    ipy.cell("print('still', 'here')", "still here")
    assert ipy.text().count("event loop failed") == 1  # left out until %gui changes
    ipy.exit()
