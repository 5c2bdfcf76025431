"""colab: the set-up cell, run in an environment that looks like Colab, and the notebooks' badges.

The Colab test builds, in tmp_path:

- a NEW virtual environment from the base Python of .venv, whose site-packages holds a
  .pth file pointing at .venv's site-packages: torch imports (as Colab's preinstalled
  one does) but course_utils does not (.venv's editable-install hook is itself a .pth
  file, and .pth files in a directory added by a .pth line are not processed);
- a fake ``google.colab`` package, imported before the cell runs (as on Colab);
- a git repository made from the working tree (course_utils/, pyproject.toml,
  README.md, data/mnist), cloned by the cell through COURSE_REPO_URL into COURSE_COLAB_DIR.

By default pip installs course_utils with no network: the new venv has no pip of its own,
so .venv's pip and setuptools do the install with PIP_NO_INDEX=1 and no build isolation.
COURSE_TEST_COLAB_ONLINE=1 takes Colab's exact path instead (build isolation, which
downloads setuptools from the package registry).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env

from course_utils import colab

MAIN_SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])  # .venv's site-packages
NOT_TO_TOUCH = ("torch", "torchvision", "ipywidgets", "numpy", "matplotlib", "tqdm")
REPO_PARTS = ("course_utils/", "pyproject.toml", "README.md", "data/mnist/")


def _online_install() -> bool:
    """Whether to let pip build course_utils with isolation (which downloads setuptools).

    Off by default, so the test needs no network and gives the same answer every time;
    COURSE_TEST_COLAB_ONLINE=1 runs the exact Colab path, build isolation included.
    """
    return os.environ.get("COURSE_TEST_COLAB_ONLINE", "") == "1"


def _base_python() -> Path:
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(sys.base_prefix) / "bin" / name, Path(sys.base_prefix) / "bin" / "python3"):
        if candidate.exists():
            return candidate
    pytest.skip(f"no base Python under {sys.base_prefix}")


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _make_repo(dest: Path) -> Path:
    """A git repository holding the working tree's files that the Colab install needs."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    files = [f for f in listed if f.startswith(REPO_PARTS) and (REPO / f).is_file()]
    assert "pyproject.toml" in files and "course_utils/__init__.py" in files
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", "-c", "commit.gpgsign=false"]
    env = subprocess_env(GIT_CONFIG_NOSYSTEM="1")
    _run(["git", "init", "-q", "-b", "main"], dest, env)
    _run(["git", "add", "-A"], dest, env)
    _run([*git, "commit", "-q", "-m", "course"], dest, env)
    return dest


