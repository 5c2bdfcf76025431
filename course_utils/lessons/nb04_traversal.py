"""Notebook 04's models, measurements and figures (the explorers themselves are in
``course_utils.explorers``).

- ``course_models`` / ``plane_model``: the models of the explorers' picker, trained or
  loaded and prepared. The AE is ``ae-<VAE_LATENT>``: the same latent size as the VAE, so
  the two can be compared fairly.
- ``activity_table`` / ``plot_activity``: how much each latent dimension carries;
  ``settings_table`` / ``label_entropy``: what else differs between the VAE and the CVAEs.
- ``slant`` / ``width`` / ``style_effect``: which dimension tilts or widens the digit.
- ``traversal_reading``: does a CVAE's traversal keep the digit it was given?
- ``label_sweep`` / ``plot_label_sweep``: one code z decoded with each label (the static view
  of the digit picker).
- ``path_sag``: how much a straight path between encoded means shortens the code.
- ``path_confidence``: how the classifier reads the images along one path.
- ``path_readability`` / ``readability_table`` / ``plot_path_readability``: do
  interpolation paths stay among digits?
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from ..data import MNISTSplit, load_mnist
from ..latent import LINEAR, SPHERICAL, ExplorerModel, path_codes, prepare_model, traverse
from ..metrics import PathReading, Readability, read_paths, readability
from ..models import DigitClassifier
from ..plotting import show_rows
from ..recipes import AE_LATENT_SIZES, VAE_LATENT, course_recipe, train_or_load
from ..settings import pick_device

# The model picker: label shown -> course recipe name.
AE_NAME = f"ae-{VAE_LATENT}"  # same latent size as the VAE: a fair comparison
MODEL_CHOICES: dict[str, str] = {
    "AE": AE_NAME,
    "VAE": "vae",
    "CVAE (concat)": "cvae-concat",
    "CVAE (project)": "cvae-project",
}
PLANE_MODEL = "vae-2d"

assert VAE_LATENT in AE_LATENT_SIZES, "the AE beside the VAE must have the VAE's latent size"


def course_models(
    device: torch.device | None = None,
    choices: Mapping[str, str] = MODEL_CHOICES,
    test: MNISTSplit | None = None,
    directory: str | Path | None = None,
) -> dict[str, ExplorerModel]:
    """Train or load the models of the explorers' picker and prepare each one.

    ``directory`` is where ``train_or_load`` looks for (and saves) checkpoints; by default
    the course's own (``checkpoint_dir()``, then the shipped ``checkpoints/``)."""
    device = device if device is not None else pick_device()
    test = test if test is not None else load_mnist("test")
    out = {}
    for label, name in choices.items():
        model = train_or_load(name, device=device, directory=directory).model
        out[label] = prepare_model(label, name, model, test)
    return out


def plane_model(device: torch.device | None = None, test: MNISTSplit | None = None) -> ExplorerModel:
    """The 2-D VAE (``vae-2d``), trained or loaded, prepared for the PlaneExplorer."""
    device = device if device is not None else pick_device()
    test = test if test is not None else load_mnist("test")
    return prepare_model("VAE (2-D)", PLANE_MODEL, train_or_load(PLANE_MODEL, device=device).model, test)


def activity_table(models: Mapping[str, ExplorerModel], top: int = 5) -> str:
    """A text table: latent size, active dimensions, total KL (nats per image) and the most active dimensions."""
    lines = [f"{'model':<15} {'recipe':<13} {'k':>3} {'active':>6} {'KL nats':>8}   "
             "most active first (avg KL in nats; AE: variance of the codes)"]
    for m in models.values():
        top_dims = ", ".join(f"z[{d}] {float(m.activity[d]):.2f}" for d in m.order[:top])
        total = f"{float(m.activity.sum()):.1f}" if m.variational else "-"
        lines.append(f"{m.label:<15} {m.name:<13} {m.latent_dim:>3} {len(m.active):>6} {total:>8}   {top_dims}")
    return "\n".join(lines)


