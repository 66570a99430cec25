"""An ASGI app for tests: a server that stops on SIGINT and SIGTERM through
loop.add_signal_handler (hypercorn's serve without a shutdown trigger), and says when it
serves and when its lifespan ends. Imported by a kernel's cell (tests/test_kernel_runners.py),
and copied into the differential suite's sessions (tests/differential/corpus.py)."""

from collections.abc import Awaitable, Callable
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

__all__ = ["app", "config", "serve"]


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    assert scope["type"] == "lifespan"
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            print("serving", flush=True)
        elif message["type"] == "lifespan.shutdown":
            print("lifespan shutdown", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


config = Config()
config.bind = ["127.0.0.1:0"]
config.loglevel = "WARNING"
