"""The course website (site/build.py) in a real browser, offline.

Builds the site into a temporary folder with the documented command, serves it on
127.0.0.1 and opens every page in Debian's Chromium through Playwright with every request
to another host aborted (and recorded). Each page must show no console error and no failed
request, every <img> must have loaded, the maths must be typeset by the site's own MathJax,
notebook 04's page must show the saved widget state's images, and every link to a page or an
anchor of the site must resolve. A full-page screenshot of each page goes to
``build/site-screenshots/`` (or ``COURSE_SITE_SHOTS``) for a person to look at.

Skipped when Chromium or Playwright is missing, or when the npm packages the site vendors are
neither cached nor fetchable (no npm), except under CI (``CI`` set), where it fails instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

from course_utils.settings import is_ci

pytestmark = pytest.mark.browser

IN_CI = is_ci()  # read at import: the suite's conftest removes CI from each test's environment

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "site" / "build.py"
CACHE = REPO / "build" / "site-cache"
SHOTS = Path(os.environ.get("COURSE_SITE_SHOTS", REPO / "build" / "site-screenshots"))
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
WIDGET_NOTEBOOK = "04_latent_traversal_widgets"
BUILD_S = 300  # first build: fetching three npm tarballs
RENDER_S = 60  # a page's maths typeset, widgets and images loaded
BUILD_TIMES: list[float] = []

# The rendered widget views of the saved state (html-manager puts them in .jupyter-widgets outputs).
WIDGET_IMAGES_JS = """() => Array.from(document.querySelectorAll('.jupyter-widgets img, img.widget-image'))
    .filter(img => img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().width > 0)
    .map(img => ({src: img.src.slice(0, 30), w: img.naturalWidth, h: img.naturalHeight}))"""

# Widget views (saved outputs) that html-manager has not replaced by a rendered widget yet.
UNRENDERED_VIEWS_JS = """() => Array.from(
        document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'))
    .filter(script => !script.parentElement.querySelector('.lm-Widget')).length"""
WIDGET_CHOICES_JS = """() => Array.from(document.querySelectorAll('.jupyter-widgets select'))
    .map(s => s.selectedIndex >= 0 ? s.options[s.selectedIndex].text : '')"""

PAGE_REPORT_JS = r"""() => {
    const visibleText = el => {
        const copy = el.cloneNode(true);
        copy.querySelectorAll('code, pre, script, style, mjx-container').forEach(e => e.remove());
        return copy.textContent;
    };
    const markdown = Array.from(document.querySelectorAll('.jp-MarkdownOutput'));
    return {
        images: Array.from(document.images).map(img => ({
            src: img.src.startsWith('data:') ? img.src.slice(0, 40) : img.src,
            complete: img.complete, width: img.naturalWidth})),
        links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
        ids: Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.getAttribute('name')),
        mathjax: document.querySelectorAll('mjx-container').length,
        mathErrors: Array.from(document.querySelectorAll('mjx-merror')).map(e => e.textContent),
        rawDisplayMath: markdown.map(visibleText).filter(t => t.includes('$$')).map(t => t.slice(0, 200)),
        rawInlineMath: markdown.map(visibleText).map(t => t.match(/\$[^$\n]{0,80}\\[A-Za-z]+[^$\n]{0,80}\$/))
            .filter(m => m).map(m => m[0]),
        widgetErrors: document.body.innerText.includes('Error displaying widget'),
        colab: Array.from(document.querySelectorAll('a[href^="https://colab.research.google.com/github/"] img'))
            .map(img => img.naturalWidth),
    };
}"""


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI must run the site test (apt-get install chromium nodejs npm)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built from the committed notebooks by the documented command."""
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed")
    if shutil.which("npm") is None and not any(CACHE.glob("*.tgz")):
        _missing("no npm to fetch the site's JavaScript packages (apt-get install nodejs npm)")
    out = tmp_path_factory.mktemp("site") / "site"
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(BUILD), "--out", str(out), "--cache", str(CACHE)], cwd=REPO,
                          capture_output=True, text=True, timeout=BUILD_S)
    assert done.returncode == 0, f"site/build.py failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    BUILD_TIMES.append(time.monotonic() - started)
    return out


@pytest.fixture(scope="session")
def server(site: Path):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


