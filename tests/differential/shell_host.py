"""The differential suite's programmatic host: a child process that runs corpus sessions in
real InteractiveShells, one fresh shell per session, and records what each cell printed.

Usage: ``python shell_host.py JOB.json OUTPUT RESULTS``. JOB names the run (``plain`` or a
runner) and lists the sessions; everything the process prints, by any thread or child
process, goes to OUTPUT (file descriptors 1 and 2, as a terminal gets them); RESULTS gets
one JSON line per cell as it ends (the offsets of its output), so a host that dies or hangs
still leaves the cells before.

A child process, not the test process: sessions change what a process has (signal handlers,
trace hooks, context variables, atexit), and the runs go side by side.
"""

from __future__ import annotations

import atexit
import decimal
import gc
import io
import json
import os
import signal
import sys
import threading
import warnings
from typing import Any


def main() -> None:
    job_path, output_path, results_path = sys.argv[1:4]
    with open(job_path) as file:
        job = json.load(file)
    output = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    # Every write reaches the file at once, in the order it was made, as on a terminal.
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "wb", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "wb", closefd=False), write_through=True)
    fresh = ProcessState()
    with open(results_path, "a", buffering=1) as results:
        for session in job["sessions"]:
            fresh.restore()
            run_session(job, session, results)


class ProcessState:
    """What a session may change for the whole process and a new process would not have:
    put back before each session, so no session sees another's (a warnings filter, a SIGINT
    handler, a trace function, decimal's context)."""

    def __init__(self) -> None:
        self.filters = list(warnings.filters)
        self.sigint = signal.getsignal(signal.SIGINT)
        self.excepthook = threading.excepthook
        self.asyncgen_hooks = sys.get_asyncgen_hooks()
        self.decimal = decimal.getcontext().copy()

    def restore(self) -> None:
        warnings.resetwarnings()  # which also tells the module its filters changed
        warnings.filters.extend(self.filters)
        signal.signal(signal.SIGINT, self.sigint)
        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)  # type: ignore[arg-type]
        threading.setprofile(None)  # type: ignore[arg-type]
        threading.excepthook = self.excepthook
        sys.set_asyncgen_hooks(*self.asyncgen_hooks)
        decimal.setcontext(self.decimal.copy())


def run_session(job: dict[str, Any], session: dict[str, Any], results: Any) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    if job["run"] == "plain":
        config.InteractiveShell.loop_runner = job["library"] or "asyncio"
    shell = InteractiveShell.instance(colors="nocolor", config=config)
    if job["run"] != "plain":
        shell.extension_manager.load_extension("autoawait_runners")
        shell.run_line_magic("autoawait", job["run"])
    if job["library"]:
        shell.run_cell(f"import {job['library']} as lib", store_history=False)
    for number, cell in enumerate(session["cells"]):
        sys.stdin = io.StringIO("".join(line + "\n" for _, line in cell["input"]))
        start = os.fstat(1).st_size
        shell.run_cell(cell["code"], store_history=True)
        end = os.fstat(1).st_size
        record = {"session": session["name"], "cell": number, "start": start, "end": end}
        results.write(json.dumps(record) + "\n")
    # The session's end: what unloading and collecting its garbage print is its own (a
    # coroutine or task left behind), not the next session's.
    start = os.fstat(1).st_size
    if "autoawait_runners" in shell.extension_manager.loaded:
        shell.run_line_magic("unload_ext", "autoawait_runners")
    shell.history_manager.end_session()
    atexit.unregister(shell.atexit_operations)
    InteractiveShell.clear_instance()
    del shell
    gc.collect()
    record = {"session": session["name"], "cell": "end", "start": start, "end": os.fstat(1).st_size}
    results.write(json.dumps(record) + "\n")
    sys.stdin = sys.__stdin__


if __name__ == "__main__":
    main()
