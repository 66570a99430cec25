"""``%time`` and ``%timeit`` that await (M1): ``%atime``, ``%atimeit`` and the rewrite.

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

    from ._extension import Extension

#: What ``%atime?`` shows: complete in itself, for a terminal.
ATIME_HELP = """Time code that awaits: %time for await (added by autoawait_runners).

  %atime await fetch(url)        time one statement or expression; returns its value
  %%atime                        time the whole cell (its last expression is shown)
  x = %time await fetch(url)     the same: %time and %%time come here by themselves
                                 when the timed code contains await

Prints CPU and wall time as %time does. The code runs in the cell's own task, on the
session loop: background tasks go on meanwhile, and Ctrl-C stops it as it stops a cell.
--no-raise-error: an exception in the timed code is not raised (the timing is still
printed). Code without await goes to IPython's own %time, untouched.
"""

#: What ``%atimeit?`` shows.
ATIMEIT_HELP = """Time code that awaits, many times: %timeit for await (added by autoawait_runners).

  %atimeit await asyncio.sleep(0)       a statement, run in a timing loop
  %%atimeit SETUP                       the cell is timed, after SETUP once
  %timeit -n 100 await queue.get()      the same: %timeit and %%timeit come here
                                        by themselves when the timed code awaits

Options as %timeit's: -n N loops per run, -r R runs (default 7), -t/-c the clock,
-p P digits of precision, -q quiet, -o return the TimeitResult. The timing loop runs
inside the cell's own task, so each await costs what it costs in a plain loop, not a
hand-over per iteration; background tasks go on meanwhile, and Ctrl-C stops the timing
as it stops a cell.
"""

#: IPython's timing magics, and the awaiting versions a cell that awaits is sent to.
AWAITING = {"time": "atime", "timeit": "atimeit", "atime": "atime", "atimeit": "atimeit"}

_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def install(extension: Extension) -> None:
    """``%atime``/``%atimeit``, and the rewrite that sends ``%time``/``%timeit`` of code
    that awaits to them."""
    shell = extension.shell

    def atime_magic(line: str, cell: str | None = None, local_ns: Any = None) -> Any:
        return atime(shell, line, cell, local_ns)

    def atimeit_magic(line: str, cell: str | None = None, local_ns: Any = None) -> Any:
        return atimeit(shell, line, cell, local_ns)

    for magic, name, help_text in (
        (atime_magic, "atime", ATIME_HELP),
        (atimeit_magic, "atimeit", ATIMEIT_HELP),
    ):
        magic.needs_local_scope = True  # type: ignore[attr-defined]
        magic.__doc__ = help_text
        extension.changes.register_magic(magic, "line_cell", name)

    def await_timing(lines: list[str]) -> list[str]:
        return await_timing_magics(lines) if shell.autoawait else lines

    extension.changes.append(shell.input_transformers_post, await_timing)
    extension.changes.set_attribute(shell.compile, "cache", _showing_what_was_typed(shell))
    extension.changes.on_event("post_run_cell", _forget_the_sources)


def _showing_what_was_typed(shell: InteractiveShell) -> Any:
    """IPython's ``compile.cache``, which keeps a cell's source for its tracebacks, keeping
    what was typed for a cell the rewrite changed (``x = %time await f()``, not the call
    that runs it), when the two have the same lines."""
    import linecache

    cache = shell.compile.cache

    def cache_as_typed(transformed_code: str, number: int = 0, raw_code: str | None = None) -> str:
        name: str = cache(transformed_code, number, raw_code=raw_code)
        typed = (raw_code or "").splitlines()
        entry: Any = linecache.cache.get(name)  # (size, mtime, lines, name), or a lazy 1-tuple
        if (
            _REWRITTEN in transformed_code
            and len(typed) == len(transformed_code.splitlines())
            and isinstance(entry, tuple)
            and len(entry) == 4
        ):
            linecache.cache[name] = (entry[0], entry[1], [line + "\n" for line in typed], entry[3])
        return name

    return cache_as_typed


#: What a line the rewrite changed calls.
_REWRITTEN = "await get_ipython().run_line_magic('atime"


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
    _keep_the_source(name, source)

    # The cell's globals and locals: in an embedded shell the locals are the caller's, over
    # its module's globals (the shell's user_ns alone lacks the module's imports).
    glob = shell.user_global_ns
    if local_ns is None:
        local_ns = shell.user_ns
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


#: The timing function's file name, IPython's own (its source is the code timed).
TIMEIT_FILENAME = "<magic-timeit>"


def _at_the_first_line(template: ast.Module) -> ast.Module:
    """The timing loop's own code placed at the timed code's first line: a traceback through
    it (Ctrl-C between two awaits lands there) shows the line being timed."""
    for node in ast.walk(template):
        if "lineno" in node._attributes:
            node.lineno = node.end_lineno = 1  # type: ignore[attr-defined]
            node.col_offset = node.end_col_offset = 0  # type: ignore[attr-defined]
    return template


def _keep_the_source(
    filename: str, source: str, setup: ast.Module | None = None, setup_source: str = ""
) -> None:
    """Keep the timed code's source for tracebacks through ``filename`` (IPython's ``%time``
    and ``%timeit`` keep none: a traceback through the code they compiled says "Could not
    get source"): ``source``'s lines, then those of ``%%timeit``'s ``setup``, whose nodes
    are moved after them. Kept until the cell has ended (its traceback shown): IPython's
    own ``%time`` and ``%timeit`` compile under the same file names, and a later traceback
    of theirs would show these lines."""
    import linecache

    lines = [line + "\n" for line in source.splitlines()]
    if setup is not None:
        ast.increment_lineno(setup, len(lines))
        lines += [line + "\n" for line in setup_source.splitlines()]
    _kept[filename] = linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)


#: The source entries kept for the cell that runs now, by file name.
_kept: dict[str, tuple[int, None, list[str], str]] = {}


def _forget_the_sources(*_: Any) -> None:
    """After a cell (``post_run_cell``): the timed code's source goes (see above)."""
    import linecache

    while _kept:
        filename, entry = _kept.popitem()
        if linecache.cache.get(filename) is entry:  # else replaced since: not ours
            del linecache.cache[filename]


