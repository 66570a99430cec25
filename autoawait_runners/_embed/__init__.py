"""``embed()``, ``aembed()`` and the ``embed`` runner: IPython inside a running program.
The top layer: it uses the runners, the nesting shim and the IPython glue (to load the
extension in the embedded shell)."""
