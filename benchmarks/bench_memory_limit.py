"""Does each notebook run to its end under a hub's memory limit? A real limit, not a reading.

A hub enforces a student's memory with a cgroup: the container (Zero to JupyterHub) or the
systemd unit (The Littlest JupyterHub) is killed, or its kernel is, when the memory charged
to it passes the limit. This script does the same on Linux as root: for each notebook it
makes a cgroup-v1 memory group below its own, sets ``memory.limit_in_bytes`` (default
1024 MiB), and runs the notebook (nbclient and a fresh kernel, full mode unless ``--fast``)
inside it. It prints whether every cell ran and the group's peak charge
(``memory.max_usage_in_bytes``: private memory plus the page cache the group itself brought
in; library pages already cached by another process are not charged again, as on a hub
node where many students share an image). The client process is charged too, as a
single-user server is inside a student's container.

    sudo .venv/bin/python benchmarks/bench_memory_limit.py                  # 1024 MiB, all four
    sudo .venv/bin/python benchmarks/bench_memory_limit.py --limit-mib 900 --notebooks 01
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "classroom"))
from common import NOTEBOOKS, run_notebook  # noqa: E402

V1 = Path("/sys/fs/cgroup/memory")


def own_memory_cgroup() -> Path | None:
    """This process's cgroup-v1 memory folder, or None (no v1 memory controller here)."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                folder = V1 / path.lstrip("/")
                return folder if (folder / "memory.limit_in_bytes").exists() else None
    except OSError:
        return None
    return None


def run_limited(name: str, limit_mib: int, fast: bool, cell_timeout: int) -> dict:
    parent = own_memory_cgroup()
    if parent is None or os.geteuid() != 0:
        raise SystemExit("bench_memory_limit: needs Linux, root and a cgroup-v1 memory controller.")
    group = parent / f"course-{name[:2]}-{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit_mib << 20))
        (group / "memory.swappiness").write_text("0")
        with tempfile.TemporaryDirectory(prefix="bench-limit-") as out:
            result_file = Path(out) / "result.json"
            env = {**os.environ, "COURSE_FAST": "1" if fast else "0"}
            command = [sys.executable, __file__, "--inside", name, "--result", str(result_file),
                       "--cell-timeout", str(cell_timeout)]
            procs = group / "cgroup.procs"
            subprocess.run(command, env=env, preexec_fn=lambda: procs.write_text(str(os.getpid())), check=False)
            result = json.loads(result_file.read_text()) if result_file.exists() else {"error": "no result"}
        result["limit_mib"] = limit_mib
        result["cgroup_peak_mib"] = int((group / "memory.max_usage_in_bytes").read_text()) / 2**20
        result["hit_limit"] = int((group / "memory.failcnt").read_text())  # times an allocation met the limit
        oom = dict(line.split() for line in (group / "memory.oom_control").read_text().splitlines())
        result["oom_kills"] = int(oom.get("oom_kill", 0))
        return result
    finally:
        for _ in range(50):  # the group can be removed once its last process has gone
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run each notebook under a cgroup memory limit.")
    parser.add_argument("--limit-mib", type=int, default=1024)
    parser.add_argument("--notebooks", nargs="+", help="01 .. 04 (default: all four)")
    parser.add_argument("--fast", action="store_true", help="fast mode (CI's) instead of full mode")
    parser.add_argument("--cell-timeout", type=int, default=1800)
    parser.add_argument("--inside", help=argparse.SUPPRESS)  # the child run inside the group
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        result = run_notebook(REPO / "notebooks" / f"{args.inside}.ipynb", None, args.cell_timeout)
        Path(args.result).write_text(json.dumps(result))
        return 0
    names = [nb for nb in NOTEBOOKS if not args.notebooks or any(nb.startswith(n) for n in args.notebooks)]
    rows = []
    for name in names:
        r = run_limited(name, args.limit_mib, args.fast, args.cell_timeout)
        rows.append((name, r))
        print(f"bench_memory_limit: {name}: {'ok' if not r.get('error') else 'FAILED: ' + str(r['error'])[:200]}; "
              f"group peak {r['cgroup_peak_mib']:.0f} MiB of {args.limit_mib}; kernel peak RSS "
              f"{(r.get('peak_rss_kib') or 0) / 1024:.0f} MiB; {r.get('seconds', 0):.0f} s; "
              f"allocations that met the limit {r['hit_limit']}, OOM kills {r['oom_kills']}", flush=True)
    mode = "fast" if args.fast else "full"
    print(f"\n{mode} mode under a {args.limit_mib} MiB limit")
    print(f"{'notebook':34} {'result':>7} {'group peak':>11} {'kernel RSS':>11} {'seconds':>8} {'OOM kills':>10}")
    for name, r in rows:
        print(f"{name:34} {'ok' if not r.get('error') else 'failed':>7} {r['cgroup_peak_mib']:>7.0f} MiB "
              f"{(r.get('peak_rss_kib') or 0) / 1024:>7.0f} MiB {r.get('seconds', 0):>8.0f} {r['oom_kills']:>10}")
    return 1 if any(r.get("error") for _, r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
