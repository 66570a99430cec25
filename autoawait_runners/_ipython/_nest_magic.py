"""``%nest``: the nesting shim on or off, and what it does (N4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._nesting._shim import STRATEGY, is_nesting, nest_off, nest_on, trio_cells_nest

if TYPE_CHECKING:
    from ._extension import Extension


def install(extension: Extension) -> None:
    extension.changes.register_magic(nest_magic, "line", "nest")
    extension.complete["nest"] = _arguments
    # Loading turns the shim on (N6, unless configured off); unloading puts it as it was.
    if not is_nesting():
        extension.changes.on_undo(nest_off)
    if extension.config.nest:
        nest_on(trio=extension.config.nest_trio)


def nest_magic(line: str) -> None:
    """Turn the nesting shim on or off: asyncio.run() and run_until_complete() in cells.

    %nest              say whether it is on, and how nested calls are run
    %nest on|off       turn it on or off (for the whole process)
    %nest trio on|off  also let trio.run() run in trio-runner cells (costs every cell)
    """
    words = line.lower().split()
    if words in (["on"], ["true"]):
        nest_on()
    elif words in (["off"], ["false"]):
        nest_off()
    elif words in (["trio", "on"], ["trio"]):
        nest_on(trio=True)
    elif words == ["trio", "off"]:
        nest_on(trio=False)
    elif words:
        from IPython.core.error import UsageError

        raise UsageError(f"%nest takes on, off, trio on or trio off, not {line.strip()!r}")
    if not is_nesting():
        print("nesting shim is off: asyncio.run() inside a running loop raises RuntimeError")
        return
    print("nesting shim is on:")
    for how in STRATEGY:
        print(f"  {how}")
    if trio_cells_nest():
        print("  trio.run() in a trio-runner cell runs in the cell's task (%nest trio off)")
    else:
        print("  trio.run() in a trio-runner cell is not served (%nest trio on)")


def _arguments(words: list[str]) -> list[str]:
    if not words:
        return ["on", "off", "trio"]
    return ["on", "off"] if words == ["trio"] else []
