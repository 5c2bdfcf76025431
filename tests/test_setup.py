"""course.py, the set-up entry point: no bash or GNU tool on its path, the root case, the install stamp.

Nothing here installs anything: ``course.run`` and ``os.execv`` are replaced by recorders, and
the platform is passed in, so the Windows paths are checked on Linux too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("course_entry", REPO / "course.py")
course = importlib.util.module_from_spec(spec)
spec.loader.exec_module(course)

# Programs that exist only with bash or GNU coreutils: none may be on course.py's path.
POSIX_ONLY = {"bash", "sh", "sha256sum", "shasum", "cut", "cat", "id", "command", "dirname", "tee", "env"}


class Recorder:
    """Stands in for ``course.run``: records each command, and answers ``import course_utils``."""

    def __init__(self, import_ok: bool = True, fail: str | None = None):
        self.calls: list[list[str]] = []
        self.kwargs: list[dict] = []
        self.import_ok = import_ok
        self.fail = fail

    def __call__(self, cmd, **kwargs) -> int:
        cmd = [str(c) for c in cmd]
        self.calls.append(cmd)
        self.kwargs.append(kwargs)
        if cmd[1:3] == ["-m", "venv"]:  # make the interpreter "exist", as venv would
            python = Path(cmd[3]) / ("Scripts/python.exe" if self.platform == "win32" else "bin/python")
            python.parent.mkdir(parents=True, exist_ok=True)
            python.write_text("")
        if cmd[1:3] == ["-c", "import course_utils"]:
            return 0 if self.import_ok else 1
        if self.fail and self.fail in cmd:
            return 3
        return 0

    platform = sys.platform

    def installs(self) -> list[list[str]]:
        return [c for c in self.calls if "pip" in c or "venv" in c]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "requirements.txt").write_text("torch==2.14.1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return tmp_path


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(course, "run", rec)
    return rec


# ----------------------------------------------------------------------------- paths, per platform
@pytest.mark.parametrize(("platform", "expected"), [("win32", "Scripts/python.exe"), ("linux", "bin/python"),
                                                    ("darwin", "bin/python")])
def test_venv_python_per_platform(platform, expected, tmp_path):
    assert course.venv_python(tmp_path / ".venv", platform) == tmp_path / ".venv" / Path(expected)


@pytest.mark.parametrize("platform", ["win32", "linux", "darwin"])
def test_fresh_install_uses_only_python_and_pip(project, recorder, platform):
    recorder.platform = platform
    venv = project / ".venv"
    python = course.ensure_env(project, venv, platform)
    assert python == course.venv_python(venv, platform)
    assert recorder.calls[0] == [sys.executable, "-m", "venv", str(venv)]
    for cmd in recorder.calls[1:]:
        assert cmd[0] == str(python) and cmd[1:3] == ["-m", "pip"]
    assert ["-r", str(project / "requirements.txt")] == recorder.calls[2][-2:]
    assert recorder.calls[3][-3:] == ["--no-deps", "-e", str(project)]
    for cmd in recorder.calls:
        assert Path(cmd[0]).name not in POSIX_ONLY
    assert (venv / course.STAMP_NAME).read_text().strip() == course.requirements_digest(project)


# ----------------------------------------------------------------------------- the stamp
def test_stamp_skips_the_install_until_requirements_or_pyproject_change(project, recorder):
    venv = project / ".venv"
    course.ensure_env(project, venv)
    assert len(recorder.installs()) == 4  # venv, pip upgrade, requirements, course_utils
    recorder.calls.clear()
    course.ensure_env(project, venv)
    assert recorder.installs() == []  # up to date: only the import check ran
    (project / "requirements.txt").write_text("torch==2.14.1\nnumpy==2.4.6\n")
    course.ensure_env(project, venv)
    assert len(recorder.installs()) == 3  # the venv exists: no new venv, but pip runs again
    recorder.calls.clear()
    (project / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    course.ensure_env(project, venv)
    assert len(recorder.installs()) == 3


def test_a_venv_that_cannot_import_course_utils_is_reinstalled(project, recorder):
    venv = project / ".venv"
    course.ensure_env(project, venv)
    recorder.calls.clear()
    recorder.import_ok = False
    course.ensure_env(project, venv)
    assert len(recorder.installs()) == 3


def test_failed_install_writes_no_stamp_and_says_what_to_do(project, monkeypatch):
    rec = Recorder(fail="-r")
    monkeypatch.setattr(course, "run", rec)
    with pytest.raises(SystemExit, match="failed .*run the command again"):
        course.ensure_env(project, project / ".venv")
    assert not (project / ".venv" / course.STAMP_NAME).exists()


def test_digest_matches_what_course_sh_stamped(project):
    """The old bash stamp was `cat requirements.txt pyproject.toml | sha256sum`: an old .venv stays valid."""
    both = (project / "requirements.txt").read_bytes() + (project / "pyproject.toml").read_bytes()
    assert course.requirements_digest(project) == hashlib.sha256(both).hexdigest()
    if shutil.which("sha256sum"):
        out = subprocess.run(["sha256sum"], input=both, capture_output=True, check=True).stdout.decode()
        assert out.split()[0] == course.requirements_digest(project)


# ----------------------------------------------------------------------------- lab, and root
def test_lab_as_root_passes_allow_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    cmd = course.lab_command(Path("/v/bin/python"))
    assert cmd[:5] == ["/v/bin/python", "-m", "jupyter", "lab", "notebooks"] and cmd[-1] == "--allow-root"


def test_lab_as_a_user_or_on_windows_has_no_allow_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000, raising=False)
    assert "--allow-root" not in course.lab_command(Path("python"))
    monkeypatch.delattr(os, "geteuid", raising=False)  # Windows has no geteuid
    assert not course.is_root()
    assert "--allow-root" not in course.lab_command(Path("python"))


def test_main_lab_execs_jupyterlab_with_allow_root_as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    monkeypatch.setattr(course, "ensure_env", lambda: Path("/v/bin/python"))
    monkeypatch.setattr(os, "chdir", lambda path: None)
    seen = []

    def execv(path, args):
        seen.append((path, args))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execv", execv)
    with pytest.raises(SystemExit):
        course.main(["lab"])
    assert seen == [("/v/bin/python", ["/v/bin/python", "-m", "jupyter", "lab", "notebooks", "--allow-root"])]


def test_replace_process_on_windows_runs_a_child(monkeypatch, recorder):
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("no exec on Windows"))
    assert course.replace_process(["python.exe", "-m", "jupyter", "lab"], posix=False) == 0
    assert recorder.calls == [["python.exe", "-m", "jupyter", "lab"]]


# ----------------------------------------------------------------------------- test and execute
def test_test_command_lints_then_runs_pytest_in_fast_mode_with_the_old_flags(monkeypatch, recorder):
    monkeypatch.setattr(course, "ensure_browser", lambda: None)
    assert course.test_command(Path("/v/bin/python"), ["-k", "data"]) == 0
    ruff, pytest_cmd = recorder.calls
    assert ruff == ["/v/bin/python", "-m", "ruff", "check", "."]
    assert pytest_cmd == ["/v/bin/python", "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
                          "--nbval-current-env", "--nbval-cell-timeout=900", "-q", "tests", "notebooks", "-k", "data"]
    for kwargs in recorder.kwargs:
        assert kwargs["env"]["COURSE_FAST"] == "1" and kwargs["env"]["COURSE_SOLUTIONS"] == "1"


def test_test_command_stops_when_ruff_fails(monkeypatch):
    rec = Recorder(fail="ruff")
    monkeypatch.setattr(course, "run", rec)
    monkeypatch.setattr(course, "ensure_browser", lambda: None)
    assert course.test_command(Path("python"), []) == 3
    assert len(rec.calls) == 1


def test_execute_runs_every_notebook_in_full_mode(recorder):
    assert course.execute_command(Path("python")) == 0
    names = [Path(c[-1]).name for c in recorder.calls]
    assert names == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb")) and names
    for cmd, kwargs in zip(recorder.calls, recorder.kwargs):
        assert cmd[1:5] == ["-m", "jupyter", "nbconvert", "--to"] and "--inplace" in cmd
        assert kwargs["env"]["COURSE_FAST"] == "0"


def test_every_command_runs_without_standard_input(monkeypatch):
    seen = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **kw: seen.append(kw) or 0)
    course.run(["python", "-V"])
    assert seen[0]["stdin"] is subprocess.DEVNULL


# ----------------------------------------------------------------------------- the browser
def test_browser_present_installs_nothing(monkeypatch, recorder):
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    course.ensure_browser()
    assert recorder.calls == []


def test_browser_missing_as_root_uses_apt_get(monkeypatch, recorder):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    course.ensure_browser()
    assert [c[:2] for c in recorder.calls] == [["apt-get", "update"], ["apt-get", "install"]]
    assert recorder.kwargs[1]["env"]["DEBIAN_FRONTEND"] == "noninteractive"


@pytest.mark.parametrize("euid", [1000, None])
def test_browser_missing_without_root_apt_get_says_skipped(monkeypatch, recorder, capsys, euid):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    if euid is None:
        monkeypatch.delattr(os, "geteuid", raising=False)
    else:
        monkeypatch.setattr(os, "geteuid", lambda: euid, raising=False)
    course.ensure_browser()
    assert recorder.calls == []
    assert "browser test will be skipped" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the wrappers
def test_usage_without_a_command(monkeypatch, recorder, capsys):
    assert course.main([]) == 2
    assert course.main(["install"]) == 2
    assert "python course.py lab" in capsys.readouterr().err
    assert recorder.calls == []


def test_course_sh_and_ci_are_thin_wrappers():
    assert "course.py" in (REPO / "course.sh").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 course.py test" in ci and "course.sh" not in ci


def test_course_py_runs_with_the_standard_library_only():
    """A fresh machine has no .venv yet: course.py must start with a bare Python (usage, exit 2)."""
    result = subprocess.run([sys.executable, "-I", "-S", str(REPO / "course.py")], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "usage" in result.stderr


# ----------------------------------------------------------------------------- the instructor's link
def test_nbgitpuller_link_uses_the_course_repository():
    spec = importlib.util.spec_from_file_location("nbgitpuller_link", REPO / "classroom" / "nbgitpuller_link.py")
    links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(links)
    from course_utils import colab

    url = links.link("https://hub.example.edu/", links.course_setting("REPOSITORY"), links.course_setting("BRANCH"),
                     "04_latent_traversal_widgets")
    assert url.startswith("https://hub.example.edu/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2F")
    query = dict(urllib.parse.parse_qsl(url.split("?", 1)[1]))
    assert query == {"repo": f"https://github.com/{colab.REPOSITORY}", "branch": colab.BRANCH, "targetpath": "course",
                     "urlpath": "lab/tree/course/notebooks/04_latent_traversal_widgets.ipynb"}
