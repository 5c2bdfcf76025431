"""The training loop: ``fit`` trains any course model with Adam on its own ``loss``.

It returns a per-epoch ``History`` of the loss parts. Scoring a trained model is
``metrics.evaluate``; the course's named models and train-or-load are ``recipes``.
``TrainConfig.precision`` picks float32 or bfloat16 autocast ("auto": ``settings.autocast_dtype``:
bfloat16 for the course's recipes on a CPU with bfloat16 hardware, float32 on other CPUs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .checks import NonFiniteInput, check_images, check_labels, values_checked
from .data import NUM_CLASSES, MNISTSplit, batches
from .losses import LossParts
from .settings import CourseError, CourseTypeError, CourseValueError, autocast_dtype, is_ci, seed_everything

# Divergence, stated once: training stops when the loss is NaN or infinite, or when a batch's
# loss exceeds DIVERGENCE_FACTOR times the average loss of the first REFERENCE_BATCHES batches
# (the untrained model's loss, which a healthy run only ever goes below).
DIVERGENCE_FACTOR = 1e3
REFERENCE_BATCHES = 5
# The batch losses stay on the device and are checked every CHECK_EVERY batches and at the end
# of each epoch (one host synchronisation each time, not one per batch); the error still names
# the first batch that went wrong.
CHECK_EVERY = 50

# TrainConfig.precision: "auto" lets settings.autocast_dtype choose (at the course's batches, 128 and 256:
# bfloat16 on a CPU with AMX or AVX-512 BF16, float32 on other CPUs); "float32" never autocasts;
# "bfloat16" always does.
PRECISIONS = ("auto", "float32", "bfloat16")


class TrainingDiverged(CourseError, RuntimeError):
    """The loss became NaN or infinite, or grew far above its starting value; the message says where."""


def _whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


# What each field of TrainConfig accepts: (test, what to give).
_LIMITS = {
    "epochs": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "batch_size": (lambda v: _whole(v) and v >= 1, "a whole number >= 1 (the course uses 128)"),
    "lr": (lambda v: _finite(v) and v > 0, "a finite number > 0 (the course uses 1e-3)"),
    "beta": (lambda v: _finite(v) and v >= 0, "a finite number >= 0 (1 = the ELBO)"),
    "seed": (lambda v: _whole(v) and v >= 0, "a whole number >= 0"),
    "train_size": (lambda v: v is None or (_whole(v) and v >= 1), "None (all images) or a whole number >= 1"),
    "cosine_lr": (lambda v: isinstance(v, bool), "True or False"),
    "precision": (lambda v: v in PRECISIONS, "'auto', 'float32' or 'bfloat16' (the course uses 'auto')"),
}


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # passes over the training images
    batch_size: int = 128  # images per Adam step
    lr: float = 1e-3  # Adam's learning rate
    beta: float = 1.0  # weight of the KL term (1 = the ELBO; ignored by the AE)
    seed: int = 0  # seeds initialisation, shuffling and the reparameterization noise
    train_size: int | None = None  # use the first N training images (None: all 60,000)
    cosine_lr: bool = False  # decay the learning rate to 0 along a cosine over the run
    # the forward pass and loss in float32, or autocast to bfloat16; "auto": bfloat16 only where it is
    # faster (a bfloat16 CPU at batch >= settings.BF16_MIN_BATCH, or a GPU), float32 on other CPUs
    precision: str = "auto"

    def __post_init__(self) -> None:
        wrong = [f"{name} must be {what}, got {getattr(self, name)!r}"
                 for name, (ok, what) in _LIMITS.items() if not ok(getattr(self, name))]
        if wrong:
            raise CourseValueError(f"invalid training config: {'; '.join(wrong)}")


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


def resolve_precision(config: TrainConfig, device: torch.device | str) -> torch.dtype | None:
    """The dtype ``fit`` autocasts to for ``config`` on ``device``; None: plain float32."""
    if config.precision == "float32":
        return None
    if config.precision == "bfloat16":
        return torch.bfloat16
    return autocast_dtype(device, config.batch_size)


def precision_name(dtype: torch.dtype | None) -> str:
    """"float32", "bfloat16" or "float16": what a checkpoint's metrics record as its precision."""
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


# Adam's fused implementation does a step's update of every parameter in one kernel; the
# default ("foreach") takes several passes over the parameters. Same update up to float
# rounding (tests/test_training.py), and less time a step where the update is a large part of
# it: measured in the README's Benchmarks section. torch has it for CPU and CUDA tensors.
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def _fused_adam(device: torch.device | str) -> bool:
    return torch.device(device).type in FUSED_ADAM_DEVICES


def adam(model: nn.Module, lr: float) -> torch.optim.Adam:
    """The optimizer ``fit`` uses: Adam at ``lr``, fused on the devices that have it."""
    fused = _fused_adam(next(model.parameters()).device)
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True if fused else None)


def optimizer_name(device: torch.device | str) -> str:
    """"Adam (fused)" or "Adam": what ``fit`` uses on ``device``, as a checkpoint's metrics record it."""
    return "Adam (fused)" if _fused_adam(device) else "Adam"


