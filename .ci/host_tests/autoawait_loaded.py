"""pytest plugin: IPython's own tests, run with autoawait_runners loaded in their shell.

``pytest -p autoawait_loaded`` (with this folder on sys.path) loads the extension into the
test shell IPython's ``tests/conftest.py`` makes, before the first test, and checks at the
end that it is still loaded (a test that unloaded it would hide it). See host_tests.sh.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def autoawait_runners_loaded() -> Iterator[None]:
    shell = builtins.get_ipython()  # type: ignore[attr-defined]
    shell.run_line_magic("load_ext", "autoawait_runners")
    assert "autoawait_runners" in shell.extension_manager.loaded
    yield
