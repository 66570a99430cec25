"""``%time`` and ``%timeit`` that await (M1), and ``%tasks`` (M2).

IPython compiles the code given to ``%time``/``%timeit`` on its own, outside any coroutine,
so ``%time await coro()`` is a SyntaxError (ipython#14157) and ``%%timeit`` cannot time
async code (ipython#11314). The magics themselves cannot wait for anything either: they are
plain functions called from the cell, in the middle of the session loop.

So the *cell* waits. An input transformer (:func:`await_timing_magics`) rewrites the call
IPython makes for ``%time``/``%timeit`` when the timed code contains ``await``::

    x = get_ipython().run_line_magic('time', 'await coro()')
    x = await get_ipython().run_line_magic('atime', 'await coro()')

and ``%atime``/``%atimeit`` return a coroutine that the cell awaits: the timed code and the
timing loop run in the cell's own task, on the session loop, with no hand-over per
iteration; background tasks run meanwhile and Ctrl-C stops the timing as it stops a cell.
The cell now has a top-level ``await``, so every runner (and a kernel's own integration)
runs it as an async cell. Code without ``await`` goes to IPython's magics, untouched.

The output is IPython's own (its ``TimeitResult``, its time format), so results read and
compare the same.

``%tasks`` lists, shows and cancels the session's tasks. What a task is, and how to cancel
one, is each runner's business (``Runner.session_tasks``, ``Runner.cancel_task``); this
module gives them short ids, finds where each waits, and lays out the table.
"""

from __future__ import annotations

import ast
import gc
import inspect
import io
import itertools
import time
import timeit
import tokenize
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from .._core import _private_api

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

#: IPython's timing magics, and the awaiting versions a cell that awaits is sent to.
AWAITING = {"time": "atime", "timeit": "atimeit", "atime": "atime", "atimeit": "atimeit"}

_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


# -- the rewrite ---------------------------------------------------------------------------


def _contains_await(source: str) -> bool:
    """Whether ``await`` (or ``async for``/``async with``) appears in ``source`` as a
    keyword, not in a string or comment."""
    try:
        return any(
            token.type == tokenize.NAME and token.string in ("await", "async")
            for token in tokenize.generate_tokens(io.StringIO(source).readline)
        )
    except (tokenize.TokenError, SyntaxError):
        return "await" in source


