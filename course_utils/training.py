"""The training loop: ``fit`` trains any course model with Adam on its own ``loss``.

It returns a per-epoch ``History`` of the loss parts. Scoring a trained model is
``metrics.evaluate``; the course's named models and train-or-load are ``recipes``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import MNISTSplit, batches
from .losses import LossParts
from .settings import is_ci, seed_everything


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says where."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # passes over the training images
    batch_size: int = 128  # images per Adam step
    lr: float = 1e-3  # Adam's learning rate
    beta: float = 1.0  # weight of the KL term (1 = the ELBO; ignored by the AE)
    seed: int = 0  # seeds initialisation, shuffling and the reparameterization noise
    train_size: int | None = None  # use the first N training images (None: all 60,000)
    cosine_lr: bool = False  # decay the learning rate to 0 along a cosine over the run

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.beta < 0:
            raise ValueError(f"invalid training config {self}")


@dataclass
class History:
    """Per-epoch averages of the loss parts, for the training and the test set."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_recon: list[float] = field(default_factory=list)
    train_kl: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_recon: list[float] = field(default_factory=list)
    test_kl: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of each epoch

    def as_dict(self) -> dict[str, list[float]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> History:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: list(v) for k, v in d.items() if k in names})



# ----------------------------------------------------------------------------- fit
@torch.enable_grad()  # a notebook cell may call fit inside torch.no_grad(); training needs gradients
def fit(
    model: nn.Module,
    train: MNISTSplit,
    test: MNISTSplit | None = None,
    config: TrainConfig = TrainConfig(),
    progress: bool | None = None,
) -> History:
    """Train ``model`` with Adam on ``train``; evaluate on ``test`` after each epoch.

    Each step minimizes ``model.loss(x, y, beta)``: MSE for the AutoEncoder, recon +
    beta * KL (nats per image) for the VAE and CVAE, cross-entropy for the classifier.
    ``progress`` shows a tqdm bar (default: on, except under CI). Raises
    ``TrainingDiverged`` naming the epoch and batch where the loss stopped being finite.
    """
    device = next(model.parameters()).device
    train = train.subset(config.train_size).to(device)
    test = test.to(device) if test is not None else None
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    schedule = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
        if config.cosine_lr else None
    )
    history = History()
    show = (not is_ci()) if progress is None else progress
    bar = tqdm(range(1, config.epochs + 1), desc=type(model).__name__, disable=not show, unit="epoch")
    for epoch in bar:
        model.train()
        start = time.perf_counter()
        sums = torch.zeros(3, device=device)
        for b, (x, y) in enumerate(batches(train, config.batch_size, generator=generator), 1):
            loss, recon, kl = model.loss(x, y, config.beta)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"the loss became {loss.item()} at epoch {epoch}, batch {b} of "
                    f"{type(model).__name__}. Lower the learning rate (now {config.lr}) "
                    "or check the inputs for NaN."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            sums += torch.stack([loss.detach(), recon.detach(), kl.detach()]) * len(x)
        train_parts = (sums / len(train)).tolist()
        history.epoch.append(epoch)
        history.seconds.append(time.perf_counter() - start)
        history.train_loss.append(train_parts[0])
        history.train_recon.append(train_parts[1])
        history.train_kl.append(train_parts[2])
        if test is not None:
            test_parts = average_loss(model, test, config.beta)
            history.test_loss.append(test_parts[0])
            history.test_recon.append(test_parts[1])
            history.test_kl.append(test_parts[2])
            bar.set_postfix(train=f"{train_parts[0]:.4g}", test=f"{test_parts[0]:.4g}")
    model.eval()
    return history


@torch.no_grad()
def average_loss(model: nn.Module, data: MNISTSplit, beta: float = 1.0, batch_size: int = 1000) -> list[float]:
    """[loss, recon, kl] averaged over ``data`` with reparameterization noise pinned."""
    was_training = model.training
    model.eval()
    state = torch.random.get_rng_state()
    torch.manual_seed(0)  # same eps every call: comparable numbers between epochs
    sums = torch.zeros(3)
    for x, y in batches(data, batch_size, shuffle=False):
        parts: LossParts = model.loss(x, y, beta)
        sums += torch.stack([p.detach().float().cpu() for p in parts]) * len(x)
    torch.random.set_rng_state(state)
    model.train(was_training)
    return (sums / len(data)).tolist()
