"""Every name this package uses that Python, asyncio, IPython, traitlets, ipykernel, trio or
curio do not promise to keep.

Each one is used through this module only, so that a new Python or library release breaks
one place, and :func:`missing` (run by ``tests/test_private_api.py`` on every Python in CI)
names what went away before a user meets it. Checked on CPython 3.11, 3.12, 3.13, 3.14 and
3.15, IPython 8.18 and 9.18, curio-compat 1.6. No event-loop policy is used (deprecated for
removal in 3.16).

CPython:

- ``sys._current_frames``: another thread's innermost frame, to tell whether a runner's
  loop is busy or waiting for events, and whether a thread sent Ctrl-C has moved (Ctrl-C);
  the stack of a blocked session loop's thread, sampled by the loop watch (B3);
  and the asyncio loop the main thread runs, found by its ``run_forever`` frame's ``self``,
  for a shell embedded in a worker thread (Ctrl-C handlers are set in the main thread).
- ``sys._getframe``: the caller's frame: its namespace for ``embed()``, the frame of
  ``BaseEventLoop._run_once`` below a nested call (parking), and the cell a
  ``%%background`` is called from (its number).
- ``ctypes.pythonapi.PyThreadState_SetAsyncExc``: raise KeyboardInterrupt in a runner's
  thread, the only way one thread can interrupt another's Python code (Ctrl-C).
- ``_signal.signal`` and ``_signal.getsignal``: what ``signal.signal`` and
  ``signal.getsignal`` wrap, without their enum conversions (a twentieth of the cost: the
  SIGINT handler is set and put back around every await cell). They give ``SIG_DFL`` and
  ``SIG_IGN`` as plain ints.

asyncio:

- ``asyncio.events._get_running_loop``: the running loop, or None (``get_running_loop``
  raises): whether a loop runs here (nesting, embed, runners).
- ``asyncio.events._set_running_loop``: switch the running loop around nested calls and
  the asyncio runner's greenlets.
- ``asyncio.tasks._enter_task``/``_leave_task``: the current task around a nested call
  (parking, nesting); 3.14 keeps the current task per thread, these still do the job.
- ``BaseEventLoop._ready`` and ``_run_once``, and ``_run_once``'s locals ``ntodo`` and
  ``i``: run one loop iteration from a driver greenlet, and pad the ready queue for an
  iteration suspended half-way (parking). Without the locals, parking pads safely but more.
- ``Task._log_traceback``: asyncio's "exception not retrieved yet" flag; reading it does
  not retrieve the exception (failure reports, ``%tasks``).
- ``Task._must_cancel``: a cancellation requested but not delivered yet (the cell wrapper).
- ``Task._log_destroy_pending``: silence "Task was destroyed but it is pending" for a task
  that ignored cancellation and is abandoned at the end of a session.
- ``BaseEventLoop._default_executor`` and ``ThreadPoolExecutor._threads``: the loop's
  executor, shut down without waiting for its running jobs past the shutdown timeout
  (``shutdown_default_executor`` waits for them all), and how many still run.
- ``Handle._context``: the context a handle runs in, to tell a handle that cannot enter it
  (a parked nested call holds it) from any other failure (parking); ``Handle._callback``
  and ``_args``: to run such a handle in that context without entering it (parking).
- ``Future._asyncio_future_blocking``: what ``await future`` sets before yielding the
  future to its task; the cell wrapper yields a decoy future of its own (the cell wrapper).
- ``BaseEventLoop.call_exception_handler`` shadowed on a loop instance: the loop's own
  error path, looked at first while nested calls are parked (parking).
- ``BaseEventLoop._asyncgen_firstiter_hook`` and ``_asyncgen_finalizer_hook``: the async
  generator hooks ``run_forever`` installs; a nested call installs the running loop's while
  it waits, as ``asyncio.run()``'s own loop would (parking).
- ``_UnixSelectorEventLoop._signal_handlers``: signal number -> handle of the handlers
  added to the loop; ``close()`` removes each. Read around a nested ``asyncio.run()`` on
  the running loop (to take off what it added, as closing its own loop would), and filled
  for a handler set from another thread (``_loop_signals``).
- ``BaseSelectorEventLoop._selector``, read by ``_run_once`` at each iteration: the
  selector a loop waits in, swapped for one that runs a GUI's event loop while it waits
  (the idle prompt with ``%gui``), and wrapped in one that marks the loop watch's (B3).

IPython:

- ``IPython.core.async_helpers._pseudo_sync_runner``: run a cell coroutine without a loop,
  as IPython runs plain cells (a cell inside a cell; a session that cannot start).
- ``IPython.core.async_helpers._asyncio_runner``: IPython's own asyncio runner, to tell
  whether it is the one selected.
- ``IPython.core.async_helpers._trio_runner``: IPython's own trio runner, for an await cell
  that a kernel runs before its loop does (``exec_lines``) under ``trio-guest``.
- ``InteractiveShell.run_cell_async``'s argument ``transformed_cell``, read from the cell's
  coroutine before it starts: whether a cell can await at all (a loop runner receives only
  the coroutine), so the asyncio runner runs a plain cell in place, not as a task.
- ``IPython.core.magics.execution._format_time``: ``%time``'s own time format, so the
  awaiting ``%time`` reads the same.
- ``InteractiveShell._atexit_once``: where terminal IPython clears the namespace at exit;
  the session ends first (F2).
- ``TerminalInteractiveShell._extra_prompt_options``: the prompt's options (its key bindings,
  completer, colours), for the ``embed()`` prompt read on a host's loop.
- ``TerminalInteractiveShell.prompt_for_code`` passes the hook ``%gui`` set to
  ``pt_app.prompt(inputhook=...)``, its only way to the prompt: the extension's prompt hook
  composes with it there.
- ``InteractiveShellEmbed(_init_location_id=)`` and ``shell(_call_location_id=)``: where
  ``embed()`` was called, which ``exit_raise`` and ``%kill_embedded`` go by, as
  ``IPython.embed`` passes it.

traitlets:

- ``SingletonConfigurable._instance`` and ``_walk_mro``: the shell instance, cleared for
  an embedded shell and put back after it, as ``IPython.embed`` does.

comm (ipykernel's comms):

- ``BaseComm._close_callback``: the comm's one close callback, kept and called by the one a
  widget's wait adds, put back after (``_ipython._widgets``).

ipykernel:

- ``Kernel._publish_status(status, channel, parent)``: a busy or idle status for one
  request; ipykernel 7 sends none for a comm message it handles while a cell runs, and the
  widgets' frontend waits for that idle before it sends the widget's next change
  (``_ipython._kernel_comms``).

ipykernel 6 (not 7):

- ``OutStream._thread_to_parent_header``/``_thread_to_parent``: which cell a thread's
  output goes to; a runner's own thread is unpinned, so output goes to the current cell.
- ``Thread._ipykernel_parent_thread_ident``: the thread a thread was made in, which 6's
  hook on ``Thread.run`` reads to choose the cell the thread's output goes to; a thread a
  cell makes in a runner's thread is said to be made in the kernel's, as it would be
  without the extension (its output goes to the cell running when it starts).

trio:

- ``trio._core._io_*`` ``get_events``: the innermost frame of a trio run waiting for I/O
  or timers, running nothing (Ctrl-C: cancel, rather than raise in the loop).
- ``GLOBAL_RUN_CONTEXT.runner.io_manager._epoll`` (Linux; ``current_kqueue()`` elsewhere is
  public): the descriptor of a trio run's wait for I/O, readable when any of its waits is;
  a GUI at the idle prompt waits on it in the trio runner's thread.

curio:

- ``Kernel._tasks``: the kernel's tasks (curio has no public list): counting and listing.
- ``Task.cancelled`` set back to False: curio delivers a task's cancellation once, and
  then ignores every later one; a cell that swallowed Ctrl-C's cancellation gets the next
  press's (the third gives it up, as under every runner).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import asyncio
import ctypes
import functools
import signal
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

sigint_handler: Callable[[], Any] = functools.partial(_signal.getsignal, signal.SIGINT)
set_sigint_handler: Callable[[Any], Any] = functools.partial(_signal.signal, signal.SIGINT)
current_frames = sys._current_frames
caller_frame = sys._getframe
set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc

running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio.events._get_running_loop
set_running_loop: Callable[[asyncio.AbstractEventLoop | None], None] = (
    asyncio.events._set_running_loop
)
enter_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] = (
    asyncio.tasks._enter_task
)
leave_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] = (
    asyncio.tasks._leave_task
)

_RUN_FOREVER_CODE = asyncio.BaseEventLoop.run_forever.__code__


def loop_running_in(thread_id: int | None) -> asyncio.AbstractEventLoop | None:
    """The asyncio loop (a ``BaseEventLoop``) that ``thread_id`` runs now, if any."""
    frame = current_frames().get(thread_id) if thread_id is not None else None
    while frame is not None:
        if frame.f_code is _RUN_FOREVER_CODE:
            loop = frame.f_locals.get("self")
            if isinstance(loop, asyncio.AbstractEventLoop) and loop.is_running():
                return loop
        frame = frame.f_back
    return None


#: The code of ``BaseEventLoop._run_once``, and the names of its locals parking reads.
RUN_ONCE_CODE = asyncio.BaseEventLoop._run_once.__code__  # type: ignore[attr-defined]
RUN_ONCE_LOCALS = ("ntodo", "i")


def ready_queue(loop: asyncio.AbstractEventLoop) -> deque[asyncio.Handle]:
    """The loop's queue of handles ready to run."""
    return loop._ready  # type: ignore[attr-defined,no-any-return]