def atimeit(
    shell: InteractiveShell, line: str = "", cell: str | None = None, local_ns: Any = None
) -> Coroutine[Any, Any, Any]:
    """``%timeit``/``%%timeit`` for code that awaits: returns the coroutine the cell awaits."""
    return _atimeit(shell, line, cell, local_ns)


async def _atimeit(shell: InteractiveShell, line: str, cell: str | None, local_ns: Any) -> Any:
    from IPython.core.magics.execution import TimeitResult
    from IPython.utils.timing import clock

    # %timeit's own option parsing, so options and errors read the same.
    # IPython's own instance: a new one would join shell.configurables for good.
    opts, stmt = shell.magics_manager.registry["ExecutionMagics"].parse_options(
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
    setup_source = shell.transform_cell(setup_source)
    stmt_source = shell.transform_cell(stmt_source)
    setup = shell.transform_ast(parse(setup_source))
    timed = shell.transform_ast(parse(stmt_source))
    # Errors in the user's code are reported against it, not against the timing function.
    _compile(shell, setup, "<magic-timeit-setup>", "exec")
    _compile(shell, timed, "<magic-timeit-stmt>", "exec")
    template = _at_the_first_line(ast.parse(_TIMEIT_TEMPLATE))
    _keep_the_source(TIMEIT_FILENAME, stmt_source, setup if cell else None, setup_source)
    inner_def = template.body[0]
    assert isinstance(inner_def, ast.AsyncFunctionDef)
    loop = inner_def.body[2]
    assert isinstance(loop, ast.For)
    inner_def.body[0:1] = setup.body
    loop.body = timed.body or [ast.Pass()]
    ast.fix_missing_locations(template)
    started = clock()
    code = compile(template, TIMEIT_FILENAME, "exec", flags=shell.compile.flags, dont_inherit=True)
    compile_time = clock() - started

    glob = shell.user_ns
    if shell.user_global_ns is not glob:  # an embedded shell: see _atime
        glob = {**shell.user_global_ns, **glob}
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
