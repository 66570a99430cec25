"""The interface between the nesting mechanism and what waits in it.

The nesting mechanism (``_nesting``: parking, the portal) knows nothing of IPython cells,
and cells (``_cell``) know nothing of how nesting works. A task's coroutine that is a
:class:`NestedCallWaiter` is told when a nested call parks it and when that call was
cancelled: that is all either side knows of the other.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from types import FrameType
from typing import Any


class NestedCallWaiter(ABC):
    """A coroutine that wants to know when its code waits in a nested call.

    The nesting mechanism (``_parking``, ``_portal``) knows nothing of IPython cells: a
    task's coroutine that is one of these is told when a nested call parks it and when
    that call was cancelled. ``CellCoroutine`` is one: Ctrl-C must cancel a parked cell's
    nested call rather than raise wherever the loop happens to be.
    """

    __slots__ = ()

    @abstractmethod
    def in_nested_call(self, awaited: Any) -> contextlib.AbstractContextManager[None]:
        """Entered while the coroutine's code waits in a nested call for ``awaited`` (a
        task of the running loop, or a coroutine run in a portal)."""

    @abstractmethod
    def nested_call_cancelled(self, exc: BaseException) -> BaseException:
        """What the waiting code sees when its nested call was cancelled."""

    @abstractmethod
    def absorb_stale_cancellation(self, task: Any) -> None:
        """The nested call took a cancellation of ``task`` that asyncio also flagged on the
        task; the coroutine should not see it a second time."""


class NestedCallTaker(ABC):
    """A coroutine whose task stands in for code that runs outside every task of the loop
    (the asyncio runner runs a plain cell in place, with such a task current), and which
    takes that code's nested calls: they run its way, not parked as they are.

    The plain cell's ``asyncio.run()`` then runs as its await cell would (Ctrl-C and all),
    where parked bare it would see Ctrl-C raised wherever the loop happened to be.
    """

    __slots__ = ()

    @abstractmethod
    def take_nested_call(self, loop: Any, awaitable: Any) -> Any:
        """Run ``awaitable`` to its end on ``loop`` and return its result (or raise)."""


def taker_of(task: Any) -> NestedCallTaker | None:
    """The task's coroutine, if it takes the nested calls made while it is current."""
    coro = task.get_coro() if task is not None else None
    return coro if isinstance(coro, NestedCallTaker) else None


def waiter_of(task: Any) -> NestedCallWaiter | None:
    """The task's coroutine, if it wants to know about nested calls."""
    coro = task.get_coro() if task is not None else None
    return coro if isinstance(coro, NestedCallWaiter) else None


def frame_of(awaited: Any) -> FrameType | None:
    """The outermost frame of the code a nested call runs (a task's coroutine, or the
    coroutine itself), while it has one."""
    get_coro = getattr(awaited, "get_coro", None)
    coro = get_coro() if callable(get_coro) else awaited
    frame = getattr(coro, "cr_frame", None)
    return frame if isinstance(frame, FrameType) else None
