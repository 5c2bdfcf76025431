"""``python -m course_utils``: train the course's models before class, or score one.

    python -m course_utils train all              # every model the notebooks use
    python -m course_utils train vae --epochs 5   # one model, other settings
    python -m course_utils train all --out checkpoints   # replace the shipped checkpoints
    python -m course_utils train all --jobs 1     # one model at a time (default on a CPU: 2 at once)
    python -m course_utils evaluate checkpoints/vae.pt

Trained models go to checkpoints/trained/ (checkpoints/fast/ in fast mode; the per-user
cache when the course folder is read-only), never over the shipped checkpoints/ unless
--out names that folder. The notebooks load what is there first.

Every mistake the course can name (a bad COURSE_* variable, a damaged data file or
checkpoint, a folder it cannot write to) is one line "python -m course_utils: error: ..."
and exit code 2; Ctrl-C says in one line what was kept, with exit code 130.

The package, in layers (each imports only those before it): settings, data, losses, checks,
models, checkpoints, training, metrics, recipes (named models, train-or-load),
plotting, explorers (widgets), lessons/nb01..nb04 (one per notebook), solutions.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import CheckpointError, check_destination, load_checkpoint
from .metrics import evaluate
from .recipes import AE_LATENT_SIZES, Recipe, course_names, course_recipe, load_classifier, train_or_load
from .settings import CourseError, checkpoint_dir, course_root, pick_device, release_freed_memory

PROG = "python -m course_utils"

GROUPS = {
    "ae": "the autoencoders of notebook 01 (one per bottleneck size)",
    "vae": "notebook 02's VAE",
    "cvae-concat": "notebook 03's CVAE, label concatenated",
    "cvae-project": "notebook 03's CVAE, label projection added to z",
    "cvae-prior": "notebook 03's CVAE with a learned prior per label",
    "classifier": "the CNN that judges generated digits",
    "all": "every model the four notebooks use",
}


class _Formatter(argparse.HelpFormatter):
    """Wraps help text only at spaces, so that a name such as cvae-prior is never cut at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit code 2
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser("train", help="train models and save checkpoints", formatter_class=_Formatter,
                           description="Train course models and save them as checkpoints.")
    train.add_argument("what", choices=[*GROUPS, *course_names()], metavar="WHAT",
                       help="; ".join(f"{k}: {v}" for k, v in GROUPS.items()) + "; or one model's name (vae-2d, ...)")
    train.add_argument("--epochs", type=_positive, help="override the number of epochs")
    train.add_argument("--latent-dim", type=_positive, help="override the latent size (not for 'all')")
    train.add_argument("--seed", type=_non_negative, help="override the random seed")
    train.add_argument("--out", type=Path,
                       help="folder for the checkpoints (default: checkpoints/trained, or checkpoints/fast "
                            "in fast mode; give --out checkpoints to replace the shipped ones)")
    train.add_argument("--fast", action="store_true", help="fast mode: a small subset, few epochs")
    train.add_argument("--jobs", type=_positive,
                       help="models trained at once, each in its own process with an equal share of the CPU "
                            "cores (default: 2 on a CPU with 2 or more cores, 1 on a GPU)")
    ev = sub.add_parser("evaluate", help="print a checkpoint's test metrics", formatter_class=_Formatter,
                        description="Print the test metrics of a saved checkpoint.")
    ev.add_argument("path", type=Path, help="a .pt file written by train or train_or_load")
    ev.add_argument("--importance-samples", type=_non_negative, default=0,
                    help="also estimate -log p(x) with this many importance samples (VAE, CVAE)")
    return parser


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def names_for(what: str) -> list[str]:
    """The model names ``train WHAT`` trains, in training order: every one for "all", the
    autoencoders for "ae", else the one name given."""
    if what == "all":
        return course_names()
    if what == "ae":
        return [f"ae-{k}" for k in AE_LATENT_SIZES]
    return [what]


def _fail(message: str) -> int:
    """Print ``message`` as one line on stderr; exit code 2."""
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


