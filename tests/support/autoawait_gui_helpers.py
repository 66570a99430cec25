"""What the GUI tests call from one-line cells (tests/test_gui.py), with and without the
extension: a GUI timer and a session task that count their ticks, and a thread that says,
after a fixed interval at the idle prompt, how many there were."""

import threading
import time

gui_ticks = 0
session_ticks = 0
#: Set to False to stop every timer and task started here.
ticking = True
#: The GUI objects made here, kept alive for the session.
kept = []


def gui_tick() -> None:
    global gui_ticks
    gui_ticks += 1


def start_tk_timer(period: float = 0.05):
    """A Tk window whose ``after()`` loop ticks every ``period`` seconds."""
    import tkinter

    root = tkinter.Tk()
    milliseconds = int(period * 1000)

    def tick() -> None:
        if ticking:
            gui_tick()
            root.after(milliseconds, tick)

    root.after(milliseconds, tick)
    kept.append(root)
    return root


def start_qt_timer(period: float = 0.05):
    """A QTimer ticking every ``period`` seconds (in the Qt binding IPython's %gui qt
    chose), and the application it needs, made here as a script would make it."""
    from IPython.external.qt_for_kernel import QtCore, QtGui

    app = QtCore.QCoreApplication.instance() or QtGui.QApplication([" "])
    timer = QtCore.QTimer()
    timer.timeout.connect(gui_tick)
    timer.start(int(period * 1000))
    kept.extend([app, timer])
    return timer


def start_matplotlib_timer(period: float = 0.05):
    """A figure (of the backend %matplotlib chose) whose canvas timer ticks."""
    import matplotlib.pyplot as plt

    figure = plt.figure()
    timer = figure.canvas.new_timer(interval=int(period * 1000))
    timer.add_callback(gui_tick)
    timer.start()
    kept.extend([figure, timer])
    return timer


async def count_session_ticks(period: float = 0.05) -> None:
    """A background task of the session that ticks every ``period`` seconds."""
    import autoawait_test_helpers as h

    global session_ticks
    while ticking:
        await h.sleep(period)
        session_ticks += 1


def stop_ticking() -> None:
    global ticking
    ticking = False
    for each in kept:
        if hasattr(each, "stop"):  # a QTimer, a matplotlib timer
            each.stop()


def report_ticks_after(seconds: float) -> None:
    """In ``seconds``, from another thread, print how many times the GUI timer and the
    session task ticked meanwhile (the prompt idle all along)."""
    gui, session = gui_ticks, session_ticks

    def report() -> None:
        print(f"ticks: gui {gui_ticks - gui} session {session_ticks - session}", flush=True)

    threading.Timer(seconds, report).start()


def report_cpu_after(seconds: float) -> None:
    """In ``seconds``, from another thread, print the process's CPU use meanwhile, in % of
    one core."""
    cpu, wall = time.process_time(), time.monotonic()

    def report() -> None:
        used = (time.process_time() - cpu) / (time.monotonic() - wall)
        print(f"cpu: {100 * used:.2f} %", flush=True)

    threading.Timer(seconds, report).start()
