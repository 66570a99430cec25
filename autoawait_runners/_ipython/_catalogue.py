"""The catalogue of runners: built-ins and plugins, found through one entry-point group.

A plugin declares, in its own ``pyproject.toml``::

    [project.entry-points.autoawait_runners]
    myloop = "my_package.runner:get_runner"

The name is the runner's name; the value is a zero-argument callable returning the runner (a
callable taking the cell's coroutine, with an optional ``close()``, and a ``__str__`` giving
its name). Optional attributes feed ``%autoawait --list``: ``library`` (the import name it
needs), ``extra`` or ``install`` (how to install it), ``description`` (else the first line of
its docstring).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._core._messages import say
from .._runners._base import RunnerUnavailable

GROUP = "autoawait_runners"

#: The built-in entries, as pyproject.toml declares them (a test keeps the two equal).
#: Used as they are when the distribution's metadata cannot be found (a source checkout).
BUILTIN_ENTRY_POINTS = {
    "asyncio": "autoawait_runners._runners._asyncio:get_runner",
    "thread": "autoawait_runners._runners._thread:get_runner",
    "trio": "autoawait_runners._runners._trio:get_runner",
    "trio-guest": "autoawait_runners._runners._trio_guest:get_runner",
    "curio": "autoawait_runners._runners._curio:get_runner",
    "uvloop": "autoawait_runners._runners._uvloop:get_runner",
    "embed": "autoawait_runners._embed._embed:get_runner",
}

DISTRIBUTION = "autoawait-runners"
#: Entries for IPython's own runners: no plugin may take these names.
IPYTHONS = ("sync", "kernel")


def _loader(value: str) -> Callable[[], Any]:
    """Like EntryPoint.load for an entry-point value, when there is no metadata."""

    def load() -> Any:
        module_name, _, attr = value.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    return load


def _factory(load: Callable[[], Any]) -> Callable[[], Any]:
    """The runner factory of an entry point: load the callable, call it."""
    return lambda: load()()


def describe_error(exc: Exception) -> str:
    """One line: a RunnerUnavailable's message says it all; anything else is named."""
    return str(exc) if isinstance(exc, RunnerUnavailable) else f"{type(exc).__name__}: {exc}"


