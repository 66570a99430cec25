"""The nesting shim: ``asyncio.run()`` and ``run_until_complete()`` inside a running loop.

asyncio refuses to start a loop while one runs in the same thread, so code that runs its own
loop (``asyncio.run(main())`` in a notebook, a synchronous library calling
``loop.run_until_complete()``, pytest-asyncio's ``asyncio.Runner``) fails inside a cell. With
the shim on, such a call is served by one of two strategies, chosen by what the caller asked
for:

**same loop** (``asyncio.run(coro)``, ``loop.run_until_complete(coro)`` on the running loop):
the coroutine becomes a task on the loop that is already running, and the caller's stack is
*parked* in a greenlet while a fresh greenlet keeps driving that loop. The loop's other tasks
keep running; the coroutine can await the running loop's futures and tasks; when it is done
the parked stack resumes where it was. Two tasks that nest at once do not wait for each
other: each resumes as soon as its own call is done (nest_asyncio resumes them last in,
first out, because it runs the loop recursively on one stack). Cancelling the caller's task
(``asyncio.timeout``, ``TaskGroup``) cancels the nested call.

**private loop** (``asyncio.Runner().run()``, ``run_until_complete`` on another loop,
``asyncio.run(loop_factory=...)``): the other loop runs to completion in this thread, as it
would with nothing running, while the running loop pauses for the duration of the call. The
call keeps every asyncio semantic (its own loop, clean-up of leftover tasks), which is what
pytest-asyncio's runner needs: its fixtures and tests all live on the runner's loop.

Nothing else changes: asyncio's C ``Task`` and ``Future`` stay (nest_asyncio swaps in the
pure-Python ones for every task of the process), and code that does not nest runs exactly
the code it ran before. Turning the shim off puts back the very objects it replaced. The
parking mechanism lives in ``_parking``, imported (with greenlet) at the first nested call:
this module is imported by ``%load_ext``.

**trio** (opt-in, ``nest_on(trio=True)``): ``trio.run()`` inside a ``trio``-runner cell runs
in the cell's task, through the portal the runner then gives each cell (``_portal``).
"""

from __future__ import annotations

import asyncio
import asyncio.events
import asyncio.runners
import asyncio.tasks
import contextlib
import functools
import importlib.machinery
import inspect
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar, cast

from .._core import _private_api
from .._core._ctrl_c import private_loop_runs_here
from .._core._tracebacks import for_the_user
from ._loops import other_library_unmarked, outer_loop_paused, reenterable

T = TypeVar("T")

#: How nested calls are run, one short line each (``%nest`` prints them).
STRATEGY = (
    "asyncio.run(), run_until_complete(): on the running loop; its other tasks keep running",
    "asyncio.Runner, other loops: run to the end in this thread, the running loop paused",
)


# -- on and off ----------------------------------------------------------------------------

_lock = threading.Lock()
_on = False
_trio_cells = False
#: name -> (owner, attribute, original, whether the owner defined it itself) of what is
#: patched now; an inherited attribute is deleted again rather than set back.
_patched: dict[str, tuple[Any, str, Any, bool]] = {}
#: name -> the original, for a replacement still running after the shim was turned off.
_seen: dict[str, Any] = {}
#: Libraries whose entry points the shim replaces once they are imported (it never imports
#: them): patched at once if imported already, else as soon as they are (see _AfterImport).
_LIBRARIES = ("trio", "anyio", "uvloop")


def _targets() -> dict[str, tuple[Any, str, Any]]:
    """name -> (owner, attribute, replacement): every object the shim patches now."""
    targets: dict[str, tuple[Any, str, Any]] = {
        "asyncio.run": (asyncio, "run", _run),
        "asyncio.runners.run": (asyncio.runners, "run", _run),
        "asyncio.Runner.run": (asyncio.Runner, "run", _privately("asyncio.Runner.run")),
        # Runner.close runs the runner's loop once more (shutdown_asyncgens)
        "asyncio.Runner.close": (asyncio.Runner, "close", _privately("asyncio.Runner.close")),
        "asyncio.BaseEventLoop.run_until_complete": (
            asyncio.BaseEventLoop,
            "run_until_complete",
            _run_until_complete("asyncio.BaseEventLoop.run_until_complete"),
        ),
    }
    trio = sys.modules.get("trio")
    if trio is not None and hasattr(trio, "run"):
        targets["trio.run"] = (trio, "run", _trio_run)
    anyio = sys.modules.get("anyio")
    if anyio is not None and hasattr(anyio, "run"):
        targets["anyio.run"] = (anyio, "run", _anyio_run)
    uvloop = sys.modules.get("uvloop")
    if uvloop is not None and hasattr(uvloop, "Loop"):
        # uvloop.Loop is a Python subclass of the compiled loop: its methods can be
        # overridden there. uvloop.run on Python 3.11 refuses a running loop by itself.
        targets["uvloop.Loop.run_until_complete"] = (
            uvloop.Loop,
            "run_until_complete",
            _run_until_complete("uvloop.Loop.run_until_complete"),
        )
        targets["uvloop.run"] = (uvloop, "run", _privately("uvloop.run"))
    return targets


