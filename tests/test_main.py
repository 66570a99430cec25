"""``python -m autoawait_runners [RUNNER]``: IPython with the extension and RUNNER, in one
command (``__main__``)."""

from __future__ import annotations

import pytest
from conftest import IPythonPty

pytestmark = pytest.mark.pty

IPYTHON_OPTIONS = ["--no-banner", "--colors=nocolor", "--HistoryManager.hist_file=:memory:"]


@pytest.mark.parametrize("runner", ["trio", None])
def test_one_command_starts_a_session_with_the_runner(
    ipython_pty: type[IPythonPty], runner: str | None
) -> None:
    ipy = ipython_pty(
        program=["-m", "autoawait_runners", *([runner] if runner else []), *IPYTHON_OPTIONS]
    )
    expected = runner or "asyncio"
    ipy.cell("%autoawait", f"{expected}")
    ipy.cell("import sniffio; await __import__(sniffio.current_async_library()).sleep(0)")
    ipy.cell("print('library:', sniffio.current_async_library())", f"library: {expected}")
    ipy.exit()


def test_an_unknown_runner_is_one_line_and_the_session_starts_anyway(
    ipython_pty: type[IPythonPty],
) -> None:  # F5
    ipy = ipython_pty(program=["-m", "autoawait_runners", "nosuch", *IPYTHON_OPTIONS])
    assert "nosuch" in ipy.text() and "Traceback" not in ipy.text()
    ipy.cell("%autoawait", "asyncio")
    ipy.exit()
