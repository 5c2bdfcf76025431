"""Seconds per training epoch of every course recipe on this machine's device, and the time of `train all`.

Runs unchanged on CUDA, Apple MPS or the CPU (``course_utils.pick_device``; ``COURSE_DEVICE``
forces one). For each recipe of ``course_utils.recipes`` it trains ``--steps`` steps with
``course_utils.fit`` itself (the data held on the device, the recipe's batch size, learning
rate and beta, precision "auto", i.e. what ``settings.autocast_dtype`` picks there), after
a short warm-up, and times one pass of the test-set loss that ``fit`` computes after every
epoch. Recipes that share a model, batch size and precision are timed once. From these it
extrapolates seconds per epoch (60,000 images) and each recipe's training time (its epochs
x (epoch + test loss)), and sums them: ``python -m course_utils train all``, less the final
scoring of each model (label accuracy, classifier) and the loading of data. Nothing is
asserted.

    python benchmarks/bench_gpu.py                  # 50 timed steps per model
    python benchmarks/bench_gpu.py --steps 200      # steadier figures
    python benchmarks/bench_gpu.py --quick          # smoke run: 5 steps, a few recipes
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time

os.environ.setdefault("COURSE_FAST", "0")  # the full recipes, whatever CI says

import torch  # noqa: E402
from bench_common import machine_line  # noqa: E402  (this folder is on sys.path when a script in it runs)
from torch import nn  # noqa: E402

import course_utils as cu  # noqa: E402
from course_utils.cli import TRAINING_FREED_BLOCK_MIB  # noqa: E402
from course_utils.training import average_loss, precision_name, resolve_precision  # noqa: E402

WARM_UP_STEPS = 5
QUICK_NAMES = ("classifier", "ae-8", "vae", "vae-examples", "cvae-concat", "cvae-prior")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_steps(recipe: cu.Recipe, train: cu.MNISTSplit, device: torch.device, steps: int,
               model: nn.Module | None = None) -> tuple[float, nn.Module]:
    """(seconds per training step, the model) of ``steps`` steps of ``fit`` with ``recipe``, after a warm-up.

    ``model``: the model to train (default: the recipe's, built with its seed)."""
    if model is None:
        cu.seed_everything(recipe.train.seed)
        model = recipe.build()
    model = model.to(device)
    batch = recipe.train.batch_size
    short = dataclasses.replace(recipe.train, epochs=1, cosine_lr=False)
    cu.fit(model, train, None, dataclasses.replace(short, train_size=WARM_UP_STEPS * batch), progress=False)
    history = cu.fit(model, train, None, dataclasses.replace(short, train_size=steps * batch), progress=False)
    return history.seconds[0] / steps, model


def time_recipe(recipe: cu.Recipe, train: cu.MNISTSplit, test: cu.MNISTSplit, device: torch.device,
                steps: int) -> tuple[float, float]:
    """(seconds per training step, seconds of one test-loss pass) of ``recipe`` on ``device``."""
    step, model = time_steps(recipe, train, device, steps)
    dtype = resolve_precision(recipe.train, device)  # fit scores the test set in its training precision
    average_loss(model, test, recipe.train.beta, dtype=dtype)  # warm-up of the evaluation
    _sync(device)
    start = time.perf_counter()
    average_loss(model, test, recipe.train.beta, dtype=dtype)
    _sync(device)
    return step, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="timed training steps per model (default 50)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--names", nargs="*", default=None, help="only these recipes (default: all)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: 5 steps of {', '.join(QUICK_NAMES)}")
    args = parser.parse_args(argv)
    names = list(QUICK_NAMES) if args.quick else (args.names or cu.course_names())
    steps = 5 if args.quick else args.steps
    if steps < 1:
        parser.error("--steps must be at least 1")
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    device = cu.pick_device()
    cu.release_freed_memory(TRAINING_FREED_BLOCK_MIB)  # as `train` runs: freed blocks kept for reuse
    print(machine_line(device))
    train = cu.load_mnist("train", device=device)
    test = cu.load_mnist("test", device=device)
    print(f"{steps} timed steps per model after {WARM_UP_STEPS} warm-up steps; data on {device.type}\n")

    header = (f"{'recipe':26s} {'model':16s} {'batch':>5s} {'precision':>9s} {'ms/step':>8s} {'s/epoch':>8s} "
              f"{'test s':>7s} {'epochs':>6s} {'train s':>8s}")
    print(header)
    print("-" * len(header))
    timed: dict[str, tuple[float, float]] = {}
    total = 0.0
    for name in names:
        recipe = cu.course_recipe(name, fast=False)
        dtype = resolve_precision(recipe.train, device)
        key = json.dumps([recipe.model_class, dataclasses.asdict(recipe.config), recipe.train.batch_size,
                          precision_name(dtype)], sort_keys=True)
        if key not in timed:
            timed[key] = time_recipe(recipe, train, test, device, steps)
        step_s, test_s = timed[key]
        epoch_s = step_s * math.ceil(len(train) / recipe.train.batch_size)
        seconds = recipe.train.epochs * (epoch_s + test_s)
        total += seconds
        print(f"{name:26s} {recipe.model_class:16s} {recipe.train.batch_size:5d} {precision_name(dtype):>9s} "
              f"{1000 * step_s:8.2f} {epoch_s:8.2f} {test_s:7.2f} {recipe.train.epochs:6d} {seconds:8.1f}")
    print("-" * len(header))
    what = "train all" if names == cu.course_names() else f"these {len(names)} recipes"
    print(f"extrapolated {what}: {total:.0f} s = {total / 60:.1f} min of training and per-epoch test loss "
          f"({len(timed)} distinct models timed; final scoring not included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
