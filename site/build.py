"""Build the course as a static website from the committed notebooks (nothing is executed).

    .venv/bin/python site/build.py --out build/site

writes ``index.html`` (made from README.md), one page per ``notebooks/*.ipynb`` with the
outputs saved in the notebook, and ``_static/`` with everything the pages load: the course's
stylesheet and Colab badge, and, vendored from npm, require.js, the ipywidgets HTML manager
(it renders the widget state saved in notebook 04) and MathJax 3. The pages reach no CDN.

The npm packages are pinned below with their registry integrity hashes. The first build
fetches their tarballs with ``npm pack`` into the cache folder (``build/site-cache`` by
default); later builds reuse the verified tarballs and do not need npm or a network.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import html
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
VENDOR = "_static/vendor"

# name -> (version, npm integrity, {path in the tarball: path under _static/vendor/}).
# A path ending in "/" copies that folder. html-manager 1.0.x renders ipywidgets 8 state
# (@jupyter-widgets/controls 2.0.0 models); its embed-amd.js needs require.js and loads its
# Font Awesome files from beside itself. MathJax 3 finds its fonts beside its script.
NPM_PACKAGES: dict[str, tuple[str, str, dict[str, str]]] = {
    "requirejs": (
        "2.3.8",
        "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
        {"require.js": "require.js"},
    ),
    "@jupyter-widgets/html-manager": (
        "1.0.15",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        {"dist/embed-amd.js": "html-manager/embed-amd.js", "dist/embed.js.LICENSE.txt": "html-manager/LICENSE.txt"},
    ),
    "mathjax": (
        "3.2.2",
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        {"es5/tex-chtml-full.js": "mathjax/tex-chtml-full.js", "LICENSE": "mathjax/LICENSE",
         "es5/output/chtml/fonts/woff-v2/": "mathjax/output/chtml/fonts/woff-v2/"},
    ),
}
FONT_SUFFIXES = (".woff2", ".woff", ".ttf", ".eot", ".svg")  # html-manager's dist/ fonts, copied too

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
COLAB_URL = re.compile(r"https://colab\.research\.google\.com/github/([^/\s]+/[^/\s]+)/blob/([^/\s]+)/")
DEFAULT_REPOSITORY, DEFAULT_BRANCH = "ae-to-cvae/course", "main"


class BuildError(RuntimeError):
    pass


@dataclass
class Page:
    name: str  # file name in the site, e.g. "01_autoencoder_compression.html"
    title: str
    source: Path  # the notebook, or README.md for the landing page


# ---------------------------------------------------------------- npm packages (vendored JS)


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch_npm_packages(cache: Path, log=print) -> dict[str, Path]:
    """The pinned tarballs in ``cache`` (fetched with ``npm pack`` when missing), integrity-checked."""
    cache.mkdir(parents=True, exist_ok=True)
    tarballs = {}
    for name, (version, integrity, _) in NPM_PACKAGES.items():
        tarball = cache / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
        if tarball.exists() and _integrity(tarball) != integrity:
            log(f"site: {tarball.name} in the cache does not match its pinned hash; fetching it again")
            tarball.unlink()
        if not tarball.exists():
            npm = shutil.which("npm")
            if npm is None:
                raise BuildError(f"npm is needed once to fetch {name}@{version} into {cache} "
                                 "(Debian: apt-get install -y nodejs npm)")
            log(f"site: npm pack {name}@{version}")
            done = subprocess.run([npm, "pack", "--json", "--ignore-scripts", "--pack-destination", str(cache),
                                   f"{name}@{version}"], cwd=cache, capture_output=True, text=True)
            if done.returncode != 0 or not tarball.exists():
                raise BuildError(f"npm pack {name}@{version} failed ({done.returncode}):\n{done.stderr[-2000:]}")
            if _integrity(tarball) != integrity:
                tarball.unlink()
                raise BuildError(f"{name}@{version} from the registry does not match its pinned integrity hash")
        tarballs[name] = tarball
    return tarballs


def vendor_npm_packages(tarballs: dict[str, Path], dest: Path) -> None:
    """Copy the files the pages load out of the tarballs into ``dest`` (the site's _static/vendor)."""
    for name, (_, _, files) in NPM_PACKAGES.items():
        with tarfile.open(tarballs[name]) as archive:
            copied = set()
            for member in archive.getmembers():
                if not member.isfile() or not member.name.startswith("package/"):
                    continue
                inner = member.name[len("package/"):]
                target = None
                for src, dst in files.items():
                    if inner == src or (src.endswith("/") and inner.startswith(src)):
                        target = dst + inner[len(src):] if src.endswith("/") else dst
                        copied.add(src)
                if name == "@jupyter-widgets/html-manager" and inner.startswith("dist/") \
                        and inner.count("/") == 1 and inner.endswith(FONT_SUFFIXES):
                    target = "html-manager/" + inner[len("dist/"):]
                if target is None:
                    continue
                out = dest / PurePosixPath(target)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.extractfile(member).read())
            missing = set(files) - copied
            if missing:
                raise BuildError(f"{tarballs[name].name} lacks {sorted(missing)}")


# ---------------------------------------------------------------- pages


