"""The IPython glue: loading and unloading the extension (``_extension``), the catalogue
of runners (``_catalogue``), the ``AutoawaitRunners`` configurable (``_config``) and the
magics. Imports the runners by catalogue name only (entry points), never by module.
"""
