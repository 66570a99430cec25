"""Tracebacks show the user's code, not the runner's (R9).

An exception that reaches the user passes through this package's frames where a plain
Python program has none: the SIGINT handler that raised KeyboardInterrupt in a busy cell,
the nesting shim in place of ``asyncio.run``'s own frames, the runner that gave up waiting.
IPython has no filter for that (``__tracebackhide__`` keeps the innermost frame, which is
ours when the handler raises), so the traceback is cut before IPython formats it: this
package's frames are unlinked, and a KeyboardInterrupt that crossed nothing but the
runner's loop plumbing keeps no frame at all.

The traceback's first entry is never touched: it is the frame that caught the exception
(IPython's own, which IPython skips when it shows the traceback). An exception raised in
this package's own code keeps its frames (they say where the runner failed), unless it was
raised for the user to read (:func:`for_the_user`).
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

E = TypeVar("E", bound=BaseException)

#: This package's files (a frame there is the runners' plumbing, not the user's code).
PACKAGE_DIR = os.path.dirname(os.path.dirname(__file__)) + os.sep
_LIBRARY_DIRS = tuple(
    {os.path.join(sysconfig.get_paths()[key], "") for key in ("stdlib", "purelib", "platlib")}
)


def for_the_user(exc: E) -> E:
    """Mark ``exc``, which this package raises, as said to the user, in place of the error
    the library would raise (a nested run the shim refuses): shown as the library's error
    would be, the user's frames then the message, its frames here cut though it was raised
    in one (F6). Returns ``exc``, to raise."""
    exc.raised_for_the_user = True  # type: ignore[attr-defined]
    return exc


def cut_plumbing(exc: BaseException) -> None:
    """Unlink this package's frames from ``exc``'s traceback and the ones it chains to."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = _cut(current)
        pending += [current.__cause__, current.__context__]


def _cut(exc: BaseException) -> TracebackType | None:
    head = exc.__traceback__
    if head is None:
        return None
    innermost_is_ours = _last(head).tb_frame.f_code.co_filename.startswith(PACKAGE_DIR)
    if (
        innermost_is_ours
        and not isinstance(exc, KeyboardInterrupt)
        and not getattr(exc, "raised_for_the_user", False)
    ):
        return head  # an error of the runner's own: its frames say where
    kept, users = head, False
    while kept.tb_next is not None:
        following = kept.tb_next
        filename = following.tb_frame.f_code.co_filename
        if filename.startswith(PACKAGE_DIR):
            kept.tb_next = following.tb_next
            continue
        users = users or not filename.startswith(_LIBRARY_DIRS)
        kept = following
    if isinstance(exc, KeyboardInterrupt) and not users:
        head.tb_next = None  # only loop plumbing: the user sees "KeyboardInterrupt"
    elif getattr(exc, "delivered_at_an_await", False):
        # Ctrl-C at an await: the traceback ends at the user's await, not in the library
        # frames of how it waits (a trio sleep is five of them).
        last_users = None
        tb: TracebackType | None = head.tb_next
        while tb is not None:
            if not is_plumbing_or_library(tb.tb_frame.f_code.co_filename):
                last_users = tb
            tb = tb.tb_next
        if last_users is not None:
            last_users.tb_next = None
    return head


def cut_to_task_code(exc: BaseException, scheduling: str | None = None) -> TracebackType | None:
    """Cut the traceback of the exception a background task failed with, for its report
    (R6, F6), the same under every runner: it starts in the task's own code, after the
    frames that ran the task (``scheduling``: the directory of the library's package, and
    this package's), and this package's frames after that are unlinked (the Ctrl-C handler
    that raised KeyboardInterrupt in a task that never yields, the nesting shim). Returns
    the traceback, which is also ``exc``'s now."""
    before_the_task = (PACKAGE_DIR, scheduling) if scheduling is not None else (PACKAGE_DIR,)
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(before_the_task):
        tb = tb.tb_next
    kept = tb
    while kept is not None and kept.tb_next is not None:
        following = kept.tb_next
        if following.tb_frame.f_code.co_filename.startswith(PACKAGE_DIR):
            kept.tb_next = following.tb_next
        else:
            kept = following
    exc.__traceback__ = tb
    return tb


