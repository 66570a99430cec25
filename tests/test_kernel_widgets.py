"""A cell awaits the person at the notebook (DESIGN K4), and output and order stay as
ipykernel promises (K5), in real kernels driven through jupyter_client.

The client sends what a frontend sends when a slider moves or a button is clicked: a
``comm_msg`` to the widget's model. ipykernel handles it while a cell awaits under every
runner; the widget's callbacks run in the kernel's main thread.

The tests of one runner share a kernel (starting one is most of a test's time); each test
leaves it usable, which most of them check, and a failed test's kernel is replaced, so that
one fault is not reported by every test after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kernel import Kernel

pytestmark = pytest.mark.kernel

EXAMPLES = Path(__file__).parent.parent / "examples"
RUNNERS = ["asyncio", "thread", "uvloop", "trio", "trio-guest", "curio"]

#: runner -> a cell that waits for the slider with each library's timeout idiom.
WAIT_A_WHILE = {
    "asyncio": "try:\n    await asyncio.wait_for({}, 0.3)\nexcept TimeoutError:\n    pass",
    "trio": "with trio.move_on_after(0.3):\n    await {}",
    "curio": "await curio.ignore_after(0.3, {})",
}
WAIT_A_WHILE["thread"] = WAIT_A_WHILE["uvloop"] = WAIT_A_WHILE["asyncio"]
WAIT_A_WHILE["trio-guest"] = WAIT_A_WHILE["trio"]

#: runner -> how a cell starts a background task that prints later.
PRINT_LATER = {
    "asyncio": "asyncio.create_task(later())",
    "thread": "asyncio.create_task(later())",
    "uvloop": "asyncio.create_task(later())",
    "trio": "autoawait_runners.trio_nursery().start_soon(later)",
    "trio-guest": "autoawait_runners.trio_nursery().start_soon(later)",
    "curio": "await curio.spawn(later, daemon=True)",
}

SLEEP = {"trio": "trio.sleep", "trio-guest": "trio.sleep", "curio": "curio.sleep"}

#: What a frontend sends to a button's model when it is clicked.
CLICK = {"method": "custom", "content": {"event": "click"}}


def moved_to(value: int) -> dict[str, object]:
    """What a frontend sends to a slider's model when it is moved to ``value``."""
    return {"method": "update", "state": {"value": value}, "buffer_paths": []}


def sends(kernel: Kernel, model: str, data: dict[str, object]) -> Callable[[], None]:
    """The frontend's action: send ``data`` to the widget ``model``."""
    return lambda: kernel.send_comm_msg(model, data)


def with_widgets(kernel: Kernel, runner: str | None) -> None:
    """Widgets imported; ``runner`` selected (None: the extension not even loaded)."""
    if runner is not None:
        kernel.ok("%load_ext autoawait_runners")
        kernel.ok(f"%autoawait {runner}")
    kernel.ok("import asyncio, threading, comm, ipywidgets, autoawait_runners")
    kernel.ok("from autoawait_test_helpers import all_at_once, announced")
    if runner in ("trio", "trio-guest", "curio"):
        kernel.ok(f"import {runner.split('-')[0]}")


@pytest.fixture(scope="module", params=RUNNERS)
def runner(request: pytest.FixtureRequest) -> str:
    """Each runner in turn; module-scoped, so that pytest runs one runner's tests together."""
    pytest.importorskip("ipywidgets")
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return str(request.param)


@pytest.fixture(scope="module")
def runner_kernel(runner: str) -> Iterator[list[Kernel]]:
    """The runner's kernel, once started: in a list, so that a failed test can replace it."""
    started: list[Kernel] = []
    yield started
    for kernel in started:
        kernel.shutdown()


@pytest.fixture
def kernel(
    runner_kernel: list[Kernel],
    runner: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Kernel]:
    """The runner's shared kernel, with widgets imported (see the module's docstring)."""
    if not runner_kernel:
        runner_kernel.append(Kernel(tmp_path_factory.mktemp(f"kernel-{runner}")))
        with_widgets(runner_kernel[0], runner)
    failed_before = request.session.testsfailed
    yield runner_kernel[0]
    if request.session.testsfailed > failed_before:
        runner_kernel.pop().shutdown()


