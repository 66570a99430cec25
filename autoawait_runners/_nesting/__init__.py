"""The nesting shim: ``asyncio.run()``, ``run_until_complete()``, ``trio.run()`` and
``anyio.run()`` inside a running loop.

``_shim`` is the switch and the patched entry points; ``_parking`` runs an asyncio loop from
code it is not running (greenlets); ``_portal`` lets a trio task's synchronous code await;
``_loops`` is what all of them (and the runners) know of a loop without greenlet. Below it:
``_core`` only.
"""
