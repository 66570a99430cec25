"""A selector around another: every call but ``select`` goes to the one inside.

What a runner puts in its loop's place to do something while the loop waits for events
(``_runners._gui_wait.GuiSelector``: run a GUI's events; ``_loop_watch.WatchedSelector``:
mark the wait for the loop watch) without owning what the loop registers."""

from __future__ import annotations

import selectors
from typing import Any


class SelectorAround(selectors.BaseSelector):
    """Delegates registration to :attr:`selector`; subclasses say how to ``select``."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.selector.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self.selector.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.selector.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self.selector.get_map()

    def close(self) -> None:
        self.selector.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return self.selector.select(timeout)