def _timing_call(node: ast.AST) -> ast.Call | None:
    """``node`` if it is IPython's call of a timing magic whose code awaits, else None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    caller = node.func.value
    if not (
        node.func.attr in ("run_line_magic", "run_cell_magic")
        and isinstance(caller, ast.Call)
        and isinstance(caller.func, ast.Name)
        and caller.func.id == "get_ipython"
        and len(node.args) >= 2
        and all(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in node.args)
    ):
        return None
    name, *code = (arg.value for arg in node.args)  # type: ignore[attr-defined]
    if name not in AWAITING or not any(_contains_await(part) for part in code):
        return None
    return node


def await_timing_magics(lines: list[str]) -> list[str]:
    """An IPython input transformer (``input_transformers_post``): see the module docstring.

    Runs after IPython turned ``%time ...`` into ``get_ipython().run_line_magic(...)``; a
    cell that does not parse is left to IPython, which reports the error.
    """
    source = "".join(lines)
    if "get_ipython().run_" not in source:
        return lines
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return lines
    calls = [call for node in ast.walk(tree) if (call := _timing_call(node)) is not None]
    if not calls:
        return lines
    encoded = [line.encode() for line in source.splitlines(keepends=True)]
    # Innermost last: splice from the end so earlier offsets stay valid.
    for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset), reverse=True):
        assert call.end_lineno is not None and call.end_col_offset is not None
        args = [repr(AWAITING[call.args[0].value])]  # type: ignore[attr-defined]
        args += [repr(arg.value) for arg in call.args[1:]]  # type: ignore[attr-defined]
        method = call.func.attr  # type: ignore[attr-defined]
        replacement = f"(await get_ipython().{method}({', '.join(args)}))".encode()
        first, last = call.lineno - 1, call.end_lineno - 1
        head = encoded[first][: call.col_offset]
        tail = encoded[last][call.end_col_offset :]
        encoded[first : last + 1] = [head + replacement + tail]
    return b"".join(encoded).decode().splitlines(keepends=True)


# -- %atime --------------------------------------------------------------------------------


def _compile(
    shell: InteractiveShell, tree: ast.Module | ast.Expression, name: str, mode: str
) -> Any:
    return compile(
        tree, name, mode, flags=shell.compile.flags | _TOP_LEVEL_AWAIT, dont_inherit=True
    )


async def _run(code: Any, glob: dict[str, Any], local_ns: Any) -> Any:
    result = eval(code, glob, local_ns)
    if code.co_flags & inspect.CO_COROUTINE:
        result = await result
    return result


def atime(
    shell: InteractiveShell, line: str = "", cell: str | None = None, local_ns: Any = None
) -> Coroutine[Any, Any, Any]:
    """``%time``/``%%time`` for code that awaits: returns the coroutine the cell awaits."""
    return _atime(shell, line, cell, local_ns)


async def _atime(shell: InteractiveShell, line: str, cell: str | None, local_ns: Any) -> Any:
    from IPython.core.error import UsageError
    from IPython.utils.timing import clock, clock2

    words = line.split()
    no_raise = "--no-raise-error" in words
    line = " ".join(word for word in words if word != "--no-raise-error")
    if line and cell:
        raise UsageError("Can't use statement directly after '%%time'!")
    source = shell.transform_cell(cell if cell else line)
    started = clock()
    tree = shell.transform_ast(shell.compile.ast_parse(source))
    parse_time = clock() - started

    last: Any = None
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
        mode, name = "eval", "<timed eval>"
        timed: ast.Module | ast.Expression = ast.Expression(tree.body[0].value)
    else:
        mode, name = "exec", "<timed exec>"
        body = list(tree.body)
        if len(body) > 1 and isinstance(body[-1], ast.Expr):  # %%time shows the last value
            last = _compile(shell, ast.Expression(body.pop().value), name, "eval")
        timed = ast.Module(body, [])
    started = clock()
    code = _compile(shell, timed, name, mode)
    compile_time = clock() - started

    glob = shell.user_ns
    error: BaseException | None = None
    wall, cpu = time.perf_counter(), clock2()
    out = None
    try:
        out = await _run(code, glob, local_ns)
        if last is not None:
            out = await _run(last, glob, local_ns)
    except KeyboardInterrupt as exc:
        error = exc
    except Exception as exc:
        error = None if no_raise else exc
        if no_raise:
            out = None
    cpu_end, wall_end = clock2(), time.perf_counter()
    user, system = cpu_end[0] - cpu[0], cpu_end[1] - cpu[1]
    fmt = _private_api.format_time  # IPython's own format
    print(f"CPU times: user {fmt(user)}, sys: {fmt(system)}, total: {fmt(user + system)}")
    print(f"Wall time: {fmt(wall_end - wall)}")
    if compile_time > 0.1:
        print(f"Compiler : {fmt(compile_time)}")
    if parse_time > 0.1:
        print(f"Parser   : {fmt(parse_time)}")
    if error is not None:
        raise error
    return out


# -- %atimeit ------------------------------------------------------------------------------

_TIMEIT_TEMPLATE = """\
async def inner(_it, _timer):
    setup
    _t0 = _timer()
    for _i in _it:
        stmt
    _t1 = _timer()
    return _t1 - _t0
