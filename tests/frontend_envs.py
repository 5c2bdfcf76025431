"""Virtual environments of other front ends, made once and reused (standard library only).

Two tests need a Python environment unlike the course's own .venv:

- the classic Notebook 6.5 front end with ipywidgets 7.7.1 and widgetsnbextension 3.6, the
  widget generation Colab runs (``tests/test_browser.py``, in ``.venv-nb6/``);
- a Colab-like runtime with Colab's own package versions (``tests/colab_like_run.py``,
  ``python course.py colab-test``, in ``.venv-colab/``).

``ensure_venv`` creates the environment from the base Python of the interpreter running
it, installs the pinned packages from PyPI, and writes a stamp (the SHA-256 of what it
installed); the next call reuses the environment while the stamp matches. Both folders
are gitignored. ``python -m tests.frontend_envs nb6|colab`` builds one by hand.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAMP = ".course-frontend-installed"

# The course's own pins that a kernel needs (requirements.txt), shared by the Notebook 6 environment.
COURSE_PINNED = ("torch", "torchvision", "numpy", "matplotlib", "tqdm")

NB6_FRONT_END = ["notebook==6.5.7", "ipywidgets==7.7.1", "widgetsnbextension==3.6.*", "ipykernel==6.17.1"]

# Colab's runtime, from its public pip freeze (the versions issue 14 names); tqdm and pip as Colab has them.
COLAB_PACKAGES = [
    "torch==2.11.0", "torchvision==0.26.0", "ipywidgets==7.7.1", "numpy==2.1.3", "matplotlib==3.10.0",
    "ipykernel==6.17.1", "ipython==7.34.0", "notebook==6.5.7", "tqdm==4.67.1",
]
COLAB_UNTOUCHED = ("torch", "torchvision", "ipywidgets", "numpy")  # the set-up cell must not reinstall these


def course_pins(root: Path = REPO) -> list[str]:
    """The exact pins of COURSE_PINNED in requirements.txt, e.g. ["torch==2.14.1", ...]."""
    pins = {}
    for line in (root / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name = line.split("==", 1)[0].strip().lower().replace("_", "-")
            pins[name] = line
    missing = [name for name in COURSE_PINNED if name not in pins]
    if missing:
        raise RuntimeError(f"requirements.txt pins none of {missing}: pin them (name==version)")
    return [pins[name] for name in COURSE_PINNED]


def nb6_packages(root: Path = REPO) -> list[str]:
    return [*NB6_FRONT_END, *course_pins(root)]


def base_python() -> Path:
    """The interpreter the course's venv was made from (a venv's python cannot make a clean venv)."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(sys.base_prefix) / "bin" / name, Path(sys.base_prefix) / "bin" / "python3",
                      Path(sys.base_prefix) / "python.exe"):
        if candidate.exists():
            return candidate
    raise RuntimeError(f"no base Python under {sys.base_prefix}")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _digest(packages: list[str], editable: Path | None) -> str:
    return hashlib.sha256(json.dumps({"packages": packages, "editable": str(editable),
                                      "python": sys.version.split()[0]}).encode()).hexdigest()


def is_current(venv: Path, packages: list[str], editable: Path | None = None) -> bool:
    stamp = venv / STAMP
    return venv_python(venv).exists() and stamp.is_file() and stamp.read_text().strip() == _digest(packages, editable)


def ensure_venv(venv: Path, packages: list[str], editable: Path | None = None, log=print) -> Path:
    """``venv`` holding exactly ``packages`` (and ``editable`` installed with --no-deps -e); its python."""
    python = venv_python(venv)
    if is_current(venv, packages, editable):
        return python
    log(f"making {venv} ({len(packages)} pinned packages from PyPI; the first time downloads torch: minutes)")
    (venv / STAMP).unlink(missing_ok=True)
    steps = [[str(base_python()), "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages]]
    if editable is not None:
        steps.append([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                      "-e", str(editable)])
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(step)}` failed (exit {result.returncode}):\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    (venv / STAMP).write_text(_digest(packages, editable) + "\n")
    return python


def ensure_nb6(root: Path = REPO, log=print) -> Path:
    """.venv-nb6: classic Notebook 6.5.7, ipywidgets 7.7.1, widgetsnbextension 3.6, the course's torch pins
    and course_utils (editable, so the kernel runs the working tree's code)."""
    return ensure_venv(root / ".venv-nb6", nb6_packages(root), editable=root, log=log)


def ensure_colab(root: Path = REPO, log=print) -> Path:
    """.venv-colab: Colab's package versions and no course_utils (the set-up cell installs it)."""
    return ensure_venv(root / ".venv-colab", COLAB_PACKAGES, editable=None, log=log)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which not in ("nb6", "colab"):
        raise SystemExit("usage: python tests/frontend_envs.py nb6|colab")
    print(ensure_nb6() if which == "nb6" else ensure_colab())
