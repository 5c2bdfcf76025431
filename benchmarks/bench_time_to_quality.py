"""Wall time to a given test negative ELBO: the seeds' way of training a VAE against the course's.

Both ways train pytorch/examples' VAE (MLP 784-400-20 with ReLU, Bernoulli likelihood,
Adam) from the same initial weights:

(a) the seeds' way: ``torchvision.datasets.MNIST`` over the course's files with a per-image
    ``ToTensor()`` and ``DataLoader(batch_size=128, shuffle=True)``, torch's default Adam, lr 1e-3, float32,
    loss summed over the batch as pytorch/examples does;
(b) the course's way: MNIST as ``course_utils`` tensors on the device, ``course_utils.batches``,
    the Adam of ``course_utils.fit`` (``training.adam``: fused on CPU and CUDA),
    the recipes' batch with a matching learning rate (default 256 and 3e-3, planned as
    ``--course-cosine`` 14 epochs decayed to 0 along a cosine, as ``fit``'s ``cosine_lr``; 0: a
    constant rate) and the autocast
    precision ``course_utils.settings.autocast_dtype`` picks (bfloat16 on a CPU with AMX or
    AVX-512 BF16 at batch >= 128, float32 on other CPUs), loss per image (``model.loss``).

After every epoch each model is scored on the test set (negative ELBO in nats per image,
``training.average_loss`` with pinned noise, in float32; not counted in the wall time). The
epochs of the two ways alternate, so that a change in the machine's load hits both alike.
(a) trains ``--epochs`` epochs; (b) trains until it has reached the target and (a)'s last
value, or for its planned ``--course-cosine`` epochs (at a constant rate: ``--max-course-epochs``).
Nothing is asserted: the script prints each way's curve
and a table of the wall time to first reach the target (default 105.6 nats, what the seeds'
way reaches after 10 epochs) and to reach (a)'s own last value, with the ratio (a)/(b).

    python benchmarks/bench_time_to_quality.py                 # about 2-3 minutes on 2 CPU cores
    python benchmarks/bench_time_to_quality.py --quick         # 2-epoch smoke run on a subset
    python benchmarks/bench_time_to_quality.py --target 104 --epochs 15 --threads 1
    python benchmarks/bench_time_to_quality.py --course-cosine 0    # the course's way at a constant rate
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
from collections.abc import Callable, Iterable

import torch
import torchvision
from bench_common import load_average, machine_line  # this folder is on sys.path when a script in it runs
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import ToTensor

import course_utils as cu
from course_utils import training
from course_utils.training import PRECISIONS, average_loss, precision_name, resolve_precision

SEEDS_BATCH, SEEDS_LR = 128, 1e-3
# The course's way, measured on 2026-12-03 on a 2-core CPU without bfloat16 hardware (float32):
# the recipes' batch at 3e-3 planned over 14 epochs reached 105.6 nats at epoch 9 (3.81x, 3.86x);
# batch 512 at 4e-3 over 18 epochs, the earlier default, at epoch 15 (2.79x, 2.87x). README, Benchmarks.
COURSE_BATCH, COURSE_LR, COURSE_COSINE_EPOCHS = cu.recipes.BATCH, 3e-3, 14
HIDDEN, LATENT = 400, 20
SEED = 0
QUICK_TRAIN, QUICK_TEST = 6000, 2000  # --quick: the first images of each split


def make_model(device: torch.device) -> cu.VAE:
    """784 -> 400 -> (mu, logvar) in R^20 -> 400 -> 784, the layers of pytorch/examples' VAE."""
    torch.manual_seed(SEED)
    return cu.VAE(cu.VAEConfig(latent_dim=LATENT, hidden_dims=(HIDDEN,))).to(device)


def summed_loss(model: cu.VAE, x: torch.Tensor) -> torch.Tensor:
    """pytorch/examples' loss: binary cross-entropy summed over pixels and images, plus the summed KL."""
    out = model(x)
    return cu.bernoulli_nll(out.logits, x).sum() + cu.gaussian_kl(out.mu, out.logvar).sum()


