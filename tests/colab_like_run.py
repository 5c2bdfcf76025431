"""The course in a Colab-like runtime: every notebook, top to bottom, in full mode.

    python course.py colab-test                  # or: .venv/bin/python tests/colab_like_run.py
    python course.py colab-test --notebooks 04   # only the notebooks whose names start so
    python course.py colab-test --source DIR     # the course as it is in DIR (a candidate change)

What it builds (``tests/test_colab.py`` tests the set-up cell alone; this runs everything):

- ``.venv-colab/``: a virtual environment with Colab's own package versions (its public
  pip freeze: torch 2.11.0, torchvision 0.26.0, ipywidgets 7.7.1, numpy 2.1.3, matplotlib
  3.10.0, ipykernel 6.17.1, ipython 7.34.0, notebook 6.5.7), made once by
  ``tests/frontend_envs.py`` and reused; it holds no course_utils;
- a kernel on that interpreter with a stand-in ``google.colab`` module imported at kernel
  start (an IPython start-up file), as Colab's kernel has;
- a git repository made from the working tree's files (what a clone from GitHub holds:
  code, notebooks, data, shipped checkpoints), which the notebooks' set-up cell clones
  through ``COURSE_REPO_URL`` into ``<tmp>/content/course`` and installs with
  ``pip install --no-deps``, exactly as on Colab (build isolation fetches setuptools from PyPI).

Then it executes every notebook with nbclient, working directory ``<tmp>/content``,
``COURSE_FAST=0`` (the executed notebooks go to ``build/colab-test/``), and checks: no cell
raised; no output shows a traceback; the set-up cell installed course_utils from the clone;
torch, torchvision, ipywidgets and numpy were not reinstalled (same versions, same files:
the RECORD of each is unchanged). It also reports which models a notebook trained instead
of loading. At the end it uninstalls course_utils again, so the environment stays
Colab-like for the next run.
It prints one line per notebook and a verdict, and exits 1 on any failure. Not part of
``python course.py test``: it downloads another torch (a few GB) the first time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from frontend_envs import COLAB_PACKAGES, COLAB_UNTOUCHED, REPO, ensure_colab
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

KERNEL = "colab-like"
SAVED = REPO / "build" / "colab-test"  # the executed notebooks of the last run (build/ is gitignored)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FAKE_COLAB = '"""A stand-in for Colab\'s own google.colab (the set-up cell only asks whether it is imported)."""\n'
PROBE = """
import importlib.metadata as md, json, pathlib
out = {}
for name in NAMES:
    dist = md.distribution(name)
    record = pathlib.Path(dist._path) / "RECORD"
    out[name] = {"version": dist.version, "path": str(dist._path), "record_mtime_ns": record.stat().st_mtime_ns,
                 "record": record.read_text()}
try:
    out["course-utils"] = {"version": md.version("course-utils")}
except md.PackageNotFoundError:
    out["course-utils"] = None
print(json.dumps(out))
"""


def say(message: str) -> None:
    print(f"colab-test: {message}", flush=True)


def installed(python: Path) -> dict:
    """Version, dist-info folder and RECORD of each package the set-up cell must leave alone."""
    code = f"NAMES = {list(COLAB_UNTOUCHED)!r}\n{PROBE}"
    result = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True, check=True,
                            cwd=tempfile.gettempdir())  # -I: not this folder (its course_utils.egg-info) on sys.path
    return json.loads(result.stdout)


