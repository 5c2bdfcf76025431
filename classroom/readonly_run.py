"""The classroom test: run the notebooks from a read-only copy of the course, as a JupyterHub presents it.

    python course.py classroom-test                      # all four notebooks, full mode (~3 min on 2 cores)
    python course.py classroom-test --notebooks 04       # one notebook
    .venv/bin/python classroom/readonly_run.py --source DIR --json result.json

It copies the course (what git tracks plus new files it does not ignore, from the working tree)
into a fresh temporary folder, then, in a private mount namespace (``unshare -m``: Linux, root),
bind-mounts that copy and the course's .venv read-only onto themselves and executes each notebook
there with nbclient, as a student whose home (and so whose cache folder) is a fresh writable
folder. Full mode with the shipped checkpoints is the classroom setting (``--mode fast`` for CI's).

It passes when every notebook ran with no error, and a listing of the copy (every path, size and
mtime) is the same after as before. It prints, for each notebook, the wall time and the kernel's
peak resident memory (VmHWM), and what the run left in the student's cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    NOTEBOOKS,
    REPO,
    changes,
    copy_course,
    listing,
    mib,
    read_only_prefix,
    run_notebook,
    unshare_problem,
)

# What the notebooks' kernels must not inherit from whoever runs the test.
DROPPED = ("COURSE_ROOT", "COURSE_CACHE", "COURSE_FAST", "COURSE_SOLUTIONS", "COURSE_DEVICE", "CI",
           "XDG_CACHE_HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR",
           "MPLCONFIGDIR", "VIRTUAL_ENV", "PYTHONPATH")

PROBE = """
import json, sys
import course_utils
from course_utils import settings
print(json.dumps({"course_utils": course_utils.__file__, "course_root": str(settings.course_root()),
                  "writable": settings.is_writable(settings.course_root()), "work_dir": str(settings.work_dir()),
                  "cache_dir": str(settings.cache_dir())}))
