"""Seconds per epoch with Adam's vanishing moments kept and set to zero, measured with `fit`.

Adam keeps a running mean of each weight's gradient (its first moment) that shrinks by beta1 = 0.9
on every step the gradient is exactly zero: the first layer's weights from pixels that are nearly
always black, and the outgoing weights of ReLU units that stopped firing. Some 800 steps on, such
a mean lies below float32's smallest normal number (1.2e-38), and x86 CPUs do arithmetic on these
subnormal numbers many times slower. Every ``training.MOMENT_SWEEP_EVERY`` steps ``fit`` sets the
moments below ``training.MOMENT_FLOOR`` to zero (``training.zero_vanishing_moments``), before they
get there; the script times it both ways.

For each model in ``--names`` it trains ``--epochs`` epochs of the recipe (its batch size,
learning rate, beta, seed and precision "auto"; the cosine schedule, where the recipe has one,
planned over these epochs) on all 60,000 training images, in a fresh process for each run, with
the moments zeroed (as ``fit`` runs) and kept (as it ran before). The two take turns
``--rounds`` times. The table gives the median over the rounds of the mean seconds of epochs 1 to
3 and of the epochs after, their ratio, the whole run, the last epoch's training loss (the two
settings should agree) and how many of Adam's first and second moments were subnormal at the end.
Nothing is asserted.

    python benchmarks/bench_subnormals.py                       # 3 models, 6 epochs, 2 rounds: about 6 minutes
    python benchmarks/bench_subnormals.py --names vae --epochs 10 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics

os.environ.setdefault("COURSE_FAST", "0")  # the full recipes, whatever CI says

import torch  # noqa: E402
from bench_common import load_average, machine_line, run_child  # noqa: E402  (this folder is on sys.path when a script in it runs)

import course_utils as cu  # noqa: E402
from course_utils import cli, training  # noqa: E402

DEFAULT_NAMES = ("vae", "ae-8", "cvae-concat")
MODES = ("zeroed", "kept")  # as fit trains now, and as it trained before
EARLY_EPOCHS = 3  # Adam's first moments need some 800 steps (3.4 epochs at batch 256) to turn subnormal


def _left_alone(optimizer: torch.optim.Optimizer) -> None:
    """In place of ``training.zero_vanishing_moments``: as fit trained before."""


def child(name: str, mode: str, epochs: int, threads: int) -> dict[str, object]:
    """One run of ``epochs`` epochs of recipe ``name`` in this fresh process, subnormal numbers ``mode``."""
    torch.set_num_threads(threads)
    cu.release_freed_memory(cli.TRAINING_FREED_BLOCK_MIB)  # as `train` runs
    if mode == "kept":
        training.zero_vanishing_moments = _left_alone  # fit looks the name up when it runs
    optimizers: list[torch.optim.Optimizer] = []
    build_adam = training.adam

    def recording_adam(*args: object, **kwargs: object) -> torch.optim.Optimizer:
        optimizers.append(build_adam(*args, **kwargs))
        return optimizers[-1]

    training.adam = recording_adam
    recipe = cu.course_recipe(name, fast=False)
    cu.seed_everything(recipe.train.seed)
    model = recipe.build()
    config = dataclasses.replace(recipe.train, epochs=epochs)
    history = cu.fit(model, cu.load_mnist("train"), None, config, progress=False)
    moments = [state[key] for state in optimizers[-1].state.values() for key in ("exp_avg", "exp_avg_sq")]
    subnormal = sum(training.count_subnormal(m) for m in moments)
    return {"seconds": history.seconds, "train_loss": history.train_loss[-1], "subnormal": subnormal,
            "moments": sum(m.numel() for m in moments)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="*", default=list(DEFAULT_NAMES), help="recipes to train")
    parser.add_argument("--epochs", type=int, default=6, help=f"epochs per run (default 6; more than {EARLY_EPOCHS})")
    parser.add_argument("--rounds", type=int, default=2, help="turns of both settings (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as each job of train all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # NAME,MODE: one run, as JSON
    args = parser.parse_args(argv)
    if args.epochs <= EARLY_EPOCHS or min(args.rounds, args.threads) < 1:
        parser.error(f"--epochs must be more than {EARLY_EPOCHS}; --rounds and --threads at least 1")
    if args.child:
        name, mode = args.child.split(",")
        print(json.dumps(child(name, mode, args.epochs, args.threads)))
        return 0
    print(machine_line(cu.pick_device()) + f" (the children run {args.threads} thread(s))")
    runs: dict[tuple[str, str], list[dict]] = {(n, m): [] for n in args.names for m in MODES}
    for r in range(args.rounds):
        for name in args.names:
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                child_args = ["--child", f"{name},{mode}", "--epochs", str(args.epochs), "--threads", str(args.threads)]
                runs[(name, mode)].append(run_child(__file__, child_args, f"run of {name} ({mode})"))
                print(f"round {r + 1}, {name}, {mode}: seconds per epoch "
                      f"{', '.join(f'{s:.2f}' for s in runs[(name, mode)][-1]['seconds'])}", flush=True)
    print(f"\n| model | vanishing moments | epochs 1-{EARLY_EPOCHS}, s each "
          f"| epochs {EARLY_EPOCHS + 1}-{args.epochs}, s each | later / early | whole run s "
          f"| speed of the whole run | last train loss | subnormal moments |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.names:
        whole = {m: statistics.median(sum(run["seconds"]) for run in runs[(name, m)]) for m in MODES}
        for mode in MODES:
            done = runs[(name, mode)]
            early = statistics.median(statistics.mean(run["seconds"][:EARLY_EPOCHS]) for run in done)
            later = statistics.median(statistics.mean(run["seconds"][EARLY_EPOCHS:]) for run in done)
            print(f"| {name} | {mode} | {early:.2f} | {later:.2f} | {later / early:.2f}x | {whole[mode]:.1f} | "
                  f"{whole['kept'] / whole[mode]:.2f}x | {done[-1]['train_loss']:.4g} | "
                  f"{done[-1]['subnormal']:,} of {done[-1]['moments']:,} |")
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