@pytest.fixture(scope="module")
def plain_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """A kernel without the extension (ipykernel's own asyncio integration), for the tests
    that compare with it: what works there works under every runner (F8). On ipykernel 6
    a plain kernel handles no comm message while a cell runs, so a cell cannot await a
    widget there at all (K4): those tests compare on ipykernel 7 only."""
    pytest.importorskip("ipywidgets")
    kernel = Kernel(tmp_path_factory.mktemp("kernel-plain"))
    with_widgets(kernel, None)
    yield kernel
    kernel.shutdown()


#: A test's outcome in the plain kernel, run once for every runner's comparison.
_in_the_plain_kernel: dict[str, object] = {}


def in_the_plain_kernel(plain_kernel: Kernel, run: Callable[[Kernel], object]) -> object:
    """``run(plain_kernel)``'s outcome (once per test function: the same for every runner)."""
    key = run.__qualname__
    if key not in _in_the_plain_kernel:
        _in_the_plain_kernel[key] = run(plain_kernel)
    return _in_the_plain_kernel[key]


def model_id(kernel: Kernel, widget: str) -> str:
    output = kernel.ok(f"print('model', {widget}.model_id)")
    match = re.search(r"model (\w+)", output)
    assert match, output
    return match.group(1)


def ipykernel_7_or_later() -> bool:
    import ipykernel

    return int(ipykernel.__version__.split(".")[0]) >= 7


#: what the cell awaits -> (the widget, the awaitable, what the frontend sends, the result).
AWAITED = {
    "a slider moved": ("ipywidgets.IntSlider(value=1)", "changed", moved_to(7), "7"),
    "a click": ("ipywidgets.Button(description='go')", "clicked", CLICK, "Button"),
    "a custom message": (
        "ipywidgets.Button()",
        "received",
        {"method": "custom", "content": {"answer": 42}},
        "({'answer': 42}, [])",
    ),
}


@pytest.mark.parametrize("what", list(AWAITED))
def test_a_cell_awaits_the_notebook(kernel: Kernel, runner: str, what: str) -> None:
    widget, awaitable, frontend_sends, result = AWAITED[what]
    kernel.ok(f"widget = {widget}")
    model = model_id(kernel, "widget")
    output, reply = kernel.execute(
        f"got = await announced(autoawait_runners.{awaitable}(widget), 'waiting')\n"
        "print('got', got)",
        when=[("waiting", sends(kernel, model, frontend_sends))],
    )
    assert reply["status"] == "ok", output
    assert f"got {result}" in output


def test_a_change_handled_while_a_cell_runs_is_answered_busy_then_idle(
    kernel: Kernel, runner: str
) -> None:
    # K4: the widgets' frontend sends a widget's next change only once the kernel said idle
    # for its last one. ipykernel sends no status for a comm message it handles while a
    # cell runs (7's concurrent dispatch; 6, for which the extension handles them at once),
    # and a slider a cell awaited never sent another value in a real browser (on a stock
    # ipykernel 7 too; tests/test_browser.py moves one three times).
    kernel.ok("slider = ipywidgets.IntSlider()")
    model = model_id(kernel, "slider")
    sent: list[str] = []
    output, reply = kernel.execute(
        "for n in range(2):\n"
        "    got = await announced(autoawait_runners.changed(slider), f'waiting {n}')\n"
        "    print('got', got, flush=True)",
        when=[
            ("waiting 0", lambda: sent.append(kernel.send_comm_msg(model, moved_to(3)))),
            ("waiting 1", lambda: sent.append(kernel.send_comm_msg(model, moved_to(4)))),
        ],
    )
    assert reply["status"] == "ok", output
    assert "got 4" in output
    for msg_id in sent:
        assert kernel.statuses_of(msg_id) == ["busy", "idle"]