class _Progress:
    """What ``train`` has done so far, for the line Ctrl-C prints."""

    def __init__(self, names: list[str]):
        self.names = names
        self.saved: list[tuple[str, str]] = []  # (name, path) of every checkpoint written by this run
        self.loaded: list[str] = []  # names whose matching checkpoint was already there
        self.running: list[str] = []  # names being trained or loaded now

    def finished(self, name: str, loaded: bool, path: Path) -> None:
        """``name`` is done: loaded as it was, or trained and saved at ``path``."""
        if name in self.running:
            self.running.remove(name)
        if loaded:
            self.loaded.append(name)
        else:
            self.saved.append((name, _short(path)))

    def interrupted(self) -> str:
        parts = []
        if self.running:
            verb = "was" if len(self.running) == 1 else "were"
            again = "it" if len(self.running) == 1 else "them"
            parts.append(f"{' and '.join(self.running)} {verb} not saved (the next run trains {again} again)")
        kept = ", ".join(f"{name} ({path})" for name, path in self.saved)
        parts.append(f"kept: {kept}" if kept else "no checkpoint was written by this run")
        if self.loaded:
            parts.append(f"already there and untouched: {', '.join(self.loaded)}")
        done = {*self.loaded, *(name for name, _ in self.saved), *self.running}
        left = [n for n in self.names if n not in done]
        if left:
            parts.append(f"not started: {', '.join(left)}")
        return "; ".join(parts)


def _short(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(course_root()))
    except (ValueError, CourseError):
        return str(path)


# Training processes keep up to this much freed memory for reuse (settings.release_freed_memory;
# blocks of 32 MiB or more are still mapped on their own). glibc's default hands freed blocks of a
# few MiB back to the system and maps them afresh, so each step page-faults its large tensors in
# again: with it, a step of the classifier (channels-last weights, one thread) took 78 to 93 ms
# against 45 to 64 ms (three runs of benchmarks/bench_overheads.py); the MLPs' steps, with smaller
# tensors, did not move beyond the noise (0.80x to 1.20x), nor did peak memory. Not in the notebooks:
# there memory counts more, and they call settings.release_freed_memory with its default of 16 MiB.
TRAINING_FREED_BLOCK_MIB = 128


def _train(args: argparse.Namespace, progress: _Progress) -> int:
    release_freed_memory(TRAINING_FREED_BLOCK_MIB)
    if args.latent_dim is not None and args.what in ("all", "ae", "classifier"):
        return _fail(f"--latent-dim cannot be used with '{args.what}'")
    out = args.out if args.out is not None else checkpoint_dir()
    try:
        check_destination(out)  # before training: a bad --out fails now, not after the training
    except CheckpointError as err:
        return _fail(f"{err} (--out FOLDER)")
    recipes = {}
    for name in progress.names:
        recipe = course_recipe(name, fast=args.fast or None)
        train_changes = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
        if train_changes:
            recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, **train_changes))
        if args.latent_dim is not None:
            config = dataclasses.replace(recipe.config, latent_dim=args.latent_dim)
            recipe = dataclasses.replace(recipe, config=config)
        recipes[name] = recipe
    jobs, threads = plan_jobs(len(recipes), pick_device().type, os.cpu_count() or 1, args.jobs)
    if jobs == 1:
        for name, recipe in recipes.items():
            progress.running = [name]
            trained = train_or_load(name, recipe, directory=out)
            progress.finished(name, trained.loaded, trained.path)
        return 0
    print(f"training {len(recipes)} models, {jobs} at a time, {threads} CPU thread(s) each (--jobs 1: one at a time)",
          flush=True)
    return _train_in_parallel(recipes, out, jobs, threads, progress)


# ----------------------------------------------------------------------------- several models at once
# On a CPU, two models trained side by side, one thread each, do more work per second than one
# model on both cores: on 2 cores, `train all` in float32 took 1,972 s with 2 jobs against 2,581 s
# one at a time (1.31x; benchmarks/bench_train_all.py, figures in the README).
DEFAULT_CPU_JOBS = 2