def run_once(loop: asyncio.AbstractEventLoop) -> None:
    """One iteration of the loop."""
    loop._run_once()  # type: ignore[attr-defined]


def exception_unretrieved(task: asyncio.Future[Any]) -> bool:
    """Whether the task failed and nothing has retrieved its exception yet."""
    return bool(getattr(task, "_log_traceback", False))


def cancel_pending(task: asyncio.Task[Any]) -> bool:
    """Whether a cancellation of the task was requested and not delivered yet."""
    return bool(getattr(task, "_must_cancel", False))


def forget_pending(task: asyncio.Task[Any]) -> None:
    """No "Task was destroyed but it is pending" for this task."""
    task._log_destroy_pending = False  # type: ignore[attr-defined]


def default_executor(loop: asyncio.AbstractEventLoop) -> Any:
    """The loop's default executor, or None if nothing has used it yet."""
    return getattr(loop, "_default_executor", None)


def executor_jobs_running(executor: Any) -> int:
    """How many threads of a ThreadPoolExecutor still run a job (after shutdown)."""
    return sum(thread.is_alive() for thread in getattr(executor, "_threads", ()))


def handle_context(handle: asyncio.Handle) -> Any:
    """The context a handle runs its callback in."""
    return handle._context  # type: ignore[attr-defined]