def make_origin(source: Path, dest: Path) -> Path:
    """A git repository of every file a clone of the course holds (tracked or new, not gitignored)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=source,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    files = [f for f in listed if (source / f).is_file()]
    if "pyproject.toml" not in files:
        raise SystemExit(f"{source} has no pyproject.toml: is it the course?")
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, dest / name)
    git = ["git", "-c", "user.name=colab-test", "-c", "user.email=colab-test@example.org", "-c", "commit.gpgsign=false"]
    for step in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], [*git, "commit", "-q", "-m", "course"]):
        subprocess.run(step, cwd=dest, check=True, capture_output=True)
    return dest


def make_kernel(tmp: Path, python: Path, origin: Path, content: Path) -> dict[str, str]:
    """A kernel spec on the Colab-like interpreter that imports google.colab at start; returns the env
    under which nbclient finds it."""
    fake = tmp / "fake-colab"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text(FAKE_COLAB)
    startup = tmp / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-google-colab.py").write_text("import google.colab  # Colab's kernel imports it at start\n")
    spec = tmp / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    kernel_env = {
        "PYTHONPATH": str(fake),
        "IPYTHONDIR": str(tmp / "ipython"),
        "COURSE_REPO_URL": f"file://{origin}",
        "COURSE_COLAB_DIR": str(content / "course"),
        "COURSE_FAST": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # ipykernel 6's debugger warns about frozen modules otherwise
    }
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (Colab-like)", "language": "python", "env": kernel_env,
    }, indent=1))
    return {"JUPYTER_PATH": str(tmp / "jupyter")}


def trained_models(nb: nbformat.NotebookNode) -> list[str]:
    """The models a run trained instead of loading ("Training <name> on ..."): Colab should load them all."""
    names = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines() if output.get("output_type") == "stream" else []:
                if line.startswith("Training ") and " on " in line:
                    names.append(line.split()[1])
    return names


def run_notebook(path: Path, content: Path, timeout: int, saved: Path) -> tuple[bool, str, float]:
    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=timeout, allow_errors=False,
                            resources={"metadata": {"path": str(content)}})
    try:
        client.execute()
    except CellExecutionError as err:
        return False, ANSI.sub("", str(err)).strip().splitlines()[-1][:400], time.monotonic() - started
    finally:
        saved.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, saved / path.name)  # executed (or as far as it got), for a person to look at
    seconds = time.monotonic() - started
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            if output.get("output_type") == "error" or "Traceback (most recent call last)" in text:
                return False, f"an output shows an error: {text[-400:] or output.get('ename')}", seconds
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    said = "".join(o.get("text", "") for o in first_code.outputs if o.get("output_type") == "stream")
    if "Colab: course_utils installed from file://" not in said:
        return False, f"the set-up cell did not take its Colab branch: {said.strip()[:300]!r}", seconds
    trained = trained_models(nb)
    return True, "no error; " + (f"trained {', '.join(trained)}" if trained else "every model loaded"), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO, help="the course folder to clone (default: this one)")
    parser.add_argument("--notebooks", default="", help="run only notebooks whose names start with this")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)
    if shutil.which("git") is None:
        raise SystemExit("colab-test needs git (the set-up cell clones the course)")

    started = time.monotonic()
    python = ensure_colab(REPO, log=say)
    before = installed(python)
    if before["course-utils"] is not None:  # left over from an interrupted run: Colab has none
        subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "course-utils"], check=True)
    say("environment: " + ", ".join(f"{name} {before[name]['version']}" for name in COLAB_UNTOUCHED)
        + f" (pins: {' '.join(COLAB_PACKAGES)})")

    tmp = Path(tempfile.mkdtemp(prefix="colab-like-"))
    results: list[tuple[str, bool, str, float]] = []
    try:
        origin = make_origin(args.source.resolve(), tmp / "origin")
        content = tmp / "content"
        content.mkdir()
        os.environ.update(make_kernel(tmp, python, origin, content))
        notebooks = sorted((origin / "notebooks").glob(f"{args.notebooks}*.ipynb"))
        if not notebooks:
            raise SystemExit(f"no notebook matches {args.notebooks!r}")
        for path in notebooks:
            say(f"executing {path.name} (full mode)")
            ok, why, seconds = run_notebook(path, content, args.timeout, SAVED)
            results.append((path.name, ok, why, seconds))
            say(f"{path.name}: {'passed' if ok else 'FAILED'} in {seconds:.0f} s ({why})")
            if not ok:
                break
        after = installed(python)
    finally:
        subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "course-utils"], capture_output=True)
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    problems = [f"{name}: {why}" for name, ok, why, _ in results if not ok]
    for name in COLAB_UNTOUCHED:
        if after[name]["version"] != before[name]["version"] or after[name]["record"] != before[name]["record"]:
            problems.append(f"{name} was reinstalled ({before[name]['version']} -> {after[name]['version']})")
        elif after[name]["record_mtime_ns"] != before[name]["record_mtime_ns"]:
            problems.append(f"{name}'s files were rewritten (its RECORD changed time)")
    if after["course-utils"] is None:
        problems.append("course_utils was not installed by the set-up cell")
    total = time.monotonic() - started
    if problems:
        say(f"FAILED after {total:.0f} s: " + "; ".join(problems))
        return 1
    say(f"passed: {len(results)} notebooks in full mode, no error; torch, torchvision, ipywidgets and numpy "
        f"untouched; {total:.0f} s in all (Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