class Way:
    """One model, optimizer and pipeline; ``epoch()`` trains one timed pass, then scores the test set."""

    def __init__(self, label: str, device: torch.device, lr: float, batches_of_epoch: Callable[[], Iterable],
                 step: Callable[[cu.VAE, torch.Tensor], torch.Tensor], dtype: torch.dtype | None,
                 test: cu.MNISTSplit, optimizer: Callable[[torch.nn.Module, float], torch.optim.Optimizer],
                 cosine_steps: int | None = None):
        self.label, self.device, self.dtype, self.test = label, device, dtype, test
        self.batches_of_epoch, self.step = batches_of_epoch, step
        self.model = make_model(device)  # the same initial weights for both ways
        self.optimizer = optimizer(self.model, lr)
        # fit's cosine_lr: the learning rate decays to 0 along a cosine over cosine_steps steps
        self.schedule = (None if cosine_steps is None
                         else torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cosine_steps))
        self.scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        self.elapsed = 0.0  # training seconds so far
        self.curve: list[tuple[float, float]] = []  # (training seconds so far, test -ELBO) after each epoch

    def epoch(self) -> None:
        self.model.train()
        _sync(self.device)
        start = time.perf_counter()
        for x, _y in self.batches_of_epoch():
            self.train_step(x.to(self.device, non_blocking=True))
        _sync(self.device)
        self.elapsed += time.perf_counter() - start
        self.curve.append((self.elapsed, average_loss(self.model, self.test)[0]))

    def train_step(self, x: torch.Tensor) -> None:
        """One optimizer step on the batch ``x``, in this way's precision, then one step of its schedule."""
        cast = contextlib.nullcontext() if self.dtype is None else torch.autocast(self.device.type, dtype=self.dtype)
        with cast:
            loss = self.step(self.model, x)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        if self.schedule is not None:
            self.schedule.step()

    def seconds_to(self, nats: float) -> tuple[float, int] | None:
        """(training seconds, epoch) when the test -ELBO first reached ``nats``; None: not yet."""
        for epoch, (seconds, value) in enumerate(self.curve, 1):
            if value <= nats:
                return seconds, epoch
        return None


