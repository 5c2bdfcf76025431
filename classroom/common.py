"""Helpers shared by the classroom test, the hub test and the memory benchmark (standard library only).

- ``copy_course``: a fresh copy of the course as a student would get it (the files git tracks,
  taken from the working tree, so uncommitted edits are tested too);
- ``listing``: every path under a folder with its size and mtime, to show that nothing was written;
- ``read_only_prefix``: the command prefix that runs a program in a private mount namespace where
  given folders are bind-mounted read-only onto themselves (Linux, root);
- ``peak_rss_kib`` / ``rss_kib``: a process's peak and current resident memory, from /proc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("01_autoencoder_compression", "02_vae_reparameterization", "03_cvae_conditioning",
             "04_latent_traversal_widgets")


def tracked_files(source: Path) -> list[str]:
    """What a clone of ``source`` would hold once its work is committed: the files git tracks plus the
    new ones it does not ignore (relative, POSIX); every file when ``source`` is not a git work tree."""
    if (source / ".git").exists():
        cmd = ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        out = subprocess.run(cmd, capture_output=True, check=True, timeout=60, stdin=subprocess.DEVNULL).stdout
        return [p for p in out.decode().split("\0") if p]
    skip = {".git", ".venv", ".hub-env", "__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}
    files = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_file() and not skip.intersection(rel.parts) and not rel.parts[0].endswith(".egg-info"):
            files.append(rel.as_posix())
    return files


def copy_course(source: Path, dest: Path) -> Path:
    """Copy the course's tracked files from ``source`` (its working tree) into ``dest``."""
    dest.mkdir(parents=True)
    for rel in tracked_files(source):
        src = source / rel
        if not src.is_file():  # deleted in the working tree, not yet in git
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder``: (size or -1 for a folder, mtime in ns)."""
    out = {}
    for path in sorted(Path(folder).rglob("*")):
        stat = path.lstat()
        out[path.relative_to(folder).as_posix()] = (stat.st_size if path.is_file() else -1, stat.st_mtime_ns)
    return out


def changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """What differs between two listings: "+ path", "- path", "~ path"."""
    out = [f"+ {p}" for p in sorted(set(after) - set(before))]
    out += [f"- {p}" for p in sorted(set(before) - set(after))]
    out += [f"~ {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]]
    return out


def unshare_problem() -> str | None:
    """Why a read-only bind mount cannot be made here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "the read-only classroom needs Linux (a private mount namespace)"
    if os.geteuid() != 0:
        return "the read-only classroom needs root (unshare -m and mount); run it as root, e.g. in a container"
    if not shutil.which("unshare") or not shutil.which("mount"):
        return "unshare or mount is missing: apt-get install util-linux mount"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        return f"unshare -m is not allowed here ({probe.stderr.decode().strip()}): a container needs CAP_SYS_ADMIN"
    return None


def read_only_prefix(folders: list[Path]) -> list[str]:
    """Prefix a command with this to run it where each of ``folders`` is read-only (and only for it).

    The mounts live in a private mount namespace: they vanish with the command, and no other
    process on the machine sees them. After mounting, the shell checks that a write really fails.
    """
    steps = []
    for folder in folders:
        q = "'" + str(folder).replace("'", "'\\''") + "'"
        steps.append(f"mount --bind {q} {q} && mount -o remount,bind,ro {q} && "
                     f"! touch {q}/.classroom-write-probe 2>/dev/null")
    script = " && ".join(steps) + ' && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "read-only-classroom"]


def _status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def peak_rss_kib(pid: int) -> int | None:
    """The process's peak resident set size so far (VmHWM), in KiB; None once it has gone."""
    return _status_kib(pid, "VmHWM")


def rss_kib(pid: int) -> int | None:
    """The process's resident set size now (VmRSS), in KiB."""
    return _status_kib(pid, "VmRSS")


def mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.0f} MiB"


def run_notebook(path: Path, out_dir: Path | None = None, cell_timeout: int = 900) -> dict:
    """Execute the notebook at ``path`` with nbclient, its kernel started in the notebook's folder.

    Returns its name, wall seconds (kernel start included), the kernel's peak resident memory
    (VmHWM, read after every cell, so the last reading is the peak of the whole run), how many
    stderr outputs it printed, and the error (None when every cell ran). The executed notebook is
    written to ``out_dir`` when given (never back to ``path``).
    """
    import threading
    import time

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    peak = {"kib": None, "pid": None, "anon_kib": 0, "file_kib": 0}
    done = threading.Event()

    def after_cell(**kwargs) -> None:
        pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
        if pid:
            peak["pid"] = pid
            peak["kib"] = peak_rss_kib(pid) or peak["kib"]

    def sample_private() -> None:  # the kernel keeps no peak of RssAnon: poll it every 20 ms
        while not done.wait(0.02):
            pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
            if pid:
                peak["anon_kib"] = max(peak["anon_kib"], _status_kib(pid, "RssAnon") or 0)
                peak["file_kib"] = max(peak["file_kib"], _status_kib(pid, "RssFile") or 0)

    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}}, on_cell_executed=after_cell)
    error = None
    start = time.perf_counter()
    sampler = threading.Thread(target=sample_private, daemon=True)
    sampler.start()
    try:
        client.execute(cwd=str(path.parent))
    except CellExecutionError as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        error = " | ".join(lines[-3:])[-600:]
    except (CellTimeoutError, DeadKernelError, RuntimeError, OSError) as err:
        error = f"{type(err).__name__}: {err}"[-600:]
    seconds = time.perf_counter() - start
    done.set()
    errors = stderr = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            errors += output.get("output_type") == "error"
            stderr += output.get("output_type") == "stream" and output.get("name") == "stderr"
    if error is None and errors:
        error = f"{errors} error output(s)"
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / path.name)
    return {"notebook": path.stem, "seconds": round(seconds, 1), "peak_rss_kib": peak["kib"],
            "peak_anon_kib": peak["anon_kib"] or None, "peak_file_kib": peak["file_kib"] or None,
            "stderr_outputs": stderr, "error": error}
