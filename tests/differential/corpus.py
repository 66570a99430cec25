"""The differential suite's corpus: sessions people run, as data (F8).

Each session runs once in the host without the extension and once under each runner it
applies to; machinery.py says how. To add one: append a :class:`Session` below, in the
area it belongs to, with what the host without the extension must show (``shows``), and
run ``pytest tests/differential -k NAME``. A difference the extension has on purpose, or
one being fixed, goes in differences.txt with its reason (docs/differences.rst).

Cells that await something are written with ``lib`` (``await lib.sleep(0)``) where asyncio,
trio and curio alike have it, and say ``libraries=ANY_LIBRARY``: they run under every
runner, each compared with IPython's own runner of its library. Multi-line cells are
pasted into a terminal as a person pastes them.
"""

from __future__ import annotations

import json
from pathlib import Path

from machinery import ANY_LIBRARY, Cell, Frontend, Session

ASYNCIO = ("asyncio",)
ONE_SEVENTH = "decimal.Decimal(1) / 7"


def notebook(*cells: str) -> str:
    """A notebook file (nbformat 4) with these code cells."""
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [
                {
                    "cell_type": "code",
                    "id": f"cell{index}",
                    "metadata": {},
                    "execution_count": None,
                    "outputs": [],
                    "source": source,
                }
                for index, source in enumerate(cells)
            ],
        }
    )


def printed(line: str) -> str:
    """A debugger's answer as a line of its own, to wait for before typing the next command:
    its prompt cannot be waited for, as prompt_toolkit redraws it while the previous command
    is typed (the next command then came out before the answer)."""
    return rf"(\n|\x1b\[\?2004l){line}\r"  # after a newline, or prompt_toolkit's input end


def ticking(name: str) -> str:
    """A cell that says whether ``name`` (a list a GUI timer appends to) grew at the idle
    prompt: IPython's input hook runs the GUI's loop there, about 40 ticks in 2 s."""
    return f"print('ticking' if len({name}) >= 10 else f'stood still: {{len({name})}} ticks')"


def awaited_at_once(future: str, saying: str) -> str:
    """Lines of a cell that await ``future`` (set by a kernel's callback) and print its
    result and whether it came at once: a result set without waking the loop (from another
    thread) is seen only when the loop next wakes, at the timeout."""
    return (
        "started = time.monotonic()\n"
        f"result = await asyncio.wait_for({future}, 8)\n"
        f"print({saying!r}, result, 'at once' if time.monotonic() - started < 6 else 'late')"
    )


SESSIONS: list[Session] = []

# -- %gui and %matplotlib: the GUI's loop runs at the idle prompt -------------------------

SESSIONS += [
    Session(
        "gui-tk",
        "%gui tk: a Tk after() loop ticks while the prompt waits",
        "terminal",
        (
            "%gui tk",
            "import tkinter; root = tkinter.Tk(); ticks = []",
            Cell("def tick():\n    ticks.append(1)\n    root.after(50, tick)\n\ntick()", idle=2.0),
            ticking("ticks"),
            "root.destroy()",
        ),
        shows=("ticking",),
        needs=("tkinter", "display"),
        fresh=True,
    ),
    Session(
        "gui-qt",
        "%gui qt: a QTimer ticks while the prompt waits",
        "terminal",
        (
            "%gui qt",
            "from PySide6 import QtCore, QtWidgets; app = QtWidgets.QApplication.instance() or "
            "QtWidgets.QApplication([])",
            Cell(
                "ticks = []; timer = QtCore.QTimer(); timer.timeout.connect(lambda: "
                "ticks.append(1)); timer.start(50)",
                idle=2.0,
            ),
            ticking("ticks"),
            "timer.stop()",
        ),
        shows=("ticking",),
        env={"QT_QPA_PLATFORM": "offscreen", "QT_API": "pyside6"},
        needs=("PySide6",),
    ),
    Session(
        "matplotlib-tk",
        "%matplotlib tk: a figure's timer ticks while the prompt waits",
        "terminal",
        (
            "%matplotlib tk",
            "import matplotlib, matplotlib.pyplot as plt; print(matplotlib.get_backend())",
            Cell(
                "fig = plt.figure(); ticks = []; timer = fig.canvas.new_timer(interval=50); "
                "timer.add_callback(lambda: ticks.append(1)); timer.start()",
                idle=2.0,
            ),
            ticking("ticks"),
            "timer.stop()",
        ),
        shows=("ticking", "(?i)tkagg"),
        needs=("tkinter", "matplotlib", "display"),
        fresh=True,
    ),
    Session(
        "matplotlib-qt",
        "%matplotlib qt: a figure's timer ticks while the prompt waits",
        "terminal",
        (
            "%matplotlib qt",
            "import matplotlib, matplotlib.pyplot as plt; print(matplotlib.get_backend())",
            Cell(
                "fig = plt.figure(); ticks = []; timer = fig.canvas.new_timer(interval=50); "
                "timer.add_callback(lambda: ticks.append(1)); timer.start()",
                idle=2.0,
            ),
            ticking("ticks"),
            "timer.stop()",
        ),
        shows=("ticking", "(?i)qtagg"),
        env={"QT_QPA_PLATFORM": "offscreen", "QT_API": "pyside6"},
        needs=("PySide6", "matplotlib"),
    ),
    Session(
        "matplotlib-inline",
        "%matplotlib inline in a kernel: figures shown, from plain and await cells",
        "kernel",
        (
            "%matplotlib inline",
            "import matplotlib.pyplot as plt; plt.plot([1, 2, 3]); plt.show()",
            "await lib.sleep(0); plt.plot([3, 2, 1]); plt.show()",
            "await lib.sleep(0); plt.figure(); plt.plot([1, 1])",  # shown when the cell ends
        ),
        shows=("Figure size",),
        libraries=ANY_LIBRARY,
        needs=("matplotlib",),
    ),
]