# Adam's running mean of a gradient that has turned exactly zero (the first layer's weights from
# pixels that are nearly always black, the outgoing weights of ReLU units that stopped firing)
# shrinks by beta1 = 0.9 a step, and some 800 steps on it lies below float32's smallest normal
# number (1.2e-38), where x86 CPUs compute many times slower. After 6 epochs of the course's VAE,
# 252,895 of its 1,091,920 such means were subnormal; in the shipped checkpoints' histories every
# MLP recipe's epochs from the fourth on took 1.15x to 2.1x as long as its first three
# (benchmarks/README.md, bench_subnormals.py). So every MOMENT_SWEEP_EVERY steps fit sets Adam's
# moments below MOMENT_FLOOR to zero: from there a moment needs at least 175 steps to turn
# subnormal, and the update it gives is below 1e-22 of the learning rate. Flushing
# subnormal numbers in the CPU instead (torch.set_flush_denormal) acts on the calling thread only,
# so with 2 torch threads half of them stayed.
MOMENT_FLOOR = 1e-30
MOMENT_SWEEP_EVERY = 50


def count_subnormal(t: torch.Tensor) -> int:
    """How many float32 numbers in ``t`` are subnormal, read from their bits (exponent 0, fraction not
    0), so that the count holds even where the CPU treats them as zero."""
    bits = t.detach().float().contiguous().view(torch.int32) & 0x7FFFFFFF
    return int(((bits > 0) & (bits < 0x00800000)).sum())


