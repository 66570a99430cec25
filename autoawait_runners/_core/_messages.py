"""The extension's own words: every line it prints goes through :func:`say`.

One prefix (``autoawait_runners:``), on stderr, flushed at once: a line about the session
must come out before what follows it (a traceback, the next prompt), whichever front end
buffers what.
"""

from __future__ import annotations

import contextlib
import sys

#: How long ending a session waits for background work (and an abandoned cell) to finish.
SHUTDOWN_TIMEOUT = 1.0


def say(message: str) -> None:
    """Print one line from the extension, marked as such: after whatever was printed before
    it (a kernel sends stdout and stderr as two streams, stdout buffered)."""
    _flush_stdout()
    print(f"autoawait_runners: {message}", file=sys.stderr, flush=True)


def _flush_stdout() -> None:
    # None, closed, or in the middle of a write this call interrupted (a signal handler).
    with contextlib.suppress(AttributeError, OSError, ValueError, RuntimeError):
        sys.stdout.flush()


def say_failed(what: str, exc: BaseException) -> None:
    """One line saying what failed, then the exception and its traceback, as Python prints
    them (a background task's cut to its own code first: ``_tracebacks.cut_to_task_code``)."""
    import traceback

    say(what)
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    print("".join(lines), end="", file=sys.stderr, flush=True)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")
