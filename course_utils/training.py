"""Training, evaluation and train-or-load for every course model.

``fit`` trains any of the three models (and the classifier) with Adam and returns a
per-epoch ``History``; ``evaluate`` reports test metrics in nats per image;
``train_or_load`` loads ``checkpoints/<name>.pt`` when its config matches and
trains (then saves) otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import CheckpointError, load_checkpoint, read_payload, save_checkpoint
from .data import NUM_CLASSES, MNISTSplit, batches, load_mnist
from .losses import bernoulli_nll, gaussian_kl, importance_sampled_nll, model_loss
from .models import CVAE, AutoEncoder, DigitClassifier
from .settings import checkpoint_dir, course_root, is_ci, is_fast_mode, pick_device, seed_everything

# Fast mode (CI): every model trains on this many images for at most this many epochs,
# and evaluation uses the first FAST_TEST_SIZE test images.
FAST_TRAIN_SIZE = 2000
FAST_MAX_EPOCHS = 2
FAST_TEST_SIZE = 1000


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

    def plot(self, title: str = "Training history"):
        """Train and test curves of each loss part, on separate axes."""
        from .plotting import plot_history

        return plot_history(self, title=title)


class Trained(NamedTuple):
    model: nn.Module
    history: History
    metrics: dict[str, Any]
    path: Path
    loaded: bool  # True: read from a checkpoint; False: trained just now


# ----------------------------------------------------------------------------- fit
def _batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: float):
    if isinstance(model, DigitClassifier):
        ce = F.cross_entropy(model(x), y)
        zero = torch.zeros((), device=x.device)
        return ce, ce, zero
    return model_loss(model, x, y, beta)


@torch.enable_grad()  # callers may sit inside no_grad (evaluate training the classifier)
def fit(
    model: nn.Module,
    train: MNISTSplit,
    test: MNISTSplit | None = None,
    config: TrainConfig = TrainConfig(),
    progress: bool | None = None,
) -> History:
    """Train ``model`` with Adam on ``train``; evaluate on ``test`` after each epoch.

    Works for AutoEncoder (MSE), VAE and CVAE (recon + beta * KL, nats per image) and
    DigitClassifier (cross-entropy). ``progress`` shows a tqdm bar (default: on,
    except under CI). Raises ``TrainingDiverged`` naming the epoch and batch where
    the loss stopped being finite.
    """
    from tqdm.auto import tqdm

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
            loss, recon, kl = _batch_loss(model, x, y, config.beta)
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
        parts = _batch_loss(model, x, y, beta)
        sums += torch.stack([p.detach().float().cpu() for p in parts]) * len(x)
    torch.random.set_rng_state(state)
    model.train(was_training)
    return (sums / len(data)).tolist()


# ----------------------------------------------------------------------------- evaluate
class LabelAccuracy(NamedTuple):
    accuracy: float  # share of all generated digits read as their requested label
    per_class: list[float]  # that share for each requested label 0..9
    confusion: torch.Tensor  # (10, 10) counts: row = requested, column = read


@torch.no_grad()
def label_accuracy(
    model: CVAE,
    classifier: DigitClassifier | None = None,
    n_per_class: int = 100,
    temperature: float = 1.0,
    seed: int = 0,
) -> LabelAccuracy:
    """How often a CVAE draws the digit it is asked for, as judged by the classifier."""
    if not isinstance(model, CVAE):
        raise TypeError("label_accuracy needs a CVAE")
    classifier = classifier if classifier is not None else load_classifier()
    device = next(model.parameters()).device
    classifier = classifier.to(device)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(n_per_class)
    generator = torch.Generator().manual_seed(seed)
    images = model.sample(labels, temperature=temperature, generator=generator)
    read = classifier.predict(images).cpu()
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    confusion.index_put_((labels, read), torch.ones_like(labels), accumulate=True)
    per_class = (confusion.diag().float() / n_per_class).tolist()
    return LabelAccuracy(float((read == labels).float().mean()), per_class, confusion)


def _evaluation_data(split: str, device: torch.device) -> MNISTSplit:
    limit = FAST_TEST_SIZE if is_fast_mode() else None
    return load_mnist(split, device=device, limit=limit)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: str = "test",
    data: MNISTSplit | None = None,
    classifier: DigitClassifier | None = None,
    importance_samples: int = 0,
    label_samples_per_class: int = 100,
) -> dict[str, float]:
    """Metrics of ``model`` on an MNIST split (the test set by default).

    Every model: ``mse_per_pixel`` and ``psnr_db`` of the reconstruction (the VAE's
    from z = mu), ``recon_nats``. VAE and CVAE add ``kl_nats`` and ``neg_elbo_nats``
    (nats per image), and ``nll_nats`` (importance-sampled -log p(x)) when
    ``importance_samples`` > 0. CVAE adds ``label_accuracy``. DigitClassifier:
    ``accuracy``.
    """
    model.eval()
    device = next(model.parameters()).device
    data = (data if data is not None else _evaluation_data(split, device)).to(device)
    if isinstance(model, DigitClassifier):
        return {"accuracy": float((model.predict(data.x) == data.y).float().mean())}
    generator = torch.Generator().manual_seed(0)
    totals: dict[str, float] = {}

    def add(name: str, values: torch.Tensor) -> None:
        totals[name] = totals.get(name, 0.0) + float(values.sum())

    for x, y in batches(data, 500, shuffle=False):
        if isinstance(model, AutoEncoder):
            logits = model(x).logits
        else:
            conditional = isinstance(model, CVAE)
            mu, logvar = model.encode(x, y) if conditional else model.encode(x)
            eps = torch.randn(mu.shape, generator=generator).to(device)
            z = model.reparameterize(mu, logvar, eps)
            sampled = model.decode(z, y) if conditional else model.decode(z)
            recon, kl = bernoulli_nll(sampled, x), gaussian_kl(mu, logvar)
            add("recon_nats", recon)
            add("kl_nats", kl)
            add("neg_elbo_nats", recon + kl)
            logits = model.decode(mu, y) if conditional else model.decode(mu)
            if importance_samples:
                nll = importance_sampled_nll(model, x, y if conditional else None,
                                             k=importance_samples, generator=generator)
                add("nll_nats", nll)
        if isinstance(model, AutoEncoder):
            add("recon_nats", bernoulli_nll(logits, x))
        add("mse_per_pixel", (torch.sigmoid(logits) - x).pow(2).flatten(1).mean(1))
    metrics = {k: v / len(data) for k, v in totals.items()}
    metrics["psnr_db"] = psnr_db(metrics["mse_per_pixel"])
    if isinstance(model, CVAE):
        acc = label_accuracy(model, classifier, n_per_class=label_samples_per_class)
        metrics["label_accuracy"] = acc.accuracy
    return metrics


def psnr_db(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in decibels: 10 log10(peak^2 / MSE)."""
    return 10 * math.log10(peak**2 / mse) if mse > 0 else math.inf


