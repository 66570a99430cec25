"""``%tasks`` (M2): the session's tasks, where each waits, and cancelling one.

What a task is, and how to cancel one, is each runner's business
(``Runner.session_tasks``, ``Runner.cancel_task``); this module gives them short ids, finds
where each waits, and lays out the table: plain text in a terminal, HTML in a notebook.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

from .._runners._base import cell_of
from ._background import is_background_cell

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ._extension import Extension


def install(extension: Extension) -> None:
    shell = extension.shell
    task_ids = TaskIds()

    def tasks_magic(line: str) -> Any:
        return tasks(shell, shell.loop_runner, task_ids, line)

    tasks_magic.__doc__ = TASKS_HELP
    extension.changes.register_magic(tasks_magic, "line", "tasks")
    extension.complete["tasks"] = lambda words: [] if words else [*_ARGUMENTS]


#: What ``%tasks?`` shows: complete in itself, for a terminal.
TASKS_HELP = """List the session's background tasks, see where one waits, cancel one.

  %tasks              one row per task the session's code started: id, name, the cell
                      it belongs to (In [n]: the cell that started it, or started the
                      task that did), state, age, coroutine, and where it waits
                      (file:line, or In[n]:line)
  %tasks --all        also the cell asking, and the runner's, the library's and a
                      kernel's own tasks, marked (cell), (runner), (trio), (kernel)...
  %tasks --tree       the tasks grouped by their cell, a heading row each; in a group,
  %tasks tree         each task under the one that awaits it: trio's nurseries, and
                      asyncio's call graph on Python 3.14 and later
  %tasks where ID     its cell, and its await chain, outermost first, with each line of
                      source
  %tasks cancel ID    cancel it the library's way: its finally and except clean-up run
                      as the loop goes on (trio: the task's own cancel scope)
  %tasks blocked      the last times the session loop was blocked while no cell ran
                      (c.AutoawaitRunners.blocked_warning seconds or more): when, for
                      how long, by which task or callback, and its stack

An ID is a short number given when a listing first shows a task, kept while it lives.
For the session runners of autoawait_runners: asyncio, thread, uvloop, trio, trio-guest
and curio; under trio-guest, the trio tasks and the session loop's asyncio tasks, each
row with its library. In a notebook the list is a table. A notebook cell run again
while tasks of its earlier runs are alive: see c.AutoawaitRunners.rerun.
"""

#: What ``%tasks`` takes (completion).
_ARGUMENTS = ("--all", "--tree", "tree", "where", "cancel", "blocked")


#: The widest a terminal row of ``%tasks`` gets.
WIDTH = 100
_COLUMNS = ("id", "name", "cell", "state", "age", "coroutine", "where")
#: A session with tasks of two libraries (trio-guest) says each task's.
_COLUMNS_WITH_LIBRARY = ("id", "name", "cell", "library", "state", "age", "coroutine", "where")
#: Free text: what a terminal row too wide cuts down first.
_NARROWED = ("name", "coroutine", "where")


class TaskIds:
    """Short ids for tasks, given when a listing first shows a task and kept for as long as
    the task lives (one table per shell). Held weakly: the table must not keep the tasks of
    an ended session, and through them its loop, alive until the next listing."""

    def __init__(self) -> None:
        self._ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._next = 1

    def update(self, alive: list[Any], shown: list[Any]) -> dict[Any, int]:
        """Forget the tasks no longer ``alive``; number the ``shown`` ones not numbered yet.
        Returns every id held."""
        still = set(map(id, alive))
        self._ids = weakref.WeakKeyDictionary(
            {task: n for task, n in self._ids.items() if id(task) in still}
        )
        for task in shown:
            if task not in self._ids:
                self._ids[task] = self._next
                self._next += 1
        return dict(self._ids)


class TaskTable:
    """``%tasks``' output: plain text in a terminal (at most :data:`WIDTH` columns), a
    table in a notebook. A row of one string is a heading (``%tasks --tree``: a cell's)."""

    def __init__(
        self,
        rows: list[tuple[str, ...]],
        depths: list[int],
        title: str,
        columns: tuple[str, ...] = _COLUMNS,
    ) -> None:
        self.rows, self.depths, self.title, self.columns = rows, depths, title, columns

    def text(self) -> str:
        widths = [len(name) for name in self.columns]
        cells = [list(row) for row in self.rows]
        for row, depth in zip(cells, self.depths, strict=True):
            if len(row) > 1:
                row[1] = "  " * depth + row[1]
        for row in cells:
            if len(row) > 1:
                widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        # Narrow the widest free-text columns until a row fits.
        narrowed = [i for i, name in enumerate(self.columns) if name in _NARROWED]
        while sum(widths) + 2 * (len(widths) - 1) > WIDTH:
            widest = max(narrowed, key=lambda i: widths[i])
            widths[widest] -= 1
        lines = [self.title]
        for row in [list(self.columns), *cells]:
            if len(row) == 1:
                lines.append(_fit(row[0], WIDTH).rstrip())
                continue
            fitted = [_fit(cell, width) for cell, width in zip(row, widths, strict=True)]
            lines.append("  ".join(fitted).rstrip())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text())

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{name}</th>" for name in self.columns)
        body = "".join(
            f'<tr><th colspan="{len(self.columns)}" style="text-align:left">'
            f"{escape(row[0])}</th></tr>"
            if len(row) == 1
            else "<tr>"
            + "".join(
                f'<td style="padding-left:{1.5 * depth}em">{escape(cell)}</td>'
                if i == 1
                else f"<td>{escape(cell)}</td>"
                for i, cell in enumerate(row)
            )
            + "</tr>"
            for row, depth in zip(self.rows, self.depths, strict=True)
        )
        return (
            f"<p>{escape(self.title)}</p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )


def _shown(text: str) -> str:
    """``text`` with what a terminal would act on (a newline, an escape sequence) escaped
    as ``repr`` shows it: a task's name is whatever its creator chose."""
    return text if text.isprintable() else repr(text)[1:-1]


def _fit(cell: str, width: int) -> str:
    return cell.ljust(width) if len(cell) <= width else cell[: width - 1] + "\u2026"


def _age(started: float | None) -> str:
    if started is None:
        return "?"
    seconds = max(0.0, time.monotonic() - started)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def await_frames(coro: Any) -> list[Any]:
    """The frames a coroutine waits in, outermost first: down its ``await`` chain through
    coroutines, generators and async generators."""
    frames = []
    while coro is not None:
        coro = getattr(coro, "cell_code", coro)  # through the runner's cell wrapper
        frame = next(
            (f for a in ("cr_frame", "gi_frame", "ag_frame") if (f := getattr(coro, a, None))),
            None,
        )
        if frame is None:
            break
        frames.append(frame)
        coro = next(
            (n for a in ("cr_await", "gi_yieldfrom", "ag_await") if (n := getattr(coro, a, None))),
            None,
        )
    return frames


def _waiting_at(frames: list[Any]) -> Any:
    """The innermost frame of the user's code (the library's own frames below it say
    only how the library waits), or the innermost of all if none is the user's."""
    from .._core._tracebacks import is_plumbing_or_library

    users = [frame for frame in frames if not is_plumbing_or_library(frame.f_code.co_filename)]
    return (users or frames)[-1]


def _place(shell: InteractiveShell, frame: Any) -> str:
    """``In[3]:4`` for a line of a cell, ``file.py:12`` otherwise."""
    return place_of(shell, frame.f_code.co_filename, frame.f_lineno)


def place_of(shell: InteractiveShell, filename: str, lineno: int) -> str:
    """``In[3]:4`` for line 4 of cell 3's code, ``file.py:12`` otherwise."""
    import os

    named = shell.compile.format_code_name(filename)
    where = named[1] if named else os.path.basename(filename)
    return f"{where}:{lineno}"


def _cell_name(shell: InteractiveShell, row: Any) -> str | None:
    """``In [5] (given up on)`` for the task of a cell that Ctrl-C gave up on (it still
    runs: it ignored its cancellations), ``In [5]`` for the cell asking; None for any
    other task."""
    if not hasattr(row.coro, "cell_code"):
        return None
    return (_the_cells_number(shell, row) or "a cell") + (
        "" if row.hidden == "cell" else " (given up on)"
    )


def _the_cells_number(shell: InteractiveShell, row: Any) -> str:
    """``In [5]`` for the task of a cell, from the code it runs; "" if not known."""
    for frame in await_frames(row.coro):
        named = shell.compile.format_code_name(frame.f_code.co_filename)
        if named:
            return f"In [{named[1].removeprefix('In[').removesuffix(']')}]"
    return ""


def _cell_of(shell: InteractiveShell, row: Any) -> str:
    """The cell a task belongs to (B2), ``In [5]``: a cell's own task is its cell's."""
    if hasattr(row.coro, "cell_code"):
        return _the_cells_number(shell, row)
    return cell_of(row)


def _by_cell(shell: InteractiveShell, rows: list[Any]) -> list[Any]:
    """``rows`` (in tree order) grouped by their cell, oldest cell first: each tree under
    the cell of its root, after a heading (a str, the cell; "" for tasks of no known cell)."""
    groups: dict[str, list[Any]] = {}
    cell = ""
    for row in rows:
        if row.depth == 0:
            cell = _cell_of(shell, row)
        groups.setdefault(cell, []).append(row)

    def number(cell: str) -> float:
        digits = cell.removeprefix("In [").removesuffix("]")
        return int(digits) if digits.isdigit() else float("inf")

    grouped: list[Any] = []
    for cell in sorted(groups, key=number):
        grouped.append(cell or "(no cell known)")
        grouped.extend(groups[cell])
    return grouped


def _coroutine_name(coro: Any) -> str:
    return str(getattr(coro, "__qualname__", type(coro).__name__)) + "()"


def tasks(shell: InteractiveShell, runner: Any, ids: TaskIds, line: str) -> Any:
    """``%tasks`` with the words typed after it (:data:`TASKS_HELP` says what they do)."""
    from IPython.core.error import UsageError
    from IPython.display import display

    words = ["--tree" if word == "tree" else word for word in line.split()]
    if words == ["blocked"]:
        print(blocked_episodes(shell))
        return None
    options = {word for word in words if word.startswith("--")}
    action = [word for word in words if not word.startswith("--")]
    unknown = options - {"--all", "--tree"}
    if unknown or (action and (len(action) != 2 or action[0] not in ("where", "cancel"))):
        raise UsageError(
            f"%tasks takes --all, --tree, 'where ID', 'cancel ID' or 'blocked' (got "
            f"{line.strip()!r})"
        )
    list_tasks = getattr(runner, "session_tasks", None)
    if list_tasks is None or not getattr(runner, "started", False):
        raise UsageError(
            f"%tasks lists the tasks of one of autoawait_runners' sessions; the active runner "
            f"({runner}) has none"
        )
    tree = "--tree" in options
    try:
        rows = list_tasks(tree=tree)
    except NotImplementedError as exc:
        raise UsageError(str(exc)) from None
    shown = rows if "--all" in options or action else [row for row in rows if not row.hidden]
    numbers = ids.update([row.task for row in rows], [] if action else [r.task for r in shown])
    if action:
        wanted = action[1]
        row = next((r for r in rows if str(numbers.get(r.task)) == wanted), None)
        if row is None:
            raise UsageError(f"no task {wanted} in the {runner} session (%tasks --all lists them)")
        if action[0] == "cancel":
            if row.hidden and row.hidden != "cell":
                raise UsageError(f"task {wanted} ({_shown(row.name)}) is the {row.hidden}'s own")
            try:
                what = runner.cancel_task(row.task)
            except ValueError as exc:
                raise UsageError(
                    f"task {wanted} ({_shown(row.name)}) cannot be cancelled: {exc}"
                ) from None
            print(f"task {wanted} ({_shown(row.name)}): {what}")
            return None
        print(_where(shell, row, wanted))
        return None
    rows = shown
    if tree and not getattr(runner, "task_tree", False):
        print(
            f"{runner}: tasks have no parent/child structure to show; each cell's are listed flat"
        )
    if not rows:
        print(f"no background tasks in the {runner} session")
        return None
    with_library = any(row.library for row in rows)
    listed = _by_cell(shell, rows) if tree else rows
    table: list[tuple[str, ...]] = [
        (_shown(row),)
        if isinstance(row, str)
        else (
            str(numbers[row.task]),
            _shown(_cell_name(shell, row) or row.name),
            _cell_of(shell, row) or "-",
            *((row.library,) if with_library else ()),
            row.state + (f" ({row.hidden})" if row.hidden else ""),
            _age(row.started),
            "<cell>"
            if hasattr(row.coro, "cell_code") or is_background_cell(row.coro)
            else _coroutine_name(row.coro),
            _place(shell, _waiting_at(frames)) if (frames := await_frames(row.coro)) else "-",
        )
        for row in listed
    ]
    title = f"{len(rows)} task{'s' if len(rows) != 1 else ''} in the {runner} session"
    columns = _COLUMNS_WITH_LIBRARY if with_library else _COLUMNS
    depths = [0 if isinstance(row, str) else row.depth for row in listed]
    display(TaskTable(table, depths, title, columns))
    return None


def _where(shell: InteractiveShell, row: Any, number: str) -> str:
    import linecache

    name = _cell_name(shell, row) or row.name
    library = f"{row.library}, " if row.library else ""
    cell = _cell_of(shell, row)
    lines = [
        f"task {number} ({_shown(name)}, {library}{row.state}, {_age(row.started)} old), "
        + (f"of the cell {cell}, " if cell and not hasattr(row.coro, "cell_code") else "")
        + "waiting in:"
    ]
    frames = await_frames(row.coro)
    for frame in frames:
        lines.append(f"  {_place(shell, frame)} in {frame.f_code.co_name}")
        source = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        if source:
            lines.append(f"    {source}")
    if not frames:
        lines.append("  (no frames: it has not started, or has ended)")
    return "\n".join(lines)


def blocked_episodes(shell: InteractiveShell) -> str:
    """``%tasks blocked``: the recent times a session loop was blocked (B3), oldest first,
    each with its stack as ``%tasks where`` prints one."""
    import linecache

    from .._core._loop_watch import settings
    from .._core._messages import plural

    episodes = list(settings.recent)
    if not episodes:
        off = " (the watch is off: c.AutoawaitRunners.blocked_warning = 0)"
        return "no blocked session loop seen" + ("" if settings.threshold > 0 else off)
    lines = [f"the session loop was blocked {plural(len(episodes), 'time')} lately, oldest first:"]
    for episode in episodes:
        when = time.strftime("%H:%M:%S", time.localtime(episode.began_at))
        how_long = "still blocked" if episode.duration is None else f"for {episode.duration:.1f} s"
        holder = episode.holder or "its own code"
        running = "" if episode.function == "<module>" else f" running {episode.function}()"
        lines.append(f"{when}  {episode.runner}: {how_long}, by {_shown(holder)}{running}, in:")
        for place in episode.stack:
            lines.append(f"  {place_of(shell, place.filename, place.lineno)} in {place.function}")
            source = linecache.getline(place.filename, place.lineno).strip()
            if source:
                lines.append(f"    {source}")
    return "\n".join(lines)
