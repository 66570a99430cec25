"""The project explains itself: its docs name every module of the package, and define every
behaviour label (R1, F8...) its tests and docs cite; the package carries its licence."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "autoawait_runners"
DOCS = ROOT / "docs"


def test_the_architecture_page_names_every_module() -> None:
    architecture = (DOCS / "architecture.rst").read_text()
    literals = re.findall(r"``([\w.]+)``", architecture)
    named = {part for literal in literals for part in literal.split(".")}
    modules = {path.stem for path in PACKAGE.rglob("*.py") if path.stem != "__init__"}
    assert modules - named == set(), "docs/architecture.rst does not name these modules"


def test_every_behaviour_label_cited_is_defined() -> None:
    behaviours = (DOCS / "behaviours.rst").read_text()
    defined = set(re.findall(r"^([A-Z]\d+)\s*$", behaviours, re.M))
    assert len(defined) > 30, "docs/behaviours.rst defines its labels one a line"
    label = re.compile(r"(?<![\w-])([RSNEKFMPQB]\d{1,2})(?![\w-])")
    cited: dict[str, set[str]] = {}
    for path in [*ROOT.glob("tests/**/*.py"), *DOCS.glob("*.rst"), ROOT / "README.md"]:
        for found in label.findall(path.read_text()):
            cited.setdefault(found, set()).add(str(path.relative_to(ROOT)))
    undefined = {name: sorted(where) for name, where in cited.items() if name not in defined}
    assert undefined == {}, "cited but not defined in docs/behaviours.rst"


def test_the_licence_pyproject_names_is_there() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in pyproject
    assert "MIT License" in (ROOT / "LICENSE").read_text()