def test_site_offline_in_chromium(site: Path, server: str, capsys: pytest.CaptureFixture) -> None:
    from playwright.sync_api import sync_playwright

    pages = sorted(p.name for p in site.glob("*.html"))
    assert "index.html" in pages and len(pages) == 1 + len(list((REPO / "notebooks").glob("*.ipynb"))), pages
    SHOTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    blocked: list[str] = []
    reports: dict[str, dict] = {}
    problems: list[str] = []
    shots: list[Path] = []
    notes: list[str] = []

    def route(route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", route)
            for name in pages:
                page = context.new_page()
                page.set_default_timeout(RENDER_S * 1000)
                errors: list[str] = []
                page.on("console", lambda m, errors=errors: m.type == "error" and errors.append(f"console: {m.text}"))
                page.on("pageerror", lambda e, errors=errors: errors.append(f"page error: {e}"))
                page.on("requestfailed", lambda r, errors=errors: errors.append(
                    f"request failed: {r.url[:200]} ({r.failure})"))
                page.on("response", lambda r, errors=errors: r.status >= 400 and errors.append(
                    f"HTTP {r.status}: {r.url}"))
                page.goto(f"{server}/{name}", wait_until="load")
                _wait_until_rendered(page, name)
                reports[name] = report = page.evaluate(PAGE_REPORT_JS)
                shot = SHOTS / name.replace(".html", ".png")
                page.screenshot(path=str(shot), full_page=True)
                shots.append(shot)
                if name.startswith(WIDGET_NOTEBOOK):
                    shots += _widget_shots(page, notes)
                problems += [f"{name}: {e}" for e in errors]
                problems += _check_page(name, report)
                page.close()
        finally:
            browser.close()

    problems += [f"request to another host (aborted): {url}" for url in blocked]
    problems += _dead_links(server, site, reports)
    nav = {n: {urlsplit(u).path.lstrip("/") for u in r["links"] if u.startswith(server)} for n, r in reports.items()}
    problems += [f"index.html does not link to {n}" for n in pages if n not in nav["index.html"]]
    problems += [f"{n} does not link back to index.html" for n in pages if "index.html" not in nav[n]]
    with capsys.disabled():
        print(f"\nsite test: built in {sum(BUILD_TIMES):.1f} s, {len(pages)} pages checked in "
              f"{time.monotonic() - started:.1f} s")
        for note in notes:
            print(f"  {note}")
        print("  screenshots:")
        for shot in shots:
            print(f"    {shot}")
    assert not problems, "\n".join(problems)


def _wait_until_rendered(page, name: str) -> None:
    """Until MathJax has typeset the page, the widgets (notebook 04) have rendered and every
    image has finished loading (or failed)."""
    _wait(page, "() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise",
          f"{name}: MathJax did not start (is _static/vendor/mathjax served?)")
    page.evaluate("() => window.MathJax.startup.promise")
    if name.startswith(WIDGET_NOTEBOOK):
        views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        assert views > 0, f"{name} holds no widget view"
        _wait(page, f"() => ({UNRENDERED_VIEWS_JS})() === 0",
              f"{name}: widget views not rendered from the saved state", lambda: page.evaluate(UNRENDERED_VIEWS_JS))
        _wait(page, f"() => ({WIDGET_IMAGES_JS})().length > 0", f"{name}: no widget image rendered")
    _wait(page, "() => Array.from(document.images).every(img => img.complete)", f"{name}: images still loading")


def _wait(page, condition: str, message: str, detail=None) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, timeout=RENDER_S * 1000)
    except PlaywrightTimeout:
        raise AssertionError(f"{message} within {RENDER_S} s" + (f": {detail()}" if detail else "")) from None


def _check_page(name: str, report: dict) -> list[str]:
    problems = [f"{name}: image not loaded: {img['src']}" for img in report["images"] if img["width"] == 0]
    problems += [f"{name}: MathJax error: {e}" for e in report["mathErrors"]]
    problems += [f"{name}: raw $$ left in a markdown cell: {t!r}" for t in report["rawDisplayMath"]]
    problems += [f"{name}: raw inline TeX left in a markdown cell: {t!r}" for t in report["rawInlineMath"]]
    if report["widgetErrors"]:
        problems.append(f"{name}: 'Error displaying widget'")
    if name != "index.html":
        if report["mathjax"] == 0:
            problems.append(f"{name}: no typeset maths (no mjx-container)")
        if not report["colab"] or 0 in report["colab"]:
            problems.append(f"{name}: no Colab badge linking to Colab with a loaded image ({report['colab']})")
    return problems


def _widget_shots(page, notes: list[str]) -> list[Path]:
    """Screenshots of each explorer of notebook 04 (saved widget state)."""
    images = page.evaluate(WIDGET_IMAGES_JS)
    assert images, f"{WIDGET_NOTEBOOK}: no widget image rendered"
    notes.append(f"{WIDGET_NOTEBOOK}: {len(images)} widget images rendered; "
                 f"its pickers show {page.evaluate(WIDGET_CHOICES_JS)}")
    shots = []
    for kind in ("latent", "traversal", "interpolation", "plane"):
        explorer = page.locator(f".course-{kind}-explorer")
        for i in range(explorer.count()):
            shot = SHOTS / f"{WIDGET_NOTEBOOK}-{kind}-{i + 1}.png"
            explorer.nth(i).scroll_into_view_if_needed()
            explorer.nth(i).screenshot(path=str(shot))
            shots.append(shot)
    return shots


def _dead_links(server: str, site: Path, reports: dict[str, dict]) -> list[str]:
    """Every link into the site must name a file of the site, and its anchor an id on that page."""
    problems = []
    for name, report in reports.items():
        for url in report["links"]:
            if not url.startswith(server + "/"):
                continue
            target, fragment = urldefrag(url)
            path = unquote(urlsplit(target).path).lstrip("/") or "index.html"
            if not (site / path).is_file():
                problems.append(f"{name}: dead link {url}")
            elif fragment and path in reports and not {fragment, unquote(fragment)} & set(reports[path]["ids"]):
                # as a browser does: the fragment as written, then percent-decoded
                problems.append(f"{name}: link to a missing anchor {url}")
    return problems