def settings_table(models: Mapping[str, ExplorerModel]) -> str:
    """What else differs between the models besides the label: latent size, beta, epochs (this mode's recipes)."""
    lines = [f"{'model':<15} {'recipe':<13} {'k':>3} {'beta':>5} {'epochs':>6} {'KL nats':>8}"]
    for m in models.values():
        if not m.variational:
            continue
        train = course_recipe(m.name).train
        lines.append(f"{m.label:<15} {m.name:<13} {m.latent_dim:>3} {train.beta:>5g} {train.epochs:>6} "
                     f"{float(m.activity.sum()):>8.1f}")
    return "\n".join(lines)


def label_entropy(y: torch.Tensor) -> float:
    """H(y) in nats of the labels' empirical distribution: at most ln 10 = 2.30 for ten digits."""
    p = torch.bincount(y.reshape(-1).cpu(), minlength=10).double() / y.numel()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


# ----------------------------------------------------------------------------- measures
def slant(x: torch.Tensor) -> torch.Tensor:
    """Slant of each image (B,): how far the ink moves right per pixel upwards.

    With pixel intensities as weights, u the column and v the height (upwards) of a
    pixel, both centred on the ink's centre of mass: slant = sum(w u v) / sum(w v^2),
    the least-squares slope of u against v. Positive: leaning right, like "/".
    """
    img = x.detach().float().reshape(-1, 28, 28).cpu()
    weight = img / img.sum((1, 2), keepdim=True).clamp_min(1e-8)
    cols = torch.arange(28.0).reshape(1, 1, 28)
    heights = (27 - torch.arange(28.0)).reshape(1, 28, 1)
    u = cols - (weight * cols).sum((1, 2), keepdim=True)
    v = heights - (weight * heights).sum((1, 2), keepdim=True)
    return (weight * u * v).sum((1, 2)) / (weight * v * v).sum((1, 2)).clamp_min(1e-8)


def width(x: torch.Tensor) -> torch.Tensor:
    """Width of each image (B,) in pixels: the spread (standard deviation) of the ink's columns."""
    img = x.detach().float().reshape(-1, 28, 28).cpu()
    weight = img / img.sum((1, 2), keepdim=True).clamp_min(1e-8)
    cols = torch.arange(28.0).reshape(1, 1, 28)
    u = cols - (weight * cols).sum((1, 2), keepdim=True)
    return (weight * u * u).sum((1, 2)).sqrt()


class DimensionEffect(NamedTuple):
    dims: list[int]  # dimensions sorted by |effect|, largest first
    effect: torch.Tensor  # (k,) average change of the measure per prior standard deviation of z[d]
    per_label: torch.Tensor  # (k, 10) the same average over the test digits of each label (nan: none)


@torch.no_grad()
def style_effect(m: ExplorerModel, test: MNISTSplit, measure: Callable[[torch.Tensor], torch.Tensor],
                 n: int = 100, delta: float = 1.5) -> DimensionEffect:
    """How much moving each dimension changes ``measure`` (``slant``, ``width``): for n encoded
    test digits, set z[d] to center - delta * scale and center + delta * scale and average the slope.
    A CVAE decodes each digit with its own label."""
    x, y = test.x[:n], test.y[:n].cpu()
    base = m.encode(x, y).cpu()  # (n, k)
    effect = torch.zeros(m.latent_dim)
    per_label = torch.full((m.latent_dim, 10), float("nan"))
    labels = y if m.conditional else None
    for d in range(m.latent_dim):
        low, high = base.clone(), base.clone()
        low[:, d] = m.center[d] - delta * m.scale[d]
        high[:, d] = m.center[d] + delta * m.scale[d]
        change = (measure(m.decode(high, labels)) - measure(m.decode(low, labels))) / (2 * delta)
        effect[d] = change.mean()
        for c in range(10):
            if bool((y == c).any()):
                per_label[d, c] = change[y == c].mean()
    dims = torch.argsort(effect.abs(), descending=True).tolist()
    return DimensionEffect(dims, effect, per_label)