def handle_callback(handle: asyncio.Handle) -> tuple[Callable[..., Any], Any]:
    """A handle's callback and its arguments."""
    return handle._callback, handle._args  # type: ignore[attr-defined]


def signal_handlers(loop: asyncio.AbstractEventLoop) -> dict[int, asyncio.Handle] | None:
    """The loop's signal handlers by signal number (None: a loop without them, uvloop's)."""
    handlers = getattr(loop, "_signal_handlers", None)
    return handlers if isinstance(handlers, dict) else None


def loop_selector(loop: asyncio.AbstractEventLoop) -> Any:
    """The selector an asyncio loop waits for events in, or None (a loop without one)."""
    return getattr(loop, "_selector", None)


def set_loop_selector(loop: asyncio.AbstractEventLoop, selector: Any) -> None:
    """Have the loop wait in ``selector`` from its next iteration on."""
    loop._selector = selector  # type: ignore[attr-defined]


def mark_blocking(future: asyncio.Future[Any]) -> None:
    """Mark a future as ``await future`` does before yielding it to its task."""
    future._asyncio_future_blocking = True


def shadow_exception_handler(
    loop: asyncio.AbstractEventLoop, handler: Callable[[dict[str, Any]], None]
) -> None:
    """Have the loop's own errors go to ``handler`` first (an instance attribute, found
    before the class's method); :func:`unshadow_exception_handler` undoes it."""
    loop.call_exception_handler = handler  # type: ignore[method-assign,assignment]