def _read_notebook(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def _first_heading(text: str, fallback: str) -> str:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else fallback


def _repository(notebooks: list) -> tuple[str, str]:
    """The GitHub owner/name and branch the notebooks' Colab badges point at (set by course_utils.colab)."""
    for nb in notebooks:
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                match = COLAB_URL.search(cell.source)
                if match:
                    return match.group(1), match.group(2)
    return DEFAULT_REPOSITORY, DEFAULT_BRANCH


class LinkRewriter:
    """Rewrites the relative links of README.md and the notebooks' markdown for the site:
    notebooks become their pages, README.md the landing page, pictures under docs/ are copied
    into the site, and any other file of the repository links to it on GitHub."""

    MARKDOWN_LINK = re.compile(r"(!?\[[^\]]*\]\()(<[^>]+>|[^)\s]+)((?:\s+\"[^\"]*\")?\))")
    HTML_ATTRIBUTE = re.compile(r"""(\b(?:href|src)\s*=\s*)(["'])(.*?)\2""", flags=re.IGNORECASE)

    def __init__(self, site: Path, pages: dict[str, str], repository: str, branch: str) -> None:
        self.site, self.pages, self.repository, self.branch = site, pages, repository, branch
        self.copied: list[str] = []

    def target(self, url: str, base: PurePosixPath) -> str:
        if url == COLAB_BADGE:
            return "_static/colab-badge.svg"  # the same badge, served by the site (no request to Colab)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url) or url.startswith(("#", "//")):
            return url  # absolute URLs, data: URIs and anchors on the same page stay as they are
        path, _, fragment = url.partition("#")
        anchor = f"#{fragment}" if fragment else ""
        parts: list[str] = []
        for part in (base / path).parts:
            if part == "..":
                if parts:
                    parts.pop()
            elif part != ".":
                parts.append(part)
        relative = "/".join(parts)
        if relative in self.pages:
            return self.pages[relative] + anchor
        source = REPO / relative
        if relative.startswith("docs/") and source.is_file():
            out = self.site / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out)
            self.copied.append(relative)
            return relative + anchor
        kind = "tree" if source.is_dir() else "blob"
        return f"https://github.com/{self.repository}/{kind}/{self.branch}/{relative}{anchor}"

    def markdown(self, text: str, base: PurePosixPath) -> str:
        def link(match: re.Match) -> str:
            url = match.group(2)
            bracketed = url.startswith("<")
            new = self.target(url[1:-1] if bracketed else url, base)
            return match.group(1) + (f"<{new}>" if bracketed else new) + match.group(3)

        def attribute(match: re.Match) -> str:
            url = html.unescape(match.group(3))
            return match.group(1) + match.group(2) + html.escape(self.target(url, base), quote=True) + match.group(2)

        return self.HTML_ATTRIBUTE.sub(attribute, self.MARKDOWN_LINK.sub(link, text))


def _exporter():
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.HTMLExporter.template_name = "course"
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATES)]
    config.HTMLExporter.require_js_url = f"{VENDOR}/require.js"
    config.HTMLExporter.widget_renderer_url = f"{VENDOR}/html-manager/embed-amd.js"
    config.HTMLExporter.mathjax_url = f"{VENDOR}/mathjax/tex-chtml-full.js"
    return HTMLExporter(config=config)


def build_site(out: Path, cache: Path, log=print) -> list[Page]:
    """Build the site into ``out`` (emptied first). Returns its pages, landing page first."""
    import nbformat

    started = time.monotonic()
    tarballs = fetch_npm_packages(cache, log=log)  # before touching out/, so a failure leaves it as it was
    paths = sorted((REPO / "notebooks").glob("*.ipynb"))
    if not paths:
        raise BuildError(f"no notebooks in {REPO / 'notebooks'}")
    if out.exists():
        shutil.rmtree(out)
    (out / "_static").mkdir(parents=True)
    for item in STATIC.iterdir():
        shutil.copyfile(item, out / "_static" / item.name)
    vendor_npm_packages(tarballs, out / VENDOR)
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve _static/ as it is

    notebooks = [_read_notebook(path) for path in paths]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    pages = [Page("index.html", _first_heading(readme, "The course"), REPO / "README.md")]
    for path, nb in zip(paths, notebooks):
        first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
        pages.append(Page(path.stem + ".html", _first_heading(first, path.stem), path))
    repository, branch = _repository(notebooks)
    page_of = {"README.md": "index.html", **{f"notebooks/{p.name}": p.stem + ".html" for p in paths}}
    links = LinkRewriter(out, page_of, repository, branch)

    landing = nbformat.v4.new_notebook()
    landing.cells = [nbformat.v4.new_markdown_cell(links.markdown(readme, PurePosixPath(".")))]
    sources = [landing] + notebooks
    exporter = _exporter()
    for i, (page, nb) in enumerate(zip(pages, sources)):
        nb = copy.deepcopy(nb)
        relative = page.source.relative_to(REPO).as_posix()
        base = PurePosixPath(relative).parent
        if i > 0:
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    cell.source = links.markdown(cell.source, base)
        nb.metadata["title"] = page.title
        source_url = f"https://github.com/{repository}/blob/{branch}/{relative}"
        resources = {"course": {
            "site_title": pages[0].title,
            "is_index": i == 0,
            "pages": [{"href": p.name, "title": p.title, "current": p is page} for p in pages[1:]],
            "prev": {"href": pages[i - 1].name, "title": pages[i - 1].title} if i > 0 else None,
            "next": {"href": pages[i + 1].name, "title": pages[i + 1].title} if i + 1 < len(pages) else None,
            "source_url": source_url,
            "source_name": page.source.name,
        }}
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        (out / page.name).write_text(body, encoding="utf-8")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    log(f"site: {len(pages)} pages, {size / 2**20:.1f} MiB in {out} ({time.monotonic() - started:.1f} s)")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "site", help="output folder (emptied first)")
    parser.add_argument("--cache", type=Path, default=REPO / "build" / "site-cache",
                        help="where the npm tarballs are kept between builds")
    args = parser.parse_args(argv)
    try:
        pages = build_site(args.out.resolve(), args.cache.resolve())
    except BuildError as error:
        print(f"site: {error}", file=sys.stderr)
        return 1
    for page in pages:
        print(f"  {args.out / page.name}  {page.title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