def warm_up(way: Way, steps: int = 10) -> None:
    """A few steps of ``way`` that are then undone, so one-time start-up costs (kernel choice) hit neither way."""
    weights = {k: v.clone() for k, v in way.model.state_dict().items()}
    optimizer = copy.deepcopy(way.optimizer.state_dict())
    schedule = copy.deepcopy(way.schedule.state_dict()) if way.schedule is not None else None
    scaler = copy.deepcopy(way.scaler.state_dict()) if way.scaler is not None else None
    for step, (x, _y) in enumerate(way.batches_of_epoch()):
        if step == steps:
            break
        way.train_step(x.to(way.device))
    way.model.load_state_dict(weights)
    way.optimizer.load_state_dict(optimizer)
    if schedule is not None:
        way.schedule.load_state_dict(schedule)
    if scaler is not None:
        way.scaler.load_state_dict(scaler)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _time(hit: tuple[float, int] | None) -> str:
    return "not reached" if hit is None else f"{hit[0]:.1f} s (epoch {hit[1]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the seeds' way (default 10)")
    parser.add_argument("--target", type=float, default=105.6,
                        help="test -ELBO in nats to reach (default 105.6: the seeds' way after 10 epochs)")
    parser.add_argument("--course-batch", type=int, default=COURSE_BATCH,
                        help=f"batch size of the course's way (default {COURSE_BATCH}, the recipes' batch)")
    parser.add_argument("--course-lr", type=float, default=COURSE_LR,
                        help=f"learning rate of the course's way (default {COURSE_LR:g})")
    parser.add_argument("--course-precision", choices=PRECISIONS, default="auto",
                        help="precision of the course's way, as TrainConfig.precision (default auto: autocast_dtype)")
    parser.add_argument("--max-course-epochs", type=int, default=None,
                        help="most epochs of the course's way (default 3 x --epochs)")
    parser.add_argument("--course-cosine", type=int, default=COURSE_COSINE_EPOCHS, metavar="EPOCHS",
                        help="plan the course's way as EPOCHS epochs with the learning rate decayed to 0 along "
                             "a cosine (fit's cosine_lr), and train at most that many (default %(default)s; "
                             "0: a constant rate, for at most --max-course-epochs)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: 2 epochs on the first {QUICK_TRAIN} training and {QUICK_TEST} test images")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = 2
    if args.quick and args.course_cosine:
        args.course_cosine = min(args.course_cosine, 3 * args.epochs)  # a short plan for the smoke run
    max_course = args.course_cosine or args.max_course_epochs or 3 * args.epochs
    if min(args.epochs, args.course_batch, max_course) < 1 or args.course_lr <= 0 or args.course_cosine < 0:
        parser.error("--epochs, --course-batch and --max-course-epochs must be >= 1, --course-cosine >= 0, "
                     "--course-lr > 0")
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    device = cu.pick_device()
    config = cu.TrainConfig(batch_size=args.course_batch, lr=args.course_lr, precision=args.course_precision)
    dtype = resolve_precision(config, device)

    schedule = f" decayed along a cosine over {args.course_cosine} epochs" if args.course_cosine else " (constant)"
    print(machine_line(device))
    limit_train, limit_test = (QUICK_TRAIN, QUICK_TEST) if args.quick else (None, None)
    train = cu.load_mnist("train", device=device, limit=limit_train)
    test = cu.load_mnist("test", device=device, limit=limit_test)
    dataset = torchvision.datasets.MNIST(root=str(cu.prepare_mnist()), train=True, transform=ToTensor())
    if limit_train is not None:
        dataset = Subset(dataset, range(limit_train))
    loader = DataLoader(dataset, batch_size=SEEDS_BATCH, shuffle=True)
    print(f"VAE 784-{HIDDEN}-{LATENT}; {len(train)} training images, test -ELBO on {len(test)} test images\n"
          f"(a) seeds' way: torchvision + ToTensor + DataLoader, batch {SEEDS_BATCH}, Adam lr {SEEDS_LR:g}, float32\n"
          f"(b) course's way: tensors on {device.type} + batches, batch {args.course_batch}, fit's Adam lr "
          f"{args.course_lr:g}{schedule}, {precision_name(dtype)} (precision {args.course_precision!r})\n")

    generator = torch.Generator().manual_seed(SEED)
    cosine_steps = args.course_cosine * -(-len(train) // args.course_batch) if args.course_cosine else None
    seeds = Way("(a) seeds' way", device, SEEDS_LR, lambda: loader, summed_loss, None, test,
                lambda model, lr: torch.optim.Adam(model.parameters(), lr=lr))  # torch's default Adam
    course = Way("(b) course's way", device, args.course_lr,
                 lambda: cu.batches(train, args.course_batch, generator=generator),
                 lambda model, x: model.loss(x)[0], dtype, test, training.adam,  # fit's Adam: fused on CPU and CUDA
                 cosine_steps)
    for way in (seeds, course):
        warm_up(way)
    generator.manual_seed(SEED)
    torch.manual_seed(SEED)  # the DataLoader shuffles with torch's global generator
    while True:  # alternate epochs; (b) trains only while it still has a figure to reach
        moved = False
        if len(seeds.curve) < args.epochs:
            seeds.epoch()
            print(f"(a) epoch {len(seeds.curve):2d}: {seeds.curve[-1][1]:7.2f} nats at {seeds.elapsed:6.1f} s")
            moved = True
        goals = [args.target] + ([seeds.curve[-1][1]] if len(seeds.curve) == args.epochs else [])
        if len(course.curve) < max_course and any(course.seconds_to(g) is None for g in goals):
            course.epoch()
            print(f"(b) epoch {len(course.curve):2d}: {course.curve[-1][1]:7.2f} nats at {course.elapsed:6.1f} s")
            moved = True
        if not moved:
            break

    final = seeds.curve[-1][1]
    print(f"\nthe seeds' way after {args.epochs} epochs: {final:.2f} nats ({seeds.elapsed:.1f} s of training)")
    to_target, to_final = f"to {args.target:.1f} nats", f"to {final:.2f} nats"
    header = f"{'way':20s} {to_target:>22s} {to_final:>22s}"
    print(header)
    print("-" * len(header))
    for way in (seeds, course):
        print(f"{way.label:20s} {_time(way.seconds_to(args.target)):>22s} {_time(way.seconds_to(final)):>22s}")
    print("-" * len(header))
    for goal in (args.target, final):
        a, b = seeds.seconds_to(goal), course.seconds_to(goal)
        ratio = f"{a[0] / b[0]:.2f}x" if a and b else "n/a (not reached by both)"
        print(f"ratio (a)/(b), time to {goal:.2f} nats: {ratio}")
    print(f"load average after the run: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
