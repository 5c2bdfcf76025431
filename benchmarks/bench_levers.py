"""Milliseconds per training step of the course's models under each speed lever, measured with `fit`.

For each model (``--names``, default four that cover every architecture) it trains ``--steps``
steps with ``course_utils.fit`` itself (``bench_gpu.time_steps``, after its warm-up), on MNIST
held on the device, in each of these settings:

- ``b128 fp32 foreach``: the recipe's batch 128 in float32 with torch's default Adam (the
  "foreach" implementation: several passes over the parameters per step);
- ``b128 fp32 fused``: the same with Adam's fused implementation (``fit``'s choice on CPU and CUDA);
- ``b128 bf16 fused, scans``: bfloat16 autocast at batch 128, with the models' input checks
  scanning every batch's values (``fit`` before it checked its data set once; each scan is one
  host synchronisation, which costs most on a GPU);
- ``b128 bf16 fused``: bfloat16 autocast at batch 128, as ``fit`` runs it;
- ``b512 fp32 fused`` and ``b512 bf16 fused``: batch 512 (per image, the figure to compare).

The settings take turns, ``--rounds`` times, so that a change in the machine's load hits all
alike; the table gives the median milliseconds per step, microseconds per image, and the speed
per image against the first setting. Only speed: what a larger batch or bfloat16 costs in
quality is in the README (Benchmarks, "Training speed"). Nothing is asserted.

    python benchmarks/bench_levers.py                       # 4 models, 60 steps x 3 rounds, about 2 minutes
    python benchmarks/bench_levers.py --threads 1           # one core (a machine shared with other jobs)
    python benchmarks/bench_levers.py --names vae --steps 200
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("COURSE_FAST", "0")  # the full recipes, whatever CI says

import torch  # noqa: E402
from bench_common import load_average, machine_line  # noqa: E402  (this folder is on sys.path when a script in it runs)
from bench_gpu import time_steps  # noqa: E402

import course_utils as cu  # noqa: E402
from course_utils import training  # noqa: E402

# (label, batch size, precision, fused Adam, value scans on every batch)
SETTINGS = (
    ("b128 fp32 foreach", 128, "float32", False, False),
    ("b128 fp32 fused", 128, "float32", True, False),
    ("b128 bf16 fused, scans", 128, "bfloat16", True, True),
    ("b128 bf16 fused", 128, "bfloat16", True, False),
    ("b512 fp32 fused", 512, "float32", True, False),
    ("b512 bf16 fused", 512, "bfloat16", True, False),
)
DEFAULT_NAMES = ("vae", "ae-8", "cvae-concat", "classifier")


@contextmanager
def adam_kind(fused: bool, scans: bool) -> Iterator[None]:
    """fit with fused Adam (its own choice on CPU and CUDA) or with torch's default Adam; with
    ``scans``, fit treats its data as unchecked, so the models' input checks scan every batch."""
    kept_devices, kept_clean = training.FUSED_ADAM_DEVICES, training._values_clean
    training.FUSED_ADAM_DEVICES = kept_devices if fused else ()
    if scans:
        training._values_clean = lambda data: False
    try:
        yield
    finally:
        training.FUSED_ADAM_DEVICES, training._values_clean = kept_devices, kept_clean


def step_seconds(name: str, batch: int, precision: str, fused: bool, scans: bool, train: cu.MNISTSplit,
                 steps: int, device: torch.device) -> float:
    """Seconds per step of ``steps`` steps of ``fit`` for recipe ``name`` in one setting (bench_gpu's timer)."""
    recipe = cu.course_recipe(name, fast=False)
    recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, batch_size=batch, precision=precision))
    with adam_kind(fused, scans):
        return time_steps(recipe, train, device, steps)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="*", default=list(DEFAULT_NAMES), help="recipes to time")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per setting and round (default 60)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every setting (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if min(args.steps, args.rounds) < 1:
        parser.error("--steps and --rounds must be at least 1")
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    device = cu.pick_device()
    print(machine_line(device))
    print(f"what precision 'auto' autocasts to at the course's batch 128 here: "
          f"{cu.settings.autocast_dtype(device, 128)}")
    train = cu.load_mnist("train", device=device)
    print("\n| model | setting | ms per step | us per image | speed per image |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.names:
        times: dict[str, list[float]] = {label: [] for label, *_ in SETTINGS}
        for _ in range(args.rounds):
            for label, batch, precision, fused, scans in SETTINGS:
                times[label].append(step_seconds(name, batch, precision, fused, scans, train, args.steps, device))
        base = statistics.median(times[SETTINGS[0][0]]) / SETTINGS[0][1]
        for label, batch, *_ in SETTINGS:
            step = statistics.median(times[label])
            print(f"| {name} | {label} | {1e3 * step:.2f} | {1e6 * step / batch:.1f} | {base / (step / batch):.2f}x |")
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