"""


def pick_notebooks(names: list[str] | None) -> list[str]:
    if not names:
        return list(NOTEBOOKS)
    chosen = []
    for name in names:
        hits = [nb for nb in NOTEBOOKS if nb.startswith(name) or nb == Path(name).stem]
        if len(hits) != 1:
            raise SystemExit(f"readonly_run: {name!r} names no single notebook; use one of {', '.join(NOTEBOOKS)}")
        chosen.append(hits[0])
    return chosen


def inner(args: argparse.Namespace) -> int:
    """Inside the namespace: check where the course writes, then run each notebook; write a JSON report."""
    course = Path(args.course)
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=course / "notebooks", capture_output=True, text=True,
                           timeout=300, stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        report = {"probe_error": probe.stderr[-2000:], "notebooks": []}
    else:
        report = {"probe": json.loads(probe.stdout.strip().splitlines()[-1]), "notebooks": []}
        for name in args.notebooks:
            print(f"readonly_run: executing {name} ({args.mode} mode, read-only course)", flush=True)
            result = run_notebook(course / "notebooks" / f"{name}.ipynb", Path(args.out), args.cell_timeout)
            print(f"readonly_run:   {result['seconds']:.0f} s, kernel peak {mib(result['peak_rss_kib'])}"
                  f"{', ERROR ' + result['error'] if result['error'] else ''}", flush=True)
            report["notebooks"].append(result)
    Path(args.json_inner).write_text(json.dumps(report, indent=1))
    return 0


def student_env(course: Path, home: Path, mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(HOME=str(home), COURSE_FAST="1" if mode == "fast" else "0",
               # The .venv was installed with course_utils editable from the repository; the copy's own
               # course_utils must win, as it does for a hub whose environment installed the shared folder.
               PYTHONPATH=str(course))
    return env


def outer(args: argparse.Namespace) -> int:
    problem = unshare_problem()
    if problem:
        print(f"readonly_run: {problem}.", file=sys.stderr)
        return 2
    source = Path(args.source).resolve()
    venv = Path(sys.prefix).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="course-classroom-"))
    course = copy_course(source, tmp / "course")
    home, out = tmp / "home", tmp / "executed"
    home.mkdir()
    before = listing(course)
    cmd = [*read_only_prefix([course, venv]), sys.executable, str(Path(__file__).resolve()), "--inner",
           "--course", str(course), "--out", str(out), "--json-inner", str(tmp / "inner.json"),
           "--mode", args.mode, "--cell-timeout", str(args.cell_timeout), "--notebooks", *args.notebooks]
    print(f"readonly_run: course copied from {source} to {course}; running {len(args.notebooks)} notebook(s) "
          f"with {course} and {venv} mounted read-only", flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=student_env(course, home, args.mode), timeout=args.timeout,
                              stdin=subprocess.DEVNULL)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    total = time.perf_counter() - start
    written = changes(before, listing(course))
    report = json.loads((tmp / "inner.json").read_text()) if (tmp / "inner.json").exists() else {"notebooks": []}
    cache = home / ".cache" / "ae-to-cvae-course"
    report.update(mode=args.mode, total_seconds=round(total, 1), written_into_course=written, runner_exit=code,
                  cache=sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())
                  if cache.exists() else [], source=str(source), tmp=str(tmp))

    problems = []
    if code != 0:
        problems.append(f"the runner exited with {code}")
    if "probe_error" in report:
        problems.append(f"course_utils did not import in the read-only copy: {report['probe_error'][-400:]}")
    probe = report.get("probe")
    if probe:
        if not Path(probe["course_utils"]).resolve().is_relative_to(course):
            problems.append(f"the kernels imported course_utils from {probe['course_utils']}, not the copy")
        if probe["writable"] or not Path(probe["work_dir"]).resolve().is_relative_to(home):
            problems.append(f"the course copy was writable for the kernels (work_dir {probe['work_dir']})")
    for result in report["notebooks"]:
        if result["error"]:
            problems.append(f"{result['notebook']}: {result['error']}")
    if len(report["notebooks"]) != len(args.notebooks):
        problems.append(f"only {len(report['notebooks'])} of {len(args.notebooks)} notebooks ran")
    if written:
        problems.append(f"{len(written)} change(s) in the read-only course: {', '.join(written[:5])}")
    report["problems"] = problems

    print(f"\nread-only classroom, {args.mode} mode ({sys.platform}, {os.cpu_count()} CPUs), "
          f"{total:.0f} s in all")
    print(f"{'notebook':34} {'seconds':>8} {'kernel peak RSS':>16}  result")
    for result in report["notebooks"]:
        print(f"{result['notebook']:34} {result['seconds']:8.1f} {mib(result['peak_rss_kib']):>16}  "
              f"{'error' if result['error'] else 'ok'}")
    print(f"written into the course: {len(written)} path(s); the student's cache holds: "
          f"{', '.join(report['cache']) or 'nothing'}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if problems:
        print("FAILED: " + "; ".join(problems) + f" (the copy, home and executed notebooks are kept in {tmp})",
              file=sys.stderr)
        return 1
    print("PASSED: every notebook ran from the read-only course, and nothing was written into it")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="+", help="notebooks to run (01 .. 04; default: all four)")
    parser.add_argument("--mode", choices=("full", "fast"), default="full", help="full: the classroom (default)")
    parser.add_argument("--source", default=str(REPO), help="the course to copy (default: this repository)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds for the whole run (default 3600)")
    parser.add_argument("--cell-timeout", type=int, default=900, help="seconds for one cell (default 900)")
    parser.add_argument("--json", help="also write the report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy, home and executed notebooks")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--course", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--json-inner", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        return inner(args)
    args.notebooks = pick_notebooks(args.notebooks)
    return outer(args)


if __name__ == "__main__":
    sys.exit(main())
