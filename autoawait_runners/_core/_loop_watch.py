"""The watch on a session loop: it says when the loop is blocked, and by what (B3).

A loop is blocked when it does not come back to wait for events for longer than
:attr:`WatchSettings.threshold` seconds while no cell runs: one task step or callback holds
it (a ``time.sleep``, a CPU-bound loop, a blocking call). A thread of the watch's own finds
that out, and samples the loop thread's stack (``_private_api.current_frames``) to name
the task or callback and its line of code. Not asyncio's debug mode: that slows every step down, and
says only after the step ends.

How the watch knows the loop waits for events: the loop's own code marks it, at no more
than an attribute store per turn of the loop (:meth:`LoopWatch.waiting` before its wait,
:meth:`LoopWatch.woke` after). Each runner says where its loop waits (an asyncio loop's
or curio's selector, wrapped in a :class:`WatchedSelector`; trio's instrument hooks around
its I/O wait). The watch's thread sleeps while the loop waits: the loop wakes it on its
first turn after a wait, and then it looks at most once per threshold while the loop is
busy. A loop whose wait cannot be marked (uvloop's, written in C) is watched by
:meth:`LoopWatch.heartbeat` instead: once per threshold the watch looks at the loop
thread's stack, and only when Python code runs there does it send the loop a callback,
which a blocked loop cannot run.

Library-agnostic: the runner gives the loop thread's id and a way to list its tasks; what
to do with an episode (the line at the prompt, the kernel's log) is the IPython glue's
(:func:`configure`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import selectors
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from . import _private_api
from ._selector_around import SelectorAround
from ._tracebacks import PACKAGE_DIR, is_plumbing_or_library

#: How many episodes :data:`settings` keeps for ``%tasks blocked``.
KEPT = 10

_CORO_FLAGS = 0x80 | 0x200 | 0x100  # CO_COROUTINE, CO_ASYNC_GENERATOR, CO_ITERABLE_COROUTINE


@dataclass
class Place:
    """One frame of a sampled stack, kept as text: the frame itself would keep its locals."""

    filename: str
    lineno: int
    function: str
    is_coroutine: bool


@dataclass
class Episode:
    """One time the loop was blocked."""

    #: The runner's name ("thread").
    runner: str
    #: time.time() and time.monotonic() when the blocking turn of the loop began.
    began_at: float
    began: float
    #: "task 'name'", "callback", or "" (the loop's own code).
    holder: str
    #: The function the holder runs: the task's coroutine, the callback's function.
    function: str
    #: The frames from the task's (or callback's) first one to the innermost, outer first.
    stack: list[Place] = field(default_factory=list)
    #: Seconds the loop was blocked, once it came back; None while it still is.
    duration: float | None = None

    @property
    def innermost_user_frame(self) -> Place | None:
        """Where the user's code is (library frames below it say only how it blocks)."""
        users = [p for p in self.stack if not is_plumbing_or_library(p.filename)]
        chosen = users or self.stack
        return chosen[-1] if chosen else None


class WatchSettings:
    """What every watch reads: the threshold (``c.AutoawaitRunners.blocked_warning``), who
    hears of episodes, and the recent ones."""

    def __init__(self) -> None:
        #: Seconds; 0 turns the watch off.
        self.threshold = 1.0
        #: Called from the watch's thread when an episode is found, and when it ends.
        self.on_blocked: Callable[[Episode], None] = _say_blocked
        self.on_ended: Callable[[Episode], None] = _say_ended
        self.recent: collections.deque[Episode] = collections.deque(maxlen=KEPT)


def configure(
    threshold: float | None = None,
    on_blocked: Callable[[Episode], None] | None = None,
    on_ended: Callable[[Episode], None] | None = None,
) -> None:
    """Change the settings; every live watch takes them at once."""
    if threshold is not None:
        settings.threshold = max(0.0, float(threshold))
    if on_blocked is not None:
        settings.on_blocked = on_blocked
    if on_ended is not None:
        settings.on_ended = on_ended
    for watch in list(_watches):
        watch.poke()


def reset() -> None:
    """The settings as without the IPython glue (``%unload_ext``)."""
    configure(1.0, _say_blocked, _say_ended)
    settings.recent.clear()


def _say_blocked(episode: Episode) -> None:
    from ._messages import say

    say(describe(episode, lambda place: f"{_basename(place.filename)}:{place.lineno}"))


def _say_ended(episode: Episode) -> None:
    from ._messages import say

    say(describe_end(episode))


def _basename(filename: str) -> str:
    import os

    return os.path.basename(filename)


