"""``c.AutoawaitRunners.blocked_warning`` (B3): where the loop watch's lines go, and its
threshold, set when the extension loads and again by ``%config``.

The watch itself (``_core._loop_watch``) knows nothing of IPython; this module words its
episodes the way ``%tasks`` names places (``In[3]:4``, ``file.py:12``) and sends them:

- in a terminal, to ``say``: one line on stderr, which IPython's prompt (prompt_toolkit's
  ``patch_stdout``) prints above the prompt being typed, without breaking it. A loop in the
  main thread (the ``asyncio`` and ``trio-guest`` runners) holds the prompt too while it is
  blocked: the prompt prints the line as soon as it runs again, with the end note;
- in a kernel, to the kernel's log (a warning, which the Jupyter server shows in its own
  log): no cell runs then, so none owns the line, and a line on stderr would go to the
  output of whichever cell the kernel answered last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core import _loop_watch
from .._core._messages import say
from ._tasks_magic import place_of

if TYPE_CHECKING:
    from ._extension import Extension


def install(extension: Extension) -> None:
    shell = extension.shell
    kernel_log = getattr(getattr(shell, "kernel", None), "log", None)

    def tell(line: str) -> None:
        if kernel_log is not None:
            kernel_log.warning("autoawait_runners: %s", line)
        else:
            say(line)

    def on_blocked(episode: _loop_watch.Episode) -> None:
        tell(_loop_watch.describe(episode, lambda p: place_of(shell, p.filename, p.lineno)))

    def on_ended(episode: _loop_watch.Episode) -> None:
        tell(_loop_watch.describe_end(episode))

    def on_change(change: Any) -> None:
        _loop_watch.configure(threshold=change["new"])

    _loop_watch.configure(extension.config.blocked_warning, on_blocked, on_ended)
    extension.changes.on_undo(_loop_watch.reset)
    extension.config.observe(on_change, names=["blocked_warning"])
    extension.changes.on_undo(extension.config.unobserve, on_change, names=["blocked_warning"])