def _patch() -> None:
    for name, (owner, attribute, replacement) in _targets().items():
        if name not in _patched:
            original = getattr(owner, attribute)
            _patched[name] = (owner, attribute, original, attribute in vars(owner))
            _seen.setdefault(name, original)
            setattr(owner, attribute, replacement)
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


def _unpatch() -> None:
    while _patched:
        _, (owner, attribute, original, own) = _patched.popitem()
        if own:
            setattr(owner, attribute, original)
        else:
            delattr(owner, attribute)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterImport)]


class _AfterImport:
    """Patches a library of :data:`_LIBRARIES` right after it is imported, so that
    ``import anyio; anyio.run(main)`` in one cell is served.

    It finds nothing itself: it asks the finders after it, and wraps the loader it gets in
    one that runs :func:`refresh` once the module is executed (and then puts the real loader
    back on the module). (A meta path finder needs only ``find_spec``: importlib.abc, which
    costs %load_ext 3 ms, is not imported for it.)
    """

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in _LIBRARIES or name in sys.modules:
            return None
        later = sys.meta_path[sys.meta_path.index(self) + 1 :] if self in sys.meta_path else []
        for finder in later:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RefreshingLoader(spec.loader)
                return spec  # type: ignore[no-any-return]
        return None


class _RefreshingLoader:
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        refresh()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


def nest_on(*, trio: bool | None = None) -> None:
    """Turn the shim on (for the whole process; idempotent).

    ``trio=True`` also lets ``trio.run()`` called from a ``trio``-runner cell run in the
    cell's task, at a cost to every cell of that runner (see :func:`trio_cells_nest`);
    ``trio=False`` stops it; None leaves that choice as it was.
    """
    global _on, _trio_cells
    with _lock:
        _on = True
        if trio is not None:
            _trio_cells = trio
        _patch()


def nest_off() -> None:
    """Turn the shim off, putting back the objects it replaced (idempotent).

    Calls already nested finish normally; new ones fail as they would without the shim.
    """
    global _on
    with _lock:
        _on = False
        _unpatch()


def is_nesting() -> bool:
    """Whether the shim is on."""
    return _on


def trio_cells_nest() -> bool:
    """Whether ``trio``-runner cells run in a portal, so that ``trio.run()`` works in them.

    Off unless asked for (``nest_on(trio=True)``, ``%nest trio on``): a portal costs every
    step of the cell's task two greenlet switches (a tight ``await trio.sleep(0)`` loop in
    a cell runs about 1.3x slower) and every cell about 80 us.
    """
    return _on and _trio_cells


def refresh() -> None:
    """Patch what became patchable since the shim was turned on (trio, once imported)."""
    with _lock:
        if _on:
            _patch()


@contextlib.contextmanager
def nesting() -> Iterator[None]:
    """Turn the shim on for a ``with`` block; afterwards it is as it was before."""
    was_on = is_nesting()
    nest_on()
    try:
        yield
    finally:
        if not was_on:
            nest_off()


def _original(name: str) -> Any:
    # A replacement can still be running after nest_off() (a nested call in progress, or a
    # reference taken while the shim was on); it then calls what the shim had replaced.
    return _seen[name]


# -- the patched entry points --------------------------------------------------------------


def _run(main: Coroutine[Any, Any, T], *, debug: bool | None = None, **kwargs: Any) -> T:
    """``asyncio.run``: on the running loop when one runs in this thread."""
    loop = _private_api.running_loop()
    if loop is None or kwargs.get("loop_factory") is not None or not reenterable(loop):
        # No loop here (but maybe a trio run), the caller asked for a loop of its own kind,
        # or the running one cannot be re-entered (uvloop's): give it one.
        with outer_loop_paused():
            return _original("asyncio.run")(main, debug=debug, **kwargs)  # type: ignore[no-any-return]
    if not asyncio.iscoroutine(main):
        raise for_the_user(ValueError(f"a coroutine was expected, got {main!r}"))
    from ._parking import run_nested_call

    with other_library_unmarked(), signal_handlers_kept_to_the_call(loop):
        return cast(T, run_nested_call(loop, main))