# ----------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class Recipe:
    """Everything needed to build and train one of the course's models."""

    model_class: str  # "AutoEncoder", "VAE", "CVAE" or "DigitClassifier"
    config: Any  # the model's config dataclass
    train: TrainConfig

    def spec(self) -> dict[str, Any]:
        return {
            "model_class": self.model_class,
            "config": dataclasses.asdict(self.config),
            "train": dataclasses.asdict(self.train),
        }

    def build(self) -> nn.Module:
        from .checkpoints import build_model

        return build_model(self.model_class, dataclasses.asdict(self.config))

    def fast(self) -> Recipe:
        """The same recipe cut down for fast mode (CI)."""
        train = dataclasses.replace(
            self.train,
            epochs=min(self.train.epochs, FAST_MAX_EPOCHS),
            train_size=min(self.train.train_size or FAST_TRAIN_SIZE, FAST_TRAIN_SIZE),
        )
        return dataclasses.replace(self, train=train)


def _spec_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    out = []
    for part in ("model_class", "config", "train"):
        a, b = saved.get(part), wanted[part]
        if isinstance(b, dict) and isinstance(a, dict):
            for key in sorted(set(a) | set(b)):
                va = tuple(a[key]) if isinstance(a.get(key), list | tuple) else a.get(key)
                vb = tuple(b[key]) if isinstance(b.get(key), list | tuple) else b.get(key)
                if va != vb:
                    out.append(f"{part}.{key}: saved {va!r}, wanted {vb!r}")
        elif a != b:
            out.append(f"{part}: saved {a!r}, wanted {b!r}")
    return out


