"""Awaiting the person at the notebook: a widget's change, a click, a custom message (K4).

``await changed(slider)`` in a cell waits for the slider to move. It works because the
runners let the kernel handle the frontend's messages while a cell awaits (see
docs/jupyter.rst); the widget's callbacks run where the kernel runs them (``_kernel_comms``),
and :func:`~autoawait_runners._runners._next_call.next_call` hands the change to the cell's
own library from any thread, whichever runner runs it. Each removes its callback when it
returns or is cancelled, so a timeout around it (``asyncio.timeout``,
``trio.move_on_after``, ``curio.timeout_after``) leaves nothing behind. A widget closed
meanwhile, from either side, ends the wait with :class:`WidgetClosed`. Any
``traitlets.HasTraits`` object works with :func:`changed`; :func:`clicked` and
:func:`received` take ipywidgets' widgets.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from .._core import _private_api
from .._runners._next_call import Subscribe, next_call


class WidgetClosed(RuntimeError):
    """The widget a cell waited for was closed, so what was awaited can no longer come: by
    its frontend side (the output cleared, the notebook closed) or in the kernel
    (``widget.close()``, from a cell or from another widget's callback)."""


async def changed(owner: Any, name: str = "value") -> Any:
    """Wait for the trait ``name`` of ``owner`` (a widget, or any ``HasTraits``) to change;
    return its new value. Raises :class:`WidgetClosed` if the widget is closed (before,
    or meanwhile)."""

    def subscribe(callback: Callable[..., None]) -> Callable[[], None]:
        owner.observe(callback, names=name)
        return lambda: owner.unobserve(callback, names=name)

    (change,) = await _next_call_or_close(owner, subscribe)
    return change["new"]


async def clicked(button: Any) -> Any:
    """Wait for a click on ``button`` (an ``ipywidgets.Button``); return the button.
    Raises :class:`WidgetClosed` if the button is closed (before, or meanwhile)."""

    def subscribe(callback: Callable[..., None]) -> Callable[[], None]:
        button.on_click(callback)
        return lambda: button.on_click(callback, remove=True)

    (clicked_button,) = await _next_call_or_close(button, subscribe)
    return clicked_button


async def received(widget: Any) -> tuple[Any, list[Any]]:
    """Wait for the next custom message from ``widget``'s frontend side (an ipywidgets
    widget, an anywidget: what ``widget.on_msg`` gets); return its content and buffers.
    Raises :class:`WidgetClosed` if the widget is closed (before, or meanwhile)."""

    def subscribe(callback: Callable[..., None]) -> Callable[[], None]:
        widget.on_msg(callback)
        return lambda: widget.on_msg(callback, remove=True)

    _, content, buffers = await _next_call_or_close(widget, subscribe)
    return content, buffers


#: What the callback gets when the widget is closed instead.
_CLOSED = object()


async def _next_call_or_close(widget: Any, subscribe: Subscribe) -> tuple[Any, ...]:
    """:func:`next_call`, ended also by the widget's close, from either side, which
    ipywidgets does not report to ``observe``, ``on_click`` or ``on_msg``."""
    if _closed_already(widget):
        raise WidgetClosed(f"{type(widget).__name__} was closed before a cell waited for it")

    def subscribe_both(callback: Callable[..., None]) -> Callable[[], None]:
        unsubscribe = subscribe(callback)
        stop_watching = _on_close(widget, lambda: callback(_CLOSED))

        def unsubscribe_both() -> None:
            unsubscribe()
            stop_watching()

        return unsubscribe_both

    arguments = await next_call(subscribe_both)
    if arguments == (_CLOSED,):
        raise _closed(widget)
    return arguments


def _closed(widget: Any) -> WidgetClosed:
    return WidgetClosed(f"{type(widget).__name__} was closed while a cell waited for it")


def _closed_already(widget: Any) -> bool:
    """An ipywidgets widget whose ``close()`` ran: it has no comm any more."""
    has_trait = getattr(widget, "has_trait", None)
    return callable(has_trait) and has_trait("comm") and widget.comm is None


def _on_close(widget: Any, closed: Callable[[], None]) -> Callable[[], None]:
    """Call ``closed()`` when the widget is closed; return what stops it. Every wait on one
    widget shares one :class:`_CloseWatch`, made by the first and removed by the last."""
    comm = getattr(widget, "comm", None)
    if comm is None or not callable(getattr(comm, "on_close", None)):
        return _nothing
    with _watches_lock:
        watch = _watches.get(id(widget))
        if watch is None:
            watch = _watches[id(widget)] = _CloseWatch(widget, comm)
        watch.waiters.append(closed)

    def stop() -> None:
        with _watches_lock:
            if closed in watch.waiters:
                watch.waiters.remove(closed)
            if watch.waiters or _watches.get(id(widget)) is not watch:
                return
            del _watches[id(widget)]
            # Under the lock: a wait that begins meanwhile finds the comm as it was.
            watch.remove()

    return stop


class _CloseWatch:
    """While waits on a widget exist, what tells them that it closed, installed once:

    - a close from the frontend (its output cleared, the notebook closed) comes as the
      comm's ``comm_close``, to its one close callback: this one takes the slot and calls
      the comm's own callback first;
    - a close in the kernel (``widget.close()``, from a cell or a button's callback) sends
      no message to the kernel's side; ipywidgets sets the widget's ``comm`` trait to None,
      which this observes.

    The last wait to end puts the comm's own callback back (unless something replaced this
    one since: then that is in charge) and stops observing: any number of waits, concurrent
    or one after another, leave the comm and the widget as they found them.
    """

    def __init__(self, widget: Any, comm: Any) -> None:
        self.waiters: list[Callable[[], None]] = []
        self._widget = widget
        self._comm = comm
        self._own = _private_api.comm_close_callback(comm)
        comm.on_close(self._comm_closed)
        self._observing = callable(getattr(widget, "observe", None))
        if self._observing:
            widget.observe(self._comm_changed, names="comm")

    def _comm_closed(self, message: Any) -> None:
        if self._own is not None:
            self._own(message)
        self._tell()

    def _comm_changed(self, change: Any) -> None:
        if change["old"] is self._comm:
            self._tell()

    def _tell(self) -> None:
        with _watches_lock:
            waiters = list(self.waiters)
        for closed in waiters:
            closed()

    def remove(self) -> None:
        if self._observing:
            with contextlib.suppress(ValueError):  # removed by someone else already
                self._widget.unobserve(self._comm_changed, names="comm")
        if _private_api.comm_close_callback(self._comm) == self._comm_closed:
            self._comm.on_close(self._own)


#: id(widget) -> the watch of the waits on it; an entry lives while a wait does.
_watches: dict[int, _CloseWatch] = {}
_watches_lock = threading.Lock()


def _nothing() -> None:
    pass
