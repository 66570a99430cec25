"""The ``uvloop`` runner: the ``thread`` runner on a uvloop loop.

uvloop's loop is the ``thread`` runner's session loop here, in a thread of its own: always
running, in a terminal and in a kernel alike. Not the ``asyncio`` runner's: that runner
leaves its loop in the middle of an iteration between cells and re-enters it (``_parking``),
which only asyncio's own loop class allows. For the same reason the nesting shim cannot run
``asyncio.run()`` on a uvloop session loop: it runs on a private loop of its own, as
without the extension, while the session waits (``_nesting._shim``). Only
``run_until_complete`` on the session loop itself is refused, with one clear RuntimeError.

Any other loop class: ``c.AutoawaitRunners.loop_factory`` with the ``thread`` runner.
"""

from __future__ import annotations

from ._base import RunnerUnavailable
from ._thread import AsyncioThreadRunner


class UvloopRunner(AsyncioThreadRunner):
    """The thread runner's session on a uvloop loop."""

    name = "uvloop"
    library = "uvloop"
    extra = "uvloop"
    description = "an asyncio loop in its own thread, on uvloop"

    def _startup(self) -> None:
        try:
            import uvloop
        except ImportError as exc:
            raise RunnerUnavailable(f"uvloop cannot be imported ({exc})") from None
        self.loop_factory = uvloop.new_event_loop
        super()._startup()


_runner = UvloopRunner()


def get_runner() -> UvloopRunner:
    """Entry point: the session's uvloop runner (one object per process)."""
    return _runner
