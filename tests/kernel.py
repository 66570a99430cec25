"""A real ipykernel kernel, driven through jupyter_client, for the Jupyter tests."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import SUPPORT, TIMEOUT

if TYPE_CHECKING:
    from jupyter_client import KernelManager


def kernel_manager(tmp: Path, options: tuple[str, ...] = ()) -> KernelManager:
    """A kernel manager for a kernel of *this* interpreter (so it sees the same packages),
    through a kernel spec written under ``tmp``; ``options`` go on the kernel's command line
    (configuration, as ``--AutoawaitRunners.default=trio``)."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = tmp / "kernels" / "autoawait-runners-test"
    spec_dir.mkdir(parents=True)
    spec = {
        # History in memory: nothing of the tests in the user's profile (its history.sqlite),
        # and no kernel waits at exit for another's lock on that file.
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--HistoryManager.hist_file=:memory:",
            *options,
        ],
        "display_name": "autoawait_runners tests",
        "language": "python",
        "env": {"PYTHONPATH": str(SUPPORT)},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp / "kernels")])
    # Its connection file (with the kernel's key) under `tmp` too, removed when the kernel
    # ends: left to jupyter_client, it stays in the system's temporary directory for good.
    # IPC sockets, not TCP ports: a port chosen free can be taken by another process before
    # the kernel binds it (CI runs suites side by side), and the kernel dies. In a folder of
    # their own with a short path: a socket's path may not be longer than 107 bytes, and
    # `tmp` can be deep (CI's test folders are); the folder goes with the manager.
    sockets = tempfile.mkdtemp(prefix="aw-kernel-")
    manager = KernelManager(
        kernel_name="autoawait-runners-test",
        kernel_spec_manager=specs,
        connection_file=str(tmp / "connection.json"),
        transport="ipc",
        ip=os.path.join(sockets, "ipc"),
    )
    weakref.finalize(manager, shutil.rmtree, sockets, True)
    return manager


