"""Every change the extension makes to a shell, each recorded with its undo where it is made.

``%unload_ext`` must leave the shell as ``%load_ext`` found it: its magics, input
transformers, completer matchers, hooks, traits and instance attributes. Written as two
mirrored lists (one to install, one to restore) the two drift apart: a change added to one
and forgotten in the other stays installed after unload. So nothing is changed here without
its undo being pushed at once onto one stack (:class:`contextlib.ExitStack`), and
:meth:`Changes.undo` unwinds it, last change first.

A change another party has changed since (a user who set ``shell.showtraceback`` again, a
magic registered over ours) is theirs: the undo leaves it alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

_MISSING = object()


class Changes:
    """The changes made to one shell, undone in reverse order by :meth:`undo`."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell
        self._stack = contextlib.ExitStack()

    def remember_trait(self, name: str) -> None:
        """Undo sets the trait back to its value now, whatever sets it meanwhile."""
        self.on_undo(setattr, self.shell, name, getattr(self.shell, name))

    def set_attribute(self, owner: Any, name: str, value: Any) -> None:
        """Set an attribute on an instance (shadowing its class's); undo puts back what the
        instance had (or deletes it), if the attribute is still ours."""
        found = vars(owner).get(name, _MISSING)

        def put_back() -> None:
            if vars(owner).get(name, _MISSING) is not value:
                return  # changed since by someone else: theirs now
            if found is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, found)

        setattr(owner, name, value)
        self.on_undo(put_back)

    def register_magic(self, function: Callable[..., Any], kind: str, name: str) -> None:
        """Register a magic (``kind``: line, cell or line_cell); undo puts back the magic it
        replaced under that name, or removes it. IPython also keeps the function as an
        attribute of its ``user_magics``, which it never removes: undo puts back what was
        there too (the function, and the extension it belongs to, outlived an unload)."""
        magics = self.shell.magics_manager.magics
        user_magics = self.shell.magics_manager.user_magics
        kinds = ("line", "cell") if kind == "line_cell" else (kind,)
        found = {each: magics[each].get(name, _MISSING) for each in kinds}
        found_attribute = vars(user_magics).get(name, _MISSING)
        self.shell.register_magic_function(function, kind, name)  # type: ignore[arg-type]
        registered = {each: magics[each].get(name) for each in kinds}

        def put_back() -> None:
            for each in kinds:
                if magics[each].get(name) is not registered[each]:
                    continue  # registered over since: theirs now
                if found[each] is _MISSING:
                    magics[each].pop(name, None)
                else:
                    magics[each][name] = found[each]
            if vars(user_magics).get(name, _MISSING) is function:
                if found_attribute is _MISSING:
                    delattr(user_magics, name)
                else:
                    setattr(user_magics, name, found_attribute)

        self.on_undo(put_back)

    def append(self, items: list[Any], item: Any) -> None:
        """Append to one of the shell's lists (input transformers, completer matchers)."""
        items.append(item)
        self.on_undo(_remove, items, item)

    def observe(self, handler: Callable[[Any], None], name: str) -> None:
        """Observe one of the shell's traits."""
        self.shell.observe(handler, names=name)
        self.on_undo(self.shell.unobserve, handler, names=name)

    def on_event(self, name: str, handler: Callable[..., None]) -> None:
        """Register a handler of one of the shell's events (``post_run_cell``, ...)."""
        self.shell.events.register(name, handler)
        self.on_undo(self._unregister_event, name, handler)

    def _unregister_event(self, name: str, handler: Callable[..., None]) -> None:
        if handler in self.shell.events.callbacks[name]:
            self.shell.events.unregister(name, handler)

    def on_undo(self, undo: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Any other change: how to undo it."""
        self._stack.callback(undo, *args, **kwargs)

    def undo(self) -> None:
        """Undo every change, the last first (idempotent)."""
        self._stack.close()


def _remove(items: list[Any], item: Any) -> None:
    if item in items:
        items.remove(item)