def test_a_widget_closed_while_awaited_ends_the_wait(kernel: Kernel, runner: str) -> None:
    # The frontend closes the widget (its output cleared, the notebook closed): what was
    # awaited can no longer come, and the cell says so instead of waiting for good.
    kernel.ok("slider = ipywidgets.IntSlider()\nslider.comm.on_close(lambda msg: print('own'))")
    model = model_id(kernel, "slider")

    def close() -> None:
        message = kernel.client.session.msg("comm_close", {"comm_id": model, "data": {}})
        kernel.client.shell_channel.send(message)

    output, reply = kernel.execute(
        "await announced(autoawait_runners.changed(slider), 'waiting')",
        when=[("waiting", close)],
    )
    assert reply["status"] == "error"
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    assert "WidgetClosed: IntSlider was closed while a cell waited for it" in output
    assert "own" in output  # the comm's own close callback ran too, and is back in place
    assert kernel.ok("print(slider.comm._close_callback is not None)").strip() == "True"


def test_a_widget_closed_in_the_kernel_while_awaited_ends_the_wait(
    kernel: Kernel, runner: str, plain_kernel: Kernel
) -> None:  # K4, F8: slider.close() from a button's callback, as a plain kernel ends it
    def close_it_by_a_click(kernel: Kernel) -> object:
        kernel.ok(
            "slider = ipywidgets.IntSlider()\nbutton = ipywidgets.Button()\n"
            "button.on_click(lambda button: slider.close())\n"
            f"watching = {WATCHERS.format('slider')}"
        )
        button = model_id(kernel, "button")
        output, reply = kernel.execute(
            "await announced(autoawait_runners.changed(slider), 'waiting')",
            when=[("waiting", sends(kernel, button, CLICK))],
        )
        output = re.sub(r"\x1b\[[0-9;]*m", "", output)
        error = re.findall(r"^WidgetClosed: .*", output, re.MULTILINE)
        # Nothing of the wait is left on the widget; a wait begun now ends at once.
        after = kernel.ok(f"print({WATCHERS.format('slider')} == watching)").strip()
        output, _ = kernel.execute("await autoawait_runners.changed(slider)")
        output = re.sub(r"\x1b\[[0-9;]*m", "", output)
        return reply["status"], error, after, re.findall(r"^WidgetClosed: .*", output, re.M)

    outcome = close_it_by_a_click(kernel)
    assert outcome == (
        "error",
        ["WidgetClosed: IntSlider was closed while a cell waited for it"],
        "True",
        ["WidgetClosed: IntSlider was closed before a cell waited for it"],
    )
    if ipykernel_7_or_later():
        assert in_the_plain_kernel(plain_kernel, close_it_by_a_click) == outcome


#: The callbacks a wait leaves on a widget: its trait observers, its comm's close callback.
WATCHERS = (
    "[len({0}._trait_notifiers.get(name, {{}}).get('change', [])) for name in ('value', 'comm')]"
    " + [getattr({0}.comm, '_close_callback', None)]"
)


def test_waits_on_a_widget_leave_its_callbacks_as_they_were(
    kernel: Kernel, runner: str, plain_kernel: Kernel
) -> None:  # K4, F8: ten at once, three times over; then one, and a close ends it
    def wait_ten_times_three(kernel: Kernel) -> object:
        kernel.ok(
            "slider = ipywidgets.IntSlider()\nslider.comm.on_close(lambda message: print('own'))\n"
            f"def watchers():\n    return {WATCHERS.format('slider')}\n"
            "before = watchers()"
        )
        model = model_id(kernel, "slider")
        seen = []
        for value in (1, 2, 3):
            output, reply = kernel.execute(
                "got = await all_at_once(lambda: autoawait_runners.changed(slider), 10,"
                " lambda: watchers()[0] == before[0] + 10, 'waiting')\n"
                "print('got', got, 'left as before', watchers() == before)",
                when=[("waiting", sends(kernel, model, moved_to(value)))],
            )
            seen.append((reply["status"], output.strip().splitlines()[-1]))
        # The comm's own close callback is still the one that runs at a close.
        output, reply = kernel.execute(
            "await announced(autoawait_runners.changed(slider), 'waiting')",
            when=[("waiting", lambda: close_from_the_frontend(kernel, model))],
        )
        seen.append((reply["status"], "own" in output, "WidgetClosed" in output))
        return seen

    seen = wait_ten_times_three(kernel)
    assert seen == [("ok", f"got {[value] * 10} left as before True") for value in (1, 2, 3)] + [
        ("error", True, True)
    ]
    if ipykernel_7_or_later():
        assert in_the_plain_kernel(plain_kernel, wait_ten_times_three) == seen