class Kernel:
    """A running kernel and a client to execute cells in it."""

    def __init__(self, tmp: Path, options: tuple[str, ...] = ()) -> None:
        self.manager = kernel_manager(tmp, options)
        self.manager.start_kernel()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=TIMEOUT * 2)
        #: request msg_id -> the statuses the kernel sent for it, as seen so far.
        self._statuses: dict[str, list[str]] = {}
        #: The outputs read while waiting for other requests (see outputs_of).
        self._passed_over: list[dict[str, Any]] = []

    def execute(
        self,
        code: str,
        *,
        interrupt_after: str | Sequence[str] = (),
        input_lines: list[str] | None = None,
        when: Sequence[tuple[str, Callable[[], object]]] = (),
        cell_id: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Run a cell; return everything it printed or displayed, and the reply.

        With ``interrupt_after``, interrupt the kernel (as Jupyter's stop button does) once the
        cell's output contains that text; given a list, once per text, in order.
        ``input_lines`` answer the cell's input requests (``input()``, as Jupyter's input box
        does), in order. ``when``: (text, action) pairs, each action done once the cell's
        output contains its text, in order (what a person at the notebook does then).
        ``cell_id``: the notebook cell's id, sent in the request's metadata as JupyterLab
        and Notebook 7 send it.
        """
        lines = list(input_lines) if input_lines is not None else None
        if cell_id is None:
            msg_id = self.client.execute(code, allow_stdin=lines is not None)
        else:
            msg_id = self._execute_in_a_notebook_cell(code, cell_id, allow_stdin=lines is not None)
        texts = [interrupt_after] if isinstance(interrupt_after, str) else list(interrupt_after)
        actions = [*when, *((text, self.manager.interrupt_kernel) for text in texts)]
        [output] = self._outputs([msg_id], actions=actions, input_lines=lines)
        [reply] = self._replies([msg_id])
        return output, reply

    def parent_of_output(self, text: str) -> str:
        """The request (its msg_id) that the kernel says the next output containing ``text``
        belongs to: the cell a frontend shows it in, even after that cell went idle."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                message = self.client.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            if message["msg_type"] == "stream" and text in message["content"]["text"]:
                return str(message["parent_header"].get("msg_id"))
        pytest.fail(f"no output {text!r} came")

    def parents_of_output(self, texts: Sequence[str], *, until_idle: str) -> dict[str, set[str]]:
        """Each text -> the requests (msg_ids) the kernel said the output lines containing it
        belong to, until the request ``until_idle`` is done."""
        parents: dict[str, set[str]] = {text: set() for text in texts}
        deadline = time.monotonic() + TIMEOUT * 2
        while time.monotonic() < deadline:
            try:
                message = self.client.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            parent = str(message["parent_header"].get("msg_id"))
            if message["msg_type"] == "stream":
                for text in texts:
                    if text in message["content"]["text"]:
                        parents[text].add(parent)
            elif message["msg_type"] == "error":
                pytest.fail("a cell failed:\n" + "\n".join(message["content"]["traceback"]))
            elif (
                message["msg_type"] == "status"
                and message["content"]["execution_state"] == "idle"
                and parent == until_idle
            ):
                return parents
        pytest.fail(f"the request {until_idle} did not end")

    def outputs_of(self, msg_id: str, *, until: Sequence[str]) -> list[tuple[str, str]]:
        """What the kernel sent as outputs of the request ``msg_id`` (kind, text), also
        while other cells ran, until one of the kinds ``until``: what a frontend shows in
        that cell's output area (a %%background cell's, after its reply)."""
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self._passed_over:
                message = self._passed_over.pop(0)
            else:
                try:
                    message = self.client.get_iopub_msg(timeout=0.05)
                except queue.Empty:
                    continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                seen.append((kind, content["text"]))
            elif kind == "execute_result":
                text = content["data"]["text/plain"]
                seen.append((kind, f"{content['execution_count']}: {text}"))
            elif kind == "display_data":
                seen.append((kind, content["data"]["text/plain"]))
            elif kind == "error":
                plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(content["traceback"]))
                seen.append((kind, plain))
            if kind in until:
                return seen
        pytest.fail(f"no {until} for the request {msg_id}; seen: {seen}")

    def send_comm_msg(self, comm_id: str, data: dict[str, Any]) -> str:
        """Send what a frontend sends to a comm (a widget's model): a ``comm_msg``; its id."""
        message = self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.client.shell_channel.send(message)
        return str(message["header"]["msg_id"])

    def statuses_of(self, msg_id: str) -> list[str]:
        """The statuses the kernel sent for the request ``msg_id`` (busy, idle), once it
        said idle for it (seen while cells ran, or waited for now)."""
        deadline = time.monotonic() + TIMEOUT
        while "idle" not in self._statuses.get(msg_id, []):
            if time.monotonic() > deadline:
                pytest.fail(f"no idle status for {msg_id}: {self._statuses.get(msg_id)}")
            try:
                self._note_status(self.client.get_iopub_msg(timeout=0.05))
            except queue.Empty:
                continue
        return self._statuses[msg_id]

    def _note_status(self, message: dict[str, Any]) -> None:
        if message["msg_type"] == "status":
            parent = str(message["parent_header"].get("msg_id"))
            self._statuses.setdefault(parent, []).append(message["content"]["execution_state"])

    def execute_queued(self, cells: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """Send every cell at once, as Jupyter's Run All does (each queued behind the one
        before); return each cell's output and reply, in the order the replies came."""
        msg_ids = [self.client.execute(code) for code in cells]
        outputs = dict(zip(msg_ids, self._outputs(msg_ids), strict=True))
        return [
            (outputs[reply["parent_header"]["msg_id"]], reply["content"])
            for reply in self._replies(msg_ids, content_only=False)
        ]

    def _outputs(
        self,
        msg_ids: Sequence[str],
        *,
        actions: Sequence[tuple[str, Callable[[], object]]] = (),
        input_lines: list[str] | None = None,
    ) -> list[str]:
        """What each of these cells printed or displayed, once all of them are idle."""
        pieces: dict[str, list[str]] = {msg_id: [] for msg_id in msg_ids}
        busy = set(msg_ids)
        to_do = list(actions)
        deadline = time.monotonic() + TIMEOUT * 2
        while busy:
            if time.monotonic() > deadline:
                so_far = "".join("".join(p) for p in pieces.values())
                pytest.fail(f"cells did not finish: {len(busy)} left\noutput so far:\n{so_far}")
            if input_lines is not None and self.client.stdin_channel.msg_ready():
                request = self.client.get_stdin_msg(timeout=TIMEOUT)
                pieces[msg_ids[0]].append(request["content"]["prompt"])
                assert input_lines, f"more input asked for than given: {pieces}"
                self.client.input(input_lines.pop(0))
            try:
                message = self.client.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            self._note_status(message)
            msg_id = message["parent_header"].get("msg_id")
            if msg_id not in busy:
                self._passed_over.append(message)
                continue
            kind, content = message["msg_type"], message["content"]
            cell = pieces[msg_id]
            if kind == "status" and content["execution_state"] == "idle":
                busy.discard(msg_id)
            elif kind == "stream":
                cell.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                cell.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                cell.append("\n".join(content["traceback"]) + "\n")
            if to_do and to_do[0][0] in "".join(cell):
                to_do.pop(0)[1]()
        return ["".join(pieces[msg_id]) for msg_id in msg_ids]

    def _replies(self, msg_ids: Sequence[str], *, content_only: bool = True) -> list[Any]:
        """The shell replies to these cells, in the order they came."""
        replies = []
        waiting = set(msg_ids)
        while waiting:
            reply = self.client.get_shell_msg(timeout=TIMEOUT)
            msg_id = reply["parent_header"].get("msg_id")
            if msg_id in waiting:
                waiting.discard(msg_id)
                replies.append(reply["content"] if content_only else reply)
        return replies

    def _execute_in_a_notebook_cell(self, code: str, cell_id: str, *, allow_stdin: bool) -> str:
        """jupyter_client's ``execute``, with the metadata a notebook frontend sends."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": allow_stdin,
            "stop_on_error": True,
        }
        message = self.client.session.msg("execute_request", content)
        message["metadata"]["cellId"] = cell_id
        self.client.shell_channel.send(message)
        return str(message["header"]["msg_id"])

    def ok(self, code: str, *, cell_id: str | None = None) -> str:
        """Run a cell that must succeed; return its output."""
        output, reply = self.execute(code, cell_id=cell_id)
        assert reply["status"] == "ok", f"cell failed: {code!r}\n{output}"
        return output

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
        Path(self.manager.connection_file).unlink(missing_ok=True)  # it holds the key
