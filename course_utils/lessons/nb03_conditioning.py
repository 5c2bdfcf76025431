"""Notebook 03: how a CVAE hears its label, and how to compare the ways of telling it.

The variants of ``models.CVAE`` differ in how the label y enters: ``"concat"`` feeds the
decoder [z; onehot(y)], ``"project"`` z + P onehot(y), ``"prior"`` adds a learned prior per
label to concat (the priors themselves: ``nb03_prior``; the statistics: ``nb03_stats``):

- the linear-algebra identity W [z; y] = W_z z + W_y y (``check_concat_identity``):
  concatenating a one-hot is adding a learned per-class bias;
- parameter counts by part (``parameter_counts``) and the label's effect on the
  decoder's first layer with its rank (``label_effect``, ``matrix_rank``);
- a seed-aware comparison, mean +- std over seeds and Welch's t-test (``run_result``,
  ``comparison_table``, ``compare_variants``);
- why label accuracy changes with the latent size: a latent probe (can a small
  classifier read the digit from the posterior means mu alone?, ``latent_probe``) and
  how far each label's codes sit from the N(0, I) that sampling draws from
  (``posterior_gap``); for "project", how close the digits' offsets P e_c crowd
  (``offset_crowding``); all collected per model by ``sweep_point``;
- per-digit samples, style transfer and the hardest digits (figures: ``nb03_figures``).

Names follow the math: x (images), z (codes), mu / logvar (q(z | x, y)), y (labels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import NUM_CLASSES, MNISTSplit
from ..metrics import ACTIVE_VARIANCE, active_units, label_accuracy, posteriors
from ..models import CVAE, DigitClassifier
from ..recipes import Trained, course_recipe
from .nb03_stats import BORDERLINE, WelchTest, format_p, welch_t_test

VARIANTS = ("concat", "project", "prior")  # recipes.CVAE_CONDITIONINGS: notebook 03's three variants
VARIANT_COLORS = {"concat": "tab:blue", "project": "tab:orange", "prior": "tab:purple", "project-relu": "tab:brown"}
LABEL_SAMPLES_PER_CLASS = 500  # generated digits per label when a lesson measures label accuracy
LABEL_ACCURACY_TARGET = 0.98  # what the course asks of a default CVAE: at least this share drawn right
PAD = 2  # pixels between the digits of a tiled grid (plotting.image_grid's default)


# ----------------------------------------------------------------------------- the identity
class SplitWeights(NamedTuple):
    W_z: torch.Tensor  # (out, latent_dim): the columns that multiply z
    W_y: torch.Tensor  # (out, num_classes): column c is the bias that label c adds


class IdentityCheck(NamedTuple):
    max_abs_diff: float  # max |W [z; y] + b - (W_z z + b + W_y[:, y])| over a batch
    lhs: torch.Tensor  # (n, out): the layer applied to the concatenation
    rhs: torch.Tensor  # (n, out): W_z z + b plus the looked-up per-class bias
    split: SplitWeights


def first_decoder_layer(model: CVAE) -> nn.Linear:
    """The decoder's first Linear layer: the one that sees the label."""
    layer = model.decoder[0]
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"expected the decoder to start with nn.Linear, found {type(layer).__name__}")
    return layer


def split_label_weights(layer: nn.Linear, latent_dim: int) -> SplitWeights:
    """Split W (out, latent_dim + C) into W_z (its first latent_dim columns) and W_y (the rest)."""
    if layer.in_features <= latent_dim:
        raise ValueError(
            f"a layer with {layer.in_features} inputs cannot hold {latent_dim} latent inputs plus a one-hot"
        )
    W = layer.weight.detach()
    return SplitWeights(W_z=W[:, :latent_dim], W_y=W[:, latent_dim:])


