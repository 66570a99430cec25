"""A cell awaits a person at a real notebook (DESIGN K4): JupyterLab served on 127.0.0.1,
headless Chromium driven through Selenium. The widget tests (tests/test_kernel_widgets.py)
send what a frontend sends; here the frontend is JupyterLab itself, its widget views, the
keyboard and the mouse.

For each runner a notebook is opened and run whole ("Run All Cells"): a cell awaits a
slider moved by the keyboard, then a button clicked by the mouse, while the cell queued
after it waits for its turn. One server and one browser serve all runners.

Needs JupyterLab and Selenium (the ``browser`` extra) and Debian's ``chromium`` and
``chromium-driver``; without them the tests are skipped, and with
``AUTOAWAIT_REQUIRE_BROWSER=1`` (CI, where they are installed) they fail instead. Run them
with ``pytest -m browser``. A failed test keeps a screenshot and the page's HTML, in
``AUTOAWAIT_BROWSER_ARTIFACTS`` if set, else in its temporary folder; the failure says where.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import TIMEOUT, has_module, require

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

# Also kernel: the inner loop's `-m "not pty and not kernel ..."` leaves it out too.
pytestmark = [pytest.mark.browser, pytest.mark.kernel]

RUNNERS = ["asyncio", "thread", "uvloop", "trio", "trio-guest", "curio"]

#: A page load, a kernel's start, a cell's output: generous, the machines are shared.
BROWSER_TIMEOUT = TIMEOUT * 2

#: Set by CI, where the browser tests must run: a missing piece fails them, never skips them.
REQUIRED_BY = "AUTOAWAIT_REQUIRE_BROWSER"

#: The kernel spec the notebooks name, written under the server's own data folder.
KERNEL_NAME = "autoawait-runners-browser"


def moves_awaited(runner: str | None) -> int:
    """How many moves of the slider the cell awaits, one after the other. Without the
    extension, one: ipykernel 7 sends no idle status for a widget's change it handles while
    a cell runs, and the widgets' frontend holds back the widget's next change until that
    idle comes, for good (the extension sends it)."""
    return 1 if runner is None else 3


def notebook(runner: str | None) -> dict[str, Any]:
    """The notebook of one runner (None: the kernel without the extension): two widgets
    shown, a cell that awaits them, and a cell queued after it."""
    cells = [
        f"%load_ext autoawait_runners\n%autoawait {runner}"
        if runner is not None
        else "# the kernel as it is, without the extension",
        "import ipywidgets\n"
        "from autoawait_runners import changed, clicked\n"
        "order = []\n"
        'slider = ipywidgets.IntSlider(value=0, min=0, max=10, description="Move me")\n'
        'button = ipywidgets.Button(description="Click me")\n'
        "display(slider, button)",
        'print("waiting for the slider", flush=True)\n'
        f"for _ in range({moves_awaited(runner)}):\n"
        "    moved_to = await changed(slider)\n"
        '    print(f"slider moved to {moved_to}", flush=True)\n'
        "await clicked(button)\n"
        'order.append("awaiting cell")\n'
        'print("button clicked")',
        'order.append("queued cell")\nprint(f"then {order}, slider at {slider.value}")',
    ]
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{index}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for index, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"name": KERNEL_NAME, "display_name": KERNEL_NAME, "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@dataclass
class Server:
    """A JupyterLab server of the module's own."""

    url: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API; return the decoded answer (None if empty)."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """End every kernel of the server (a finished runner's kernel idles otherwise)."""
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")


def isolated_environment(home: Path) -> dict[str, str]:
    """The environment of the server and its kernels: Jupyter's and IPython's folders
    under ``home``, so that nothing touches the user's."""
    env = dict(os.environ)
    for variable, folder in [
        ("JUPYTER_CONFIG_DIR", "jupyter-config"),
        ("JUPYTER_DATA_DIR", "jupyter-data"),
        ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
        ("IPYTHONDIR", "ipython"),
    ]:
        (home / folder).mkdir(parents=True)
        env[variable] = str(home / folder)
    # The kernel spec the notebooks name: a kernel of this interpreter (which has the
    # extension), its history in memory.
    spec = home / "jupyter-data" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    argv.append("--HistoryManager.hist_file=:memory:")
    spec_json = {"argv": argv, "display_name": KERNEL_NAME, "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(spec_json))
    # JupyterLab's settings: no news or update checks (a notification over the notebook,
    # and a request to the internet).
    settings = home / "jupyter-config" / "lab" / "user-settings" / "@jupyterlab"
    (settings / "apputils-extension").mkdir(parents=True)
    notification = {"fetchNews": "false", "checkForUpdates": False}
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps(notification)
    )
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """JupyterLab on 127.0.0.1, on a free port the system picks, with a token, serving a
    folder of its own."""
    require("JupyterLab (the browser extra)", has_module("jupyterlab"), unless=REQUIRED_BY)
    require(
        "ipywidgets",
        has_module("ipywidgets") and has_module("jupyterlab_widgets"),
        unless=REQUIRED_BY,
    )
    home = tmp_path_factory.mktemp("jupyterlab")
    root = home / "notebooks"
    root.mkdir()
    env = isolated_environment(home)
    token = secrets.token_hex(16)
    log = home / "server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ip=127.0.0.1",
                "--port=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                # Nothing asked of the internet: no update check, no extension catalogue.
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
                # CI's containers run as root, which the server refuses unless told.
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        # The server writes its address (with the port it got) to its runtime folder.
        info_file = Path(env["JUPYTER_RUNTIME_DIR"]) / f"jpserver-{process.pid}.json"
        deadline = time.monotonic() + BROWSER_TIMEOUT
        while not info_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{log.read_text()}")
            time.sleep(0.1)
        info = json.loads(info_file.read_text())
        served = Server(f"http://127.0.0.1:{info['port']}", token, root, log)
        while True:
            try:
                served.api("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab does not answer:\n{log.read_text()}")
                time.sleep(0.1)
        yield served
    finally:
        process.terminate()  # JupyterLab shuts its kernels down on SIGTERM
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium, through chromedriver, with a profile of its own."""
    require("Selenium (the browser extra)", has_module("selenium"), unless=REQUIRED_BY)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require("Chromium (the Debian package chromium)", chromium is not None, unless=REQUIRED_BY)
    chromedriver = shutil.which("chromedriver")
    require(
        "chromedriver (the Debian package chromium-driver)",
        chromedriver is not None,
        unless=REQUIRED_BY,
    )
    assert chromium is not None and chromedriver is not None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    options.add_argument("--headless=new")
    options.add_argument("--window-size=1400,1000")
    # Chromium's sandbox refuses to run as root (CI's containers), and /dev/shm is small
    # in containers.
    options.add_argument("--no-sandbox")
    options.add_argument("--disable-dev-shm-usage")
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where a failed test keeps its screenshot and page."""
    chosen = os.environ.get("AUTOAWAIT_BROWSER_ARTIFACTS")
    if not chosen:
        return tmp_path
    folder = Path(chosen) / str(request.node.name).replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def kept_on_failure(driver: WebDriver, folder: Path, server: Server) -> Iterator[None]:
    """On failure, keep a screenshot and the page's HTML in ``folder`` and say so."""
    try:
        yield
    except Exception as failure:
        from selenium.common.exceptions import WebDriverException

        kept = []
        try:  # a browser that died keeps nothing, and its failure is the one to see
            if driver.save_screenshot(str(folder / "screenshot.png")):
                kept.append("screenshot.png")
            (folder / "page.html").write_text(driver.page_source)
            kept.append("page.html")
        except WebDriverException:
            pass
        shutil.copy(server.log, folder / "server.log")
        kept.append("server.log")
        pytest.fail(f"{type(failure).__name__}: {failure}\n{', '.join(kept)} kept in {folder}")


class Notebook:
    """A notebook open in JupyterLab, read and driven through the page."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    def wait_for(self, what: str, condition: Callable[[], object]) -> Any:
        """Wait until ``condition()`` is true; fail saying ``what`` was awaited."""
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def check(_: WebDriver) -> object:
            try:
                return condition()
            except WebDriverException:  # an element replaced while it was read
                return False

        try:
            return WebDriverWait(self.driver, BROWSER_TIMEOUT, poll_frequency=0.1).until(check)
        except TimeoutException:
            raise AssertionError(
                f"waited {BROWSER_TIMEOUT:.0f} s for {what}; the cells show:\n{self.describe()}"
            ) from None

    def cells(self) -> list[WebElement]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell")

    def cell(self, index: int) -> WebElement:
        return self.cells()[index]

    def output(self, index: int) -> str:
        """The text of cell ``index``'s output area."""
        from selenium.webdriver.common.by import By

        areas = self.cell(index).find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
        return "\n".join(str(area.text) for area in areas)

    def prompt(self, index: int) -> str:
        """Cell ``index``'s execution count prompt: ``[ ]:``, ``[*]:`` (queued or running),
        ``[3]:``."""
        from selenium.webdriver.common.by import By

        return str(self.cell(index).find_element(By.CSS_SELECTOR, ".jp-InputPrompt").text)

    def describe(self) -> str:
        lines = []
        for index in range(len(self.cells())):
            lines.append(f"{self.prompt(index)} {self.output(index)!r}")
        return "\n".join(lines)

    def run_all(self) -> None:
        """Run > Run All Cells, with the mouse, as a person would."""
        from selenium.webdriver.common.by import By

        menu = self.wait_for(
            "the Run menu",
            lambda: next(
                (
                    item
                    for item in self.driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item")
                    if item.text == "Run"
                ),
                None,
            ),
        )
        menu.click()
        item = self.wait_for(
            "Run All Cells in the Run menu",
            lambda: self.driver.find_element(
                By.XPATH, '//*[contains(@class, "lm-Menu-itemLabel")][.="Run All Cells"]'
            ),
        )
        item.click()


@pytest.fixture(params=[None, *RUNNERS], ids=["without-extension", *RUNNERS])
def runner(request: pytest.FixtureRequest) -> str | None:
    """Each runner, and the kernel without the extension (the host, to compare with)."""
    ipykernel_major = int(importlib.metadata.version("ipykernel").split(".")[0])
    if request.param is None and ipykernel_major < 7:
        # K4: ipykernel 6 takes the click only after the cell that awaits it ends: never.
        pytest.skip("without the extension, ipykernel 6 waits for good on such a cell")
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return None if request.param is None else str(request.param)


def test_a_cell_awaits_the_keyboard_and_the_mouse_in_jupyterlab_while_the_next_waits(
    runner: str | None, browser: WebDriver, server: Server, artifacts: Path
) -> None:
    # K4: in a real JupyterLab, a cell awaits a slider moved with the keyboard, then a
    # button clicked with the mouse; the cell queued after it runs after it, in order.
    # Under every runner as in the kernel without the extension (ipykernel 7's own).
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    name = f"await-{runner or 'without-extension'}.ipynb"
    (server.root / name).write_text(json.dumps(notebook(runner)))
    page = Notebook(browser)
    try:
        with kept_on_failure(browser, artifacts, server):
            # ?reset: a fresh workspace, with only this notebook open.
            browser.get(f"{server.url}/lab/tree/{name}?reset&token={server.token}")
            page.wait_for("the notebook's four cells", lambda: len(page.cells()) == 4)
            page.run_all()

            # The widgets render (not "Loading widget..." or a model's repr: the labextension
            # jupyterlab_widgets is there), and the awaiting cell has begun.
            handle = page.wait_for(
                "the slider to render",
                lambda: page.cell(1).find_element(By.CSS_SELECTOR, ".noUi-handle"),
            )
            button = page.cell(1).find_element(By.CSS_SELECTOR, "button.jupyter-button")
            assert button.text == "Click me"
            page.wait_for(
                "the awaiting cell to begin",
                lambda: "waiting for the slider" in page.output(2),
            )

            moves = moves_awaited(runner)
            for value in range(1, moves + 1):
                handle.send_keys(Keys.ARROW_RIGHT)  # focuses the handle, then the key
                page.wait_for(
                    f"the awaiting cell to get the slider's value {value}",
                    lambda value=value: f"slider moved to {value}" in page.output(2),
                )
            assert page.output(3) == "", "the queued cell ran before the awaiting cell ended"
            assert page.prompt(3) == "[*]:"
            assert "button clicked" not in page.output(2)

            ActionChains(browser).move_to_element(button).click().perform()
            page.wait_for(
                "the awaiting cell to get the click",
                lambda: "button clicked" in page.output(2),
            )
            page.wait_for(
                "the queued cell to run after it",
                lambda: page.output(3) != "" and page.prompt(3) != "[*]:",
            )
            assert page.output(3) == f"then ['awaiting cell', 'queued cell'], slider at {moves}"
            moved = "".join(f"slider moved to {value}\n" for value in range(1, moves + 1))
            assert page.output(2) == f"waiting for the slider\n{moved}button clicked", (
                page.describe()
            )
            assert [page.prompt(index) for index in range(4)] == [
                "[1]:",
                "[2]:",
                "[3]:",
                "[4]:",
            ]
    finally:
        server.shut_down_kernels()


#: A background cell's library -> its event, and the line that sets it in a plain cell.
BACKGROUND_EVENTS = {
    "asyncio": ("import asyncio\ngo = asyncio.Event()", "go.set()"),
    "trio": ("import trio\ngo = trio.Event()", "go.set()"),
    "curio": ("import curio\ngo = curio.Event()", "await go.set()"),
}


def background_notebook(runner: str) -> dict[str, Any]:
    """A %%background cell that waits for the cell after it, then prints and ends."""
    make, set_it = BACKGROUND_EVENTS[runner]
    cells = [
        f"%load_ext autoawait_runners\n%autoawait {runner}\n{make}",
        '%%background\nprint("started")\nawait go.wait()\nprint("went on")\n"value " + "later"',
        f'print("the next cell")\n{set_it}',
    ]
    page = notebook(runner)
    page["cells"] = [
        {**page["cells"][0], "id": f"cell-{index}", "source": source}
        for index, source in enumerate(cells)
    ]
    return page


@pytest.mark.parametrize("library", list(BACKGROUND_EVENTS))
def test_a_background_cells_output_lands_in_its_own_cell_after_the_next_one_ran(
    library: str, browser: WebDriver, server: Server, artifacts: Path
) -> None:
    # B1: in a real JupyterLab, a %%background cell is done at once (its prompt numbered,
    # the next cell runs), and what it prints later, and its value, show in its own output
    # area, not in the cell that ran meanwhile.
    name = f"background-{library}.ipynb"
    (server.root / name).write_text(json.dumps(background_notebook(library)))
    page = Notebook(browser)
    try:
        with kept_on_failure(browser, artifacts, server):
            browser.get(f"{server.url}/lab/tree/{name}?reset&token={server.token}")
            page.wait_for("the notebook's three cells", lambda: len(page.cells()) == 3)
            page.run_all()
            page.wait_for(
                "the background cell's value in its own cell",
                lambda: "'value later'" in page.output(1),
            )
            assert page.output(1) == "started\nwent on\n'value later'", page.describe()
            assert page.output(2) == "the next cell", page.describe()
            assert [page.prompt(index) for index in range(3)] == ["[1]:", "[2]:", "[3]:"]
    finally:
        server.shut_down_kernels()