def plan_jobs(models: int, device_type: str, cores: int, asked: int | None = None) -> tuple[int, int]:
    """(models trained at once, torch threads each) for ``models`` models on this machine.

    ``asked`` (--jobs) wins; by default a CPU with 2 or more cores trains DEFAULT_CPU_JOBS models
    at once and a GPU one (the models would only queue for it). The cores are shared equally.
    """
    if asked is not None:
        jobs = asked
    else:
        jobs = DEFAULT_CPU_JOBS if device_type == "cpu" and cores >= 2 else 1
    jobs = max(1, min(jobs, models))
    return jobs, max(1, cores // jobs)


def _train_job(name: str, recipe: Recipe, out: Path, threads: int) -> tuple[bool, Path]:
    """One model in a worker process: (loaded, path)."""
    torch.set_num_threads(threads)
    trained = train_or_load(name, recipe, directory=out, progress=False)
    return trained.loaded, trained.path


def _start_worker() -> None:
    release_freed_memory(TRAINING_FREED_BLOCK_MIB)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    # tqdm's default lock is a multiprocessing semaphore that a stopped worker cannot free (Python then
    # warns of a leaked semaphore at exit); the bars are off in the workers, so a thread lock will do
    tqdm.set_lock(threading.RLock())
    for stream in (sys.stdout, sys.stderr):  # whole lines, in the order the workers finish them
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)


def _train_in_parallel(recipes: dict[str, Recipe], out: Path, jobs: int, threads: int, progress: _Progress) -> int:
    """Train ``recipes`` ``jobs`` at a time: the classifier first, then the most epochs first. A
    conditional model (the classifier scores it) starts only once this run's classifier is saved."""
    waiting = sorted(recipes, key=lambda n: (n != "classifier", -recipes[n].train.epochs))
    conditional = {n for n, recipe in recipes.items() if recipe.build().conditional}
    classifier_pending = "classifier" in recipes
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker, on every system
    pool = context.Pool(jobs, initializer=_start_worker)
    running: dict[str, multiprocessing.pool.AsyncResult] = {}
    try:
        while waiting or running:
            while len(running) < jobs:
                ready = [n for n in waiting if not (classifier_pending and n in conditional)]
                if not ready:
                    break
                name = ready[0]
                waiting.remove(name)
                running[name] = pool.apply_async(_train_job, (name, recipes[name], out, threads))
                progress.running = list(running)
            finished = [n for n, result in running.items() if result.ready()]
            if not finished:
                time.sleep(0.1)
                continue
            for name in finished:
                loaded, path = running.pop(name).get()  # a worker's CourseError is raised again here
                progress.finished(name, loaded, path)
                classifier_pending &= name != "classifier"
    except BaseException:
        pool.terminate()  # stops any worker still training (Ctrl-C, or another model's error)
        pool.join()
        raise
    pool.close()
    pool.join()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if not args.path.is_file():
        return _fail(f"no checkpoint file at {args.path}")
    ckpt = load_checkpoint(args.path, device=pick_device())
    model = ckpt.model
    k = args.importance_samples if model.variational else 0
    classifier = load_classifier(pick_device()) if model.conditional else None
    metrics = evaluate(model, importance_samples=k, classifier=classifier)
    print(f"{args.path}: {type(ckpt.model).__name__} {dataclasses.asdict(ckpt.model.config)}")
    for key, value in metrics.items():
        print(f"  {key:16s} {value:.6g}")
    return 0


@contextlib.contextmanager
def _fast_mode(on: bool) -> Iterator[None]:
    """``--fast`` wins over any COURSE_FAST (even one the course cannot read), for this command only."""
    saved = os.environ.get("COURSE_FAST")
    if on:
        os.environ["COURSE_FAST"] = "1"
    try:
        yield
    finally:
        if on and saved is None:
            os.environ.pop("COURSE_FAST", None)
        elif on:
            os.environ["COURSE_FAST"] = saved


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error the course raises on purpose is one line and exit code 2."""
    args = build_parser().parse_args(argv)
    progress = _Progress(names_for(args.what) if args.command == "train" else [])
    try:
        with _fast_mode(args.command == "train" and args.fast):
            return _train(args, progress) if args.command == "train" else _evaluate(args)
    except CourseError as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        told = progress.interrupted() if args.command == "train" else "nothing was written"
        print(f"{PROG}: interrupted: {told}", file=sys.stderr)
        return 130
