"""The runners: one module per catalogue name, behind one interface (``_base.Runner``).

Two families share the plumbing: ``_asyncio_session`` (one asyncio loop for the session:
the ``asyncio`` and ``thread`` runners, and ``uvloop``) and ``_dedicated_thread`` (a loop in
a thread of its own: ``thread``, ``uvloop``, ``trio``, ``curio``). A runner module imports
its library only when a session starts. Runners never import the IPython glue or embed.
"""