def unshadow_exception_handler(loop: asyncio.AbstractEventLoop) -> None:
    del loop.call_exception_handler


def asyncgen_hooks_of(loop: asyncio.AbstractEventLoop) -> tuple[Any, Any]:
    """The async generator hooks the loop's ``run_forever`` installs."""
    return loop._asyncgen_firstiter_hook, loop._asyncgen_finalizer_hook  # type: ignore[attr-defined]


def pseudo_sync_runner() -> Callable[[Any], Any]:
    from IPython.core.async_helpers import _pseudo_sync_runner

    return _pseudo_sync_runner


def cell_source(coro: Any) -> str | None:
    """The transformed source of the cell whose ``run_cell_async`` coroutine ``coro`` is,
    before it starts; None for any other coroutine."""
    frame = getattr(coro, "cr_frame", None)
    if frame is None or frame.f_code.co_name != "run_cell_async":
        return None
    source = frame.f_locals.get("transformed_cell")
    return source if isinstance(source, str) else None


def ipython_asyncio_runner() -> Any:
    from IPython.core.async_helpers import _asyncio_runner

    return _asyncio_runner


def ipython_trio_runner() -> Any:
    from IPython.core.async_helpers import _trio_runner

    return _trio_runner


def format_time(seconds: float) -> str:
    from IPython.core.magics.execution import _format_time

    return str(_format_time(seconds))


#: The InteractiveShell method that clears the namespace at exit.
ATEXIT_ONCE = "_atexit_once"


def extra_prompt_options(shell: Any) -> dict[str, Any]:
    """The options terminal IPython reads its prompt with."""
    return shell._extra_prompt_options()  # type: ignore[no-any-return]


def embed_location(where: str) -> dict[str, str]:
    """``InteractiveShellEmbed(**embed_location(where))``: where the shell was made."""
    return {"_init_location_id": where}


def call_location(where: str) -> dict[str, str]:
    """``shell(**call_location(where))``: where the embedded shell is entered."""
    return {"_call_location_id": where}


def singleton_instance(cls: Any) -> Any:
    """A traitlets singleton class's instance, or None."""
    return cls._instance


def restore_singleton_instance(instance: Any) -> None:
    """Make ``instance`` its class's singleton again (and its bases'), as it was."""
    for cls in type(instance)._walk_mro():
        cls._instance = instance


#: ipykernel 6's tables of which cell a thread's output goes to (ipykernel 7 has none).
IPYKERNEL6_THREAD_PINS = ("_thread_to_parent_header", "_thread_to_parent")


#: Where ipykernel 6 notes, on a thread, the thread it was made in.
IPYKERNEL6_THREAD_MADE_IN = "_ipykernel_parent_thread_ident"


def thread_made_in(thread: Any) -> int | None:
    """The thread ``thread`` was made in, as ipykernel 6 noted it (None: not noted)."""
    made_in = getattr(thread, IPYKERNEL6_THREAD_MADE_IN, None)
    return made_in if isinstance(made_in, int) else None


def say_thread_made_in(thread: Any, thread_id: int) -> None:
    """Have ipykernel 6 take ``thread`` as made in ``thread_id``."""
    setattr(thread, IPYKERNEL6_THREAD_MADE_IN, thread_id)


def comm_close_callback(comm: Any) -> Any:
    """The callback a comm calls when its frontend closes it (one slot), or None."""
    return getattr(comm, "_close_callback", None)