def describe(episode: Episode, place_of: Callable[[Place], str]) -> str:
    """The line that says the loop is blocked, and by what."""
    where = episode.innermost_user_frame
    at = f" at {place_of(where)}" if where is not None else ""
    if episode.holder:
        # A cell's own code (a background cell's task) is a <module>: its place says it.
        inside = "" if episode.function == "<module>" else f" in {episode.function}()"
        what = f"{episode.holder}{inside}{at}"
    else:
        what = f"its own code{at}"
    elapsed = time.monotonic() - episode.began
    return f"the {episode.runner} loop is blocked ({elapsed:.1f} s) by {what} (%tasks blocked)"


def describe_end(episode: Episode) -> str:
    """The note when it comes back."""
    return f"... the {episode.runner} loop was blocked for {episode.duration:.1f} s"


settings = WatchSettings()
_watches: weakref.WeakSet[LoopWatch] = weakref.WeakSet()


class LoopWatch:
    """The watch on one session loop; one thread, started by :meth:`start`, joined by
    :meth:`close`.

    ``thread_id``: the loop thread's; ``tasks()``: the session's tasks now, as (name, the
    task's own coroutine) pairs, callable from any thread (what it cannot list it leaves
    out); ``heartbeat``: for a loop whose wait cannot be marked, a thread-safe way to have
    it call a function (``loop.call_soon_threadsafe``).
    """

    def __init__(
        self,
        runner: str,
        thread_id: int,
        tasks: Callable[[], Iterable[tuple[str, Any]]],
        heartbeat: Callable[[Callable[[], None]], Any] | None = None,
    ) -> None:
        self.runner = runner
        self.thread_id = thread_id
        self._tasks = tasks
        self._heartbeat = heartbeat
        # Written by the loop thread (and the cells' thread), read by the watch's.
        self._waiting = True  # waiting for events, or standing still between cells
        self._turns = 0
        self._busy_since = 0.0
        self._cell = False
        self._listening = False  # the watch sleeps until woken: woke() must wake it
        self._in_episode = False
        self._awake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        #: Set after a fork in the parent: the thread starts again at the next mark.
        self._restart = False
        self._restarting = threading.Lock()

    # -- the loop thread's marks -----------------------------------------------------------

    def waiting(self) -> None:
        """The loop waits for events now (or stands still: nothing of it runs)."""
        self._waiting = True
        if self._in_episode:
            self._awake.set()

    def woke(self) -> None:
        """The loop is back from its wait: a turn of it begins."""
        if self._restart:
            self._start_again()
        self._waiting = False
        self._turns += 1
        self._busy_since = time.monotonic()
        if (self._listening and not self._cell) or self._in_episode:
            self._listening = False
            self._awake.set()

    # -- the cells' thread's marks ---------------------------------------------------------

    def cells_begin(self) -> None:
        """A cell runs: what holds the loop now is the cell's business (not watched)."""
        self._cell = True

    def cells_end(self) -> None:
        """No cell runs any more: a loop busy now is watched from now on."""
        self._cell = False
        if self._restart:
            self._start_again()
        self._busy_since = max(self._busy_since, time.monotonic())
        if not self._waiting and self._listening:
            self._listening = False
            self._awake.set()

    # -- the watch's thread ----------------------------------------------------------------

    def start(self) -> LoopWatch:
        _watches.add(self)
        self._start_thread()
        return self

    def _start_thread(self) -> None:
        self._closing = False
        self._thread = threading.Thread(
            target=self._main, name=f"autoawait_runners-{self.runner} watch", daemon=True
        )
        self._thread.start()

    def _start_again(self) -> None:
        with self._restarting:
            if self._restart:
                self._restart = False
                self._start_thread()

    def poke(self) -> None:
        """Look at the settings again (thread-safe)."""
        self._awake.set()

    def close(self) -> None:
        """End the watch's thread and join it."""
        self._stop_thread()
        _watches.discard(self)

    def _stop_thread(self) -> None:
        self._closing = True
        self._awake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _main(self) -> None:
        main = self._watch_beats if self._heartbeat is not None else self._watch_marks
        with contextlib.suppress(BaseException):  # a watch never takes a session down
            main()

    def _sleep(self, seconds: float | None) -> None:
        self._awake.wait(seconds)
        self._awake.clear()

    def _watch_marks(self) -> None:
        while not self._closing:
            threshold = settings.threshold
            self._awake.clear()
            if threshold <= 0:
                self._sleep(None)  # until configured, or closed
                continue
            self._listening = True
            if self._waiting or self._cell:
                self._sleep(None)  # until the loop's next turn, a cell's end, closing
                continue
            self._listening = False
            turn, since = self._turns, self._busy_since
            left = since + threshold - time.monotonic()
            if left > 0:
                self._sleep(left)
            if self._closing or self._waiting or self._cell or self._turns != turn:
                continue
            if time.monotonic() - self._busy_since >= threshold:
                self._episode(turn, marked=True)

    def _watch_beats(self) -> None:
        assert self._heartbeat is not None
        from ._ctrl_c import loop_waits_for_events

        while not self._closing:
            threshold = settings.threshold
            self._sleep(threshold if threshold > 0 else None)
            if self._closing or threshold <= 0 or self._cell:
                continue
            if loop_waits_for_events(self.thread_id):
                continue
            beats = self._turns
            since = time.monotonic()
            try:
                self._heartbeat(self.woke)
            except RuntimeError:  # the loop is closed: the session ends
                continue
            self._sleep(threshold)
            if self._closing or self._cell or self._turns != beats:
                continue
            self._busy_since = since
            self._episode(beats, marked=False)

    def _episode(self, turn: int, *, marked: bool) -> None:
        """The loop is blocked in ``turn``: sample it, say so once, wait until it comes
        back (``marked``: its waits are marked; else the heartbeat's turn), say that."""

        def over() -> bool:
            return (marked and self._waiting) or self._turns != turn

        frame = _private_api.current_frames().get(self.thread_id)
        if frame is None:
            return
        episode = self._describe(frame)
        del frame
        self._in_episode = True
        try:
            if over():
                return  # back already: what the sample shows is not what held it
            settings.recent.append(episode)
            with contextlib.suppress(Exception):
                settings.on_blocked(episode)
            while not (self._closing or over()):
                self._sleep(None)  # woken by waiting(), the heartbeat, or closing
        finally:
            self._in_episode = False
        episode.duration = time.monotonic() - episode.began
        if not self._closing:
            with contextlib.suppress(Exception):
                settings.on_ended(episode)

    def _describe(self, innermost: FrameType) -> Episode:
        frames: list[FrameType] = []
        frame: FrameType | None = innermost
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
        frames.reverse()  # outermost first
        roots: dict[int, str] = {}
        with contextlib.suppress(Exception):
            for name, coro in self._tasks():
                root = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
                if root is not None:
                    roots[id(root)] = name
        start = next((i for i, f in enumerate(frames) if id(f) in roots), None)
        holder = ""
        if start is not None:
            holder = f"task {roots[id(frames[start])]!r}"
            users = [
                f
                for f in frames[start:]
                if f.f_code.co_flags & _CORO_FLAGS and not is_plumbing_or_library(_file(f))
            ]
            function = (users or frames[start : start + 1])[0].f_code.co_qualname
        else:
            start = next(
                (i for i, f in enumerate(frames) if not is_plumbing_or_library(_file(f))), None
            )
            if start is not None:
                holder = "callback"
                function = frames[start].f_code.co_qualname
            else:  # the loop's own code, or a library's: shown from below this package's
                start = max(
                    (i + 1 for i, f in enumerate(frames) if _file(f).startswith(PACKAGE_DIR)),
                    default=0,
                )
                start = min(start, len(frames) - 1)
                function = frames[start].f_code.co_qualname if frames else "?"
        stack = [
            Place(
                _file(f), f.f_lineno or 0, f.f_code.co_name, bool(f.f_code.co_flags & _CORO_FLAGS)
            )
            for f in frames[start:]
            if not _file(f).startswith(PACKAGE_DIR)  # the runner's own (trio's _guarded)
        ]
        began = self._busy_since
        return Episode(
            self.runner,
            time.time() - (time.monotonic() - began),
            began,
            holder,
            function,
            stack,
        )


