"""How every benchmark here ends: its targets, each met or missed, and its results file.

The targets are reported, not enforced: ratios on a shared machine are noisy (CI prints
them; benchmarks/README.md keeps their history).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def print_targets(checks: Mapping[str, bool]) -> None:
    """One line per target: ``met`` or ``MISSED``, then what it is (measured figure too)."""
    print("targets:")
    for what, ok in checks.items():
        print(f"  {'met ' if ok else 'MISSED'} {what}")


def write_results(name: str, results: Mapping[str, Any]) -> Path:
    """``results/NAME.json``, with the Python and IPython it was measured on."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    versions = {"python": sys.version.split()[0]}
    try:
        import IPython

        versions["ipython"] = IPython.__version__
    except ImportError:  # pragma: no cover - every benchmark environment has it
        pass
    path.write_text(json.dumps({**versions, **results}, indent=2) + "\n")
    return path
