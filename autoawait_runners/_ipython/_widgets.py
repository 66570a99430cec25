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

from .._runners._next_call import next_call


async def changed(owner: Any, name: str = "value") -> Any:
    """Wait for the trait ``name`` of ``owner`` (a widget, or any ``HasTraits``) to change;
    return its new value."""

    def subscribe(callback: Callable[..., None]) -> Callable[[], None]:
        owner.observe(callback, names=name)
        return lambda: owner.unobserve(callback, names=name)

    (change,) = await next_call(subscribe)
    return change["new"]


async def clicked(button: Any) -> Any:
    """Wait for a click on ``button`` (an ``ipywidgets.Button``); return the button."""

    def subscribe(callback: Callable[..., None]) -> Callable[[], None]:
        button.on_click(callback)
        return lambda: button.on_click(callback, remove=True)

    (clicked_button,) = await next_call(subscribe)
    return clicked_button


async def received(widget: Any) -> tuple[Any, list[Any]]:
    """Wait for the next custom message from ``widget``'s frontend side (an ipywidgets
    widget, an anywidget: what ``widget.on_msg`` gets); return its content and buffers."""

    def subscribe(callback: Callable[..., None]) -> Callable[[], None]:
        widget.on_msg(callback)
        return lambda: widget.on_msg(callback, remove=True)

    _, content, buffers = await next_call(subscribe)
    return content, buffers