def is_plumbing_or_library(filename: str) -> bool:
    """Whether code in ``filename`` is this package's, the standard library's or an
    installed package's, rather than the user's."""
    return filename.startswith((PACKAGE_DIR, *_LIBRARY_DIRS))


def _last(tb: TracebackType) -> TracebackType:
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb


_closing = threading.local()


@contextmanager
def closing_quietly() -> Iterator[None]:
    """Close a cell given up on, whose code ignores cancellation, while its loop still runs
    (its next ``await`` then suspends, and ``close()`` ends; closed later, with no loop, the
    ``await`` fails at once, and a ``while True`` that swallows every exception printed
    without end at exit). What reports its end in this thread meanwhile is not shown:
    IPython's traceback of the ``GeneratorExit`` or of "coroutine ignored GeneratorExit",
    the coroutines' own unraisable reports. The session's closing line names the cell."""
    hook = sys.unraisablehook

    def unraisable(report: Any) -> None:
        if threading.current_thread() is not here:
            hook(report)

    here = threading.current_thread()
    outer = getattr(_closing, "on", False)  # within another: on until that one ends
    _closing.on = True
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        _closing.on = outer
        if sys.unraisablehook is unraisable:
            sys.unraisablehook = hook


def showing_user_frames(
    show_now: Callable[[], Callable[..., Any]], active_runner: Callable[[], Any]
) -> Callable[..., Any]:
    """Wrap a shell's ``showtraceback``: the exception shown has its plumbing cut first,
    and a note if it failed for want of the main thread (see :func:`note_main_thread_only`);
    ``show_now()`` is the ``showtraceback`` to call, looked up at each call (a tool may
    replace the class's meanwhile, and must not be bypassed); ``active_runner()`` is the
    runner the extension has selected."""

    def showtraceback(exc_tuple: Any = None, *args: Any, **kwargs: Any) -> Any:
        if getattr(_closing, "on", False):
            return None  # a cell given up on, being closed (closing_quietly)
        if exc_tuple is None:
            exc = sys.exc_info()[1]  # what IPython shows: its traceback is exc's own
            if exc is not None:
                cut_plumbing(exc)
                note_main_thread_only(exc, active_runner)
        elif isinstance(exc_tuple[1], BaseException) and exc_tuple[2] is exc_tuple[1].__traceback__:
            cut_plumbing(exc_tuple[1])
            note_main_thread_only(exc_tuple[1], active_runner)
            exc_tuple = (exc_tuple[0], exc_tuple[1], exc_tuple[1].__traceback__)
        return show_now()(exc_tuple, *args, **kwargs)

    return showtraceback


def as_its_class_has_it(obj: Any, name: str) -> Callable[[], Any]:
    """``obj.name`` as ``obj``'s class defines it at the time of the call, bound to ``obj``
    (an instance attribute of the same name is not looked at: it is the caller's own)."""
    import inspect

    def now() -> Any:
        attribute = inspect.getattr_static(type(obj), name)
        bind = getattr(type(attribute), "__get__", None)
        return bind(attribute, obj, type(obj)) if bind is not None else attribute

    return now


def note_main_thread_only(exc: BaseException, active_runner: Callable[[], Any]) -> None:
    """Python lets only the main thread set signal handlers (``signal.signal``,
    ``loop.add_signal_handler``, trio's ``open_signal_receiver``); the thread, trio, curio
    and uvloop runners run cells in a thread of their own (asyncio and trio-guest do not).
    A cell that failed for that reason, shown in such a thread, gets a note saying so,
    under its traceback, with the runner that runs its library's cells in the main thread."""
    if (
        not isinstance(exc, (ValueError, RuntimeError))
        or "main thread" not in str(exc)
        or threading.current_thread() is threading.main_thread()
    ):
        return
    runner = active_runner()
    way_out = {
        "asyncio": "%autoawait asyncio runs cells in the main thread",
        "uvloop": "%autoawait asyncio runs cells in the main thread",
        "trio": "%autoawait trio-guest runs cells in the main thread",
    }.get(str(getattr(runner, "library", "")), "no runner of its library runs cells there")
    note = (
        f"(the {runner} runner runs cells in a thread of its own, and Python lets only the "
        f"main thread set signal handlers: {way_out})"
    )
    if note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)
