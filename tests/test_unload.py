"""Unloading leaves the shell as loading found it, whatever was used in between: the
extension's changes are each recorded with their undo (``_ipython._changes``)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import differences, fresh_shell, process_state
from IPython.core.interactiveshell import InteractiveShell


def shell_state(ip: InteractiveShell) -> dict[str, Any]:
    """What the extension may change in a shell and in the process around it."""
    return {
        **process_state(),
        "line magics": dict(ip.magics_manager.magics["line"]),
        "cell magics": dict(ip.magics_manager.magics["cell"]),
        # IPython keeps a registered magic function as an attribute of these too.
        "user magics attributes": sorted(vars(ip.magics_manager.user_magics)),
        "input transformers": (
            list(ip.input_transformers_cleanup),
            list(ip.input_transformers_post),
            list(ip.ast_transformers),
        ),
        "completer matchers": list(ip.Completer.custom_matchers),
        "event callbacks": {name: list(each) for name, each in ip.events.callbacks.items()},
        "hooks": dict(ip.hooks),
        "completion dispatchers": {
            name: (dict(getattr(each, "strs", {})), list(getattr(each, "regexs", [])))
            for name, each in ip.strdispatchers.items()
        },
        "trait observers": {  # traitlets keeps emptied lists: not a change
            name: {kind: list(handlers) for kind, handlers in by_kind.items() if handlers}
            for name, by_kind in ip._trait_notifiers.items()
            if any(by_kind.values())
        },
        "traits": (ip.loop_runner, ip.trio_runner, ip.autoawait),
        "instance attributes": sorted(vars(ip)),
        "showtraceback": ip.showtraceback,
        "configurables": list(ip.configurables),
        "asyncio entry points": (asyncio.run, asyncio.Runner.run, asyncio.BaseEventLoop.__dict__),
        "import hooks": list(sys.meta_path),
    }


@pytest.fixture
def bare_shell() -> Iterator[InteractiveShell]:
    with fresh_shell() as ip:
        yield ip


def use_everything(ip: InteractiveShell) -> None:
    """Every runner and every magic of the extension, with a background task left alive."""
    cells = ["import asyncio"]
    for runner, library in [
        ("asyncio", "asyncio"),
        ("thread", "asyncio"),
        ("uvloop", "asyncio"),
        ("trio", "trio"),
        ("trio-guest", "trio"),
        ("curio", "curio"),
        ("asyncio", "asyncio"),
    ]:
        cells += [
            f"%autoawait {runner}",
            f"import {library} as lib",
            "await lib.sleep(0)",
            "x = 1",
            "%time await lib.sleep(0)",
            "%timeit -n1 -r1 await lib.sleep(0)",
            "%%time\nawait lib.sleep(0)",
            "%tasks --all",
        ]
    cells += [
        "t = asyncio.create_task(asyncio.sleep(100))",
        "asyncio.run(asyncio.sleep(0))",
        "%nest off",
        "%nest on",
        "%nest trio on",
        "%autoawait",
        "%autoawait --list",
    ]
    for cell in cells:
        result = ip.run_cell(cell)
        assert result.success, (cell, result.error_before_exec or result.error_in_exec)
    ip.Completer.completions("%autoawait t", len("%autoawait t"))


def test_unloading_after_everything_was_used_leaves_the_shell_as_it_was(
    bare_shell: InteractiveShell,
) -> None:
    ip = bare_shell
    # IPython's own first-cell set-up, before the snapshot. (atexit cannot be compared:
    # it has no list of its handlers, and its count keeps unregistered ones.)
    ip.run_cell("import asyncio")
    # IPython 9 loads some magic classes at first use (they join shell.configurables then).
    getattr(ip.magics_manager, "load_all_lazy_magics", lambda: None)()
    before = shell_state(ip)
    ip.run_line_magic("load_ext", "autoawait_runners")
    use_everything(ip)
    ip.run_line_magic("unload_ext", "autoawait_runners")
    after = shell_state(ip)
    assert not differences(before, after), differences(before, after)