def close_from_the_frontend(kernel: Kernel, model: str) -> None:
    message = kernel.client.session.msg("comm_close", {"comm_id": model, "data": {}})
    kernel.client.shell_channel.send(message)


#: runner -> a cell whose comm callback hands the comm's reply to the cell with the cell's
#: library, as code written for stock ipykernel does (ipykernel's own
#: test_async_cell_waiting_for_comm_reply); it says whether the callback ran in the cell's
#: thread.
COMM_REPLY = {
    "asyncio": (
        "reply = asyncio.get_running_loop().create_future()\n"
        "def on_reply(message):\n"
        "    global there\n"
        "    there = threading.get_ident()\n"
        "    reply.set_result(message['content']['data']['value'])\n"
        "channel.on_msg(on_reply)\n"
        "print('waiting', flush=True)\n"
        "got = await asyncio.wait_for(reply, 30)\n"
    ),
    "trio": (
        "reply, got = trio.Event(), None\n"
        "def on_reply(message):\n"
        "    global there, got\n"
        "    there = threading.get_ident()\n"
        "    got = message['content']['data']['value']\n"
        "    reply.set()\n"
        "channel.on_msg(on_reply)\n"
        "print('waiting', flush=True)\n"
        "with trio.fail_after(30):\n"
        "    await reply.wait()\n"
    ),
    "curio": (
        "reply, got = curio.UniversalEvent(), None\n"
        "def on_reply(message):\n"
        "    global there, got\n"
        "    there = threading.get_ident()\n"
        "    got = message['content']['data']['value']\n"
        "    reply.set()\n"
        "channel.on_msg(on_reply)\n"
        "print('waiting', flush=True)\n"
        "await curio.timeout_after(30, reply.wait)\n"
    ),
}
COMM_REPLY["thread"] = COMM_REPLY["uvloop"] = COMM_REPLY["asyncio"]
COMM_REPLY["trio-guest"] = COMM_REPLY["trio"]


def test_a_comm_callback_can_touch_the_cells_loop(
    kernel: Kernel, runner: str, plain_kernel: Kernel
) -> None:  # K4, F8: while a cell runs, comm callbacks run where the cells run
    def wait_for_the_reply(code: str) -> Callable[[Kernel], object]:
        def wait(kernel: Kernel) -> object:
            kernel.ok("channel = comm.create_comm(target_name='comm-reply-test')")
            channel = kernel.ok("print(channel.comm_id)").strip()
            output, reply = kernel.execute(
                f"here = threading.get_ident()\n{code}"
                "print('got', got, 'in the cell thread', there == here)",
                when=[("waiting", lambda: kernel.send_comm_msg(channel, {"value": 42}))],
            )
            return reply["status"], output.strip().splitlines()[-1]

        return wait

    outcome = wait_for_the_reply(COMM_REPLY[runner])(kernel)
    # curio's objects are awaited, not set from a function: its callbacks stay in the
    # kernel's thread, and hand over with curio's thread-safe objects (docs/widgets.rst).
    assert outcome == ("ok", f"got 42 in the cell thread {runner != 'curio'}")
    if ipykernel_7_or_later() and COMM_REPLY[runner] == COMM_REPLY["asyncio"]:
        assert in_the_plain_kernel(plain_kernel, wait_for_the_reply(COMM_REPLY["asyncio"])) == (
            outcome
        )


def test_widget_callbacks_run_in_the_kernels_main_thread(kernel: Kernel, runner: str) -> None:
    kernel.ok(
        "slider = ipywidgets.IntSlider()\nseen = []\n"
        "slider.observe(lambda change: seen.append(threading.current_thread().name), 'value')"
    )
    kernel.send_comm_msg(model_id(kernel, "slider"), moved_to(8))
    # The shell channel keeps order: the message is handled before this cell runs.
    assert kernel.ok("print(seen)").strip() == "['MainThread']"


