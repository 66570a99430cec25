"""The differential suite (F8): every session of the corpus, run in the host without the
extension and under each runner; what works without the extension must work with every
runner, or be listed in differences.txt with its reason (docs/differences.rst shows it).

Each host process runs once for all the tests that need it (the runs go side by side, see
machinery.Suite); a test waits for its two runs and compares their transcripts.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from corpus import SESSIONS
from machinery import (
    DIFFERENCES,
    RUNNERS,
    HostFailed,
    Run,
    Session,
    Suite,
    baseline,
    compare,
    holds,
    listed,
    missing_needs,
    read_differences,
)

pytestmark = pytest.mark.differential

BY_NAME = {session.name: session for session in SESSIONS}
#: How many host processes run at once (they mostly wait: for a prompt, a kernel, a sleep).
WORKERS = int(os.environ.get("DIFFERENTIAL_WORKERS", "3"))


def _marks(session: Session) -> list[Any]:
    # The terminal's and the kernel's sessions drive a pty or a kernel: the inner loop's
    # `-m "not pty and not kernel"` leaves them out as it does the other such tests.
    return {"terminal": [pytest.mark.pty], "kernel": [pytest.mark.kernel]}.get(session.host, [])


def _comparisons() -> Iterator[Any]:
    for session in SESSIONS:
        for runner in session.runners:
            yield pytest.param(
                session.name, runner, id=f"{session.name}-{runner}", marks=_marks(session)
            )


def _baselines() -> Iterator[Any]:
    for session in SESSIONS:
        for library in session.libraries or (None,):
            name = f"{session.name}-{library}" if library else session.name
            yield pytest.param(session.name, library, id=name, marks=_marks(session))


def _applies(session: Session) -> None:
    """Skip what this environment cannot run."""
    lacking = missing_needs(session)
    if lacking:
        pytest.skip(f"needs {', '.join(lacking)}")
    if session.when and not holds(session.when):
        pytest.skip(f"applies when {session.when}")


@pytest.fixture(scope="module")
def suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Suite]:
    """Every run the selected tests need, started at once, a few side by side."""
    wanted: list[tuple[Session, Run]] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or item.module is not request.module:  # type: ignore[attr-defined]
            continue
        session = BY_NAME[callspec.params["name"]]
        if missing_needs(session) or (session.when and not holds(session.when)):
            continue
        if "runner" in callspec.params:
            runner = callspec.params["runner"]
            wanted.append((session, baseline(session, runner)))
            wanted.append((session, Run(runner, session.library(runner))))
        else:
            wanted.append((session, Run(None, callspec.params["library"])))
    started = Suite(tmp_path_factory.mktemp("differential"), WORKERS)
    began = time.monotonic()
    started.plan(wanted)
    yield started
    started.close()
    # What the suite cost, for CI's log: the host runs, and the slowest of them.
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None and started.timings:
        slowest = sorted(started.timings.items(), key=lambda item: -item[1])[:5]
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\ndifferential: {len(started.timings)} host runs, "
                f"{sum(started.timings.values()):.0f} s of host time in "
                f"{time.monotonic() - began:.0f} s ({WORKERS} at a time); slowest: "
                + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in slowest)
            )


def _transcript(suite: Suite, session: Session, run: Run) -> str:
    try:
        return suite.transcript(session, run)
    except HostFailed as failure:
        return f"(the host failed) {failure}"


@pytest.mark.parametrize(("name", "library"), list(_baselines()))
def test_the_session_shows_its_behaviour_without_the_extension(
    suite: Suite, name: str, library: str | None
) -> None:  # F8
    # A broken host run (or a session that prints nothing) must not pass as "the same".
    session = BY_NAME[name]
    _applies(session)
    transcript = _transcript(suite, session, Run(None, library))
    for shown in session.shows:
        assert re.search(shown, transcript, re.M), (
            f"without the extension, {name} does not show {shown!r}:\n{transcript}"
        )


@pytest.mark.parametrize(("name", "runner"), list(_comparisons()))
def test_the_session_runs_as_it_does_without_the_extension(
    suite: Suite, name: str, runner: str
) -> None:  # F8
    session = BY_NAME[name]
    _applies(session)
    plain = _transcript(suite, session, baseline(session, runner))
    for shown in session.shows:
        if not re.search(shown, plain, re.M):
            pytest.fail(f"without the extension, {name} does not show {shown!r}:\n{plain}")
    with_runner = _transcript(suite, session, Run(runner, session.library(runner)))
    difference = compare(plain, with_runner, f"under {runner}")
    entry = listed(name, runner, read_differences())
    if entry is not None:
        if not difference:
            listed_as = f"{name} {runner} {entry.condition}".rstrip()
            pytest.fail(
                f"fixed: take it off the list ({DIFFERENCES.name} line {entry.line}: {listed_as})"
            )
        pytest.xfail(f"listed: {entry.reason}")
    assert not difference, (
        f"{name} under {runner} differs from the host without the extension "
        f"(fix it, or list it in {DIFFERENCES.name} with the reason):\n{difference}"
    )


def test_every_listed_difference_names_a_session_and_a_runner_of_it() -> None:  # F8
    seen = set()
    for entry in read_differences():
        where = f"{DIFFERENCES.name} line {entry.line}"
        assert entry.session in BY_NAME, f"{where}: no session {entry.session!r}"
        assert entry.runner in RUNNERS, f"{where}: no runner {entry.runner!r}"
        assert entry.runner in BY_NAME[entry.session].runners, (
            f"{where}: {entry.session} does not run under {entry.runner}"
        )
        assert entry.reason, f"{where}: the reason (a comment above it) is missing"
        holds(entry.condition)  # a condition it cannot read fails here
        key = (entry.session, entry.runner, entry.condition)
        assert key not in seen, f"{where}: listed twice"
        seen.add(key)


def test_the_corpus_sessions_are_named_once_and_say_what_they_show() -> None:  # F8
    names = [session.name for session in SESSIONS]
    assert len(names) == len(set(names)), "a session name is used twice"
    for session in SESSIONS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", session.name), session.name
        for shown in session.shows:
            re.compile(shown)
        if session.when:
            holds(session.when)