@dataclass
class Entry:
    """One runner in the catalogue; the runner object itself is made on first use."""

    name: str
    factory: Callable[[], Any]
    origin: str  # "autoawait-runners", "IPython" or the plugin's distribution
    _runner: Any = field(default=None, repr=False)
    error: str | None = None

    @property
    def builtin(self) -> bool:
        return self.origin in (DISTRIBUTION, "IPython")

    def runner(self) -> Any:
        """The runner object (loaded once: one object is one session).

        Raises :class:`RunnerUnavailable`, in one line, for whatever a plugin's factory does
        wrong: it raises (anything, KeyboardInterrupt included), or returns something that
        is not a loop runner.
        """
        if self._runner is None:
            try:
                made = self.factory()
            except BaseException as exc:  # a plugin's code: reported, not fatal
                raise RunnerUnavailable(f"{type(exc).__name__}: {exc}") from None
            if not callable(made):
                raise RunnerUnavailable(
                    f"its entry point gave {made!r}, not a loop runner "
                    "(a callable taking the cell's coroutine)"
                )
            self._runner = made
        return self._runner

    def _attr(self, name: str, default: Any = None) -> Any:
        try:
            return getattr(self.runner(), name, default)
        except Exception as exc:
            self.error = describe_error(exc)
            return default

    @property
    def library(self) -> str:
        return str(self._attr("library") or "?")

    @property
    def description(self) -> str:
        if self.error:
            return f"cannot be loaded ({self.error})"
        described = self._attr("description")
        if described:
            return str(described)
        doc = (type(self.runner()).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def installed(self) -> bool:
        library = self.library
        if library in ("?", "-"):
            return self.error is None
        try:
            return importlib.util.find_spec(library) is not None
        except (ImportError, ValueError):
            return False

    @property
    def install_command(self) -> str:
        install = self._attr("install")
        if install:
            return str(install)
        extra = self._attr("extra")
        if extra and self.builtin:
            return f'pip install "{DISTRIBUTION}[{extra}]"'
        return f"pip install {self.library}"


def _ipython_sync_entry() -> Entry:
    def factory() -> Any:
        from IPython.core.interactiveshell import InteractiveShell

        runner: Callable[[Any], Any] = InteractiveShell.loop_runner_map["sync"][0]  # type: ignore[assignment]
        return _DescribedRunner(
            runner, "-", "IPython's pseudo-sync runner: no event loop, await unsupported"
        )

    return Entry("sync", factory, "IPython")


def _kernel_entry() -> Entry:
    """A Jupyter kernel's own asyncio integration: IPython's asyncio runner, which ipykernel
    recognises and replaces by awaiting cells on its loop. Selectable in kernels only."""

    def factory() -> Any:
        from .._core._private_api import ipython_asyncio_runner

        return _DescribedRunner(
            ipython_asyncio_runner(),
            "asyncio",
            "the kernel's own asyncio integration (cells awaited on its loop); kernels only",
            name="kernel",
        )

    return Entry("kernel", factory, "IPython")


class _DescribedRunner:
    """One of IPython's own runners, with the attributes the catalogue lists."""

    def __init__(
        self, runner: Callable[[Any], Any], library: str, description: str, name: str = "sync"
    ) -> None:
        self.wrapped = runner
        self.library = library
        self.description = description
        self.name = name

    def __call__(self, coro: Any) -> Any:
        return self.wrapped(coro)

    def __str__(self) -> str:
        return self.name


def builtin_entries() -> dict[str, Entry]:
    """The built-in runners and IPython's own, keyed by name, in listing order."""
    catalogue = {
        name: Entry(name, _factory(_loader(value)), DISTRIBUTION)
        for name, value in BUILTIN_ENTRY_POINTS.items()
    }
    catalogue["sync"] = _ipython_sync_entry()
    catalogue["kernel"] = _kernel_entry()
    return catalogue


def plugins() -> dict[str, Entry]:
    """The runners other distributions declare in the entry-point group, keyed by name.

    A plugin that declares a built-in name, or IPython's ``sync`` or ``kernel``, is left out
    (one line says so): those names keep their meaning whatever is installed. This
    distribution's own declarations of the built-ins are the table above (a test keeps the
    two equal), so they are skipped quietly.
    """
    from importlib.metadata import entry_points  # a third of %load_ext: only when needed

    found: dict[str, Entry] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in BUILTIN_ENTRY_POINTS or ep.name in IPYTHONS:
            if ep.value != BUILTIN_ENTRY_POINTS.get(ep.name):
                dist = ep.dist.name if ep.dist is not None else "a plugin"
                if dist != DISTRIBUTION:  # an older install of ours is no plugin
                    say(f"{dist} declares the runner {ep.name!r}, a built-in name: left out")
            continue
        found[ep.name] = Entry(ep.name, _factory(ep.load), ep.dist.name if ep.dist else "plugin")
    return found


class Catalogue(Mapping[str, Entry]):
    """Every runner by name: the built-ins first, then plugins in name order.

    Plugins are looked for (every installed distribution's entry points read) only when a
    name is not a built-in one, or when the whole catalogue is listed: ``%load_ext`` and
    ``%autoawait trio`` never need them. A plugin installed after that first look is found
    after ``%reload_ext autoawait_runners``.
    """

    def __init__(self) -> None:
        self._entries = builtin_entries()
        self._looked_for_plugins = False

    def _with_plugins(self) -> dict[str, Entry]:
        if not self._looked_for_plugins:
            self._looked_for_plugins = True
            for name, entry in sorted(plugins().items()):
                self._entries.setdefault(name, entry)
        return self._entries

    def __getitem__(self, name: str) -> Entry:
        if name in self._entries:
            return self._entries[name]
        return self._with_plugins()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._with_plugins()))

    def __len__(self) -> int:
        return len(self._with_plugins())