def test_a_timeout_around_the_wait_leaves_no_observer(kernel: Kernel, runner: str) -> None:
    kernel.ok("slider = ipywidgets.IntSlider()")
    observers = "len(slider._trait_notifiers.get('value', {}).get('change', []))"
    before = kernel.ok(f"print({observers})").strip()
    kernel.ok(WAIT_A_WHILE[runner].format("autoawait_runners.changed(slider)"))
    assert kernel.ok(f"print({observers})").strip() == before


def test_interrupting_a_wait_for_the_notebook_cancels_only_the_cell(
    kernel: Kernel, runner: str
) -> None:  # K4, R5
    kernel.ok("slider = ipywidgets.IntSlider()")
    output, reply = kernel.execute(
        "await announced(autoawait_runners.changed(slider), 'waiting for the slider')",
        interrupt_after="waiting for the slider",
    )
    assert reply["status"] == "error" and "KeyboardInterrupt" in output, output
    observers = "len(slider._trait_notifiers.get('value', {}).get('change', []))"
    assert kernel.ok(f"print({observers})").strip() == "0"
    assert kernel.ok("print('usable', 'still')").strip() == "usable still"


def test_a_tasks_output_goes_to_the_cell_that_started_it(kernel: Kernel, runner: str) -> None:
    # K5: ipykernel's promise (6 and 7), and 7's own test_print_to_correct_cell_from_asyncio.
    sleep = SLEEP.get(runner, "asyncio.sleep")
    kernel.ok(
        "release = []\n"
        f"async def later():\n    while not release:\n        await {sleep}(0.01)\n"
        "    print('from the task', flush=True)"
    )
    first = kernel.client.execute(PRINT_LATER[runner])
    kernel.client.execute(f"release.append(1)\nawait {sleep}(0.5)")
    assert kernel.parent_of_output("from the task") == first


def test_cells_queued_behind_a_waiting_cell_run_after_it_in_order(
    kernel: Kernel, runner: str
) -> None:  # K4: the frontend's message is handled, the queued cells are not
    kernel.ok("slider = ipywidgets.IntSlider()\norder = []")
    model = model_id(kernel, "slider")
    waiting = kernel.client.execute(
        "order.append('waiting')\n"
        "order.append(await announced(autoawait_runners.changed(slider), 'waiting'))"
    )
    # The shell channel keeps order: the queued cells reach the kernel before the message,
    # which is sent once the first cell waits.
    queued = [kernel.client.execute(f"order.append('queued {n}')") for n in (1, 2)]
    outputs = kernel._outputs(
        [waiting, *queued], actions=[("waiting", sends(kernel, model, moved_to(5)))]
    )
    replies = kernel._replies([waiting, *queued])
    assert [reply["status"] for reply in replies] == ["ok"] * 3, outputs
    assert kernel.ok("print(order)").strip() == "['waiting', 5, 'queued 1', 'queued 2']"


def test_the_widgets_notebook_runs_with_its_frontend_simulated(tmp_path: Path) -> None:  # K2
    pytest.importorskip("ipywidgets")
    kernel = Kernel(tmp_path)
    try:
        run_the_widgets_notebook(kernel)
    finally:
        kernel.shutdown()


def run_the_widgets_notebook(kernel: Kernel) -> None:
    import nbformat

    notebook = nbformat.read(EXAMPLES / "widgets.ipynb", as_version=4)
    cells = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    *set_up, loop = cells
    for source in set_up:
        # As from a frontend with a person at it, who could answer an input() too: the
        # notebook skips its loop for a client that says no one can (nbclient's).
        output, reply = kernel.execute(source, input_lines=[])
        assert reply["status"] == "ok", output
    slider, button = model_id(kernel, "slider"), model_id(kernel, "button")

    output, reply = kernel.execute(
        loop,
        when=[
            ("Move the slider", sends(kernel, slider, moved_to(3))),
            ("level 3", sends(kernel, slider, moved_to(7))),
            ("level 7", sends(kernel, button, CLICK)),
        ],
    )
    assert reply["status"] == "ok", output
    assert "done after 2 moves: [3, 7]" in output