# -- %run of .py, .ipy and .ipynb files, with and without await ---------------------------

SCRIPT = """\
import asyncio

print("script.py runs as", __name__)


async def main():
    await asyncio.sleep(0)
    return "asyncio.run() in a script"


print(asyncio.run(main()))
result = 42
"""

WHICH_LIBRARY = """\
import asyncio, anyio, sniffio
async def which_library():
    await anyio.sleep(0)
    return sniffio.current_async_library()
"""

LOOP_SIGNAL_HANDLER = """\
import asyncio, os, signal
async def handled():
    got = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, got.set)
    os.kill(os.getpid(), signal.SIGUSR1)
    await asyncio.wait_for(got.wait(), 10)
    return 'handled SIGUSR1'
"""

#: A server that stops on SIGINT and SIGTERM through loop.add_signal_handler (hypercorn's
#: serve without a shutdown trigger), and says when it serves and when its lifespan ends.
HYPERCORN_SERVER = (Path(__file__).parent.parent / "support" / "asgi_server.py").read_text()

#: aiohttp's run_app makes its loop and adds its handlers for SIGINT and SIGTERM.
AIOHTTP_SERVER = """\
from aiohttp import web

async def started(app):
    print("serving", flush=True)

async def cleaned_up(app):
    print("cleaned up", flush=True)

def make_app():
    app = web.Application()
    app.on_startup.append(started)
    app.on_cleanup.append(cleaned_up)
    return app
"""

SESSIONS += [
    Session(
        "pasted-script-asks-sniffio",
        "a script pasted into plain cells runs its own loop, its code asking sniffio (as anyio"
        " and httpx do) which library runs it",
        "shell",
        (
            WHICH_LIBRARY,
            "print('asyncio.run:', asyncio.run(which_library()))",
            "print('Runner:', asyncio.Runner().run(which_library()))",
            "print('loop:', asyncio.new_event_loop().run_until_complete(which_library()))",
            "print('anyio.run:', anyio.run(which_library))",
        ),
        shows=(
            "asyncio.run: asyncio",
            "Runner: asyncio",
            "loop: asyncio",
            "anyio.run: asyncio",
        ),
        needs=("anyio",),
    ),
    Session(
        "run-py",
        "%run of a script that calls asyncio.run()",
        "shell",
        ("%run script.py", "print(result, __name__)", "%run -i script.py"),
        shows=("asyncio.run\\(\\) in a script", "42 __main__"),
        files={"script.py": SCRIPT},
    ),
    Session(
        "run-py-await",
        "%run of a .py with a top-level await: Python's SyntaxError",
        "shell",
        ("%run awaits.py",),
        shows=("SyntaxError",),
        files={"awaits.py": "import asyncio\nawait asyncio.sleep(0)\n"},
    ),
    Session(
        "run-ipy",
        "%run of an .ipy file with magics and shell commands",
        "shell",
        ("%run script.ipy", "print(twice(21), echoed)"),
        shows=("42 \\['from ipy'\\]", "Wall time"),
        files={
            "script.ipy": "echoed = !echo from ipy\n"
            "%time x = 1\n"
            "def twice(value):\n    return 2 * value\n"
        },
    ),
    Session(
        "run-ipy-await",
        "%run of an .ipy file with a top-level await",
        "shell",
        ("%run awaits.ipy", "print(awaited)"),
        shows=("awaited in an .ipy file",),
        libraries=ANY_LIBRARY,
        files={
            "awaits.ipy": "import <LIB>\nawait <LIB>.sleep(0)\n"
            "awaited = 'awaited in an .ipy file'\n"
        },
    ),
    Session(
        "run-ipynb",
        "%run of a notebook",
        "shell",
        ("%run notebook.ipynb", "print(x)"),
        shows=("notebook says 42", "^42$"),
        files={"notebook.ipynb": notebook("x = 6 * 7", "print('notebook says', x)")},
        needs=("nbformat",),
    ),
    Session(
        "run-ipynb-await",
        "%run of a notebook with a top-level await",
        "shell",
        ("%run awaits.ipynb", "print(x)"),
        shows=("notebook awaited",),
        libraries=ANY_LIBRARY,
        files={
            "awaits.ipynb": notebook("import <LIB>", "await <LIB>.sleep(0)\nx = 'notebook awaited'")
        },
        needs=("nbformat",),
    ),
    Session(
        "run-kernel",
        "%run of a script and a notebook in a kernel",
        "kernel",
        ("%run script.py", "%run notebook.ipynb", "print(result, x)"),
        shows=("script.py runs as __main__", "notebook says 42", "42 42"),
        files={
            # A kernel's own loop runs under its cells: asyncio.run() is the extension's
            # (the nesting shim), not the host's.
            "script.py": 'print("script.py runs as", __name__)\nresult = 42\n',
            "notebook.ipynb": notebook("x = 6 * 7", "print('notebook says', x)"),
        },
        needs=("nbformat",),
    ),
]