class signal_handlers_kept_to_the_call:  # named as a function: used as one
    """The signal handlers a nested ``asyncio.run()`` adds to the running loop are taken
    off when it returns, as closing its own loop would.

    A server run that way (``asyncio.run(hypercorn.asyncio.serve(app, config))``) adds
    handlers for SIGINT and SIGTERM to the loop it runs on. On a loop of its own they go
    with the loop; on the session loop they stayed: SIGINT went on to a server long gone,
    and Ctrl-C no longer stopped a cell's ``time.sleep()``.
    """

    __slots__ = ("_before", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def __enter__(self) -> None:
        handlers = _private_api.signal_handlers(self._loop)
        self._before = dict(handlers) if handlers else {}

    def __exit__(self, *exc_info: object) -> None:
        handlers = _private_api.signal_handlers(self._loop)
        for signum in [s for s in handlers or () if s not in self._before]:
            self._loop.remove_signal_handler(signum)


def _privately(name: str) -> Callable[..., Any]:
    """A replacement for ``name``, which runs a loop of its own: inside a running loop, it
    runs with that loop paused (``asyncio.Runner.run``: a runner's loop is always its own)."""

    def replacement(*args: Any, **kwargs: Any) -> Any:
        with outer_loop_paused():  # or a trio run
            return _original(name)(*args, **kwargs)

    replacement.__name__ = replacement.__qualname__ = name.rpartition(".")[2]
    return replacement


def _trio_run(async_fn: Callable[..., Awaitable[T]], *args: Any, **options: Any) -> T:
    """``trio.run``: inside a ``trio``-runner cell, run ``async_fn`` in the cell's task on
    the session's trio loop (through the cell's portal, see ``_portal``)."""
    served, value = _in_trio_portal(async_fn, args)
    if served:
        return cast(T, value)
    try:
        return cast(T, _original("trio.run")(async_fn, *args, **options))
    except RuntimeError as exc:
        if _on and not _trio_cells and "from inside a run()" in str(exc):
            hint = "in a cell of the trio runner, %nest trio on runs it on the session loop"
            # trio's own error, with trio's frames, as without the extension; the hint in
            # its message (a note would print under a traceback, far from it).
            exc.args = (f"{exc} ({hint})",)
        raise


def _in_trio_portal(async_fn: Callable[..., Awaitable[Any]], args: Any) -> tuple[bool, Any]:
    """(True, result) when called in a ``trio``-runner cell that has a portal: ``async_fn``
    was run in the cell's task; (False, None) when there is no portal here."""
    if not (_on and "greenlet" in sys.modules):
        return False, None
    from ._portal import current_portal

    portal = current_portal()
    if portal is None:
        return False, None
    coro = async_fn(*args)
    if not inspect.isawaitable(coro):
        raise for_the_user(TypeError(f"expected an async function, got {async_fn!r}"))
    return True, portal.await_(coro)


def _run_until_complete(name: str) -> Callable[..., Any]:
    """A replacement for a loop class's ``run_until_complete``: re-entrant on the running
    loop, private on another."""

    def run_until_complete(self: asyncio.AbstractEventLoop, future: Any) -> Any:
        if _private_api.running_loop() is self:
            from ._parking import run_nested_call

            with other_library_unmarked():
                return run_nested_call(self, future)
        with outer_loop_paused(), private_loop_runs_here(self):  # or a trio run
            return _original(name)(self, future)

    return run_until_complete


def _anyio_run(
    func: Callable[..., Awaitable[T]],
    *args: Any,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
) -> T:
    """``anyio.run``: nests as ``asyncio.run`` does (asyncio backend), or as ``trio.run``
    does in a ``trio``-runner cell (trio backend). anyio refuses a running loop itself,
    before asking asyncio, so the shim must answer before it."""
    options = backend_options or {}
    if backend == "trio":
        served, value = _in_trio_portal(func, args)
        if served:
            return cast(T, value)
    original = functools.partial(_original("anyio.run"), backend=backend, backend_options=options)
    loop = _private_api.running_loop()
    if (
        loop is None
        or not reenterable(loop)
        or backend != "asyncio"
        or options.get("loop_factory") is not None
        or options.get("use_uvloop")
    ):
        # A run of its own, beside what runs here: trio beside an asyncio loop, asyncio
        # beside a trio run or a uvloop loop, a loop of its own kind (as
        # asyncio.run(loop_factory=)).
        with outer_loop_paused():
            return cast(T, original(func, *args))
    coro = func(*args)
    if not asyncio.iscoroutine(coro):
        raise for_the_user(TypeError(f"anyio.run() expected an async function, got {func!r}"))
    from ._parking import run_nested_call

    with other_library_unmarked(), signal_handlers_kept_to_the_call(loop):
        return cast(T, run_nested_call(loop, coro))


__all__ = [
    "STRATEGY",
    "is_nesting",
    "nest_off",
    "nest_on",
    "nesting",
    "outer_loop_paused",
    "trio_cells_nest",
]
