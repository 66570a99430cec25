"""``%autoawait``, extended: IPython's own forms, plus the catalogue's names and ``--list``
(S1-S4)."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._core._messages import say
from ._catalogue import Entry

if TYPE_CHECKING:
    from ._extension import Extension


def install(extension: Extension) -> None:
    def autoawait(line: str) -> None:
        autoawait_magic(extension, line)

    autoawait.__doc__ = autoawait_magic.__doc__
    extension.changes.register_magic(autoawait, "line", "autoawait")
    extension.complete["autoawait"] = lambda words: _arguments(extension, words)


def autoawait_magic(extension: Extension, line: str) -> None:
    """Select the runner for top-level await (extended by autoawait_runners).

    %autoawait            show the active runner and whether autoawait is on
    %autoawait --list     the catalogue of runners: name, library, installed, description
    %autoawait NAME       select a runner of the catalogue (asyncio, thread, trio...):
                          the old one's session ends, its background tasks cancelled
    %autoawait on|off     turn autoawait on or off, keeping the runner
    %autoawait OBJ        a runner from the user namespace or a dotted import path
    """
    arg = _unquoted(line.strip())
    shell = extension.shell
    if not arg:
        state = "on" if shell.autoawait else "off"
        print(f"autoawait is {state}; runner: {extension.describe(shell.loop_runner)}")
    elif arg in ("--list", "-l"):
        print(listing(extension))
    elif arg.lower() in ("on", "true", "off", "false"):
        shell.autoawait = arg.lower() in ("on", "true")
    elif arg in extension.catalogue:
        extension.select(extension.catalogue[arg])
    elif arg in shell.user_ns or "." in arg:
        _select_object(extension, arg)
    else:
        from IPython.core.error import UsageError

        raise UsageError(unknown(arg, extension.catalogue))


def _unquoted(arg: str) -> str:
    """``'trio'`` or ``"trio"`` (a magic's argument is not Python, but it is often typed as
    a string) is ``trio``."""
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
        return arg[1:-1].strip()
    return arg


def _select_object(extension: Extension, arg: str) -> None:
    """IPython's own forms: a name in the user namespace, or a dotted import path."""
    from IPython.utils.importstring import import_item

    shell = extension.shell
    try:
        runner = shell.user_ns[arg] if arg in shell.user_ns else import_item(arg)
    except Exception as exc:
        say(f"cannot import {arg!r}: {type(exc).__name__}: {exc}")
        return
    if not callable(runner):
        say(f"{arg!r} is not a loop runner (it is not callable)")
        return
    if inspect.iscoroutinefunction(runner):  # asyncio.sleep: every cell would be lost
        say(
            f"{arg!r} is not a loop runner: it is a coroutine function (a runner takes the "
            "cell's coroutine and runs it to its end; %autoawait --list shows the catalogue)"
        )
        return
    shell.loop_runner = runner
    shell.autoawait = True


def listing(extension: Extension) -> str:
    """The catalogue as ``%autoawait --list`` prints it (S2)."""
    return catalogue_table(
        extension.catalogue, in_kernel=extension.in_kernel, active=extension.shell.loop_runner
    )


def catalogue_table(
    catalogue: Mapping[str, Entry], *, in_kernel: bool, active: object = None
) -> str:
    """The catalogue as a table: name, library, installed, active (``active``: the shell's
    loop runner; without one, as for ``autoawait-ipython --list``, no such column),
    description."""
    rows = [("name", "library", "installed", "active", "description")]
    for name, entry in catalogue.items():
        if name == "kernel":
            if not in_kernel:
                continue
            entry.runner()  # cheap, and it may be the active one
        is_active = entry._runner is not None and (
            active in (entry._runner, getattr(entry._runner, "wrapped", 0))
        )
        installed = (
            "yes" if entry.installed else "no" if entry.error else f"no: {entry.install_command}"
        )
        rows.append((name, entry.library, installed, "*" if is_active else "", entry.description))
    columns = 4 if active is not None else 3  # name, library, installed[, active]
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:columns], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    )


def unknown(name: str, catalogue: Mapping[str, Entry]) -> str:
    """One line for a name the catalogue does not have, with its close matches (S4)."""
    close = difflib.get_close_matches(name, list(catalogue), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown runner {name!r}{hint} (%autoawait --list shows them all)"


def _arguments(extension: Extension, words: list[str]) -> list[str]:
    if words:
        return []
    names = [name for name in extension.catalogue if name != "kernel" or extension.in_kernel]
    return [*names, "--list", "on", "off"]