"""


def atimeit(
    shell: InteractiveShell, line: str = "", cell: str | None = None, local_ns: Any = None
) -> Coroutine[Any, Any, Any]:
    """``%timeit``/``%%timeit`` for code that awaits: returns the coroutine the cell awaits."""
    return _atimeit(shell, line, cell, local_ns)


async def _atimeit(shell: InteractiveShell, line: str, cell: str | None, local_ns: Any) -> Any:
    from IPython.core.magics.execution import ExecutionMagics, TimeitResult
    from IPython.utils.timing import clock

    # %timeit's own option parsing, so options and errors read the same.
    opts, stmt = ExecutionMagics(shell).parse_options(
        line, "n:r:tcp:qov:", posix=False, strict=False, preserve_non_opts=True
    )
    if stmt == "" and cell is None:
        return None
    timer = timeit.default_timer
    if hasattr(opts, "t"):
        timer = time.time
    if hasattr(opts, "c"):
        timer = clock
    number = int(str(getattr(opts, "n", 0)))
    repeat = int(str(getattr(opts, "r", 7)))  # IPython's default
    precision = int(str(getattr(opts, "p", 3)))

    parse = shell.compile.ast_parse
    setup_source, stmt_source = ("pass", stmt) if cell is None else (stmt or "pass", cell)
    setup = shell.transform_ast(parse(shell.transform_cell(setup_source)))
    timed = shell.transform_ast(parse(shell.transform_cell(stmt_source)))
    # Errors in the user's code are reported against it, not against the timing function.
    _compile(shell, setup, "<magic-timeit-setup>", "exec")
    _compile(shell, timed, "<magic-timeit-stmt>", "exec")
    template = ast.parse(_TIMEIT_TEMPLATE)
    inner_def = template.body[0]
    assert isinstance(inner_def, ast.AsyncFunctionDef)
    loop = inner_def.body[2]
    assert isinstance(loop, ast.For)
    inner_def.body[0:1] = setup.body
    loop.body = timed.body or [ast.Pass()]
    ast.fix_missing_locations(template)
    started = clock()
    code = compile(template, "<magic-timeit>", "exec", flags=shell.compile.flags, dont_inherit=True)
    compile_time = clock() - started

    glob = shell.user_ns
    shadowed: dict[str, Any] = {}
    if local_ns and cell is None and local_ns is not glob:
        shadowed = {name: glob[name] for name in local_ns if name in glob}
        glob.update(local_ns)
    ns: dict[str, Any] = {}
    exec(code, glob, ns)
    inner = ns["inner"]

    async def run(times: int) -> float:
        # As timeit does: no garbage collection pauses inside a measurement.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return float(await inner(itertools.repeat(None, times), timer))
        finally:
            if collecting:
                gc.enable()

    try:
        if number == 0:  # so that 0.2 s <= a run < 2 s, as IPython does
            for power in range(10):
                number = 10**power
                if await run(number) >= 0.2:
                    break
        runs = [await run(number) for _ in range(repeat)]
    finally:
        if shadowed:
            glob.update(shadowed)
    best, worst = min(runs) / number, max(runs) / number
    result = TimeitResult(number, repeat, best, worst, runs, compile_time, precision)
    if "q" not in opts:
        if worst > 4 * best and best > 0 and worst > 1e-6:
            print(
                f"The slowest run took {worst / best:0.2f} times longer than the fastest. "
                "This could mean that an intermediate result is being cached."
            )
        print(result)
        if compile_time > 0.1:
            print(f"Compiler time: {compile_time:.2f} s")
    if hasattr(opts, "v"):
        shell.user_ns[opts.v] = result
    return result if "o" in opts else None


# -- %tasks ----------------------------------------------------------------------------------

#: The widest a terminal row of ``%tasks`` gets.
WIDTH = 100
_COLUMNS = ("id", "name", "state", "age", "coroutine", "where")


class TaskIds:
    """Short ids for tasks, given when a listing first shows a task and kept for as long as
    the task lives (one table per shell)."""

    def __init__(self) -> None:
        self._ids: dict[Any, int] = {}
        self._next = 1

    def update(self, alive: list[Any], shown: list[Any]) -> dict[Any, int]:
        """Forget the tasks no longer ``alive``; number the ``shown`` ones not numbered yet.
        Returns every id held."""
        still = set(map(id, alive))
        self._ids = {task: n for task, n in self._ids.items() if id(task) in still}
        for task in shown:
            if task not in self._ids:
                self._ids[task] = self._next
                self._next += 1
        return dict(self._ids)


class TaskTable:
    """``%tasks``' output: plain text in a terminal (at most :data:`WIDTH` columns), a
    table in a notebook."""

    def __init__(self, rows: list[tuple[str, ...]], depths: list[int], title: str) -> None:
        self.rows, self.depths, self.title = rows, depths, title

    def text(self) -> str:
        widths = [len(name) for name in _COLUMNS]
        cells = [list(row) for row in self.rows]
        for row, depth in zip(cells, self.depths, strict=True):
            row[1] = "  " * depth + row[1]
        for row in cells:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        # Narrow the widest free-text columns until a row fits.
        while sum(widths) + 2 * (len(widths) - 1) > WIDTH:
            widest = max((1, 4, 5), key=lambda i: widths[i])
            widths[widest] -= 1
        lines = [self.title]
        for row in [list(_COLUMNS), *cells]:
            fitted = [_fit(cell, width) for cell, width in zip(row, widths, strict=True)]
            lines.append("  ".join(fitted).rstrip())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text())

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{name}</th>" for name in _COLUMNS)
        body = "".join(
            "<tr>"
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
    import os

    filename = frame.f_code.co_filename
    named = shell.compile.format_code_name(filename)
    where = named[1] if named else os.path.basename(filename)
    return f"{where}:{frame.f_lineno}"


def _coroutine_name(coro: Any) -> str:
    return str(getattr(coro, "__qualname__", type(coro).__name__)) + "()"


def tasks(shell: InteractiveShell, runner: Any, ids: TaskIds, line: str) -> Any:
    """``%tasks``, ``%tasks --all``, ``%tasks --tree``, ``%tasks where ID``,
    ``%tasks cancel ID``: see docs/magics.rst."""
    from IPython.core.error import UsageError
    from IPython.display import display

    words = line.split()
    options = {word for word in words if word.startswith("--")}
    action = [word for word in words if not word.startswith("--")]
    unknown = options - {"--all", "--tree"}
    if unknown or (action and (len(action) != 2 or action[0] not in ("where", "cancel"))):
        raise UsageError(
            f"%tasks takes --all, --tree, 'where ID' or 'cancel ID' (got {line.strip()!r})"
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
                raise UsageError(f"task {wanted} ({row.name}) is the {row.hidden}'s own")
            try:
                what = runner.cancel_task(row.task)
            except ValueError as exc:
                raise UsageError(f"task {wanted} ({row.name}) cannot be cancelled: {exc}") from None
            print(f"task {wanted} ({row.name}): {what}")
            return None
        print(_where(shell, row, wanted))
        return None
    rows = shown
    if tree and not getattr(runner, "task_tree", False):
        print(f"{runner}: tasks have no parent/child structure to show; the list is flat")
    if not rows:
        print(f"no background tasks in the {runner} session")
        return None
    table: list[tuple[str, ...]] = [
        (
            str(numbers[row.task]),
            row.name,
            row.state + (f" ({row.hidden})" if row.hidden else ""),
            _age(row.started),
            _coroutine_name(row.coro),
            _place(shell, _waiting_at(frames)) if (frames := await_frames(row.coro)) else "-",
        )
        for row in rows
    ]
    title = f"{len(rows)} task{'s' if len(rows) != 1 else ''} in the {runner} session"
    display(TaskTable(table, [row.depth for row in rows], title))
    return None


def _where(shell: InteractiveShell, row: Any, number: str) -> str:
    import linecache

    lines = [f"task {number} ({row.name}, {row.state}, {_age(row.started)} old), waiting in:"]
    frames = await_frames(row.coro)
    for frame in frames:
        lines.append(f"  {_place(shell, frame)} in {frame.f_code.co_name}")
        source = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        if source:
            lines.append(f"    {source}")
    if not frames:
        lines.append("  (no frames: it has not started, or has ended)")
    return "\n".join(lines)