def unpin_thread_output(stream: Any, thread_id: int) -> None:
    """Let ``thread_id``'s output go to the current cell (ipykernel 6)."""
    for table in IPYKERNEL6_THREAD_PINS:
        pins = getattr(stream, table, None)
        if isinstance(pins, dict):
            pins.pop(thread_id, None)


#: Where trio's run loop waits for I/O or timers, running nothing: (module name prefix,
#: function name) of its innermost frame then (``trio._core._io_epoll`` on Linux).
TRIO_WAITS_IN = ("trio._core._io_", "get_events")


def trio_io_fd() -> int | None:
    """In a trio run: the descriptor its I/O backend waits on (epoll, kqueue), readable when
    any of its waits for I/O is ready (its wake-ups from other threads too); None where it
    has none (Windows)."""
    import trio

    current_kqueue = getattr(trio.lowlevel, "current_kqueue", None)
    if current_kqueue is not None:
        return int(current_kqueue().fileno())
    from trio._core._run import GLOBAL_RUN_CONTEXT

    epoll = getattr(GLOBAL_RUN_CONTEXT.runner.io_manager, "_epoll", None)
    return None if epoll is None else int(epoll.fileno())


def _trio_io_fd_found() -> bool:
    import trio

    async def find() -> bool:
        return sys.platform == "win32" or isinstance(trio_io_fd(), int)

    return trio.run(find)


def _trio_waits_in_get_events() -> bool:
    import importlib

    kind = {"darwin": "kqueue", "win32": "windows"}.get(sys.platform, "epoll")
    module = importlib.import_module(TRIO_WAITS_IN[0] + kind)
    return any(
        callable(getattr(value, TRIO_WAITS_IN[1], None))
        for value in vars(module).values()
        if isinstance(value, type)
    )


def _cell_source_readable() -> bool:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.__new__(InteractiveShell)  # the coroutine only, never run
    coro = InteractiveShell.run_cell_async(shell, "x = 1", transformed_cell="x = 2\n")
    try:
        return cell_source(coro) == "x = 2\n"
    finally:
        coro.close()


def _executor_has_threads() -> bool:
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(1)
    try:
        executor.submit(int).result()
        return executor_jobs_running(executor) == 1
    finally:
        executor.shutdown()


def _shadows_exception_handler(loop: asyncio.AbstractEventLoop) -> bool:
    seen: list[dict[str, Any]] = []
    shadow_exception_handler(loop, seen.append)
    try:
        loop.call_exception_handler({"message": "check"})
    finally:
        unshadow_exception_handler(loop)
    return seen == [{"message": "check"}]


def _loop_installs_its_asyncgen_hooks() -> bool:
    async def hooks() -> tuple[Any, ...]:
        return tuple(sys.get_asyncgen_hooks())

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(hooks()) == asyncgen_hooks_of(loop)
    finally:
        loop.close()


#: What ``prompt_for_code`` passes the ``%gui`` hook to the prompt as.
PROMPT_HOOK_ARGUMENT = "inputhook=self._inputhook"


def _prompt_takes_the_gui_hook() -> bool:
    import inspect

    return PROMPT_HOOK_ARGUMENT in inspect.getsource(_terminal_shell().prompt_for_code)


def _loop_waits_in_its_selector(loop: asyncio.AbstractEventLoop) -> bool:
    import inspect
    import selectors

    return isinstance(loop_selector(loop), selectors.BaseSelector) and (
        "self._selector.select(" in inspect.getsource(asyncio.BaseEventLoop._run_once)  # type: ignore[attr-defined]
    )


def _singleton_is_there() -> bool:
    from IPython.core.interactiveshell import InteractiveShell

    return hasattr(InteractiveShell, "_instance") and callable(InteractiveShell._walk_mro)


def _terminal_shell() -> Any:
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    return TerminalInteractiveShell


def _embed_locations() -> bool:
    import inspect

    from IPython.terminal.embed import InteractiveShellEmbed

    # Both are popped from **kw.
    made = inspect.getsource(InteractiveShellEmbed.__init__)
    entered = inspect.getsource(InteractiveShellEmbed.__call__)
    return "_init_location_id" in made and "_call_location_id" in entered


