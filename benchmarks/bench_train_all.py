"""`train all` from scratch, model by model: training time, and each model's metric against the shipped one.

Runs ``python -m course_utils train WHAT --out FOLDER --jobs N`` into an empty folder, so that
every model trains, and times the whole command. Then, for each new checkpoint, it prints the
seconds its training took (``train_seconds``, stored in the checkpoint), its headline metric
(``course_utils.recipes.headline_metric``: accuracy, MSE per pixel, test negative ELBO or label
accuracy) and the same metric of the shipped checkpoint in ``checkpoints/``, with the difference.

    .venv/bin/python benchmarks/bench_train_all.py                      # every model, the default --jobs
    .venv/bin/python benchmarks/bench_train_all.py --jobs 1             # one model at a time
    .venv/bin/python benchmarks/bench_train_all.py --epochs 1 --jobs 1  # 1 epoch each, times extrapolated
    .venv/bin/python benchmarks/bench_train_all.py --what ae --keep build/ae-run

With ``--epochs E`` every model trains E epochs only, and its time is extrapolated to its
recipe's epochs (seconds x recipe epochs / E); the metrics are then not comparable, and the
extrapolated total is the sum over the models (the wall time of ``--jobs 1``, not of parallel
jobs). Run it on an otherwise idle machine (``uptime``); a full run with the defaults took
13 to 16 minutes on 2 idle CPU cores (796 to 932 s in three runs, the recipes at batch 256;
1,007 s before the costs around the arithmetic were cut: benchmarks/bench_overheads.py).

The CVAEs' label accuracy is scored by the shipped classifier (``recipes.load_classifier``, the
course's judge), not by the one this run trains into its folder. So copying a kept folder over
``checkpoints/`` leaves the CVAEs' stored label accuracy measured by the old judge
(tests/test_shipped_checkpoints.py then fails): replace the shipped set with
``python -m course_utils train all --out checkpoints``, where the CVAEs wait for the new judge.
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

os.environ.setdefault("COURSE_FAST", "0")

import course_utils as cu  # noqa: E402
from course_utils.cli import names_for  # noqa: E402  (the names `train WHAT` trains)
from course_utils.recipes import course_recipe, headline_metric  # noqa: E402

SHIPPED = cu.course_root() / "checkpoints"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", default="all", help="what to train: all (default), ae, or one model's name")
    parser.add_argument("--jobs", type=int, help="passed to train --jobs (default: train's own default)")
    parser.add_argument("--epochs", type=int, help="train this many epochs per model and extrapolate the times")
    parser.add_argument("--keep", type=Path, help="train into this (empty) folder and keep it (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-train-all-") as tmp:
        out = args.keep or Path(tmp) / "checkpoints"
        if out.exists() and any(out.iterdir()):
            sys.exit(f"{out} is not empty: every model must train, so give an empty or new folder")
        cmd = [sys.executable, "-m", "course_utils", "train", args.what, "--out", str(out)]
        cmd += ["--jobs", str(args.jobs)] if args.jobs else []
        cmd += ["--epochs", str(args.epochs)] if args.epochs else []
        print("$", " ".join(cmd), flush=True)
        start = time.perf_counter()
        code = subprocess.call(cmd, env={**os.environ, "CI": "1"}, cwd=cu.course_root())  # CI: no progress bars
        wall = time.perf_counter() - start
        if code != 0:
            return code
        rows = [_row(name, out, args.epochs) for name in names_for(args.what)]
    _print(rows, wall, args)
    if args.json:
        args.json.write_text(json.dumps({"wall_seconds": wall, "args": sys.argv[1:], "rows": rows}, indent=1) + "\n")
    return 0


def _row(name: str, out: Path, epochs: int | None) -> dict:
    ckpt = cu.load_checkpoint(out / f"{name}.pt")
    recipe_epochs = course_recipe(name, fast=False).train.epochs
    trained_epochs = len(ckpt.history["epoch"])
    seconds = float(ckpt.metrics["train_seconds"])
    metric = headline_metric(name)
    shipped_path = SHIPPED / f"{name}.pt"
    shipped = cu.load_checkpoint(shipped_path).metrics.get(metric) if shipped_path.exists() else None
    return {
        "name": name, "epochs": recipe_epochs, "trained_epochs": trained_epochs,
        "seconds": seconds, "extrapolated": seconds * recipe_epochs / trained_epochs if epochs else None,
        "precision": ckpt.metrics.get("precision"), "metric": metric,
        "value": float(ckpt.metrics[metric]), "shipped": None if shipped is None else float(shipped),
    }


def _print(rows: list[dict], wall: float, args: argparse.Namespace) -> None:
    print(f"\n| model | epochs | precision | training s{' (extrapolated)' if args.epochs else ''} "
          f"| metric | this run | shipped | difference |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        seconds = r["extrapolated"] if args.epochs else r["seconds"]
        diff = "" if r["shipped"] in (None, 0) else f"{100 * (r['value'] / r['shipped'] - 1):+.1f}%"
        shipped = "" if r["shipped"] is None else f"{r['shipped']:.4g}"
        print(f"| {r['name']} | {r['epochs']} | {r['precision']} | {seconds:.1f} | {r['metric']} | {r['value']:.4g} "
              f"| {shipped} | {diff} |")
    total = sum((r["extrapolated"] if args.epochs else r["seconds"]) for r in rows)
    print(f"\nsum of the models' training seconds{' (extrapolated)' if args.epochs else ''}: {total:.0f} s "
          f"({total / 60:.1f} min)")
    print(f"wall time of the train command: {wall:.0f} s ({wall / 60:.1f} min)"
          f"{'' if not args.epochs else f', for {args.epochs} epoch(s) per model'}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)")


if __name__ == "__main__":
    raise SystemExit(main())