@torch.no_grad()
def check_concat_identity(layer: nn.Linear, latent_dim: int, n: int = 256, seed: int = 0) -> IdentityCheck:
    """Compare W [z; onehot(y)] + b with W_z z + b + W_y[:, y] on n random (z, y).

    The right-hand side never builds a one-hot: it looks up column y of W_y, a learned
    bias for class y. The two agree up to float rounding, which is the identity.
    """
    W_z, W_y = split_label_weights(layer, latent_dim)
    num_classes = W_y.shape[1]
    generator = torch.Generator().manual_seed(seed)
    device = layer.weight.device
    z = torch.randn(n, latent_dim, generator=generator).to(device)
    y = torch.randint(0, num_classes, (n,), generator=generator).to(device)
    lhs = layer(torch.cat([z, F.one_hot(y, num_classes).float()], dim=1))  # W [z; y] + b
    bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_features, device=device)
    rhs = z @ W_z.T + bias + W_y.T[y]  # W_z z + b + (per-class bias of y)
    return IdentityCheck(float((lhs - rhs).abs().max()), lhs, rhs, SplitWeights(W_z, W_y))


# ----------------------------------------------------------------------------- sizes and ranks
@dataclass(frozen=True)
class ParameterCounts:
    """Trainable parameters of a CVAE, by part (the parts add up to ``total``)."""

    conditioning: str
    latent_dim: int
    encoder: int  # encoder MLP + to_mu + to_logvar (identical in the variants whose encoder reads y)
    label_weights: int  # weights only the label touches: W_y (concat), P (project), W_y + the prior's tables
    decoder_rest: int  # every other decoder weight and bias
    total: int

    def as_dict(self) -> dict[str, int]:
        return {"encoder": self.encoder, "label_weights": self.label_weights,
                "decoder_rest": self.decoder_rest, "total": self.total}


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(model: CVAE) -> ParameterCounts:
    """Count a CVAE's parameters by part."""
    k, c = model.config.latent_dim, model.config.num_classes
    encoder = _count(model.encoder) + _count(model.to_mu) + _count(model.to_logvar)
    decoder = _count(model.decoder)
    if model.config.conditioning in ("concat", "prior"):
        label = first_decoder_layer(model).out_features * c  # the W_y block of the first layer
        rest = decoder - label
        label += 2 * c * k if model.config.conditioning == "prior" else 0  # prior_mu and prior_logvar
    else:
        label = _count(model.label_projection)  # P: k x c (and seed 003's bias)
        rest = decoder
    total = _count(model)
    if encoder + label + rest != total:
        raise AssertionError("parameter parts do not add up; the CVAE has a part this count misses")
    return ParameterCounts(model.config.conditioning, k, encoder, label, rest, total)


@torch.no_grad()
def label_effect(model: CVAE) -> torch.Tensor:
    """(out, C) matrix: column c is what label c adds to the decoder's first pre-activation.

    concat: W_y (an independent bias per class). project: W_z P (the class offset P e_c,
    a point in latent space, pushed through the same weights as z). prior, at z = 0:
    W_y + W_z mu_c (the label's bias plus its prior mean read by W_z).
    """
    layer = first_decoder_layer(model)
    if model.config.conditioning in ("concat", "prior"):
        W_z, W_y = split_label_weights(layer, model.config.latent_dim)
        if model.config.conditioning == "prior":
            return W_y + W_z @ model.prior_mu.detach().T
        return W_y.clone()
    return layer.weight.detach() @ model.label_projection.weight.detach()


def matrix_rank(M: torch.Tensor, rtol: float = 1e-4) -> int:
    """Numerical rank: singular values above rtol times the largest."""
    s = torch.linalg.svdvals(M.double())
    return int((s > rtol * s[0]).sum()) if len(s) and s[0] > 0 else 0


@torch.no_grad()
def label_offsets(model: CVAE) -> torch.Tensor:
    """project only: the C class offsets P e_c, shape (C, latent_dim), in latent units."""
    if model.config.conditioning != "project":
        raise ValueError("only the 'project' variant moves z by a label offset")
    return model.label_projection.weight.detach().T.clone()


