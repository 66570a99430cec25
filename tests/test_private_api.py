"""What Python, asyncio, IPython and curio do not promise to keep, and this package uses
(``_private_api``): still there, on the Python and libraries this runs on."""

from __future__ import annotations

from autoawait_runners._core import _private_api


def test_every_private_name_the_package_uses_is_still_there() -> None:
    gone = _private_api.missing()
    assert not gone, (
        "gone from this Python or library: "
        + ", ".join(gone)
        + " (see autoawait_runners/_core/_private_api.py for what each is used for)"
    )


def test_no_module_but_the_private_api_touches_those_names() -> None:
    import pathlib
    import re

    package = pathlib.Path(_private_api.__file__).parent.parent
    touch = re.compile(
        r"asyncio\.(events|tasks)\._|\._ready\b|\._run_once\(|sys\._getframe|"
        r"sys\._current_frames|PyThreadState_SetAsyncExc|_pseudo_sync_runner|"
        r"import _asyncio_runner|_format_time|kernel\._tasks|\"_log_traceback\"|\"_must_cancel\"|"
        r"(?<!self)\._(context|callback|args)\b|_asyncio_future_blocking|"
        r"\.call_exception_handler = |"
        r"_extra_prompt_options|_location_id|\._default_executor|\._threads\b|\._instance\b|"
        r"_walk_mro|_thread_to_parent|_ipykernel_parent_thread_ident|\._close_callback\b|"
        r"trio\._core\._io_|_asyncgen_(firstiter|finalizer)_hook|"
        r"\._selector\b|\._inputhook\b|GLOBAL_RUN_CONTEXT|\._epoll\b|_publish_status\b"
    )
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "_private_api.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if touch.search(line) and not line.lstrip().startswith("#")
    ]
    assert not offenders, offenders
