"""Time one training epoch of the same MLP VAE fed two ways, in one run.

(a) the course's pipeline: ``course_utils.load_mnist`` keeps MNIST as one float tensor
    and ``course_utils.batches`` indexes a shuffled permutation into it;
(b) the usual tutorial pipeline (the seeds' way): ``torchvision.datasets.MNIST`` with a
    per-image ``ToTensor()`` transform and ``torch.utils.data.DataLoader(batch_size=128,
    shuffle=True)`` in the main process.

The model, optimizer and loss are the same for both, as in pytorch/examples' VAE:
784-400-20 MLP, batch 128, Adam (lr 1e-3), binary cross-entropy summed over pixels and
images plus the KL term. Both start from the same initial weights, and their epochs
alternate, so that a change in the machine's load hits both alike. A last pass draws one
epoch of batches from each pipeline with no model ("data only"): the pipeline's own cost.
Nothing is asserted: the script prints a table of seconds per epoch and the ratios (b)/(a).

    OMP_NUM_THREADS=2 python benchmarks/bench_pipeline.py [--epochs N] [--threads T]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable

import torch
import torchvision
from bench_common import load_average, machine_line  # this folder is on sys.path when a script in it runs
from torch.utils.data import DataLoader
from torchvision.transforms import ToTensor

import course_utils as cu

BATCH_SIZE = 128
LR = 1e-3
HIDDEN, LATENT = 400, 20
SEED = 0


def make_model() -> cu.VAE:
    """784 -> 400 -> (mu, logvar) in R^20 -> 400 -> 784, the layers of pytorch/examples' VAE."""
    torch.manual_seed(SEED)
    return cu.VAE(cu.VAEConfig(latent_dim=LATENT, hidden_dims=(HIDDEN,)))


def summed_loss(model: cu.VAE, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over pixels and images, plus the summed KL."""
    out = model(x)
    return cu.bernoulli_nll(out.logits, x).sum() + cu.gaussian_kl(out.mu, out.logvar).sum()


class Trainer:
    """One model and optimizer fed by one pipeline; ``epoch()`` trains one pass and times it."""

    def __init__(self, batches_of_epoch: Callable[[], Iterable]):
        self.batches_of_epoch = batches_of_epoch
        self.model = make_model()  # the same initial weights for both pipelines
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.wall: list[float] = []  # seconds of each epoch
        self.cpu: list[float] = []  # CPU seconds of this process in each epoch (all threads)
        self.loss_per_image = float("nan")

    def epoch(self) -> None:
        total, count = 0.0, 0
        wall, cpu = time.perf_counter(), time.process_time()
        for x, _y in self.batches_of_epoch():
            loss = summed_loss(self.model, x)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.item()
            count += len(x)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)
        self.loss_per_image = total / count


def data_only_seconds(batches: Iterable) -> float:
    """Seconds to draw one epoch of batches with no model: the pipeline's own cost."""
    start = time.perf_counter()
    for _batch in batches:
        pass
    return time.perf_counter() - start


def warm_up(train: cu.MNISTSplit, steps: int = 20) -> None:
    """A few steps on a throw-away model, so one-time start-up costs hit neither pipeline."""
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    for step, (x, _y) in enumerate(cu.batches(train, BATCH_SIZE, generator=torch.Generator().manual_seed(1))):
        if step == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        summed_loss(model, x).backward()
        optimizer.step()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per pipeline (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's choice, i.e. OMP_NUM_THREADS or all cores)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)

    print(machine_line(torch.device("cpu")))  # both pipelines train on the CPU
    print(f"VAE 784-{HIDDEN}-{LATENT}, batch {BATCH_SIZE}, Adam lr {LR}, summed BCE + KL, "
          f"{args.epochs} epoch(s) each\n")

    # (a) setup: tensors in memory
    start = time.perf_counter()
    train = cu.load_mnist("train")
    setup_a = time.perf_counter() - start
    # (b) setup: the torchvision dataset over the same files
    start = time.perf_counter()
    dataset = torchvision.datasets.MNIST(root=str(cu.prepare_mnist()), train=True, transform=ToTensor())
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True)
    setup_b = time.perf_counter() - start
    if len(dataset) != len(train):
        raise RuntimeError(f"torchvision sees {len(dataset)} images, course_utils {len(train)}")

    warm_up(train)
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)  # the DataLoader shuffles with torch's global generator
    course = Trainer(lambda: cu.batches(train, BATCH_SIZE, generator=generator))
    tutorial = Trainer(lambda: loader)
    for _ in range(args.epochs):  # alternate, so that a change in machine load hits both alike
        course.epoch()
        tutorial.epoch()
    data_a = data_only_seconds(cu.batches(train, BATCH_SIZE, generator=generator))
    data_b = data_only_seconds(loader)

    rows = [
        ("(a) course_utils: load_mnist tensors + batches", setup_a, course, data_a),
        ("(b) torchvision MNIST + ToTensor + DataLoader", setup_b, tutorial, data_b),
    ]
    header = (f"{'pipeline':48s} {'setup s':>8s} {'s/epoch':>8s} {'CPU s/epoch':>12s} {'data only s':>12s} "
              f"{'loss/image':>11s}")
    print(header)
    print("-" * len(header))
    for name, setup, trainer, data_seconds in rows:
        wall, cpu = sum(trainer.wall) / len(trainer.wall), sum(trainer.cpu) / len(trainer.cpu)
        print(f"{name:48s} {setup:8.2f} {wall:8.2f} {cpu:12.2f} {data_seconds:12.2f} {trainer.loss_per_image:11.2f}")
    print("-" * len(header))
    if args.epochs > 1:
        for name, _, trainer, _ in rows:
            print(f"{name[:3]} seconds of each epoch: {' '.join(f'{s:.2f}' for s in trainer.wall)}")
    mean_a, mean_b = sum(course.wall) / len(course.wall), sum(tutorial.wall) / len(tutorial.wall)
    print(f"ratio (b)/(a), seconds per training epoch: {mean_b / mean_a:.2f}x")
    print(f"ratio (b)/(a), data only (one epoch of batches, no model): {data_b / data_a:.1f}x")
    print(f"load average after the run: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