def slant_effect(m: ExplorerModel, test: MNISTSplit, n: int = 100, delta: float = 1.5) -> DimensionEffect:
    """``style_effect`` of the slant: which dimension tilts the digit."""
    return style_effect(m, test, slant, n, delta)


@torch.no_grad()
def traversal_reading(m: ExplorerModel, classifier: DigitClassifier, label: int, span: float = 3.0,
                      steps: int = 9) -> torch.Tensor:
    """The classifier's probability of ``label`` (rows, steps) for a CVAE's traversal of every
    dimension (most active first) with that label and the others at zero."""
    images = traverse(m, m.order, span, steps, y=torch.tensor([label]))
    return classifier.probabilities(images)[:, label].reshape(len(m.order), steps).cpu()


@torch.no_grad()
def label_sweep(m: ExplorerModel, z: torch.Tensor) -> torch.Tensor:
    """One code z (k,) decoded with each label 0..9: images (10, 1, 28, 28)."""
    return m.decode(z.reshape(1, -1).repeat(10, 1), torch.arange(10)).cpu()


def plot_label_sweep(models: Sequence[ExplorerModel], test: MNISTSplit, indices: Sequence[int]):
    """For each CVAE and each test digit: the digit, then its code z (encoded with its own label)
    decoded with y = 0, 1, ..., 9. The static view of the explorers' digit picker."""
    rows = {}
    for m in models:
        if not m.conditional:
            raise ValueError(f"{m.label} is not conditional: a label sweep needs a CVAE")
        for i in indices:
            x, y = test.x[i: i + 1], test.y[i: i + 1]
            rows[f"{m.label}\nz of test #{i}"] = torch.cat([x.cpu(), label_sweep(m, m.encode(x, y)[0].cpu())])
    return show_rows(rows, title="left: a test digit; then its code z decoded with y = 0, 1, ..., 9")


class PathSag(NamedTuple):
    median_norm: float  # median length of the encoded test codes (standardized: (z - center) / scale)
    shell: float  # sqrt(k): where the prior N(0, I) puts almost all of its probability
    midpoint_ratio: float  # median over pairs: |straight-line midpoint| / mean of the two endpoints' lengths


def path_sag(m: ExplorerModel, pairs: int = 1000, seed: int = 0) -> PathSag:
    """How far the encoded codes sit from the prior's shell, and how much a straight path's middle sags."""
    z = (m.codes - m.center) / m.scale
    g = torch.Generator().manual_seed(seed)
    a, b = z[torch.randint(len(z), (pairs,), generator=g)], z[torch.randint(len(z), (pairs,), generator=g)]
    ratio = (0.5 * (a + b)).norm(dim=1) / (0.5 * (a.norm(dim=1) + b.norm(dim=1))).clamp_min(1e-8)
    return PathSag(float(z.norm(dim=1).median()), math.sqrt(m.latent_dim), float(ratio.median()))


@torch.no_grad()
def path_confidence(m: ExplorerModel, test: MNISTSplit, classifier: DigitClassifier, index_a: int, index_b: int,
                    t: torch.Tensor, path: str = LINEAR) -> Readability:
    """How the classifier reads the decoded images along the path from test digit #a to #b at ``t``."""
    a, b = m.encode(test.x[[index_a, index_b]]).cpu()
    return readability(classifier, m.decode(path_codes(m, a, b, t, path)))


class ModelPathReading(NamedTuple):
    """How the digit classifier reads the images along one model's paths (averaged over pairs)."""

    model: str  # the model's label, e.g. "AE"
    path: str  # LINEAR or SPHERICAL
    reading: PathReading  # metrics.read_paths: share read confidently, mean confidence, at each t
    double_exposure: float  # cosine similarity of the midpoint to the average of the two end images


