"""Notebook 04 in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

Starts JupyterLab on a free localhost port (fast mode, a copy of the notebook and a
throw-away course root in a temporary folder), opens notebook 04, runs all cells from the Run menu, moves a latent
slider with the keyboard and checks that the decoded image changed and that no cell
shows an error. Skipped when Chromium or Playwright is missing, except under CI
(the ``CI`` variable set), where it fails instead: CI must run it.

Playwright's own browser download does not work here; the test drives
``/usr/bin/chromium`` (or ``COURSE_CHROMIUM``). ``COURSE_BROWSER_SHOTS=<folder>`` keeps
screenshots of the run for a person to look at.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from course_utils.settings import is_ci

pytestmark = pytest.mark.browser

# Read once at import: the suite's conftest removes CI from each test's environment.
IN_CI = is_ci()

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "04_latent_traversal_widgets.ipynb"
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SERVER_START_S = 60  # JupyterLab answering /api/status
RUN_ALL_S = 150  # every cell of the notebook executed (fast mode)
REDRAW_S = 20  # the image follows a slider move

PROMPTS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
    .map(p => p.textContent.trim())"""


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI must run the browser test (bash course.sh test installs chromium)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the JupyterLab we started (and its kernel, in the same process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _course_root(tmp: Path) -> Path:
    """A throw-away course root for the kernel: the shipped data and classifier, and a copy of
    any fast-mode checkpoints, so that nothing the kernel trains lands in the repository."""
    root = tmp / "course"
    (root / "checkpoints" / "fast").mkdir(parents=True)
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)
    (root / "checkpoints" / "classifier.pt").symlink_to(REPO / "checkpoints" / "classifier.pt")
    for path in (REPO / "checkpoints" / "fast").glob("*.pt"):
        shutil.copy(path, root / "checkpoints" / "fast" / path.name)
    return root


def _lab_environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MPLBACKEND", "JUPYTER_PLATFORM_DIRS"}}
    settings = tmp / "lab-settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))  # every cell in the page, none virtualised
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True}))
    env.update(
        COURSE_FAST="1",  # the kernel trains (or loads) tiny models
        COURSE_ROOT=str(_course_root(tmp)),
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
    )
    return env


def test_notebook_04_in_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    shots = Path(os.environ["COURSE_BROWSER_SHOTS"]) if os.environ.get("COURSE_BROWSER_SHOTS") else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)

    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)  # never touch the committed notebook
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.port_retries=0", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:  # containers and CI runners often run as root
        command.append("--allow-root")
    started = time.monotonic()
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=root, env=_lab_environment(tmp_path), stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", server, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                _run_notebook_and_move_a_slider(page, port, token, shots)
            finally:
                browser.close()
    finally:
        _stop(server)
    print(f"browser test: {time.monotonic() - started:.0f} s")


def _run_notebook_and_move_a_slider(page, port: int, token: str, shots: Path | None) -> None:
    page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}")
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for()
    _wait_for_kernel(page, port, token)

    # Run > Run All Cells, with the mouse, as a student would
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

    deadline = time.monotonic() + RUN_ALL_S
    prompts: list[str] = []
    while time.monotonic() < deadline:
        _accept_kernel_dialog(page)
        prompts = page.evaluate(PROMPTS_JS)
        if prompts and all(p.startswith("[") and p[1:-2].strip().isdigit() for p in prompts):
            break
        time.sleep(1)
    else:
        if shots:
            page.screenshot(path=str(shots / "timeout.png"), full_page=False)
        raise AssertionError(f"the notebook did not finish within {RUN_ALL_S} s; prompts: {prompts}")

    _assert_no_errors(page)

    sliders = page.locator(".course-latent-sliders .widget-slider")
    handle = page.locator(".course-latent-sliders .noUi-handle").first
    image = page.locator("img.course-latent-image")
    assert sliders.count() >= 1, "the latent explorer shows no slider"
    assert image.count() == 1, "the latent explorer's image is not on the page"
    handle.scroll_into_view_if_needed()
    readout = page.locator(".course-latent-sliders .widget-readout").first
    before_src, before_value = image.get_attribute("src"), readout.text_content()
    if shots:
        page.screenshot(path=str(shots / "before.png"))

    handle.click()  # an ipywidgets 8 slider handle takes the focus on click ...
    for _ in range(6):
        page.keyboard.press("ArrowRight")  # ... and moves with the arrow keys
    page.wait_for_function(
        "([src]) => { const img = document.querySelector('img.course-latent-image'); return img && img.src !== src; }",
        arg=[before_src], timeout=REDRAW_S * 1000)
    assert readout.text_content() != before_value, "the slider's readout did not move"
    assert image.get_attribute("src") != before_src
    if shots:
        page.screenshot(path=str(shots / "after.png"))
        for name in ("latent", "traversal", "interpolation", "plane"):
            explorer = page.locator(f".course-{name}-explorer").first
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=str(shots / f"{name}.png"))
    _assert_no_errors(page)


def _accept_kernel_dialog(page) -> bool:
    """JupyterLab asks for a kernel when its list of kernels had not arrived yet when the
    notebook opened (a slow machine); the notebook's own kernel, python3, is preselected."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count() and dialog.first.is_visible():
        dialog.first.locator("button.jp-mod-accept").click()
        return True
    return False


def _wait_for_kernel(page, port: int, token: str, timeout_s: float = 90) -> None:
    """Until the server reports the notebook's kernel started and idle."""
    deadline = time.monotonic() + timeout_s
    sessions: list = []
    while time.monotonic() < deadline:
        _accept_kernel_dialog(page)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sessions?token={token}", timeout=5) as reply:
                sessions = json.load(reply)
        except OSError:
            sessions = []
        if any(s["path"].endswith(NOTEBOOK) and (s.get("kernel") or {}).get("execution_state") == "idle"
               for s in sessions):
            return
        time.sleep(0.5)
    raise AssertionError(f"the notebook's kernel was not idle within {timeout_s:.0f} s: {sessions}")


def _assert_no_errors(page) -> None:
    errors = page.evaluate("""() => Array.from(document.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
        .map(e => e.textContent).filter(t => /Traceback|Error/.test(t))""")
    assert not errors, "a cell shows an error:\n" + "\n---\n".join(e[:2000] for e in errors)
    broken = page.locator("text=Error displaying widget").count()
    assert broken == 0, f"{broken} widget(s) failed to render"
