#!/usr/bin/env python3
"""One entry point for the course, on Linux, macOS and Windows (standard library only).

Each command first makes sure .venv holds what requirements.txt pins: it installs only
when requirements.txt or pyproject.toml changed since the last install (a SHA-256 stamp
in .venv), or when .venv cannot import course_utils.

    python course.py lab               install, then open the course in JupyterLab
    python course.py test [ARGS]       install, then lint and run every test and notebook (fast mode);
                                       ARGS go to pytest
    python course.py execute           re-run all notebooks in full mode and save their outputs
    python course.py classroom-test    run the four notebooks from a read-only copy of the course, as a
                                       hub presents it (Linux, root: a private mount namespace; minutes)
    python course.py hub-test [ARGS]   start a real JupyterHub on 127.0.0.1 and run notebook 04 for several
                                       students at once (Linux, Node.js; installs its own tools in .hub-env)
    python course.py colab-test [ARGS] run every notebook in full mode in a Colab-like runtime (Colab's
                                       package versions, its set-up cell; makes .venv-colab)

Use ``py`` on Windows and ``python3`` on macOS and Linux in place of ``python``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP_NAME = ".course-installed"
STAMPED_FILES = ("requirements.txt", "pyproject.toml")
PYTEST_FLAGS = ["-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=900", "-q"]
PYTEST_PATHS = ["tests", "notebooks"]
COMMANDS = ("lab", "test", "execute", "classroom-test", "hub-test", "colab-test")
USAGE = ("usage: python course.py lab | test [pytest args] | execute | classroom-test | hub-test [args]"
         " | colab-test [args]")


def say(message: str) -> None:
    print(f"course.py: {message}", flush=True)


# ----------------------------------------------------------------------------- the environment
def venv_python(venv: Path = VENV, platform: str | None = None) -> Path:
    """The interpreter inside ``venv``: Scripts\\python.exe on Windows, bin/python elsewhere."""
    platform = sys.platform if platform is None else platform
    if platform == "win32":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def requirements_digest(root: Path = ROOT) -> str:
    """SHA-256 of requirements.txt followed by pyproject.toml (what `cat ... | sha256sum` gave)."""
    digest = hashlib.sha256()
    for name in STAMPED_FILES:
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def run(cmd: list[str], **kwargs) -> int:
    """Run ``cmd`` (a list: no shell, so no bash-only or GNU-only syntax) and return its exit code."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)  # CI has no standard input
    return subprocess.call([str(part) for part in cmd], **kwargs)


def is_installed(root: Path = ROOT, venv: Path = VENV, platform: str | None = None) -> bool:
    """True when ``venv`` was installed from the current requirements and imports course_utils."""
    python = venv_python(venv, platform)
    stamp = venv / STAMP_NAME
    if not python.exists() or not stamp.is_file():
        return False
    if stamp.read_text().strip() != requirements_digest(root):
        return False
    return run([python, "-c", "import course_utils"], cwd=root, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL) == 0


def ensure_env(root: Path = ROOT, venv: Path = VENV, platform: str | None = None) -> Path:
    """Create ``venv`` and install the course into it, unless the stamp says it is up to date."""
    python = venv_python(venv, platform)
    if is_installed(root, venv, platform):
        say(f"{venv.name} is up to date")
        return python
    say(f"installing into {venv.name} (first run: a few minutes, torch is large)")
    steps = []
    if not python.exists():
        steps.append([sys.executable, "-m", "venv", venv])
    steps += [
        [python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [python, "-m", "pip", "install", "--quiet", "-r", root / "requirements.txt"],
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "-e", root],
    ]
    for step in steps:
        code = run(step, cwd=root)
        if code != 0:
            raise SystemExit(f"course.py: `{' '.join(str(s) for s in step)}` failed (exit {code}); "
                             "fix the error above and run the command again.")
    (venv / STAMP_NAME).write_text(requirements_digest(root) + "\n")
    return python


# ----------------------------------------------------------------------------- the commands
def is_root() -> bool:
    """True for the superuser (``os.geteuid`` exists only on POSIX systems)."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def lab_command(python: Path) -> list[str]:
    """JupyterLab on the notebooks; as root it needs --allow-root, or it exits at once."""
    cmd = [str(python), "-m", "jupyter", "lab", "notebooks"]
    if is_root():
        cmd.append("--allow-root")
    return cmd


def replace_process(cmd: list[str], posix: bool | None = None) -> int:
    """Hand the terminal to ``cmd``: exec on POSIX (Ctrl-C goes straight to it); a child on Windows."""
    sys.stdout.flush()
    if os.name == "posix" if posix is None else posix:
        os.execv(cmd[0], cmd)
    return run(cmd, stdin=None)


def ensure_browser() -> None:
    """The real-browser test drives Debian's Chromium; install it with apt-get when root can."""
    if shutil.which("chromium"):
        return
    if is_root() and shutil.which("apt-get"):
        say("installing chromium for the browser test")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if run(["apt-get", "update", "-qq"], env=env) == 0:
            run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, stdout=subprocess.DEVNULL)
        if shutil.which("chromium"):
            return
        say("apt-get could not install chromium: the browser test will be skipped (an error under CI)")
    else:
        say("no chromium (and no root apt-get): the browser test will be skipped")


def test_command(python: Path, extra: list[str]) -> int:
    ensure_browser()
    env = {**os.environ, "COURSE_FAST": "1", "COURSE_SOLUTIONS": "1"}
    code = run([python, "-m", "ruff", "check", "."], cwd=ROOT, env=env)
    if code != 0:
        return code
    return run([python, "-m", "pytest", *PYTEST_FLAGS, *PYTEST_PATHS, *extra], cwd=ROOT, env=env)


def execute_command(python: Path) -> int:
    env = {**os.environ, "COURSE_FAST": "0"}
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        say(f"executing {notebook.relative_to(ROOT).as_posix()} (full mode)")
        code = run([python, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    "--ExecutePreprocessor.timeout=3600", notebook], cwd=ROOT, env=env)
        if code != 0:
            return code
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 2
    if sys.version_info < (3, 10):  # noqa: UP036 (course.py may be started by an older Python)
        print(f"course.py: the course needs Python 3.10 or newer, this is {sys.version.split()[0]}.",
              file=sys.stderr)
        return 2
    command, extra = argv[0], argv[1:]
    os.chdir(ROOT)
    python = ensure_env()
    if command == "lab":
        return replace_process(lab_command(python))
    if command == "test":
        return test_command(python, extra)
    if command == "execute":
        return execute_command(python)
    if command == "classroom-test":
        return run([python, ROOT / "classroom" / "readonly_run.py", *extra], cwd=ROOT)
    if command == "colab-test":  # every notebook in a Colab-like runtime (tests/colab_like_run.py)
        return run([python, ROOT / "tests" / "colab_like_run.py", *extra], cwd=ROOT)
    return run([python, ROOT / "classroom" / "hub_test.py", *extra], cwd=ROOT)  # hub-test


if __name__ == "__main__":
    sys.exit(main())
