"""The mechanisms, knowing nothing of IPython's shell, runners or the nesting shim above.

The cell wrapper (``_cell``), Ctrl-C (``_ctrl_c``), cutting tracebacks (``_tracebacks``),
the interface nested calls report to (``_nested_call``), the extension's one-line messages
(``_messages``), and every private name of another library (``_private_api``). Nothing
here imports a module outside this package layer.
"""