# ----------------------------------------------------------------------------- the comparison
@dataclass(frozen=True)
class RunResult:
    """One trained CVAE's numbers for the comparison table."""

    name: str
    conditioning: str
    seed: int
    latent_dim: int
    parameters: int
    train_seconds: float
    neg_elbo_nats: float  # test negative ELBO per image (from the checkpoint's metrics)
    label_accuracy: float  # share of generated digits the classifier reads as requested
    confusion: torch.Tensor | None = field(default=None, repr=False, compare=False)  # (C, C) counts


def run_result(
    name: str,
    trained: Trained,
    classifier: DigitClassifier,
    n_per_class: int = LABEL_SAMPLES_PER_CLASS,
    sample_seed: int = 0,
) -> RunResult:
    """Collect one model's row: size, training time and test ELBO stored with it, label accuracy now."""
    model = trained.model
    if not model.conditional:
        raise TypeError(f"{name} is not a CVAE")
    metrics = trained.metrics
    acc = label_accuracy(model, classifier, n_per_class=n_per_class, seed=sample_seed)
    return RunResult(
        name=name,
        conditioning=model.config.conditioning,
        seed=course_recipe(name).train.seed,
        latent_dim=model.config.latent_dim,
        parameters=parameter_counts(model).total,
        train_seconds=float(metrics.get("train_seconds", math.nan)),
        neg_elbo_nats=float(metrics.get("neg_elbo_nats", math.nan)),
        label_accuracy=acc.accuracy,
        confusion=acc.confusion,
    )


class Summary(NamedTuple):
    mean: float
    std: float  # sample standard deviation over seeds (nan with one seed)
    n: int


def summarize(values: Sequence[float]) -> Summary:
    """Mean and sample standard deviation (ddof = 1) of per-seed values."""
    v = np.asarray(values, dtype=float)
    std = float(v.std(ddof=1)) if len(v) > 1 else math.nan
    return Summary(float(v.mean()), std, len(v))


TABLE_METRICS = {  # column -> (heading, format)
    "parameters": ("parameters", "{:,.0f}"),
    "train_seconds": ("train time (s)", "{:.0f}"),
    "neg_elbo_nats": ("test -ELBO (nats)", "{:.2f}"),
    "label_accuracy": ("label accuracy", "{:.2%}"),
}


@dataclass
class ComparisonTable:
    """Per-variant mean and spread over seeds of each metric; ``str()`` prints it."""

    rows: dict[str, dict[str, Summary]]  # variant -> metric -> Summary
    results: list[RunResult] = field(default_factory=list)

    def __str__(self) -> str:
        head = ["variant", "seeds", *[TABLE_METRICS[m][0] for m in TABLE_METRICS]]
        lines = [head]
        for variant, row in self.rows.items():
            cells = [variant, str(row["label_accuracy"].n)]
            for metric, (_, fmt) in TABLE_METRICS.items():
                s = row[metric]
                text = fmt.format(s.mean)
                if metric != "parameters":
                    text += " ± " + (fmt.format(s.std) if not math.isnan(s.std) else "n/a")
                cells.append(text)
            lines.append(cells)
        widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
        out = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
               for r in lines]
        out.insert(1, "-" * len(out[0]))
        return "\n".join(out)


def comparison_table(results: Sequence[RunResult]) -> ComparisonTable:
    """Group runs by variant and summarize every metric over their seeds."""
    rows: dict[str, dict[str, Summary]] = {}
    for variant in dict.fromkeys(r.conditioning for r in results):
        runs = [r for r in results if r.conditioning == variant]
        rows[variant] = {m: summarize([getattr(r, m) for r in runs]) for m in TABLE_METRICS}
    return ComparisonTable(rows, list(results))


class Gap(NamedTuple):
    metric: str
    leader: str  # the variant with the better mean
    other: str
    gap: float  # |mean difference|
    test: WelchTest  # Welch's t-test of the two variants' per-seed values (nb03_stats)
    largest_std: float  # the larger of the two seed-to-seed spreads
    clear: bool | None  # p < 0.01 (None with a single seed: cannot tell); see test.verdict for "borderline"