@torch.no_grad()
def path_readability(
    models: Sequence[ExplorerModel],
    test: MNISTSplit,
    classifier: DigitClassifier,
    pairs: int = 300,
    steps: int = 11,
    paths: Sequence[str] = (LINEAR, SPHERICAL),
    threshold: float = 0.9,
    seed: int = 0,
) -> list[ModelPathReading]:
    """Decode paths between ``pairs`` random pairs of test digits and let the classifier read them.

    ``reading.confident_share`` is the share of images read with confidence above
    ``threshold`` (notebook 01's readability); ``double_exposure`` compares the image at
    t = 0.5 with the pixel average of the images at t = 0 and t = 1: near 1, the midpoint
    is just the two digits faded into each other, which is not a digit.
    """
    generator = torch.Generator().manual_seed(seed)
    i = torch.randint(len(test), (pairs,), generator=generator)
    j = torch.randint(len(test), (pairs,), generator=generator)
    t = torch.linspace(0, 1, steps)
    out = []
    for m in models:
        a, b = m.encode(test.x[i]).cpu(), m.encode(test.x[j]).cpu()
        for path in paths:
            z = torch.cat([path_codes(m, a[p], b[p], t, path) for p in range(pairs)])  # (pairs * steps, k)
            images = m.decode(z).cpu().reshape(pairs, steps, 1, 28, 28)
            reading = read_paths(classifier, images, t.tolist(), threshold)
            flat = images.flatten(2)
            fade = 0.5 * (flat[:, 0] + flat[:, -1])
            similarity = F.cosine_similarity(flat[:, steps // 2], fade, dim=1).mean()
            out.append(ModelPathReading(m.label, path, reading, float(similarity)))
    return out


def readability_table(readings: Sequence[ModelPathReading]) -> str:
    """One line per model and path: readable share at t = 0, 0.5, 1 and the double-exposure similarity."""
    lines = [f"{'model':<6} {'path':<10} {'read at t=0':>11} {'t=0.5':>6} {'t=1':>6} {'double exposure at t=0.5':>25}"]
    for r in readings:
        share = r.reading.confident_share
        mid = len(share) // 2
        lines.append(f"{r.model:<6} {r.path:<10} {share[0]:>11.2f} {share[mid]:>6.2f} "
                     f"{share[-1]:>6.2f} {r.double_exposure:>25.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures
def plot_activity(models: Mapping[str, ExplorerModel]):
    """Average KL of each latent dimension, sorted, one line per VAE/CVAE (log scale).

    Filled markers: the dimensions that are active by Burda et al.'s criterion, Var(mu_j) > 0.01.
    """
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, m in enumerate(m for m in models.values() if m.variational):
        kl = m.activity[m.order].clamp_min(1e-4).numpy()
        rank = np.arange(1, len(kl) + 1)
        active = m.active_mask[m.order].numpy()
        ax.plot(rank, kl, "-", color=f"C{i}", lw=1, label=f"{m.label} (k = {m.latent_dim}, {active.sum()} active)")
        ax.plot(rank[active], kl[active], "o", ms=4, color=f"C{i}")
        ax.plot(rank[~active], kl[~active], "o", ms=4, mfc="white", color=f"C{i}")
    ax.set_yscale("log")
    ax.set_xlabel("dimension rank (most active first)")
    ax.set_ylabel("average KL (nats; floor 1e-4)")
    ax.set_title("How much each latent dimension carries: average KL on test images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_path_readability(readings: Sequence[ModelPathReading], threshold: float = 0.9):
    """Share of images read confidently along the paths, one line per model and path kind."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    colors: dict[str, str] = {}
    for r in readings:
        color = colors.setdefault(r.model, f"C{len(colors)}")
        ax.plot(r.reading.t, r.reading.confident_share, "o-" if r.path == LINEAR else "s--", ms=4, color=color,
                label=f"{r.model}, {r.path}")
    ax.set_xlabel("t (0: first test digit, 1: second)")
    ax.set_ylabel(f"share read with confidence > {threshold:g}")
    ax.set_ylim(0, 1.02)
    ax.set_title("Do the paths stay among digits? (random pairs of test digits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
