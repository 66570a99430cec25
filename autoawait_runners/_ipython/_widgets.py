"""Awaiting the person at the notebook: a widget's change, a click, a custom message (K4).

``await changed(slider)`` in a cell waits for the slider to move. It works because the
runners let the kernel handle the frontend's messages while a cell awaits (see
docs/jupyter.rst); the widget's callbacks run in the kernel's main thread as always, and
:func:`~autoawait_runners._runners._next_call.next_call` hands the change to the cell's
own library, whichever runner runs it. Each removes its callback when it returns or is
cancelled, so a timeout around it (``asyncio.timeout``, ``trio.move_on_after``,
``curio.timeout_after``) leaves nothing behind. Any ``traitlets.HasTraits`` object works
with :func:`changed`; :func:`clicked` and :func:`received` take ipywidgets' widgets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core import _private_api
from .._runners._next_call import Subscribe, next_call


class WidgetClosed(RuntimeError):
    """The widget a cell waited for was closed (its frontend side went away: the output
    cleared, the notebook closed), so what was awaited can no longer come."""


async def changed(owner: Any, name: str = "value") -> Any:
    """Wait for the trait ``name`` of ``owner`` (a widget, or any ``HasTraits``) to change;
    return its new value. Raises :class:`WidgetClosed` if the widget is closed meanwhile."""

    def subscribe(callback: Callable[..., None]) -> Callable[[], None]:
        owner.observe(callback, names=name)
        return lambda: owner.unobserve(callback, names=name)

    (change,) = await _next_call_or_close(owner, subscribe)
    return change["new"]


async def clicked(button: Any) -> Any:
    """Wait for a click on ``button`` (an ``ipywidgets.Button``); return the button.
    Raises :class:`WidgetClosed` if the button is closed meanwhile."""

    def subscribe(callback: Callable[..., None]) -> Callable[[], None]:
        button.on_click(callback)
        return lambda: button.on_click(callback, remove=True)

    (clicked_button,) = await _next_call_or_close(button, subscribe)
    return clicked_button


async def received(widget: Any) -> tuple[Any, list[Any]]:
    """Wait for the next custom message from ``widget``'s frontend side (an ipywidgets
    widget, an anywidget: what ``widget.on_msg`` gets); return its content and buffers.
    Raises :class:`WidgetClosed` if the widget is closed meanwhile."""

    def subscribe(callback: Callable[..., None]) -> Callable[[], None]:
        widget.on_msg(callback)
        return lambda: widget.on_msg(callback, remove=True)

    _, content, buffers = await _next_call_or_close(widget, subscribe)
    return content, buffers


#: What the callback gets when the widget is closed instead.
_CLOSED = object()


async def _next_call_or_close(widget: Any, subscribe: Subscribe) -> tuple[Any, ...]:
    """:func:`next_call`, ended also by the close of the widget's comm (a ``comm_close``
    from the frontend), which ipywidgets does not report otherwise."""

    def subscribe_both(callback: Callable[..., None]) -> Callable[[], None]:
        unsubscribe = subscribe(callback)
        stop_watching = _on_close(widget, lambda: callback(_CLOSED))

        def unsubscribe_both() -> None:
            unsubscribe()
            stop_watching()

        return unsubscribe_both

    arguments = await next_call(subscribe_both)
    if arguments == (_CLOSED,):
        raise WidgetClosed(f"{type(widget).__name__} was closed while a cell waited for it")
    return arguments


def _on_close(widget: Any, closed: Callable[[], None]) -> Callable[[], None]:
    """Call ``closed()`` when the widget's comm is closed, after whatever close callback the
    comm had (its one slot, kept and put back); return what stops it."""
    comm = getattr(widget, "comm", None)
    if comm is None or not callable(getattr(comm, "on_close", None)):
        return _nothing
    before = _private_api.comm_close_callback(comm)

    def on_close(message: Any) -> None:
        if before is not None:
            before(message)
        closed()

    comm.on_close(on_close)

    def stop() -> None:
        if _private_api.comm_close_callback(comm) is on_close:
            comm.on_close(before)

    return stop


def _nothing() -> None:
    pass
