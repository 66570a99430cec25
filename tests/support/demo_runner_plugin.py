"""Runners of a third-party plugin, for the entry-point tests (S6).

The tests install it by writing a ``.dist-info`` beside it (see test_extension.py), which is
all an installed distribution is to ``importlib.metadata``.
"""

import asyncio

from autoawait_runners import Runner, RunnerUnavailable

closed: list[str] = []


class FreshLoopRunner:
    """A fresh asyncio loop per cell: the IPython contract and nothing more."""

    library = "asyncio"
    description = "demo plugin: a fresh asyncio loop per cell"

    def __call__(self, coro):
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    def close(self) -> None:
        closed.append("fresh")

    def __str__(self) -> str:
        return "fresh"


class NeedsMissingLibrary(FreshLoopRunner):
    """Needs a library nobody has."""

    library = "autoawait_no_such_library"
    install = "pip install autoawait-no-such-library"


class FailsToStart(Runner):
    """Its session cannot start."""

    name = "failing"
    library = "asyncio"
    description = "demo plugin: cannot start"

    def _startup(self) -> None:
        raise RunnerUnavailable("port 1 is not available")

    def _run_cell(self, coro):  # pragma: no cover
        raise AssertionError

    def _shutdown(self) -> int:  # pragma: no cover
        return 0

    def _inside_cell(self) -> bool:
        return False


fresh = FreshLoopRunner()
missing = NeedsMissingLibrary()
failing = FailsToStart()


def returns_none():
    """An entry point that forgets to return its runner."""
    return None


def returns_a_number():
    return 42


def interrupted():
    raise KeyboardInterrupt


class CloseFails(FreshLoopRunner):
    """Its close() raises."""

    description = "demo plugin: close fails"

    def close(self) -> None:
        raise RuntimeError("cannot close")

    def __str__(self) -> str:
        return "closefails"
