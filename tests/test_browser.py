"""Notebook 04 in a real browser, in two front ends: Debian's Chromium driven by Playwright.

- **JupyterLab 4 + ipywidgets 8**: the course's own .venv (every run of the suite).
- **classic Notebook 6.5 + ipywidgets 7.7.1 + widgetsnbextension 3.6**: the widget
  generation Colab runs, in its own virtual environment ``.venv-nb6/`` (made by
  ``tests/frontend_envs.py`` on first use: Notebook 6.5.7, ipykernel 6.17.1, the course's
  torch pins and course_utils, a few GB; reused while the pins are unchanged). Making it
  takes minutes, so this front end runs only when asked: ``COURSE_TEST_NB6=1``, for
  example ``COURSE_TEST_NB6=1 python course.py test -k front_end``.

Each test starts the server on a free localhost port (fast mode, a copy of the notebook
with its saved outputs stripped, and a throw-away course root in a temporary folder),
opens notebook 04, runs all cells from the menu with the mouse, checks that every
explorer rendered, moves a latent slider (z[d], not a control) with the keyboard, and
checks that the decoded image and the slider's readout changed and that no cell shows an
error. Skipped when Chromium or Playwright is missing, except under CI (the ``CI``
variable set), where it fails instead: CI must run the JupyterLab one.

Playwright's own browser download does not work here; the tests drive
``/usr/bin/chromium`` (or ``COURSE_CHROMIUM``). ``COURSE_BROWSER_SHOTS=<folder>`` keeps
screenshots of each run for a person to look at.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from frontend_envs import ensure_nb6, venv_python

from course_utils.settings import is_ci

pytestmark = pytest.mark.browser

# Read once at import: the suite's conftest removes CI from each test's environment.
IN_CI = is_ci()
WANT_NB6 = os.environ.get("COURSE_TEST_NB6", "") == "1"

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "04_latent_traversal_widgets.ipynb"
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SERVER_START_S = 90  # the server answering /api/status
RUN_ALL_S = 420  # every cell of the notebook executed (fast mode, on a busy 2-core machine)
REDRAW_S = 20  # the image follows a slider move
EXPLORERS = ("latent", "traversal", "interpolation", "plane")  # CSS classes course-<name>-explorer


@dataclass(frozen=True)
class FrontEnd:
    """What differs between JupyterLab and the classic Notebook: the server, the page, the menus."""

    name: str
    command: Callable[[int, str, Path], list[str]]  # (port, token, root) -> the server's command line
    notebook_url: str  # with {port}, {token}, {notebook}
    prompts_js: str  # () => the input prompts of the code cells, as text
    run_all: Callable  # (page) -> None: Run All Cells with the mouse
    errors_js: str  # () => the text of every output that shows an error
    slider_handle: str  # the CSS selector of a latent slider's handle
    python: Path  # the server's interpreter (its environment's kernel runs the notebook)


# ----------------------------------------------------------------------------- the two front ends
def _lab_command(port: int, token: str, root: Path) -> list[str]:
    return [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *_as_root()]


def _lab_run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _nb6_command(python: Path) -> Callable[[int, str, Path], list[str]]:
    def command(port: int, token: str, root: Path) -> list[str]:
        # Notebook 6 refuses to start as root without --allow-root
        return [str(python), "-m", "notebook", "--no-browser", f"--port={port}", "--NotebookApp.ip=127.0.0.1",
                f"--NotebookApp.token={token}", f"--NotebookApp.notebook_dir={root}",
                "--NotebookApp.port_retries=0", *_as_root()]

    return command


def _nb6_run_all(page) -> None:
    page.locator("#celllink").click()  # the "Cell" menu
    page.locator("#run_all_cells > a").click()


def _as_root() -> list[str]:
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


JUPYTERLAB = FrontEnd(
    name="JupyterLab 4 + ipywidgets 8",
    command=_lab_command,
    notebook_url="http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}",
    prompts_js="""() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
        .map(p => p.textContent.trim())""",
    run_all=_lab_run_all,
    errors_js="""() => Array.from(document.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
        .map(e => e.textContent).filter(t => /Traceback|Error/.test(t))""",
    slider_handle=".course-latent-sliders .noUi-handle",
    python=Path(sys.executable),
)


def _notebook6() -> FrontEnd:
    python = venv_python(REPO / ".venv-nb6")
    return FrontEnd(
        name="classic Notebook 6.5 + ipywidgets 7.7.1",
        command=_nb6_command(python),
        notebook_url="http://127.0.0.1:{port}/notebooks/{notebook}?token={token}",
        prompts_js="""() => Array.from(document.querySelectorAll('#notebook .code_cell .input_prompt'))
            .map(p => p.textContent.replace(/\\u00a0/g, ' ').trim())""",
        run_all=_nb6_run_all,
        errors_js="""() => Array.from(document.querySelectorAll('#notebook .output_error, #notebook .output_stderr'))
            .map(e => e.textContent).filter(t => /Traceback|Error/.test(t))""",
        slider_handle=".course-latent-sliders .ui-slider-handle",
        python=python,
    )


def _finished(front: FrontEnd, prompts: list[str]) -> bool:
    """Every code cell has run: JupyterLab shows "[12]:", Notebook 6 "In [12]:"; "*" while queued."""
    if not prompts:
        return False
    numbers = [p.removeprefix("In").strip().removesuffix(":").strip() for p in prompts]
    return all(n.startswith("[") and n.endswith("]") and n[1:-1].strip().isdigit() for n in numbers)


# ----------------------------------------------------------------------------- the tests
def test_front_end_jupyterlab(tmp_path: Path) -> None:
    _check_browser()
    _run_front_end(JUPYTERLAB, tmp_path)


@pytest.mark.nb6
@pytest.mark.skipif(not WANT_NB6, reason="the classic Notebook 6 front end runs only with COURSE_TEST_NB6=1 "
                                         "(it makes .venv-nb6 on first use: minutes, a few GB)")
def test_front_end_classic_notebook_6(tmp_path: Path) -> None:
    _check_browser()
    ensure_nb6(REPO, log=print)
    front = _notebook6()
    probe = "import ipywidgets, widgetsnbextension, notebook; print(ipywidgets.__version__, notebook.__version__)"
    versions = subprocess.run([str(front.python), "-c", probe], capture_output=True, text=True, check=True)
    assert versions.stdout.split()[:2] == ["7.7.1", "6.5.7"], versions.stdout
    _run_front_end(front, tmp_path)


# ----------------------------------------------------------------------------- shared steps
def _check_browser() -> None:
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed")


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI must run the browser test (python course.py test installs chromium)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stripped_copy(dest: Path) -> None:
    """The notebook without its saved outputs: every output the test sees comes from this run."""
    nb = json.loads((REPO / "notebooks" / NOTEBOOK).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    dest.write_text(json.dumps(nb, indent=1))


def _course_root(tmp: Path) -> Path:
    """A throw-away course root for the kernel: the shipped data and checkpoints (read only), and a
    copy of any fast-mode checkpoints, so that nothing the kernel trains lands in the repository."""
    root = tmp / "course"
    (root / "checkpoints" / "fast").mkdir(parents=True)
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)
    for path in (REPO / "checkpoints").glob("*.pt"):
        (root / "checkpoints" / path.name).symlink_to(path)
    for path in (REPO / "checkpoints" / "fast").glob("*.pt"):
        shutil.copy(path, root / "checkpoints" / "fast" / path.name)
    return root


def _environment(tmp: Path, front: FrontEnd) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"MPLBACKEND", "JUPYTER_PLATFORM_DIRS", "VIRTUAL_ENV", "PYTHONPATH", "COURSE_SOLUTIONS"}}
    settings = tmp / "lab-settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))  # every cell in the page, none virtualised
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True}))
    env.update(
        PATH=f"{front.python.parent}{os.pathsep}{env.get('PATH', '')}",  # the front end's own environment first
        COURSE_FAST="1",  # the kernel trains (or loads) tiny models
        COURSE_ROOT=str(_course_root(tmp)),
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
    )
    return env


def _wait_for_server(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the server did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the server we started (and its kernel, in the same process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _run_front_end(front: FrontEnd, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ["COURSE_BROWSER_SHOTS"]) if os.environ.get("COURSE_BROWSER_SHOTS") else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    root = tmp_path / "notebooks"
    root.mkdir()
    _stripped_copy(root / NOTEBOOK)  # never touch the committed notebook
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "server.log"
    started = time.monotonic()
    with log.open("w") as out:
        server = subprocess.Popen(front.command(port, token, root), cwd=root, env=_environment(tmp_path, front),
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", server, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                url = front.notebook_url.format(port=port, token=token, notebook=NOTEBOOK)
                _run_notebook_and_move_a_slider(front, page, url, port, token, shots)
            finally:
                browser.close()
    except BaseException:
        print(f"server log ({front.name}):\n{log.read_text()[-4000:]}")
        raise
    finally:
        _stop(server)
    print(f"browser test, {front.name}: passed in {time.monotonic() - started:.0f} s")


def _run_notebook_and_move_a_slider(front: FrontEnd, page, url: str, port: int, token: str,
                                    shots: Path | None) -> None:
    tag = front.name.split()[0].lower()
    page.goto(url)
    _wait_for_kernel(page, port, token)
    front.run_all(page)  # Run All Cells, with the mouse, as a student would

    deadline = time.monotonic() + RUN_ALL_S
    prompts: list[str] = []
    while time.monotonic() < deadline:
        _accept_kernel_dialog(page)
        prompts = page.evaluate(front.prompts_js)
        if _finished(front, prompts):
            break
        time.sleep(1)
    else:
        if shots:
            page.screenshot(path=str(shots / f"{tag}-timeout.png"), full_page=False)
        raise AssertionError(f"{front.name}: the notebook did not finish within {RUN_ALL_S} s; prompts: {prompts}")

    _assert_no_errors(front, page)
    for name in EXPLORERS:
        rendered = page.locator(f".course-{name}-explorer").count()
        assert rendered >= 1, f"{front.name}: the {name} explorer did not render"

    handle = page.locator(front.slider_handle).first
    image = page.locator("img.course-latent-image")
    assert page.locator(front.slider_handle).count() >= 1, f"{front.name}: the latent explorer shows no slider"
    assert image.count() == 1, f"{front.name}: the latent explorer's image is not on the page"
    handle.scroll_into_view_if_needed()
    readout = page.locator(".course-latent-sliders .widget-readout").first
    before_src, before_value = image.get_attribute("src"), readout.text_content()
    if shots:
        page.screenshot(path=str(shots / f"{tag}-before.png"))

    handle.click()  # a slider handle takes the focus on click (noUiSlider in ipywidgets 8, jQuery UI in 7) ...
    for _ in range(6):
        page.keyboard.press("ArrowRight")  # ... and moves with the arrow keys
    page.wait_for_function(
        "([src]) => { const img = document.querySelector('img.course-latent-image'); return img && img.src !== src; }",
        arg=[before_src], timeout=REDRAW_S * 1000)
    assert readout.text_content() != before_value, f"{front.name}: the slider's readout did not move"
    assert image.get_attribute("src") != before_src
    if shots:
        page.screenshot(path=str(shots / f"{tag}-after.png"))
        for name in EXPLORERS:
            explorer = page.locator(f".course-{name}-explorer").first
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=str(shots / f"{tag}-{name}.png"))
    _assert_no_errors(front, page)


def _accept_kernel_dialog(page) -> bool:
    """JupyterLab asks for a kernel when its list of kernels had not arrived yet when the
    notebook opened (a slow machine); the notebook's own kernel, python3, is preselected."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count() and dialog.first.is_visible():
        dialog.first.locator("button.jp-mod-accept").click()
        return True
    return False


def _wait_for_kernel(page, port: int, token: str, timeout_s: float = 120) -> None:
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
            time.sleep(1)  # the page's own connection to the kernel settles
            return
        time.sleep(0.5)
    raise AssertionError(f"the notebook's kernel was not idle within {timeout_s:.0f} s: {sessions}")


def _assert_no_errors(front: FrontEnd, page) -> None:
    errors = page.evaluate(front.errors_js)
    assert not errors, f"{front.name}: a cell shows an error:\n" + "\n---\n".join(e[:2000] for e in errors)
    for text in ("Error displaying widget", "Failed to display Jupyter Widget"):
        broken = page.locator(f"text={text}").count()
        assert broken == 0, f"{front.name}: {broken} widget(s) failed to render ({text})"