def train_or_load(
    name: str,
    recipe: Recipe | None = None,
    device: torch.device | str | None = None,
    directory: str | Path | None = None,
    verbose: bool = True,
) -> Trained:
    """Load ``checkpoints/<name>.pt`` if its config matches ``recipe``; else train and save.

    ``recipe`` defaults to the course's recipe for ``name`` (``course_recipe``), cut
    down in fast mode. Prints which of the two it did.
    """
    from .recipes import canonical_name, course_recipe

    name = canonical_name(name)
    recipe = recipe if recipe is not None else course_recipe(name)
    device = torch.device(device) if device is not None else pick_device()
    directory = Path(directory) if directory is not None else checkpoint_dir()
    path = directory / f"{name}.pt"
    say = print if verbose else (lambda *a, **k: None)
    wanted = recipe.spec()
    if path.exists():
        differences = checkpoint_differences(path, recipe)
        if not differences:
            ckpt = load_checkpoint(path, recipe.model_class, device)
            say(f"Loaded {name} from {_short(path)} (trained earlier; metrics {_fmt(ckpt.metrics)})")
            return Trained(ckpt.model, History.from_dict(ckpt.history), ckpt.metrics, path, True)
        say(f"{_short(path)} does not match the recipe ({'; '.join(differences[:3])}): retraining.")
    say(f"Training {name} on {device} ({recipe.train.epochs} epochs"
        f"{', ' + str(recipe.train.train_size) + ' images' if recipe.train.train_size else ''})...")
    seed_everything(recipe.train.seed)
    model = recipe.build().to(device)
    train = load_mnist("train", device=device)
    test = _evaluation_data("test", device)
    start = time.perf_counter()
    history = fit(model, train, test, recipe.train)
    seconds = time.perf_counter() - start
    # Store float16 weights, and use the rounded weights here too, so that what the
    # notebook shows now is exactly what the next run loads.
    save_checkpoint(path, model, wanted["train"], history.as_dict(), {}, half=True)
    model = load_checkpoint(path, recipe.model_class, device).model
    metrics = {**evaluate(model, data=test), "train_seconds": seconds, "device": str(device)}
    save_checkpoint(path, model, wanted["train"], history.as_dict(), metrics, half=True)
    say(f"Trained {name} in {seconds:.0f} s and saved it to {_short(path)}; metrics {_fmt(metrics)}")
    return Trained(model, history, metrics, path, False)


def load_classifier(device: torch.device | str | None = None) -> DigitClassifier:
    """The digit classifier that judges generated digits.

    It is a measuring instrument, not a lesson: every mode loads the shipped
    full-mode checkpoint ``checkpoints/classifier.pt``. Only if that file is missing
    or stale is one trained: the full recipe in full mode, a quick one in fast mode
    (into ``checkpoints/fast``), so CI never spends minutes on it.
    """
    from .recipes import course_recipe

    full = course_recipe("classifier", fast=False)
    shipped = course_root() / "checkpoints" / "classifier.pt"
    if is_fast_mode() and checkpoint_differences(shipped, full):
        return train_or_load("classifier", course_recipe("classifier"), device=device, verbose=False).model
    return train_or_load("classifier", full, device=device, directory=shipped.parent, verbose=False).model


def checkpoint_differences(path: Path, recipe: Recipe) -> list[str]:
    """How the checkpoint at ``path`` differs from ``recipe`` (empty: it matches)."""
    if not path.exists():
        return [f"{path} does not exist"]
    try:
        payload = read_payload(path)
    except CheckpointError as err:
        return [f"unreadable ({err})"]
    saved = {k: payload.get(k) for k in ("model_class", "config", "train")}
    return _spec_differences(saved, recipe.spec())


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(course_root()))
    except ValueError:
        return str(path)


def _fmt(metrics: dict[str, Any]) -> str:
    keys = ("neg_elbo_nats", "mse_per_pixel", "label_accuracy", "accuracy")
    shown = [f"{k}={metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), float)]
    return ", ".join(shown) or "none"
