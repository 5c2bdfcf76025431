"""Three costs around a training step's arithmetic, each with and without its fix, measured with `fit`.

1. **glibc handing freed memory back.** By default glibc returns freed blocks of a few MiB to the
   system and maps them afresh, so every step page-faults its large tensors in again; `python -m
   course_utils train` keeps blocks below ``cli.TRAINING_FREED_BLOCK_MIB`` for reuse
   (``settings.release_freed_memory``). The setting lasts for the process, so each measurement
   runs in a fresh child process.
2. **The classifier's memory layout.** Its convolution weights are stored channels-last, which
   makes its feature maps channels-last; channels-first max pooling is several times slower on
   a CPU. Timed both ways (``--layouts``), in both allocator settings.
3. **The test loss after each epoch** (``training.average_loss``), in float32 and in the training's
   precision (``fit`` uses the latter; on a CPU with AMX or AVX-512 BF16 that is bfloat16).

Last, for scale, the speed of the arithmetic itself: GFLOP/s of one matrix product at 2048 x 2048
x 2048 and at the shape of the MLPs' first layer at batch 256, in float32 and bfloat16.

Settings take turns ``--rounds`` times in fresh processes, so that a change in the machine's load
hits all alike; the tables give medians, and the children's peak resident memory. One thread by
default, as each of `train all`'s two jobs runs on 2 cores. Nothing is asserted.

    python benchmarks/bench_overheads.py                       # about 4 minutes on 2 CPU cores
    python benchmarks/bench_overheads.py --steps 100 --rounds 5
    python benchmarks/bench_overheads.py --names vae --rounds 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    import resource  # Unix only: the children's peak memory
except ImportError:
    resource = None

os.environ.setdefault("COURSE_FAST", "0")  # the full recipes, whatever CI says

import torch  # noqa: E402
from bench_common import load_average, machine_line  # noqa: E402  (this folder is on sys.path when a script in it runs)

import course_utils as cu  # noqa: E402
from course_utils import cli, training  # noqa: E402

DEFAULT_NAMES = ("classifier", "cvae-concat", "vae", "ae-8")
WARM_UP_STEPS = 5
ALLOCATORS = ("glibc default", "kept")  # as a notebook (or any Python) runs, and as `train` runs


def child(name: str, layout: str, allocator: str, steps: int, threads: int) -> tuple[float, float]:
    """(seconds per step of ``fit`` for recipe ``name``, peak resident MiB) of this fresh process, in one setting."""
    torch.set_num_threads(threads)
    if allocator == "kept":
        cu.release_freed_memory(cli.TRAINING_FREED_BLOCK_MIB)
    recipe = cu.course_recipe(name, fast=False)
    train = cu.load_mnist("train")
    cu.seed_everything(recipe.train.seed)
    model = recipe.build()
    if layout == "channels-first":
        model = model.to(memory_format=torch.contiguous_format)
    batch = recipe.train.batch_size
    short = dataclasses.replace(recipe.train, epochs=1, cosine_lr=False)
    cu.fit(model, train, None, dataclasses.replace(short, train_size=WARM_UP_STEPS * batch), progress=False)
    history = cu.fit(model, train, None, dataclasses.replace(short, train_size=steps * batch), progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if resource else math.nan  # KiB on Linux
    return history.seconds[0] / steps, peak


def test_loss_seconds(name: str, rounds: int, threads: int) -> tuple[float, float, str]:
    """(float32 s, training precision s, that precision's name): one pass of the test loss, medians."""
    torch.set_num_threads(threads)
    recipe = cu.course_recipe(name, fast=False)
    dtype = training.resolve_precision(recipe.train, "cpu")
    model, test = recipe.build(), cu.load_mnist("test")
    times: dict[str, list[float]] = {"float32": [], "training": []}
    for _ in range(rounds + 1):  # the first round warms up
        for label, kind in (("float32", None), ("training", dtype)):
            start = time.perf_counter()
            training.average_loss(model, test, recipe.train.beta, dtype=kind)
            times[label].append(time.perf_counter() - start)
    return (statistics.median(times["float32"][1:]), statistics.median(times["training"][1:]),
            training.precision_name(dtype))


# (rows, inner, columns) of the timed matrix products: a large square one, and an MLP's first layer
MATMUL_SHAPES = ((2048, 2048, 2048), (256, 784, 512))


def matmul_gflops(rows: int, inner: int, columns: int, dtype: torch.dtype, repeats: int = 20) -> float:
    a, b = torch.randn(rows, inner).to(dtype), torch.randn(inner, columns).to(dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * rows * inner * columns * repeats / (time.perf_counter() - start) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="*", default=list(DEFAULT_NAMES), help="recipes to time")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per setting and round (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every setting (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as each job of train all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # NAME,LAYOUT,ALLOCATOR: one measurement, as JSON
    args = parser.parse_args(argv)
    if min(args.steps, args.rounds, args.threads) < 1:
        parser.error("--steps, --rounds and --threads must be at least 1")
    if args.child:
        name, layout, allocator = args.child.split(",")
        print(json.dumps(child(name, layout, allocator, args.steps, args.threads)))
        return 0
    print(machine_line(cu.pick_device()) + f" (the children run {args.threads} thread(s))")
    settings = {name: [(layout, allocator) for layout in
                       (("channels-first", "channels-last") if name == "classifier" else ("as built",))
                       for allocator in ALLOCATORS] for name in args.names}
    times: dict[tuple[str, str, str], list[float]] = {(n, *s): [] for n, ss in settings.items() for s in ss}
    peaks: dict[tuple[str, str, str], list[float]] = {key: [] for key in times}
    for _ in range(args.rounds):
        for name, ss in settings.items():
            for layout, allocator in ss:
                out = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--child", f"{name},{layout},{allocator}",
                     "--steps", str(args.steps), "--threads", str(args.threads)],
                    capture_output=True, text=True, check=True)
                seconds, peak = json.loads(out.stdout.splitlines()[-1])
                times[(name, layout, allocator)].append(seconds)
                peaks[(name, layout, allocator)].append(peak)
    print("\n| model | layout | allocator | ms per step (median) | range | speed against the first | peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, ss in settings.items():
        base = statistics.median(times[(name, *ss[0])])
        for layout, allocator in ss:
            t = times[(name, layout, allocator)]
            print(f"| {name} | {layout} | {allocator} | {1e3 * statistics.median(t):.1f} | "
                  f"{1e3 * min(t):.1f} to {1e3 * max(t):.1f} | {base / statistics.median(t):.2f}x | "
                  f"{max(peaks[(name, layout, allocator)]):,.0f} |")
    print("\n| model | test loss, float32 s | in the training's precision s | precision | speed |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.names:
        full, own, precision = test_loss_seconds(name, args.rounds, args.threads)
        print(f"| {name} | {full:.2f} | {own:.2f} | {precision} | {full / own:.2f}x |")
    torch.set_num_threads(args.threads)
    print("\n| matrix product | float32 GFLOP/s | bfloat16 GFLOP/s |")
    print("| --- | --- | --- |")
    for shape in MATMUL_SHAPES:
        speeds = [matmul_gflops(*shape, dtype) for dtype in (torch.float32, torch.bfloat16)]
        print(f"| {' x '.join(map(str, shape))} | {speeds[0]:.0f} | {speeds[1]:.0f} |")
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
