"""Peak memory of each notebook's kernel: what to give each student on a hub.

Runs each notebook top to bottom with nbclient (a fresh kernel each, started in notebooks/),
reads the kernel's peak resident set size (VmHWM in /proc/<pid>/status, Linux) after every
cell, and prints one row per notebook and mode. Beside it, the peaks of the kernel's private
memory (RssAnon, polled every 20 ms) and of its file-backed pages (RssFile: mostly torch's
shared libraries, the same pages for every kernel on a machine, and reclaimable).
The executed notebooks go to a temporary
folder; the committed ones are not touched. Fast mode trains into checkpoints/fast/ as CI does.

    .venv/bin/python benchmarks/bench_memory.py                       # full and fast mode, all four
    .venv/bin/python benchmarks/bench_memory.py --modes full --notebooks 01 04
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "classroom"))
from common import NOTEBOOKS, mib, run_notebook  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Peak kernel memory of each notebook (full and fast mode).")
    parser.add_argument("--modes", nargs="+", choices=("full", "fast"), default=["full", "fast"])
    parser.add_argument("--notebooks", nargs="+", help="01 .. 04 (default: all four)")
    parser.add_argument("--cell-timeout", type=int, default=1800)
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("bench_memory: reads /proc/<pid>/status, so it runs on Linux only.", file=sys.stderr)
        return 2
    names = [nb for nb in NOTEBOOKS if not args.notebooks or any(nb.startswith(n) for n in args.notebooks)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as out:
        for mode in args.modes:
            os.environ["COURSE_FAST"] = "1" if mode == "fast" else "0"  # the kernels inherit it
            for name in names:
                result = run_notebook(REPO / "notebooks" / f"{name}.ipynb", Path(out) / mode, args.cell_timeout)
                rows.append((mode, result))
                print(f"bench_memory: {mode} {name}: {result['seconds']:.0f} s, peak {mib(result['peak_rss_kib'])}"
                      f" (private {mib(result['peak_anon_kib'])}, shared files {mib(result['peak_file_kib'])})"
                      f"{', ERROR ' + result['error'] if result['error'] else ''}", flush=True)
    print(f"\n{'mode':5} {'notebook':34} {'seconds':>8} {'kernel peak RSS':>16} {'private':>9} {'files':>9}  result")
    for mode, r in rows:
        print(f"{mode:5} {r['notebook']:34} {r['seconds']:8.1f} {mib(r['peak_rss_kib']):>16} "
              f"{mib(r['peak_anon_kib']):>9} {mib(r['peak_file_kib']):>9}  {'error' if r['error'] else 'ok'}")
    return 1 if any(r["error"] for _, r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