def publish_kernel_status(kernel: Any, status: str, parent: Any) -> None:
    """Publish a kernel status (``busy``, ``idle``) for the shell request ``parent``."""
    kernel._publish_status(status, "shell", parent)


def _kernel_publishes_status() -> bool:
    import inspect

    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:
        return True
    parameters = list(inspect.signature(Kernel._publish_status).parameters)
    return parameters[:4] == ["self", "status", "channel", "parent"]


def _comm_close_slot() -> bool:
    import inspect

    try:
        from comm.base_comm import BaseComm
    except ImportError:
        return True
    return "self._close_callback = " in inspect.getsource(BaseComm)


def _ipykernel6_pins() -> bool:
    """ipykernel 6's OutStream makes the tables; 7 has none, and needs no unpinning."""
    import inspect

    try:
        import ipykernel
        from ipykernel.iostream import OutStream
    except ImportError:
        return True
    if int(str(getattr(ipykernel, "__version__", "7")).split(".")[0]) >= 7:
        return True
    source = inspect.getsource(OutStream)
    return all(table in source for table in IPYKERNEL6_THREAD_PINS)


def _ipykernel6_thread_hooks() -> bool:
    """ipykernel 6 notes where a thread was made, and reads it when the thread runs."""
    import inspect

    try:
        import ipykernel
        from ipykernel.ipkernel import IPythonKernel
    except ImportError:
        return True
    if int(str(getattr(ipykernel, "__version__", "7")).split(".")[0]) >= 7:
        return True
    hooks = getattr(IPythonKernel, "_initialize_thread_hooks", None)
    return hooks is not None and IPYKERNEL6_THREAD_MADE_IN in inspect.getsource(hooks)


def curio_cancellable_again(task: Any) -> None:
    """Let ``task``'s next ``cancel()`` be delivered, if its last one was already."""
    if task.cancelled and task.cancel_pending is None:
        task.cancelled = False


def _curio_cancels_once() -> bool:
    import inspect

    from curio.kernel import Kernel

    source = inspect.getsource(Kernel._make_kernel_runtime)
    return "if task.cancelled:\n                return" in source and "cancel_pending" in source


def curio_tasks(kernel: Any) -> dict[int, Any]:
    """A curio Kernel's tasks, by id."""
    return kernel._tasks  # type: ignore[no-any-return]


