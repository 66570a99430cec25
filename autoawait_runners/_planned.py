"""Catalogue places for the runners that are designed but not built yet.

The name ``embed`` is reserved so that configuration written for it today keeps its
meaning when the runner lands. Until then, selecting one says so in one line
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from ._runner import Runner, RunnerUnavailable


class PlannedRunner(Runner):
    """A reserved name: selecting it explains that the runner is not available yet."""

    every_cell = False
    #: What to use in the meantime, for the message.
    meanwhile = ""

    def _startup(self) -> None:
        raise RunnerUnavailable(
            f"the {self.name} runner is not implemented yet; meanwhile: {self.meanwhile}"
        )

    def _run_cell(self, coro: Coroutine[Any, Any, Any]) -> Any:  # pragma: no cover
        raise AssertionError("never started")

    def _shutdown(self) -> int:  # pragma: no cover
        return 0

    def _inside_cell(self) -> bool:
        return False


class PlannedEmbedRunner(PlannedRunner):
    name = "embed"
    library = "asyncio"
    description = "runs cells on the loop of the program IPython is embedded in (planned)"
    meanwhile = "the thread runner, which works inside a running program"


embed_runner = PlannedEmbedRunner()


def get_embed_runner() -> PlannedEmbedRunner:
    return embed_runner
