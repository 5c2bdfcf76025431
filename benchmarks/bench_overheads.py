"""Three costs around a training step's arithmetic, each with and without its fix, measured with `fit`.

1. **glibc handing freed memory back.** By default glibc returns freed blocks of a few MiB to the
   system and maps them afresh, so every step page-faults its large tensors in again; `python -m
   course_utils train` keeps blocks below ``cli.TRAINING_FREED_BLOCK_MIB`` for reuse
   (``settings.release_freed_memory``). The setting lasts for the process, so each measurement
   runs in a fresh child process.
2. **The classifier's memory layout.** Its convolution weights are stored channels-last, which
   makes its feature maps channels-last; channels-first max pooling is about twice as slow on
   a CPU. Timed both ways, in both allocator settings.
3. **The test loss after each epoch** (``training.average_loss``), in float32 and in the training's
   precision (``fit`` uses the latter; on a CPU with AMX or AVX-512 BF16 that is bfloat16).

Last, for scale: the classifier's first max pooling alone in both layouts, in the precision it
trains in here; the share of each model's CPU time spent in matrix products and convolutions
(``torch.profiler`` over ``fit``); and
the speed of the arithmetic itself, GFLOP/s of one matrix product at 2048 x 2048 x 2048 and at the
shape of the MLPs' first layer at batch 256, in float32 and bfloat16. The test-loss and later
figures are measured with freed memory kept, as `train` runs.

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
import time
from typing import NamedTuple

try:
    import resource  # Unix only: the children's peak memory
except ImportError:
    resource = None

os.environ.setdefault("COURSE_FAST", "0")  # the full recipes, whatever CI says

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_common import load_average, machine_line, matmul_table, run_child, seconds_per_call  # noqa: E402  (this folder is on sys.path when a script in it runs)
from bench_gpu import time_steps  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import course_utils as cu  # noqa: E402
from course_utils import cli, training  # noqa: E402

DEFAULT_NAMES = ("classifier", "cvae-concat", "vae", "ae-8")
ALLOCATORS = ("glibc default", "kept")  # as a notebook (or any Python) runs, and as `train` runs


def child(name: str, layout: str, allocator: str, steps: int, threads: int) -> tuple[float, float]:
    """(seconds per step of ``fit`` for recipe ``name``, peak resident MiB) of this fresh process, in one setting."""
    torch.set_num_threads(threads)
    if allocator == "kept":
        cu.release_freed_memory(cli.TRAINING_FREED_BLOCK_MIB)
    recipe = cu.course_recipe(name, fast=False)
    cu.seed_everything(recipe.train.seed)
    model = recipe.build()
    if layout == "channels-first":
        model = model.to(memory_format=torch.contiguous_format)
    step, _ = time_steps(recipe, cu.load_mnist("train"), torch.device("cpu"), steps, model)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if resource else math.nan  # KiB on Linux
    return step, peak


class TestLoss(NamedTuple):
    float32_s: float  # one pass of the test loss in float32 (median)
    own_s: float  # the same in the training's precision
    precision: str  # that precision
    relative_difference: float  # |own - float32| / float32 of the loss, on the shipped checkpoint


def test_loss(name: str, rounds: int, threads: int) -> TestLoss:
    """One pass of the test loss of ``name`` in float32 and in its training precision, on the shipped
    checkpoint (an untrained model where there is none)."""
    torch.set_num_threads(threads)
    recipe = cu.course_recipe(name, fast=False)
    dtype = training.resolve_precision(recipe.train, "cpu")
    path = cu.settings.shipped_checkpoint_dir() / f"{name}.pt"
    model, test = (cu.load_checkpoint(path).model if path.exists() else recipe.build()), cu.load_mnist("test")
    times: dict[str, list[float]] = {"float32": [], "training": []}
    losses = {}
    for _ in range(rounds + 1):  # the first round warms up
        for label, kind in (("float32", None), ("training", dtype)):
            start = time.perf_counter()
            losses[label] = training.average_loss(model, test, recipe.train.beta, dtype=kind)[0]
            times[label].append(time.perf_counter() - start)
    return TestLoss(statistics.median(times["float32"][1:]), statistics.median(times["training"][1:]),
                    training.precision_name(dtype), abs(losses["training"] - losses["float32"]) / losses["float32"])


def pooling_ms(memory_format: torch.memory_format, dtype: torch.dtype) -> float:
    """Milliseconds of the classifier's first 2 x 2 max pooling, forward and backward, at batch 256 in
    ``dtype``, over feature maps in ``memory_format``."""
    maps = torch.randn(256, 32, 28, 28).to(dtype).contiguous(memory_format=memory_format)
    maps.requires_grad_(True)
    grad = torch.randn(256, 32, 14, 14).to(dtype)
    return 1e3 * seconds_per_call(lambda: F.max_pool2d(maps, 2).backward(grad))


def matmul_share(name: str, steps: int) -> float:
    """Share of the CPU time of ``steps`` steps of ``fit`` (recipe ``name``) spent in matrix products."""
    recipe = cu.course_recipe(name, fast=False)
    model, train = recipe.build(), cu.load_mnist("train")
    config = dataclasses.replace(recipe.train, epochs=1, cosine_lr=False, train_size=steps * recipe.train.batch_size)
    cu.fit(model, train, None, config, progress=False)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        cu.fit(model, train, None, config, progress=False)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / total


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
              "aten::convolution_backward")
# (rows, inner, columns) of the timed matrix products: a large square one, and an MLP's first layer
MATMUL_SHAPES = ((2048, 2048, 2048), (256, 784, 512))


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
                seconds, peak = run_child(
                    __file__, ["--child", f"{name},{layout},{allocator}", "--steps", str(args.steps),
                               "--threads", str(args.threads)], f"measurement of {name} ({layout}, {allocator})")
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
    cu.release_freed_memory(cli.TRAINING_FREED_BLOCK_MIB)  # from here on, as `train` runs
    print("\n| model | test loss, float32 s | in the training's precision s | precision | speed | rel. difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.names:
        t = test_loss(name, args.rounds, args.threads)
        print(f"| {name} | {t.float32_s:.2f} | {t.own_s:.2f} | {t.precision} | {t.float32_s / t.own_s:.2f}x | "
              f"{t.relative_difference:.1e} |")
    torch.set_num_threads(args.threads)
    # in the precision the classifier trains in here (bfloat16 only on a CPU with bfloat16 hardware)
    pool_dtype = training.resolve_precision(cu.course_recipe("classifier", fast=False).train, "cpu") or torch.float32
    first, last = pooling_ms(torch.contiguous_format, pool_dtype), pooling_ms(torch.channels_last, pool_dtype)
    print(f"\nthe classifier's first max pooling, forward and backward (batch 256, "
          f"{training.precision_name(pool_dtype)}): channels-first "
          f"{first:.1f} ms, channels-last {last:.1f} ms ({first / last:.1f}x)")
    for name in args.names:
        print(f"share of {name}'s CPU time in matrix products and convolutions ({args.steps} steps of fit, "
              f"torch.profiler): {100 * matmul_share(name, args.steps):.0f}%")
    matmul_table(MATMUL_SHAPES)
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