def missing() -> list[str]:
    """The touchpoints above that this Python and these libraries no longer have."""
    gone = []

    def need(what: str, present: Callable[[], bool]) -> None:
        try:
            ok = present()
        except (AttributeError, ImportError):
            ok = False
        if not ok:
            gone.append(what)

    need(
        "_signal.signal, _signal.getsignal",
        lambda: _signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGINT),
    )
    need("sys._current_frames", lambda: callable(sys._current_frames))
    need("sys._getframe", lambda: callable(sys._getframe))
    need(
        "BaseEventLoop.run_forever's local self",
        lambda: _RUN_FOREVER_CODE.co_varnames[:1] == ("self",),
    )
    need("ctypes.pythonapi.PyThreadState_SetAsyncExc", lambda: bool(set_async_exc))
    need("asyncio.events._get_running_loop", lambda: callable(asyncio.events._get_running_loop))
    need("asyncio.events._set_running_loop", lambda: callable(asyncio.events._set_running_loop))
    need("asyncio.tasks._enter_task", lambda: callable(asyncio.tasks._enter_task))
    need("asyncio.tasks._leave_task", lambda: callable(asyncio.tasks._leave_task))
    need(
        "BaseEventLoop._run_once locals " + ", ".join(RUN_ONCE_LOCALS),
        lambda: set(RUN_ONCE_LOCALS) <= set(RUN_ONCE_CODE.co_varnames),
    )
    loop = asyncio.new_event_loop()
    try:
        need("BaseEventLoop._ready", lambda: isinstance(ready_queue(loop), deque))
        need("BaseEventLoop._run_once", lambda: callable(getattr(loop, "_run_once", None)))

        async def fail() -> None:
            raise ValueError

        if hasattr(signal, "SIGUSR1"):  # _UnixSelectorEventLoop: POSIX only
            need(
                "_UnixSelectorEventLoop._signal_handlers",
                lambda: signal_handlers(loop) == {},
            )
        task = loop.create_task(fail())
        handle = loop.call_soon(int)
        need("BaseEventLoop._default_executor", lambda: hasattr(loop, "_default_executor"))
        need("ThreadPoolExecutor._threads", _executor_has_threads)
        need("Handle._context", lambda: handle_context(handle) is not None)
        need("Handle._callback and _args", lambda: handle_callback(handle) == (int, ()))
        need("Future._asyncio_future_blocking", lambda: hasattr(task, "_asyncio_future_blocking"))
        need(
            "BaseEventLoop.call_exception_handler, shadowed on the instance",
            lambda: _shadows_exception_handler(loop),
        )
        need(
            "BaseSelectorEventLoop._selector, read by _run_once",
            lambda: _loop_waits_in_its_selector(loop),
        )
        need("Task._must_cancel", lambda: hasattr(task, "_must_cancel"))
        need("Task._log_destroy_pending", lambda: hasattr(task, "_log_destroy_pending"))
        loop.run_until_complete(asyncio.wait([task]))
        need("Task._log_traceback", lambda: exception_unretrieved(task))
        task.exception()
    finally:
        loop.close()
    need(
        "BaseEventLoop._asyncgen_firstiter_hook, _asyncgen_finalizer_hook",
        _loop_installs_its_asyncgen_hooks,
    )
    need("IPython _pseudo_sync_runner", lambda: callable(pseudo_sync_runner()))
    need("IPython _asyncio_runner", lambda: callable(ipython_asyncio_runner()))
    need("IPython _trio_runner", lambda: callable(ipython_trio_runner()))
    need("IPython _format_time", lambda: format_time(0.2) == "200 ms")
    need("InteractiveShell.run_cell_async(transformed_cell=)", _cell_source_readable)
    need(
        "InteractiveShell._atexit_once",
        lambda: callable(getattr(__import__("IPython").InteractiveShell, ATEXIT_ONCE)),
    )
    need("traitlets SingletonConfigurable._instance, _walk_mro", _singleton_is_there)
    need(
        "TerminalInteractiveShell._extra_prompt_options",
        lambda: callable(_terminal_shell()._extra_prompt_options),
    )
    need("InteractiveShellEmbed _init_location_id, _call_location_id", _embed_locations)
    need(
        "TerminalInteractiveShell.prompt_for_code's pt_app.prompt(" + PROMPT_HOOK_ARGUMENT + ")",
        _prompt_takes_the_gui_hook,
    )
    need("ipykernel 6 OutStream " + ", ".join(IPYKERNEL6_THREAD_PINS), _ipykernel6_pins)
    need("ipykernel 6 Thread." + IPYKERNEL6_THREAD_MADE_IN, _ipykernel6_thread_hooks)
    need("comm BaseComm._close_callback", _comm_close_slot)
    need("ipykernel Kernel._publish_status(status, channel, parent)", _kernel_publishes_status)
    try:
        import trio  # noqa: F401
    except ImportError:
        pass
    else:
        need("trio " + ".".join(TRIO_WAITS_IN) + "*", _trio_waits_in_get_events)
        need("trio GLOBAL_RUN_CONTEXT.runner.io_manager._epoll", _trio_io_fd_found)
    try:
        import curio
    except ImportError:
        return gone
    kernel = curio.Kernel()
    try:
        need("curio Kernel._tasks", lambda: isinstance(curio_tasks(kernel), dict))
        need("curio Task.cancelled (a cancellation delivered once)", _curio_cancels_once)
    finally:
        kernel.run(shutdown=True)
    return gone
