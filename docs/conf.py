"""Sphinx configuration. Build: python -m sphinx -W -b html docs docs/_build/html"""

import sys
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
(generated / "config.rst").write_text(AutoawaitRunners.class_config_rst_doc())
