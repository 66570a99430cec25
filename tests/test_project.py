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


def test_the_jupyter_extra_brings_what_the_example_notebooks_import() -> None:
    import json
    import sys
    import tomllib
    from importlib.metadata import packages_distributions

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]

    def distributions(extra: str) -> set[str]:
        found = set()
        for requirement in extras[extra]:
            name = re.match(r"[\w.-]+", requirement).group(0)  # type: ignore[union-attr]
            if name == "autoawait-runners":  # the project's own extras, named in brackets
                inner = re.search(r"\[(.*)\]", requirement).group(1)  # type: ignore[union-attr]
                found |= {d for other in inner.split(",") for d in distributions(other)}
            else:
                found.add(re.sub(r"[-_.]+", "-", name).lower())
        return found

    brought = distributions("jupyter")
    assert {"ipykernel", "ipywidgets", "jupyterlab"} <= brought
    providers = packages_distributions()  # the environment's: the tests' extra has them all
    missing = {}
    for notebook in sorted((ROOT / "examples").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for module in set(re.findall(r"^\s*(?:import|from) (\w+)", code, re.M)):
            if module in sys.stdlib_module_names or module == "autoawait_runners":
                continue
            names = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(module, [])}
            if not names & brought:
                missing.setdefault(notebook.name, []).append(module)
    assert missing == {}, "the jupyter extra does not bring these notebooks' imports"