def _site_packages(venv: Path) -> Path:
    found = list((venv / "lib").glob("python3*/site-packages"))
    assert len(found) == 1, found
    return found[0]


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_setup_cell_on_colab_installs_course_utils_without_touching_torch(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    online = _online_install()
    env = subprocess_env()
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)

    # 1) A new venv that sees .venv's packages (torch) through a .pth file, but not course_utils.
    venv = tmp_path / "colab-venv"
    _run([str(_base_python()), "-m", "venv", *([] if online else ["--without-pip"]), str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    site_packages = _site_packages(venv)
    (site_packages / "colab_preinstalled.pth").write_text(f"{MAIN_SITE_PACKAGES}\n")
    before = _listing(site_packages)
    main_before = _listing(MAIN_SITE_PACKAGES)
    probe = "import importlib.util as u; print(u.find_spec('torch').origin); print(u.find_spec('course_utils'))"
    result = _run([str(python), "-c", probe], tmp_path, env)
    torch_file, course_spec = result.stdout.split()
    assert Path(torch_file).is_relative_to(MAIN_SITE_PACKAGES)
    assert course_spec == "None", "course_utils must not be importable before the set-up cell runs"

    # 2) A fake google.colab, a repository to clone, and where to clone it.
    fake = tmp_path / "fake-colab"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text('"""Stands in for Colab\'s own module."""\n')
    repo = _make_repo(tmp_path / "origin")
    course_dir = tmp_path / "content" / "course"
    env.update(
        PYTHONPATH=str(fake),
        COURSE_REPO_URL=f"file://{repo}",
        COURSE_COLAB_DIR=str(course_dir),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_CACHE_DIR=str(tmp_path / "pip-cache"),
        PIP_NO_INPUT="1",
    )
    if not online:
        env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0")  # "0" turns isolation OFF (pip quirk)

    # 3) Run the cell, then use course_utils as the notebook's next cell would.
    script = tmp_path / "notebook.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, sys
        import google.colab  # Colab has imported it before any cell runs
        exec(compile({colab.setup_cell_source()!r}, "<set-up cell>", "exec"), {{"__name__": "__main__"}})
        import course_utils, torch
        print("RESULT " + json.dumps({{
            "course_utils": course_utils.__file__,
            "torch": torch.__file__,
            "COURSE_ROOT": os.environ.get("COURSE_ROOT"),
            "course_root": str(course_utils.course_root()),
            "test_images": len(course_utils.load_mnist("test")),
        }}))
    """))
    result = _run([str(python), str(script)], tmp_path, env, timeout=600)
    assert f"Colab: course_utils installed from file://{repo}" in result.stdout
    report = json.loads(result.stdout.split("RESULT ", 1)[1])

    # course_utils comes from a real (not editable) install in the new venv
    assert Path(report["course_utils"]).is_relative_to(site_packages), report
    assert (site_packages / "course_utils" / "__init__.py").is_file()
    # COURSE_ROOT points at the clone, which holds the data
    assert report["COURSE_ROOT"] == str(course_dir)
    assert Path(report["course_root"]) == course_dir.resolve()
    assert (course_dir / ".git").is_dir() and (course_dir / "data" / "mnist").is_dir()
    assert report["test_images"] == 10_000
    # torch & co. were not touched: still .venv's, and nothing of theirs in the new venv
    assert Path(report["torch"]).is_relative_to(MAIN_SITE_PACKAGES)
    added = _listing(site_packages) - before
    assert any(name.startswith("course_utils") for name in added), added
    for name in _listing(site_packages):
        assert not name.lower().startswith(NOT_TO_TOUCH), f"{name} appeared in the new venv ({added})"
    # and the main environment is exactly as it was
    assert _listing(MAIN_SITE_PACKAGES) == main_before


def test_setup_cell_off_colab_does_nothing(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError(f"the set-up cell ran {args!r} off Colab")

    monkeypatch.setattr(subprocess, "run", refuse)
    root_before = os.environ.get("COURSE_ROOT")
    exec(compile(colab.setup_cell_source(), "<set-up cell>", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert out.strip() == "Not on Colab: nothing to install here (bash course.sh lab sets up a local machine)."
    assert os.environ.get("COURSE_ROOT") == root_before


def test_setup_cell_source_names_the_repository():
    source = colab.setup_cell_source("someone/fork")
    assert source.startswith(colab.SETUP_MARKER)
    assert "https://github.com/someone/fork" in source
    assert "--no-deps" in source
    compile(source, "<set-up cell>", "exec")  # valid Python
    badge = colab.badge_markdown("01_x.ipynb", "someone/fork")
    assert "colab-badge.svg" in badge
    assert "github/someone/fork/blob/main/notebooks/01_x.ipynb" in badge


# ----------------------------------------------------------------------------- notebooks
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks yet")
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_the_current_badge_and_setup_cell(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    sources = ["".join(cell["source"]) for cell in cells]
    assert cells[0]["cell_type"] == "markdown"
    assert colab.badge_markdown(notebook.name) in sources[0], "cell 1 must hold the Colab badge"
    first_code = next(i for i, cell in enumerate(cells) if cell["cell_type"] == "code")
    assert sources[first_code] == colab.setup_cell_source(), "the first code cell must be the set-up cell"


@pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks yet")
def test_rewrite_notebooks_finds_nothing_to_change(tmp_path):
    for notebook in NOTEBOOKS:
        shutil.copy2(notebook, tmp_path / notebook.name)
    assert colab.rewrite_notebooks(tmp_path) == []
    for notebook in NOTEBOOKS:
        assert (tmp_path / notebook.name).read_bytes() == notebook.read_bytes()


def test_rewrite_notebooks_updates_a_fork(tmp_path):
    """rewrite_notebooks really rewrites (so "nothing to change" above means something)."""
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", colab.badge_markdown("01_a.ipynb")]},
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
             "source": colab.setup_cell_source()},
        ],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }
    path = tmp_path / "01_a.ipynb"
    path.write_text(json.dumps(notebook))
    assert colab.rewrite_notebooks(tmp_path, "someone/fork") == [path]
    cells = json.loads(path.read_text())["cells"]
    assert colab.badge_markdown("01_a.ipynb", "someone/fork") in "".join(cells[0]["source"])
    assert "".join(cells[1]["source"]) == colab.setup_cell_source("someone/fork")
    assert colab.rewrite_notebooks(tmp_path, "someone/fork") == []


def test_every_subpackage_is_packaged():
    """A plain install (Colab's) ships only the packages pyproject.toml lists; the editable
    install used locally ships everything, so a missing subpackage would only fail on Colab."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "course_utils").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"


# ----------------------------------------------------------------------------- the Colab-like run's pieces
def test_colab_like_kernel_imports_google_colab_at_start_and_clones_the_course(tmp_path, monkeypatch):
    """tests/colab_like_run.py (python course.py colab-test) with .venv's interpreter standing in for
    .venv-colab's: its origin repository holds what a clone needs, and its kernel has google.colab
    imported before the first cell, so the set-up cell takes its Colab branch."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    import nbformat
    from colab_like_run import KERNEL, make_kernel, make_origin
    from nbclient import NotebookClient

    origin = make_origin(REPO, tmp_path / "origin")
    for part in ("course_utils/__init__.py", "pyproject.toml", "notebooks", "data/mnist", "checkpoints/vae.pt"):
        assert (origin / part).exists(), part
    assert not (origin / "checkpoints" / "fast").exists()  # gitignored: not in a clone
    content = tmp_path / "content"
    content.mkdir()
    env = make_kernel(tmp_path, Path(sys.executable), origin, content)
    probe = ("import sys, os\n"
             "print('google.colab' in sys.modules, os.environ['COURSE_COLAB_DIR'], os.environ['COURSE_FAST'])")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(probe)])
    monkeypatch.setenv("JUPYTER_PATH", env["JUPYTER_PATH"])
    NotebookClient(nb, kernel_name=KERNEL, timeout=120, resources={"metadata": {"path": str(content)}}).execute()
    printed = nb.cells[0].outputs[0]["text"].split()
    assert printed == ["True", str(content / "course"), "0"]
