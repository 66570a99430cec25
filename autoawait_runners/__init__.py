"""Persistent, interruptible ``%autoawait`` loop runners for IPython and Jupyter.

Load the extension with ``%load_ext autoawait_runners`` (or list it in
``c.InteractiveShellApp.extensions``) and pick a runner with ``%autoawait NAME``;
``%autoawait --list`` shows the catalogue. The extension also turns on the nesting shim
(:func:`nest_on`, ``%nest``), so cells can call ``asyncio.run()`` while a loop runs.

Each built-in runner is also importable by dotted path, ``autoawait_runners.NAME_runner``,
without importing its library until it is first used, so it can be named in
``c.InteractiveShell.loop_runner`` without the extension. Importing this package is cheap:
every name below is loaded on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ._core._cell import CellInterrupted
    from ._embed._embed import EmbedRunner, aembed, embed
    from ._ipython._config import AutoawaitRunners
    from ._ipython._widgets import WidgetClosed, changed, clicked, received
    from ._nesting._shim import is_nesting, nest_off, nest_on, nesting
    from ._runners._asyncio import AsyncioRunner
    from ._runners._base import Runner, RunnerUnavailable
    from ._runners._curio import CurioRunner
    from ._runners._thread import AsyncioThreadRunner
    from ._runners._trio import SessionNursery, TrioRunner, trio_nursery
    from ._runners._trio_guest import TrioGuestRunner
    from ._runners._uvloop import UvloopRunner

    asyncio_runner: AsyncioRunner
    thread_runner: AsyncioThreadRunner
    trio_runner: TrioRunner
    trio_guest_runner: TrioGuestRunner
    curio_runner: CurioRunner
    uvloop_runner: UvloopRunner
    embed_runner: EmbedRunner

__version__ = "0.1.0"

__all__ = [
    "AutoawaitRunners",
    "CellInterrupted",
    "Runner",
    "RunnerUnavailable",
    "SessionNursery",
    "WidgetClosed",
    "aembed",
    "asyncio_runner",
    "changed",
    "clicked",
    "curio_runner",
    "embed",
    "embed_runner",
    "is_nesting",
    "load_ipython_extension",
    "nest_off",
    "nest_on",
    "nesting",
    "received",
    "thread_runner",
    "trio_guest_runner",
    "trio_nursery",
    "trio_runner",
    "unload_ipython_extension",
    "uvloop_runner",
]

# name -> (module, attribute): what `from autoawait_runners import X` loads on first use.
_LAZY = {
    "asyncio_runner": ("._runners._asyncio", "_runner"),
    "thread_runner": ("._runners._thread", "_runner"),
    "trio_runner": ("._runners._trio", "_runner"),
    "trio_guest_runner": ("._runners._trio_guest", "_runner"),
    "curio_runner": ("._runners._curio", "_runner"),
    "uvloop_runner": ("._runners._uvloop", "_runner"),
    "trio_nursery": ("._runners._trio", "trio_nursery"),
    "SessionNursery": ("._runners._trio", "SessionNursery"),
    "embed_runner": ("._embed._embed", "embed_runner"),
    "embed": ("._embed._embed", "embed"),
    "aembed": ("._embed._embed", "aembed"),
    "AutoawaitRunners": ("._ipython._config", "AutoawaitRunners"),
    "CellInterrupted": ("._core._cell", "CellInterrupted"),
    "nest_on": ("._nesting._shim", "nest_on"),
    "nest_off": ("._nesting._shim", "nest_off"),
    "nesting": ("._nesting._shim", "nesting"),
    "is_nesting": ("._nesting._shim", "is_nesting"),
    "Runner": ("._runners._base", "Runner"),
    "RunnerUnavailable": ("._runners._base", "RunnerUnavailable"),
    "changed": ("._ipython._widgets", "changed"),
    "clicked": ("._ipython._widgets", "clicked"),
    "received": ("._ipython._widgets", "received"),
    "WidgetClosed": ("._ipython._widgets", "WidgetClosed"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name, __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Called by ``%load_ext autoawait_runners``: register the catalogue in this shell."""
    from ._ipython._extension import load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Called by ``%unload_ext autoawait_runners``: put back everything loading changed."""
    from ._ipython._extension import unload

    unload(ipython)