def compare_variants(table: ComparisonTable, metric: str, higher_is_better: bool,
                     pair: tuple[str, str] | None = None) -> Gap:
    """Which of two variants (the first two, or ``pair``) is ahead on ``metric``, and does it beat the seed noise?"""
    va, vb = pair or tuple(table.rows)[:2]
    a, b = table.rows[va][metric], table.rows[vb][metric]
    values = {v: [getattr(r, metric) for r in table.results if r.conditioning == v] for v in (va, vb)}
    if not all(values.values()):  # a table built without its runs: fall back on the summaries' means only
        values = {va: [a.mean], vb: [b.mean]}
    a_better = (a.mean > b.mean) == higher_is_better
    leader, other = (va, vb) if a_better else (vb, va)
    test = welch_t_test(values[leader], values[other])
    clear = None if math.isnan(test.p) else bool(test.p < BORDERLINE[0])
    return Gap(metric, leader, other, abs(a.mean - b.mean), test, max(a.std, b.std), clear)


def describe_gap(g: Gap, unit_format: str = "{:.3g}") -> str:
    """One sentence for the notebook: who leads, by how much, Welch's t-test and its verdict."""
    f = unit_format.format
    head = f"{g.metric}: {g.leader} is ahead of {g.other} by {f(g.gap)}"
    if g.clear is None:
        return head + " (one seed only: no spread to compare the gap with)"
    return (head + f"; seed-to-seed std up to {f(g.largest_std)}; Welch's t = {abs(g.test.t):.2f}, "
            f"{g.test.df:.1f} degrees of freedom, p {format_p(g.test.p)}: {g.test.verdict}")


# ----------------------------------------------------------------------------- why: probes
def posterior_means(model: CVAE, data: MNISTSplit) -> tuple[torch.Tensor, torch.Tensor]:
    """mu and logvar of q(z | x, y) for every image of ``data`` (encoded with its true label), on the CPU."""
    post = posteriors(model, data.x, data.y)
    return post.mu, post.logvar


class ProbeResult(NamedTuple):
    accuracy: float  # on the held-out half
    chance: float  # share of the most common digit in the held-out half
    n_train: int
    n_test: int