# -- the debugger, input(), %prun, %xmode, %reset, history --------------------------------

RAISES = "def f(x):\n    y = x * 2\n    raise ValueError(y)\n"
ARAISES = "async def g(x):\n    y = x * 2\n    await lib.sleep(0)\n    raise ValueError(y)\n"

SESSIONS += [
    Session(
        "debug-postmortem",
        "%debug after a failed cell: the failing frame's variables",
        "terminal",
        (
            RAISES,
            "f(21)",
            Cell("%debug", input=(("ipdb>", "p y"), (printed("42"), "q"))),
            "print('after the debugger')",
        ),
        shows=("ValueError: 42", "ipdb> p y", "after the debugger"),
    ),
    Session(
        "debug-postmortem-await",
        "%debug after a failed await cell",
        "terminal",
        (
            ARAISES,
            "await g(21)",
            Cell("%debug", input=(("ipdb>", "p y"), (printed("42"), "q"))),
            "print('after the debugger')",
        ),
        shows=("ValueError: 42", "ipdb> p y", "after the debugger"),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "pdb-on",
        "%pdb on: the debugger starts at a failure, in plain and await cells",
        "terminal",
        (
            "%pdb on",
            RAISES,
            Cell("f(1)", input=(("ipdb>", "p y"), (printed("2"), "q"))),
            ARAISES,
            Cell("await g(2)", input=(("ipdb>", "p y"), (printed("4"), "q"))),
            "%pdb off",
        ),
        shows=("Automatic pdb calling has been turned ON", "ValueError: 4"),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "breakpoint-await",
        "breakpoint() in a coroutine an await cell runs",
        "terminal",
        (
            "async def h():\n    x = 5\n    await lib.sleep(0)\n    breakpoint()\n"
            "    return x * 2\n",
            Cell("await h()", input=(("\\(Pdb\\) ", "p x"), (printed("5"), "c"))),
        ),
        shows=("\\(Pdb\\) p x", "Out\\[\\d+\\]: 10"),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "input-terminal",
        "input() in a terminal, in plain and await cells",
        "terminal",
        (
            Cell("name = input('name? ')", input=(("name\\? ", "Ada"),)),
            Cell("await lib.sleep(0); again = input('again? ')", input=(("again\\? ", "Bo"),)),
            "print('hello', name, again)",
        ),
        shows=("hello Ada Bo",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "input-kernel",
        "input() in a kernel, in plain and await cells",
        "kernel",
        (
            Cell("name = input('name? ')", input=(("name\\? ", "Ada"),)),
            Cell("await lib.sleep(0); again = input('again? ')", input=(("again\\? ", "Bo"),)),
            "print('hello', name, again)",
        ),
        shows=("hello Ada Bo",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "prun",
        "%prun: the profile has the user's functions",
        "shell",
        (
            "def work():\n    return sum(i * i for i in range(1000))\n",
            "stats = %prun -q -r work()",
            "print(sorted({f[2] for f in stats.stats if f[2] in ('work', '<genexpr>')}))",
            "await lib.sleep(0); stats = %prun -q -r work()",
            "print(sorted({f[2] for f in stats.stats if f[2] in ('work', '<genexpr>')}))",
        ),
        shows=("\\['<genexpr>', 'work'\\]",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "xmode",
        "%xmode: tracebacks of plain and await cells in each mode",
        "shell",
        (
            RAISES,
            ARAISES,
            "%xmode Plain",
            "f(1)",
            "await g(1)",
            "%xmode Verbose",
            "f(2)",
            "await g(2)",
            "%xmode Minimal",
            "await g(3)",
            "%xmode Context",
            "await g(4)",
        ),
        shows=("Exception reporting mode: Verbose", "ValueError: 8"),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "reset",
        "%reset -f, then the session goes on",
        "shell",
        (
            "x = 1; await lib.sleep(0); x",
            "%reset -f",
            "print('x' in dir(), len(Out))",
            "import <LIB> as lib; await lib.sleep(0); print('awaits after the reset')",
            "%reset -f out",
            "print(len(Out))",
        ),
        shows=("False 0", "awaits after the reset"),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "history",
        "history: In, Out, _i, _, %hist",
        "shell",
        (
            "x = 1 + 1\nx",
            "await lib.sleep(0); 41 + 1",
            "print(_i1); print(Out[2], _, __)",
            "%hist -n",
        ),
        shows=("Out\\[2\\]: 42", "42 42 2"),
        libraries=ANY_LIBRARY,
    ),
]

# -- start-up files, exec_lines, other extensions ------------------------------------------

SESSIONS += [
    Session(
        "startup",
        "a profile's startup .py and .ipy files (one with await) and exec_lines",
        "terminal",
        (
            "print(STARTED, GREETING, AWAITED)",
            "await lib.sleep(0); print(STARTED, GREETING, AWAITED)",
            "%say hi",
            "print(files)",
            ONE_SEVENTH,
            f"await lib.sleep(0); {ONE_SEVENTH}",
        ),
        shows=(
            "^startup ran$",
            "from a startup file from exec_lines startup awaited",
            "\\['from startup'\\]",
            "Decimal\\('0.142857'\\)",
        ),
        libraries=ANY_LIBRARY,
        startup={
            "00-names.py": "STARTED = 'from a startup file'\nprint('startup ran')\n",
            "10-magics.ipy": "%alias say echo\nfiles = !echo from startup\n",
            "20-await.ipy": "import <LIB>\nawait <LIB>.sleep(0)\nAWAITED = 'startup awaited'\n",
        },
        config="c.InteractiveShellApp.exec_lines = ['GREETING = \"from exec_lines\"', "
        "'import decimal', 'decimal.getcontext().prec = 6']",
    ),
    Session(
        "startup-kernel",
        "a kernel's startup file and exec_lines: their names in plain and await cells",
        "kernel",
        ("print(STARTED, GREETING)", "await lib.sleep(0); print(STARTED, GREETING)"),
        shows=("from a startup file from exec_lines",),
        libraries=ANY_LIBRARY,
        startup={"00-names.py": "STARTED = 'from a startup file'\n"},
        config="c.InteractiveShellApp.exec_lines = ['GREETING = \"from exec_lines\"']",
    ),
    Session(
        "startup-kernel-background",
        "a kernel with exec_lines: a task started in a cell runs while the kernel is idle",
        "kernel",
        (
            "import asyncio\nticks = []\nasync def tick():\n    while True:\n"
            "        ticks.append(1)\n        await asyncio.sleep(0.05)\n",
            Cell("task = asyncio.ensure_future(tick()); await asyncio.sleep(0)", idle=2.0),
            "print('ticking' if len(ticks) >= 10 else f'stood still: {len(ticks)} ticks')",
            "task.cancel()",
        ),
        shows=("^ticking$",),
        libraries=ASYNCIO,
        config="c.InteractiveShellApp.exec_lines = ['GREETING = \"from exec_lines\"']",
    ),
    Session(
        "autoreload",
        "%autoreload 2 reloads a module edited between cells",
        "shell",
        (
            "%load_ext autoreload",
            "%autoreload 2",
            "import edited; print(edited.version())",
            "import os, pathlib; pathlib.Path('edited.py').write_text('def version():\\n"
            "    return 2\\n'); later = os.stat('edited.py').st_mtime + 5; "
            "os.utime('edited.py', (later, later))",
            "print(edited.version())",
            "await lib.sleep(0); pathlib.Path('edited.py').write_text('def version():\\n"
            "    return 3\\n'); os.utime('edited.py', (later + 5, later + 5))",
            "await lib.sleep(0); print(edited.version())",
        ),
        shows=("^1$", "^2$", "^3$"),
        libraries=ANY_LIBRARY,
        files={"edited.py": "def version():\n    return 1\n"},
    ),
    Session(
        "storemagic",
        "%store and %store -r",
        "shell",
        (
            "%load_ext storemagic",
            "kept = 'stored'\n%store kept",
            "del kept\nawait lib.sleep(0)\n%store -r kept",
            "print(kept)",
        ),
        shows=("Stored 'kept'", "^stored$"),
        libraries=ANY_LIBRARY,
        when="ipython>=9",  # IPython 8's %store wants pickleshare, which it does not install
    ),
]

# -- the interpreter state a session touches ------------------------------------------------

SESSIONS += [
    Session(
        "decimal-cells",
        "decimal's context set in a cell: later plain and await cells use it",
        "shell",
        (
            "import decimal; decimal.getcontext().prec = 6",
            ONE_SEVENTH,
            f"await lib.sleep(0); {ONE_SEVENTH}",
            f"await lib.sleep(0); decimal.getcontext().prec = 8; {ONE_SEVENTH}",
            ONE_SEVENTH,
        ),
        shows=("Decimal\\('0.142857'\\)", "Decimal\\('0.14285714'\\)"),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "decimal-switch",
        "decimal's context set in a cell, then %autoawait switches and back",
        "shell",
        (
            "import decimal; decimal.getcontext().prec = 6",
            "%autoawait sync",
            ONE_SEVENTH,
            "%autoawait <RUNNER>",
            ONE_SEVENTH,
            f"await lib.sleep(0); {ONE_SEVENTH}",
        ),
        shows=("Decimal\\('0.142857'\\)",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "decimal-unload",
        "decimal's context set in cells, then %unload_ext",
        "shell",
        (
            "import decimal; decimal.getcontext().prec = 6",
            f"await lib.sleep(0); {ONE_SEVENTH}",
            Cell("%unload_ext autoawait_runners", plain="pass"),
            ONE_SEVENTH,
        ),
        shows=("Decimal\\('0.142857'\\)",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "decimal-startup",
        "decimal's context set in a startup file",
        "terminal",
        (ONE_SEVENTH, f"await lib.sleep(0); {ONE_SEVENTH}"),
        shows=("Decimal\\('0.142857'\\)",),
        libraries=ANY_LIBRARY,
        startup={"00-decimal.py": "import decimal\ndecimal.getcontext().prec = 6\n"},
    ),
    Session(
        "decimal-kernel",
        "decimal's context in a kernel: set in a cell, then a switch and back",
        "kernel",
        (
            "import decimal; decimal.getcontext().prec = 6",
            f"await lib.sleep(0); {ONE_SEVENTH}",
            "%autoawait sync",
            ONE_SEVENTH,
            "%autoawait <RUNNER>",
            f"await lib.sleep(0); {ONE_SEVENTH}",
        ),
        shows=("Decimal\\('0.142857'\\)",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "contextvar-cells",
        "a context variable set in a plain cell: later plain and await cells see it",
        "shell",
        (
            "import contextvars; user = contextvars.ContextVar('user', default='nobody')",
            "user.set('ada');",
            "print(user.get())",
            "await lib.sleep(0); print(user.get())",
        ),
        shows=("^ada$",),
        libraries=ANY_LIBRARY,
    ),
    # IPython's own trio and curio runners run an await cell inside trio.run (curio.run),
    # whose SIGINT handler the cell sees and a restore leaves behind: the await cells below
    # are compared with IPython's asyncio runner, and trio-guest with plain cells.
    Session(
        "signal-getsignal",
        "signal.getsignal in a plain cell, and after %unload_ext",
        "shell",
        (
            "import signal; print(signal.getsignal(signal.SIGINT))",
            Cell("%unload_ext autoawait_runners", plain="pass"),
            "print(signal.getsignal(signal.SIGINT))",
        ),
        shows=("default_int_handler",),
    ),
    Session(
        "signal-getsignal-await",
        "signal.getsignal in an await cell",
        "shell",
        ("import signal", "await lib.sleep(0); print(signal.getsignal(signal.SIGINT))"),
        shows=("default_int_handler",),
        libraries=ASYNCIO,
    ),
    Session(
        "signal-set-restore",
        "signal.signal in plain cells: a handler saved, set and restored",
        "shell",
        (
            "import signal\ndef handler(signum, frame):\n    print('handled', signum)\n",
            "old = signal.signal(signal.SIGINT, handler); print(old)",
            "print(signal.signal(signal.SIGINT, old) is handler)",
            Cell("%unload_ext autoawait_runners", plain="pass"),
            "print(signal.getsignal(signal.SIGINT))",
        ),
        shows=("default_int_handler", "^True$"),
    ),
    Session(
        "signal-set-restore-await",
        "signal.signal in await cells: a handler saved, set and restored",
        "shell",
        (
            "import signal\ndef handler(signum, frame):\n    print('handled', signum)\n",
            "await lib.sleep(0); old = signal.signal(signal.SIGINT, handler); print(old)",
            "await lib.sleep(0); print(signal.signal(signal.SIGINT, old) is handler)",
            Cell("%unload_ext autoawait_runners", plain="pass"),
            "print(signal.getsignal(signal.SIGINT))",
        ),
        shows=("default_int_handler", "^True$"),
        libraries=ASYNCIO,
    ),
    Session(
        "signal-ctrl-c",
        "a SIGINT handler set and restored in cells, then Ctrl-C, also after %unload_ext",
        "terminal",
        (
            "import signal, time",
            "def handler(signum, frame):\n    print('my handler got', signum)\n",
            "old = signal.signal(signal.SIGINT, handler)",
            Cell("print('sleeping'); time.sleep(1); print('slept')", interrupt="sleeping"),
            "signal.signal(signal.SIGINT, old)",
            Cell("print('sleeping'); time.sleep(3)", interrupt="sleeping"),
            Cell("%unload_ext autoawait_runners", plain="pass"),
            Cell("print('sleeping'); time.sleep(3)", interrupt="sleeping"),
        ),
        shows=("my handler got 2", "slept", "KeyboardInterrupt"),
        fresh=True,
    ),
    Session(
        "signal-ctrl-c-await",
        "a SIGINT handler saved and restored in await cells, then Ctrl-C after %unload_ext",
        "terminal",
        (
            "import signal, time",
            "await lib.sleep(0); old = signal.signal(signal.SIGINT, signal.SIG_IGN)",
            "await lib.sleep(0); signal.signal(signal.SIGINT, old);",
            Cell("%unload_ext autoawait_runners", plain="pass"),
            Cell("print('sleeping'); time.sleep(3)", interrupt="sleeping"),
        ),
        shows=("KeyboardInterrupt",),
        libraries=ASYNCIO,
        fresh=True,
    ),
    Session(
        "loop-signal-handler",
        "a loop run in a cell handles a signal (loop.add_signal_handler); it goes with the run",
        "shell",
        (
            LOOP_SIGNAL_HANDLER,
            "print(asyncio.run(handled()))",
            "with asyncio.Runner() as runner:\n    print(runner.run(handled()))\n",
            "print(signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL)",
        ),
        shows=("^handled SIGUSR1$", "^True$"),
    ),
    Session(
        "server-ctrl-c",
        "a server run in a cell (hypercorn: loop.add_signal_handler) stops on Ctrl-C, cleanly",
        "terminal",
        (
            "import asyncio, signal, time\nfrom asgi_server import app, config, serve",
            Cell("asyncio.run(serve(app, config)); print('served')", interrupt="serving"),
            "print(signal.getsignal(signal.SIGINT))",
            Cell("print('sleeping'); time.sleep(3)", interrupt="sleeping"),
        ),
        shows=("lifespan shutdown", "^served$", "default_int_handler", "KeyboardInterrupt"),
        files={"asgi_server.py": HYPERCORN_SERVER},
        needs=("hypercorn",),
    ),
    Session(
        "server-run-app-ctrl-c",
        "aiohttp's web.run_app in a cell (its own loop, signal handlers) stops on Ctrl-C",
        "terminal",
        (
            "import signal, time\nfrom aiohttp import web\nfrom aiohttp_server import make_app",
            Cell(
                "web.run_app(make_app(), host='127.0.0.1', port=0, print=None)\nprint('served')",
                interrupt="serving",
            ),
            "print(signal.getsignal(signal.SIGINT))",
            Cell("print('sleeping'); time.sleep(3)", interrupt="sleeping"),
        ),
        shows=("cleaned up", "^served$", "default_int_handler", "KeyboardInterrupt"),
        files={"aiohttp_server.py": AIOHTTP_SERVER},
        needs=("aiohttp",),
    ),
    Session(
        "ctrl-c-plain-cell",
        "Ctrl-C during a plain cell's time.sleep: KeyboardInterrupt, the session goes on",
        "terminal",
        (
            "import time",
            Cell("print('sleeping'); time.sleep(3)", interrupt="sleeping"),
            "print('still here')",
        ),
        shows=("KeyboardInterrupt", "still here"),
    ),
    Session(
        "settrace",
        "sys.settrace and threading.settrace as coverage sets them: later cells are traced",
        "shell",
        (
            "import sys, threading\nlines = []\n"
            "def tracer(frame, event, arg):\n"
            "    if frame.f_code.co_name == 'target' and event == 'line':\n"
            "        lines.append(frame.f_lineno - frame.f_code.co_firstlineno)\n"
            "    return tracer\n",
            "def target():\n    a = 1\n    return a + 1\n",
            "sys.settrace(tracer); threading.settrace(tracer)",
            "target(); print(sys.gettrace() is tracer)",
            "await lib.sleep(0); target(); print(sys.gettrace() is tracer)",
            "sys.settrace(None); threading.settrace(None)",
            "print(lines)",
        ),
        shows=("\\[1, 2, 1, 2\\]",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "setprofile",
        "sys.setprofile as profilers set it: later cells are profiled",
        "shell",
        (
            "import sys\ncalls = []\n"
            "def profiler(frame, event, arg):\n"
            "    if event == 'call' and frame.f_code.co_name == 'target':\n"
            "        calls.append(event)\n",
            "def target():\n    return 1\n",
            "sys.setprofile(profiler)",
            "target(); print(sys.getprofile() is profiler)",
            "await lib.sleep(0); target(); print(sys.getprofile() is profiler)",
            "sys.setprofile(None)",
            "print(calls)",
        ),
        shows=("\\['call', 'call'\\]",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "threading-excepthook",
        "threading.excepthook set in a cell catches a thread's failure",
        "shell",
        (
            "import threading\ncaught = []\n"
            "def hook(args):\n    caught.append(repr(args.exc_value))\n",
            "threading.excepthook = hook",
            "def boom():\n    raise ValueError('in a thread')\n",
            "t = threading.Thread(target=boom); t.start(); t.join(); print(caught)",
            "await lib.sleep(0); t = threading.Thread(target=boom); t.start(); t.join(); "
            "print(caught)",
            "threading.excepthook = threading.__excepthook__",
        ),
        shows=("ValueError\\('in a thread'\\)\", \"ValueError",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "asyncgen-finalised",
        "an async generator left unfinished is finalised by the loop's hooks",
        "shell",
        (
            "async def numbers():\n    try:\n        yield 1\n        yield 2\n"
            "    finally:\n        print('numbers finalised')\n",
            "async def first():\n    async for n in numbers():\n        return n\n",
            "print(await first()); await lib.sleep(0.05); print('after')",
        ),
        shows=("numbers finalised",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "asyncgen-hooks",
        "the async-generator hooks after %unload_ext are the process's own again",
        "shell",
        (
            "import sys",
            Cell("%unload_ext autoawait_runners", plain="pass"),
            "print(sys.get_asyncgen_hooks())",
        ),
        shows=("firstiter=None, finalizer=None",),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "warnings-filters",
        "warnings filters set in a cell apply in later plain and await cells",
        "shell",
        (
            "import warnings",
            "warnings.simplefilter('error', UserWarning)",
            "try:\n    warnings.warn('careful')\n"
            "except UserWarning as e:\n    print('raised', e)\n",
            "await lib.sleep(0)\ntry:\n    warnings.warn('careful')\n"
            "except UserWarning as e:\n    print('raised', e)\n",
            "warnings.resetwarnings(); warnings.simplefilter('always')",
            "def old():\n    warnings.warn('old api', DeprecationWarning, stacklevel=2)\n",
            "old()",
            "await lib.sleep(0); old()",
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    await lib.sleep(0)\n"
            "    warnings.warn('recorded')\n"
            "print([str(w.message) for w in caught])",
        ),
        shows=("raised careful", "DeprecationWarning: old api", "\\['recorded'\\]"),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "atexit",
        "atexit functions registered in plain and await cells run at exit, asyncio.run() too",
        "terminal",
        (
            "import asyncio, atexit",
            "atexit.register(print, 'registered in a plain cell');",
            "await lib.sleep(0); atexit.register(print, 'registered in an await cell');",
            # The namespace is gone by then: the function brings what it needs.
            "atexit.register(lambda asyncio=asyncio: "
            "print(asyncio.run(asyncio.sleep(0, 'asyncio.run() at exit'))));",
        ),
        shows=(
            "asyncio.run\\(\\) at exit\nregistered in an await cell\nregistered in a plain cell",
        ),
        libraries=ANY_LIBRARY,
        fresh=True,
    ),
]

# -- processes ----------------------------------------------------------------------------

IN_CHILD = """\
def in_child():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            message = asyncio.run(asyncio.sleep(0, 'the child ran asyncio.run()'))
        except BaseException as exc:
            message = repr(exc)
        finally:
            os.write(w, message.encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return text
"""

SESSIONS += [
    Session(
        "subprocess",
        "subprocess.run, !cmd and captured !cmd in plain and await cells",
        "shell",
        (
            "import subprocess, sys",
            "print(subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, "
            "text=True).stdout)",
            "!echo from the shell",
            "files = !echo captured\nprint(files)",
            "await lib.sleep(0); subprocess.run(['echo', 'in an await cell'])",
            "await lib.sleep(0)\n!echo awaited shell",
        ),
        shows=("^42$", "from the shell", "in an await cell", "awaited shell"),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "subprocess-asyncio",
        "asyncio's subprocesses in await cells",
        "shell",
        (
            "import asyncio",
            "proc = await asyncio.create_subprocess_exec('echo', 'hi', "
            "stdout=asyncio.subprocess.PIPE); print(await proc.communicate())",
        ),
        shows=("b'hi\\\\n'",),
        libraries=ASYNCIO,
    ),
    Session(
        "subprocess-trio",
        "trio's run_process in await cells",
        "shell",
        (
            "import trio",
            "print((await trio.run_process(['echo', 'hi'], capture_stdout=True)).stdout)",
        ),
        shows=("b'hi\\\\n'",),
        libraries=("trio",),
    ),
    Session(
        "multiprocessing-spawn",
        "a multiprocessing Pool (spawn) maps in plain and await cells",
        "shell",
        (
            "import multiprocessing, squares",
            "with multiprocessing.get_context('spawn').Pool(2) as pool:\n"
            "    print(pool.map(squares.square, range(5)))\n",
            "await lib.sleep(0)\nwith multiprocessing.get_context('spawn').Pool(2) as pool:\n"
            "    print(pool.map(squares.square, range(5)))\n",
        ),
        shows=("\\[0, 1, 4, 9, 16\\]",),
        libraries=ANY_LIBRARY,
        files={"squares.py": "def square(x):\n    return x * x\n"},
    ),
    Session(
        "multiprocessing-fork",
        "a multiprocessing Pool (fork) maps in plain and await cells",
        "shell",
        (
            "import multiprocessing, squares",
            "with multiprocessing.get_context('fork').Pool(2) as pool:\n"
            "    print(pool.map(squares.square, range(5)))\n",
            "await lib.sleep(0)\nwith multiprocessing.get_context('fork').Pool(2) as pool:\n"
            "    print(pool.map(squares.square, range(5)))\n",
        ),
        shows=("\\[0, 1, 4, 9, 16\\]",),
        libraries=ANY_LIBRARY,
        files={"squares.py": "def square(x):\n    return x * x\n"},
    ),
    Session(
        "os-fork",
        "os.fork() in plain and await cells; the child runs asyncio.run()",
        "shell",
        ("import os, asyncio", IN_CHILD, "in_child()", "await lib.sleep(0); in_child()"),
        shows=("the child ran asyncio.run\\(\\)",),
        libraries=ANY_LIBRARY,
    ),
]

# -- kernels: output routing, display, widgets and comms ------------------------------------

SESSIONS += [
    Session(
        "output-routing",
        "a task's and a thread's output stays with the cell that started them",
        "kernel",
        (
            # One write a line (print() writes its pieces one by one, and the two writers'
            # pieces would interleave); the thread writes its line i while cell i runs.
            "import asyncio, sys, threading, time\n"
            "step = [threading.Event() for _ in range(3)]\n"
            "wrote = [threading.Event() for _ in range(3)]\n"
            "async def printer():\n"
            "    for i in range(3):\n"
            "        sys.stdout.write(f'task line {i}\\n')\n"
            "        await asyncio.sleep(0.1)\n"
            "def writer():\n"
            "    for i in range(3):\n"
            "        step[i].wait(10)\n"
            "        sys.stdout.write(f'thread line {i}\\n')\n"
            "        wrote[i].set()\n"
            "task = asyncio.ensure_future(printer())\n"
            "thread = threading.Thread(target=writer)\n"
            "thread.start()\n"
            "step[0].set(); wrote[0].wait(10); print('cell A')",
            "step[1].set(); wrote[1].wait(10); time.sleep(0.3); print('cell B')",
            "step[2].set(); wrote[2].wait(10); await asyncio.sleep(0.3); print('cell C')",
            "await task; thread.join(); print('cell D')",
        ),
        shows=("task line 2", "thread line 2"),
        libraries=ASYNCIO,
        sort_lines=True,
    ),
    Session(
        "display",
        "display(), display ids and updates, from plain and await cells",
        "kernel",
        (
            "from IPython.display import HTML, display\n"
            "display('first')\n"
            "handle = display('to update', display_id=True)",
            "handle.update('updated'); display(HTML('<b>bold</b>'))",
            "await lib.sleep(0); display('from an await cell'); handle.update('again'); 'value'",
        ),
        shows=("\\[display\\] 'first'", "\\[update\\] 'again'", "Out: 'value'"),
        libraries=ANY_LIBRARY,
    ),
    Session(
        "widget-changed-by-frontend",
        "an await cell waits for a widget's value set by the frontend",
        "kernel",
        (
            "import asyncio, ipywidgets, time; slider = ipywidgets.IntSlider()",
            Cell(
                "moved = asyncio.get_running_loop().create_future()\n"
                "slider.observe(lambda change: moved.done() or moved.set_result(change['new']),"
                " 'value')\n"
                "print('waiting on', slider.model_id)\n" + awaited_at_once("moved", "moved to"),
                frontend=(
                    Frontend(
                        r"waiting on (\w+)",
                        "comm_msg",
                        {"method": "update", "state": {"value": 7}, "buffer_paths": []},
                    ),
                ),
            ),
        ),
        shows=("moved to 7 at once",),
        libraries=ASYNCIO,
        needs=("ipywidgets",),
        # ipykernel 6 handles no comm message while a cell awaits, with or without the
        # extension (docs/widgets.rst).
        when="ipykernel>=7",
    ),
    Session(
        "widget-closed-by-frontend",
        "an await cell waits for the frontend to close a widget",
        "kernel",
        (
            "import asyncio, ipywidgets, time; slider = ipywidgets.IntSlider()",
            Cell(
                "closed = asyncio.get_running_loop().create_future()\n"
                "slider.comm.on_close(lambda msg: closed.done() or closed.set_result('yes'))\n"
                "print('waiting on', slider.model_id)\n"
                + awaited_at_once("closed", "closed by the frontend:"),
                frontend=(Frontend(r"waiting on (\w+)", "comm_close"),),
            ),
        ),
        shows=("closed by the frontend: yes at once",),
        libraries=ASYNCIO,
        needs=("ipywidgets",),
        when="ipykernel>=7",
    ),
    Session(
        "widget-closed-by-kernel",
        "a button's callback closes a widget while an await cell waits for it",
        "kernel",
        (
            "import asyncio, ipywidgets, time\n"
            "slider = ipywidgets.IntSlider(); button = ipywidgets.Button()",
            Cell(
                "done = asyncio.get_running_loop().create_future()\n"
                "def click(button):\n"
                "    slider.close()\n"
                "    done.done() or done.set_result(slider.comm is None)\n"
                "button.on_click(click)\n"
                "print('waiting on', button.model_id)\n"
                + awaited_at_once("done", "closed by the kernel:"),
                frontend=(
                    Frontend(
                        r"waiting on (\w+)",
                        "comm_msg",
                        {"method": "custom", "content": {"event": "click"}},
                    ),
                ),
            ),
        ),
        shows=("closed by the kernel: True at once",),
        libraries=ASYNCIO,
        needs=("ipywidgets",),
        when="ipykernel>=7",
    ),
    Session(
        "widget-closed-between-cells",
        "the frontend closes a widget between cells; the kernel closes another",
        "kernel",
        (
            Cell(
                "import ipywidgets\n"
                "slider, other = ipywidgets.IntSlider(), ipywidgets.IntSlider()\n"
                "closed = []\n"
                "slider.comm.on_close(lambda msg: closed.append('by the frontend'))\n"
                "print('close', slider.model_id)",
                frontend=(Frontend(r"close (\w+)", "comm_close"),),
            ),
            "other.close(); print(closed, other.comm)",
        ),
        shows=("\\['by the frontend'\\] None",),
        needs=("ipywidgets",),
    ),
    Session(
        "comm-callback-task",
        "a comm callback starts a task between cells; a later cell awaits it",
        "kernel",
        (
            Cell(
                "import asyncio\nfrom comm import create_comm\nstarted = []\n"
                # Still running when the next cell awaits it.
                "async def work(data):\n    await asyncio.sleep(0.5)\n    return data\n"
                "channel = create_comm(target_name='work')\n"
                "channel.on_msg(lambda msg: started.append("
                "asyncio.ensure_future(work(msg['content']['data']))))\n"
                "print('comm', channel.comm_id)",
                frontend=(Frontend(r"comm (\w+)", "comm_msg", {"answer": 42}),),
            ),
            "print('the task says', await asyncio.wait_for(started[0], 8))",
        ),
        shows=("the task says \\{'answer': 42\\}",),
        libraries=ASYNCIO,
    ),
    Session(
        "comm-callback-loop",
        "a comm callback sets a future of the cell's loop (ipykernel's own tests do)",
        "kernel",
        (
            Cell(
                "import asyncio, time\nfrom comm import create_comm\n"
                "reply = asyncio.get_running_loop().create_future()\n"
                "channel = create_comm(target_name='echo')\n"
                "channel.on_msg(lambda msg: reply.done() or "
                "reply.set_result(msg['content']['data']))\n"
                "print('comm', channel.comm_id)\n" + awaited_at_once("reply", "reply:"),
                frontend=(Frontend(r"comm (\w+)", "comm_msg", {"answer": 42}),),
            ),
        ),
        shows=("reply: \\{'answer': 42\\} at once",),
        libraries=ASYNCIO,
        when="ipykernel>=7",
    ),
]
