"""Sphinx configuration. Build: python -m sphinx -W -b html docs docs/_build/html"""

import inspect
import re
import sys
import textwrap
from pathlib import Path

from autoawait_runners import AutoawaitRunners, __version__

# The architecture page's pictures are drawn here, by the build (docs/_ext/pictures.py).
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "autoawait_runners"
author = "autoawait_runners developers"
release = version = __version__
extensions = ["sphinx.ext.autodoc", "pictures"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
autodoc_member_order = "bysource"

# The configuration reference is generated from the traitlets Configurable itself, so it
# cannot drift from the code.
generated = Path(__file__).parent / "_generated"
generated.mkdir(exist_ok=True)


def config_reference() -> str:
    """Each option: its name and type, its default, and its help as one paragraph (the help
    strings are indented source text, and their `%magic --option` spans are code)."""
    entries = []
    for name, trait in sorted(AutoawaitRunners.class_traits(config=True).items()):
        help_text = re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", inspect.cleandoc(trait.help))
        body = textwrap.indent(textwrap.fill(help_text, 88), "   ")
        entries.append(
            f"``c.AutoawaitRunners.{name}`` ({type(trait).__name__}, default "
            f"``{trait.default_value!r}``)\n\n{body}\n"
        )
    return "\n".join(entries)


(generated / "config.rst").write_text(config_reference())
