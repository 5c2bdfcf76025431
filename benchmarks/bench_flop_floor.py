"""The arithmetic floor of `train all`: its matrix products and convolutions at this machine's best rate.

For each recipe it counts the floating-point operations of one training step (the forward and
backward pass of the model's own loss at the recipe's batch size, counted by
``torch.utils.flop_counter.FlopCounterMode``: matrix products and convolutions only, so the
elementwise work and Adam count as free) and of one image's pass of the test loss that ``fit``
computes after every epoch, and multiplies them by the recipe's steps and epochs. Then it times
this machine's matrix products on one thread (each of `train all`'s jobs runs one) in float32
and bfloat16, at a large square shape and at the MLPs' own layer shapes, and divides: the
seconds `train all` would take if every counted operation ran at the fastest rate measured,
``--jobs`` models at a time with no idle core, and nothing else cost anything. No run can be
faster; how far a real one is above it is the cost of everything else.

    .venv/bin/python benchmarks/bench_flop_floor.py                              # under a minute
    .venv/bin/python benchmarks/bench_flop_floor.py --compare build/run31.json   # beside a measured run
    .venv/bin/python benchmarks/bench_flop_floor.py --gflops 450                 # at a given rate instead

``--compare`` takes the JSON that ``bench_train_all.py --json`` writes and prints each model's
measured ``train_seconds`` beside its floor. ``--gflops R`` replaces the measured rate by R
GFLOP/s per thread (for another machine's figure); the final scoring of each model (label
accuracy, the classifier's test accuracy) is not counted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable

os.environ.setdefault("COURSE_FAST", "0")  # the full recipes, whatever CI says

import torch  # noqa: E402
from bench_common import machine_line, matmul_table  # noqa: E402  (this folder is on sys.path when a script in it runs)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import course_utils as cu  # noqa: E402
from course_utils.training import precision_name, resolve_precision  # noqa: E402

TEST_IMAGES = 10_000  # fit's test loss after every epoch covers the whole test split
# (rows, inner, columns) of the timed products: a large square one, and the MLPs' layers at batch 256
MATMUL_SHAPES = ((2048, 2048, 2048), (256, 784, 512), (256, 512, 256), (256, 512, 784))


def counted_flops(work: Callable[[], object]) -> int:
    """Floating-point operations of the matrix products and convolutions that ``work()`` runs."""
    with FlopCounterMode(display=False) as counter:
        work()
    return counter.get_total_flops()


def recipe_flops(recipe: cu.Recipe, train: cu.MNISTSplit) -> dict[str, float]:
    """Counted FLOPs of one training step at the recipe's batch, and of one test image's loss."""
    cu.seed_everything(recipe.train.seed)
    model = recipe.build()
    batch = recipe.train.batch_size
    x, y = train.x[:batch], train.y[:batch]
    model.train()
    step = counted_flops(lambda: model.loss(x, y, recipe.train.beta)[0].backward())
    model.eval()
    with torch.no_grad():
        test_batch = counted_flops(lambda: model.loss(x, y, recipe.train.beta))
    return {"step": float(step), "test_image": test_batch / batch}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="models trained at once, one thread each (default 2)")
    parser.add_argument("--names", nargs="*", default=None, help="only these recipes (default: all)")
    parser.add_argument("--compare", help="a bench_train_all.py --json file: measured seconds beside the floor")
    parser.add_argument("--gflops", type=float, default=None,
                        help="this rate (GFLOP/s per thread) instead of the measured one")
    args = parser.parse_args(argv)
    if args.jobs < 1 or (args.gflops is not None and args.gflops <= 0):
        parser.error("--jobs must be at least 1 and --gflops above 0")
    torch.set_num_threads(1)
    device = torch.device("cpu")
    print(machine_line(device) + " (products timed on 1 thread, as each job of train all runs)")
    names = args.names or cu.course_names()
    measured: dict[str, float] = {}
    if args.compare:
        with open(args.compare) as f:
            measured = {row["name"]: row["seconds"] for row in json.load(f)["rows"]}

    best = matmul_table(MATMUL_SHAPES)

    def rate(recipe: cu.Recipe) -> float:  # FLOP/s: the given rate, or the best product in its precision
        if args.gflops is not None:
            return 1e9 * args.gflops
        return 1e9 * best[resolve_precision(recipe.train, device) or torch.float32]

    source = f"{args.gflops:g} GFLOP/s given" if args.gflops is not None else (
        "each recipe at the best rate above in the precision it trains in: "
        + ", ".join(f"{precision_name(d)} {r:.0f} GFLOP/s" for d, r in best.items()))

    train = cu.load_mnist("train")
    header = (f"{'recipe':26s} {'GFLOP/step':>10s} {'epochs':>6s} {'TFLOP':>7s} {'floor s':>8s}"
              + (f" {'measured s':>10s} {'floor/meas.':>11s}" if measured else ""))
    print(f"\nat {source}\n\n{header}\n{'-' * len(header)}")
    total_flops = total_floor = total_measured = 0.0
    for name in names:
        recipe = cu.course_recipe(name, fast=False)
        flops = recipe_flops(recipe, train)
        steps = math.ceil((recipe.train.train_size or len(train)) / recipe.train.batch_size)
        whole = recipe.train.epochs * (steps * flops["step"] + TEST_IMAGES * flops["test_image"])
        floor = whole / rate(recipe)
        total_flops += whole
        total_floor += floor
        line = (f"{name:26s} {flops['step'] / 1e9:10.2f} {recipe.train.epochs:6d} {whole / 1e12:7.1f} "
                f"{floor:8.1f}")
        if name in measured:
            total_measured += measured[name]
            line += f" {measured[name]:10.1f} {floor / measured[name]:11.2f}"
        print(line)
    print("-" * len(header))
    wall = total_floor / args.jobs
    what = "train all" if names == cu.course_names() else f"these {len(names)} recipe(s)"
    print(f"sum: {total_flops / 1e12:.1f} TFLOP, {total_floor:.0f} s on one thread; with {args.jobs} jobs "
          f"the floor of the wall time of {what} is {wall:.0f} s ({wall / 60:.1f} min)")
    if measured:
        print(f"the measured run: its models' seconds sum to {total_measured:.0f} s, "
              f"{total_floor / total_measured:.2f} of it the floor")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