# A fork sees the process as it would be without the watch: its threads are ended before,
# and started again in the parent at the loop's or the cells' next mark (the child has
# none). Without the extension the asyncio runner's process has one thread, and Python
# 3.12+ warns at a fork in a process with more ("use of fork() may lead to deadlocks in the
# child"), counting them after the parent's fork hooks: a thread started there counts.


def _end_the_threads_before_a_fork() -> None:
    for watch in list(_watches):
        if watch._thread is not None:
            watch._stop_thread()
            watch._restart = True


def _none_in_the_child() -> None:
    for watch in list(_watches):
        watch._restart = False  # a child that goes on has no watch: it runs no session


os.register_at_fork(before=_end_the_threads_before_a_fork, after_in_child=_none_in_the_child)


def _file(frame: FrameType) -> str:
    return frame.f_code.co_filename


class WatchedSelector(SelectorAround):
    """A loop's selector whose waits mark the watch (:meth:`LoopWatch.waiting` before,
    :meth:`LoopWatch.woke` after): what an asyncio loop and curio's kernel wait in."""

    def __init__(self, selector: selectors.BaseSelector, watch: LoopWatch) -> None:
        super().__init__(selector)
        self.watch = watch

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        watch = self.watch
        watch.waiting()
        try:
            return self.selector.select(timeout)
        finally:
            watch.woke()