def latent_probe(
    z: torch.Tensor, y: torch.Tensor, hidden: int = 64, steps: int = 300, lr: float = 1e-2, seed: int = 0
) -> ProbeResult:
    """How well a small classifier reads the digit y from codes z alone.

    Trains on one half (full-batch Adam, ``steps`` steps) and scores the other half.
    ``hidden=0`` is logistic regression; otherwise one hidden ReLU layer of that width.
    High accuracy: z carries the digit, so the decoder could ignore y.
    """
    generator = torch.Generator().manual_seed(seed)
    z, y = z.detach().float().cpu(), y.detach().long().cpu()
    order = torch.randperm(len(z), generator=generator)
    half = len(z) // 2
    train_idx, test_idx = order[:half], order[half:]
    mean, std = z[train_idx].mean(0), z[train_idx].std(0).clamp_min(1e-6)
    z = (z - mean) / std  # standardize with training statistics only
    k = z.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = (nn.Linear(k, NUM_CLASSES) if hidden == 0
                 else nn.Sequential(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES)))
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            loss = F.cross_entropy(probe(z[train_idx]), y[train_idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = float((probe(z[test_idx]).argmax(1) == y[test_idx]).float().mean())
    chance = float(torch.bincount(y[test_idx], minlength=NUM_CLASSES).max()) / len(test_idx)
    return ProbeResult(accuracy, chance, len(train_idx), len(test_idx))


class PosteriorGap(NamedTuple):
    mean_norm: torch.Tensor  # (C,): ||mean of mu over the images of label c||
    kl: torch.Tensor  # (C,): KL(N(m_c, S_c) || N(0, I)) of the Gaussian fitted to q(z | y = c)
    active_dims: int  # latent dimensions whose mu varies across images (Var > 0.01)


def posterior_gap(mu: torch.Tensor, logvar: torch.Tensor, y: torch.Tensor,
                  threshold: float = ACTIVE_VARIANCE) -> PosteriorGap:
    """How far each label's aggregate posterior sits from the N(0, I) samples come from.

    For label c, q(z | y = c) averages q(z | x, c) over that label's images. Its mean is
    the mean of mu and its covariance Cov(mu) + mean(diag(sigma^2)) (law of total
    variance). A Gaussian with those moments is compared with N(0, I):
    KL = 1/2 (tr S + m^T m - k - log det S). Zero means sampling z ~ N(0, I) with
    label c lands where the decoder saw label c's codes during training.
    """
    mu, var, y = mu.double().cpu(), logvar.double().exp().cpu(), y.cpu()
    k = mu.shape[1]
    norms, kls = [], []
    for c in range(NUM_CLASSES):
        keep = y == c
        if keep.sum() < 2:
            norms.append(math.nan)
            kls.append(math.nan)
            continue
        m = mu[keep].mean(0)
        S = torch.cov(mu[keep].T).reshape(k, k) + torch.diag(var[keep].mean(0))
        kl = 0.5 * (torch.trace(S) + m @ m - k - torch.linalg.slogdet(S).logabsdet)
        norms.append(float(m.norm()))
        kls.append(float(kl))
    active = int(active_units(mu, threshold).sum())
    return PosteriorGap(torch.tensor(norms), torch.tensor(kls), active)


class OffsetCrowding(NamedTuple):
    nearest: torch.Tensor  # (C,): distance from P e_c to the closest other digit's offset
    nearest_digit: torch.Tensor  # (C,): which digit that closest offset belongs to
    closest: float  # the smallest distance between two digits' offsets


def offset_crowding(model: CVAE) -> OffsetCrowding:
    """project only: how close each digit's offset P e_c comes to another digit's.

    Distances are in latent units, that is in standard deviations of the prior: a sample
    z ~ N(0, I) strays about 1 along any direction, so two offsets much less than a few
    units apart hand the decoder overlapping inputs for two different digits.
    """
    offsets = label_offsets(model).cpu()
    d = torch.cdist(offsets, offsets)
    d.fill_diagonal_(math.inf)
    nearest, nearest_digit = d.min(dim=1)
    return OffsetCrowding(nearest, nearest_digit, float(nearest.min()))


@dataclass(frozen=True)
class SweepPoint:
    """One model of the latent-size sweep: does its decoder listen to the label, and why."""

    name: str
    conditioning: str
    latent_dim: int
    label_accuracy: float
    probe_accuracy: float  # digit read from mu alone (a small MLP on half the test images)
    mean_kl: float  # mean over labels of KL(q(z | y) || N(0, I)) (fitted Gaussians)
    mean_offset: float  # mean over labels of ||E[mu | y]||
    active_dims: int
    neg_elbo_nats: float  # test negative ELBO (beta = 1) stored with the checkpoint
    per_class: tuple[float, ...]  # label accuracy of each requested digit 0..9
    closest_offsets: float = math.nan  # project only: OffsetCrowding.closest


def sweep_point(
    name: str,
    trained: Trained,
    classifier: DigitClassifier,
    data: MNISTSplit,
    n_per_class: int = LABEL_SAMPLES_PER_CLASS,
) -> SweepPoint:
    """Label accuracy, latent probe, posterior gap (and project's offsets) of one model, on ``data``."""
    model = trained.model
    if not model.conditional:
        raise TypeError(f"{name} is not a CVAE")
    mu, logvar = posterior_means(model, data)
    probe = latent_probe(mu, data.y)
    gap = posterior_gap(mu, logvar, data.y)
    acc = label_accuracy(model, classifier, n_per_class=n_per_class)
    closest = offset_crowding(model).closest if model.config.conditioning == "project" else math.nan
    return SweepPoint(
        name, model.config.conditioning, model.config.latent_dim, acc.accuracy, probe.accuracy,
        float(gap.kl.nanmean()), float(gap.mean_norm.nanmean()), gap.active_dims,
        float(trained.metrics.get("neg_elbo_nats", math.nan)), tuple(acc.per_class), closest,
    )


def format_sweep(points: Sequence[SweepPoint]) -> str:
    """The sweep as an aligned text table (``closest P``: project's closest pair of offsets)."""
    head = (f"{'variant':8s} {'latent':>6s} {'-ELBO':>7s} {'label acc':>9s} {'probe acc':>9s} "
            f"{'KL(q(z|y)||N(0,I))':>19s} {'||E[mu|y]||':>11s} {'active dims':>11s} {'closest P':>9s}")
    lines = [head, "-" * len(head)]
    for p in sorted(points, key=lambda p: (p.conditioning, p.latent_dim)):
        closest = "-" if math.isnan(p.closest_offsets) else f"{p.closest_offsets:.2f}"
        lines.append(f"{p.conditioning:8s} {p.latent_dim:6d} {p.neg_elbo_nats:7.1f} {p.label_accuracy:9.1%} "
                     f"{p.probe_accuracy:9.1%} {p.mean_kl:19.2f} {p.mean_offset:11.2f} {p.active_dims:11d} "
                     f"{closest:>9s}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures
class PerDigitSamples(NamedTuple):
    images: torch.Tensor  # (10 * n, 1, 28, 28), digit-major: the n samples of digit 0, then of 1, ...
    z: torch.Tensor  # (n, latent_dim): the codes, shared by every digit (column j uses z[j])


@torch.no_grad()
def per_digit_samples(model: CVAE, n_per_digit: int = 8, seed: int = 0, temperature: float = 1.0) -> PerDigitSamples:
    """n_per_digit samples of each digit 0..9 from the same n_per_digit codes z ~ N(0, T^2 I).

    Every digit reuses the same codes, so column j of the grid is one code drawn as each
    digit in turn.
    """
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    z = temperature * torch.randn(n_per_digit, model.config.latent_dim, generator=generator)
    labels = torch.arange(model.config.num_classes, device=device).repeat_interleave(n_per_digit)
    images = torch.sigmoid(model.decode(z.repeat(model.config.num_classes, 1).to(device), labels))
    return PerDigitSamples(images, z)


@torch.no_grad()
def style_transfer(model: CVAE, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Encode each x with its own label, keep z = mu, decode it with every label.

    Returns (n, C, 1, 28, 28): row i is image i's handwriting drawn as each digit 0..C-1.
    """
    model.eval()
    device = next(model.parameters()).device
    mu = model.encode(x.to(device), y.to(device)).mu  # (n, k)
    n, c = len(mu), model.config.num_classes
    z = mu.repeat_interleave(c, dim=0)  # (n * C, k): each code C times
    labels = torch.arange(c, device=device).repeat(n)  # 0..C-1 for every code
    return torch.sigmoid(model.decode(z, labels)).reshape(n, c, *x.shape[1:])


class DigitError(NamedTuple):
    digit: int
    accuracy: float  # share of samples requested as this digit that were read as it
    confused_with: int  # the digit most often read instead
    confused_share: float  # share of this digit's samples read as confused_with


def hardest_digits(confusion: torch.Tensor, top: int = 3) -> list[DigitError]:
    """The ``top`` requested digits with the lowest label accuracy, and what they turn into."""
    conf = confusion.double()
    totals = conf.sum(1).clamp_min(1)
    accuracy = conf.diag() / totals
    off = conf.clone()
    off.fill_diagonal_(-1)
    out = []
    for d in accuracy.argsort()[:top].tolist():
        other = int(off[d].argmax())
        out.append(DigitError(d, float(accuracy[d]), other, float(conf[d, other] / totals[d])))
    return out