@torch.no_grad()
def zero_vanishing_moments(optimizer: torch.optim.Optimizer, floor: float = MOMENT_FLOOR) -> None:
    """Set every entry of Adam's first and second moments whose size is below ``floor`` to zero."""
    for state in optimizer.state.values():
        for key in ("exp_avg", "exp_avg_sq"):
            moment = state.get(key)
            if moment is not None:
                moment.masked_fill_(moment.abs() < floor, 0.0)


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
    ``TrainingDiverged`` naming the epoch and batch where the loss stopped being finite or
    grew past ``DIVERGENCE_FACTOR`` times its starting value (checked every ``CHECK_EVERY``
    batches and at the end of each epoch). ``config.precision`` decides whether the forward
    pass and loss run under ``torch.autocast`` (``resolve_precision``), the test loss after each
    epoch too (``metrics.evaluate``, which scores a trained model, always computes in float32);
    weights stay float32. Adam's vanishing moments are set to zero every ``MOMENT_SWEEP_EVERY``
    steps (``zero_vanishing_moments``), before they turn subnormal and slow a CPU down.
    The images and labels are scanned once at the start; the models' input checks then skip
    their per-batch value scans (``checks.values_checked``), so no step waits on the host.
    """
    _check_fit_arguments(model, train, test, config)
    name = type(model).__name__
    device = next(model.parameters()).device
    train = train.subset(config.train_size).to(device)
    test = test.to(device) if test is not None else None
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = adam(model, config.lr)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    schedule = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
        if config.cosine_lr else None
    )
    dtype = resolve_precision(config, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None  # float16 needs loss scaling
    history = History()
    show = (not is_ci()) if progress is None else progress
    bar = tqdm(range(1, config.epochs + 1), desc=type(model).__name__, disable=not show, unit="epoch")
    check = _DivergenceCheck(name, config.lr, device)
    # Clean data is checked once here, not on every batch (no per-batch host synchronisation); data
    # that fail the check train as before, so the error names the epoch and batch where it shows.
    clean = all(_values_clean(split) for split in (train, test) if split is not None)
    with values_checked(NUM_CLASSES) if clean else contextlib.nullcontext():
        for epoch in bar:
            model.train()
            start = time.perf_counter()
            sums = torch.zeros(3, device=device)
            for b, (x, y) in enumerate(batches(train, config.batch_size, generator=generator), 1):
                try:
                    with _autocast(device, dtype):
                        loss, recon, kl = model.loss(x, y, config.beta)
                except NonFiniteInput as err:  # NaN pixels, or codes blown up by a too large step
                    check.flush()  # a loss that went wrong in an earlier batch is the real cause
                    raise TrainingDiverged(
                        f"at epoch {epoch}, batch {b} of {name} the loss would be nan: {err}. Lower the learning "
                        f"rate (now {config.lr}), or check the training images for NaN."
                    ) from err
                check.add(epoch, b, loss.detach())
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                if schedule is not None:
                    schedule.step()
                if ((epoch - 1) * steps_per_epoch + b) % MOMENT_SWEEP_EVERY == 0:  # every 50th Adam step
                    zero_vanishing_moments(optimizer)
                sums += torch.stack([loss.detach().float(), recon.detach().float(), kl.detach().float()]) * len(x)
            check.flush()
            train_parts = (sums / len(train)).tolist()
            history.epoch.append(epoch)
            history.seconds.append(time.perf_counter() - start)
            history.train_loss.append(train_parts[0])
            history.train_recon.append(train_parts[1])
            history.train_kl.append(train_parts[2])
            if test is not None:
                test_parts = average_loss(model, test, config.beta, dtype=dtype)  # in the training's precision
                history.test_loss.append(test_parts[0])
                history.test_recon.append(test_parts[1])
                history.test_kl.append(test_parts[2])
                bar.set_postfix(train=f"{train_parts[0]:.4g}", test=f"{test_parts[0]:.4g}")
    model.eval()
    return history


def _values_clean(data: MNISTSplit) -> bool:
    """True when the images and labels of ``data`` pass the models' input checks, labels as the
    digits 0..9 (one scan of each)."""
    try:
        check_images(data.x)
        check_labels(data.y, len(data), NUM_CLASSES)
    except CourseError:
        return False
    return True


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


class _DivergenceCheck:
    """Collects batch losses on the device; ``flush`` checks them on the host, oldest first.

    Raises ``TrainingDiverged`` naming the first batch whose loss was NaN or infinite, or above
    ``DIVERGENCE_FACTOR`` times the mean of the first ``REFERENCE_BATCHES`` batch losses.
    """

    def __init__(self, name: str, lr: float, device: torch.device):
        self.name, self.lr = name, lr
        self.pending = torch.zeros(CHECK_EVERY, device=device)  # this window's losses
        self.where: list[tuple[int, int]] = []  # (epoch, batch) of each pending loss
        self.first: list[float] = []  # the first REFERENCE_BATCHES losses: the starting value

    def add(self, epoch: int, batch: int, loss: torch.Tensor) -> None:
        self.pending[len(self.where)] = loss  # a copy on the device: no synchronisation
        self.where.append((epoch, batch))
        if len(self.where) == CHECK_EVERY:
            self.flush()

    def flush(self) -> None:
        values = self.pending[: len(self.where)].tolist()  # the one synchronisation of the window
        where, self.where = self.where, []
        for value, (epoch, batch) in zip(values, where, strict=True):
            self._check(value, f"at epoch {epoch}, batch {batch} of {self.name}")

    def _check(self, value: float, where: str) -> None:
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the loss became {value} {where}. Lower the learning rate (now {self.lr}) "
                "or check the inputs for NaN."
            )
        reference = sum(self.first) / len(self.first) if self.first else 0.0
        if reference > 0 and value > DIVERGENCE_FACTOR * reference:
            raise TrainingDiverged(
                f"the loss grew to {value:.3g} {where}, more than {DIVERGENCE_FACTOR:g} times its starting "
                f"value {reference:.3g}: training diverged. Lower the learning rate (now {self.lr})."
            )
        if len(self.first) < REFERENCE_BATCHES:
            self.first.append(value)


def _check_fit_arguments(model: nn.Module, train: MNISTSplit, test: MNISTSplit | None, config: TrainConfig) -> None:
    """One clear line for the usual slips: a model class instead of a model, arguments in the wrong place."""
    if isinstance(model, type):
        raise CourseTypeError(f"fit needs a model, not the class {model.__name__}: create one first, "
                              f"e.g. cu.{model.__name__}()")
    if not isinstance(model, nn.Module) or next(model.parameters(), None) is None:
        raise CourseTypeError(f"fit needs a course model with parameters, got {type(model).__name__}")
    for label, value in (("train", train), ("test", test)):
        allowed = (MNISTSplit,) if label == "train" else (MNISTSplit, type(None))
        if not isinstance(value, allowed):
            hint = ": pass it as config=..." if isinstance(value, TrainConfig) else ""
            raise CourseTypeError(f"{label} must be an MNISTSplit (cu.load_mnist({label!r}) or cu.MNISTSplit(x, y)), "
                                  f"got {type(value).__name__}{hint}")
    if not isinstance(config, TrainConfig):
        raise CourseTypeError(f"config must be a cu.TrainConfig, e.g. cu.TrainConfig(epochs=5), "
                              f"got {type(config).__name__}")


@torch.no_grad()
def average_loss(model: nn.Module, data: MNISTSplit, beta: float = 1.0, batch_size: int = 1000,
                 dtype: torch.dtype | None = None) -> list[float]:
    """[loss, recon, kl] averaged over ``data`` with reparameterization noise pinned.

    ``dtype``: autocast the forward passes to it (``fit`` passes its training precision: in
    bfloat16 a pass over the test set of the course's models ran 1.8 to 3.1x faster than in
    float32 on this CPU, and the loss agreed to within 1e-3 of its value, 2e-5 to 8e-4 on the
    shipped checkpoints: benchmarks/bench_overheads.py); None, the default, computes in float32.
    """
    was_training = model.training
    model.eval()
    state = torch.random.get_rng_state()
    torch.manual_seed(0)  # same eps every call: comparable numbers between epochs
    sums = torch.zeros(3)
    device = next(model.parameters()).device
    for x, y in batches(data, batch_size, shuffle=False):
        with _autocast(device, dtype):
            parts: LossParts = model.loss(x, y, beta)
        sums += torch.stack([p.detach().float().cpu() for p in parts]) * len(x)
    torch.random.set_rng_state(state)
    model.train(was_training)
    return (sums / len(data)).tolist()
