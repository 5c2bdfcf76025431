"""Notebook 03's figures (its measurements are in ``nb03_conditioning``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from matplotlib.ticker import PercentFormatter

from ..data import NUM_CLASSES
from ..models import DigitClassifier
from ..plotting import image_grid
from ..recipes import Trained
from .nb03_conditioning import LABEL_ACCURACY_TARGET, PAD, VARIANT_COLORS, VARIANTS, SweepPoint


def plot_sweep(
    points: Sequence[SweepPoint],
    chance: float = 0.1,
    default_latent: int | None = None,
    target: float | None = LABEL_ACCURACY_TARGET,
    swaps: dict[str, float] | None = None,
):
    """Four panels against latent size: label accuracy, then three measured reasons.

    Label accuracy (with ``swaps``, model name -> label-swap accuracy, as dashed lines); the
    latent probe (digit read from mu); the mean KL of each digit's aggregate posterior from
    N(0, I); and, for project, the distance between its two closest digit offsets.
    """
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.2))
    axes = axes.flatten()
    panels = [
        ("label_accuracy", "label accuracy (solid: samples; dashed: label swap)",
         "Does the decoder draw\nthe requested digit?"),
        ("probe_accuracy", "probe accuracy (digit read from mu)", "Does z alone carry the digit?"),
        ("mean_kl", "mean over digits of KL(q(z|y) || N(0, I)) (nats)",
         "How far is each digit's code cloud\nfrom the N(0, I) samples come from?"),
        ("closest_offsets", "closest pair of offsets P[:, a], P[:, b]\n(prior standard deviations)",
         "project: how far apart are\nthe digits' offsets?"),
    ]
    sizes = sorted({p.latent_dim for p in points})
    for ax, (attr, ylabel, title) in zip(axes, panels, strict=True):
        for variant in VARIANTS:
            pts = sorted((p for p in points if p.conditioning == variant), key=lambda p: p.latent_dim)
            values = [getattr(p, attr) for p in pts]
            if pts and not all(math.isnan(v) for v in values):
                ax.plot([p.latent_dim for p in pts], values, "o-", color=VARIANT_COLORS[variant], label=variant)
            if attr == "label_accuracy" and swaps and pts:
                ax.plot([p.latent_dim for p in pts], [swaps[p.name] for p in pts], "s--", ms=4,
                        color=VARIANT_COLORS[variant], alpha=0.7, label=f"{variant}: label swap")
        if attr == "label_accuracy" and target is not None:
            ax.axhline(target, color="green", ls=":", label=f"target {target:.0%}")
        if attr == "probe_accuracy":
            ax.axhline(chance, color="gray", ls=":", label="chance")
        if attr == "closest_offsets":
            ax.axhline(1.0, color="gray", ls=":", label="1 prior std")
            ax.set_yscale("log")
        if default_latent is not None:
            ax.axvline(default_latent, color="gray", ls="--", lw=0.8, label="course default")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("latent size k")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if attr in ("label_accuracy", "probe_accuracy"):
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        ax.legend(fontsize=8)
    fig.suptitle("Latent-size sweep: does the decoder listen to the label, and why")
    fig.tight_layout()
    return fig




def _mark_cells(ax, wrong: np.ndarray, pad: int = PAD) -> None:
    """Red frame around each grid cell where ``wrong`` (rows x cols) is True."""
    for r, c in zip(*np.nonzero(wrong), strict=True):
        ax.add_patch(Rectangle((pad + c * (28 + pad) - 1.5, pad + r * (28 + pad) - 1.5), 30, 30,
                               fill=False, edgecolor="red", linewidth=1.5))




@torch.no_grad()
def plot_digit_grids(samples: dict[str, torch.Tensor], classifier: DigitClassifier | None = None):
    """Side-by-side per-digit grids (10 rows, one per requested digit).

    With a classifier, a red frame marks every sample it reads as another digit.
    """
    fig, axes = plt.subplots(1, len(samples), figsize=(5.2 * len(samples), 6.4), squeeze=False)
    for ax, (name, images) in zip(axes[0], samples.items(), strict=True):
        per_row = len(images) // NUM_CLASSES
        grid = image_grid(images, nrow=per_row)
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        title = name
        if classifier is not None:
            requested = torch.arange(NUM_CLASSES).repeat_interleave(per_row)
            read = classifier.to(images.device).predict(images).cpu()
            wrong = (read != requested).numpy().reshape(NUM_CLASSES, per_row)
            _mark_cells(ax, wrong)
            title += f"\n(red frame: classifier reads another digit; {int(wrong.sum())} of {len(images)})"
        step = grid.shape[0] / NUM_CLASSES
        ax.set_yticks([step * (i + 0.5) for i in range(NUM_CLASSES)], [str(d) for d in range(NUM_CLASSES)])
        ax.set_xticks([])
        ax.set_ylabel("requested digit y")
        ax.set_xlabel(f"{per_row} samples per requested digit")
        ax.set_title(title, fontsize=10)
    fig.suptitle("Per-digit samples")
    fig.tight_layout()
    return fig




def plot_style_transfer(x: torch.Tensor, grids: dict[str, torch.Tensor]):
    """For each variant: the test digits (left column) and their z decoded as every digit."""
    fig, axes = plt.subplots(1, len(grids), figsize=(6.3 * len(grids), 0.55 * len(x) + 1.0), squeeze=False)
    for ax, (name, images) in zip(axes[0], grids.items(), strict=True):
        n, c = images.shape[:2]
        tiles = torch.cat([x.cpu().unsqueeze(1), torch.ones(n, 1, *x.shape[1:]), images.cpu()], dim=1)
        grid = image_grid(tiles.reshape(-1, *x.shape[1:]), nrow=c + 2)
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        ticks = [PAD + 14 + i * (28 + PAD) for i in range(c + 2)]
        ax.set_xticks([ticks[0], *ticks[2:]], ["input", *[str(d) for d in range(c)]])
        ax.set_yticks([])
        ax.set_xlabel("label given to the decoder (same z in each row)")
        ax.set_ylabel("test digit encoded with its own label")
        ax.set_title(name)
    fig.suptitle("Style and content: keep z = mu of a test digit, change only y")
    fig.tight_layout()
    return fig




def plot_confusions(confusions: dict[str, torch.Tensor]):
    """Row-normalized confusion of generated digits, diagonal hidden, one panel per variant.

    Only the mistakes are coloured (percent of the requested digit's samples), so the
    hard cases stand out; the per-digit accuracy is printed at the right of each row.
    """
    fig, axes = plt.subplots(1, len(confusions), figsize=(5.6 * len(confusions), 4.8), squeeze=False)
    shares = {n: (c.double() / c.sum(1, keepdim=True).clamp_min(1)).numpy() for n, c in confusions.items()}
    vmax = max(float((s - np.diag(np.diag(s))).max()) for s in shares.values()) or 1.0
    for ax, (name, share) in zip(axes[0], shares.items(), strict=True):
        errors = np.ma.masked_array(share, mask=np.eye(len(share), dtype=bool))
        im = ax.imshow(errors * 100, cmap="Reds", vmin=0, vmax=vmax * 100)
        for r in range(len(share)):
            for c in range(len(share)):
                if r != c and share[r, c] >= 0.01:
                    ax.text(c, r, f"{share[r, c]:.0%}", ha="center", va="center", fontsize=7,
                            color="white" if share[r, c] > 0.6 * vmax else "black")
            ax.text(len(share) - 0.3, r, f"{share[r, r]:.1%}", ha="left", va="center", fontsize=7)
        ax.set_xticks(range(NUM_CLASSES))
        ax.set_yticks(range(NUM_CLASSES))
        ax.set_xlabel("digit the classifier reads")
        ax.set_ylabel("requested digit y")
        ax.set_title(f"{name}: where the misread samples go\n(right: per-digit accuracy)", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.12, label="% of the requested digit's samples")
    fig.suptitle("Which digits does each variant get wrong?")
    fig.tight_layout()
    return fig




def plot_test_curves(histories: dict[str, Trained], title: str = "Same budget: test negative ELBO per epoch"):
    """Test negative ELBO (reconstruction + KL, beta = 1) per epoch of several trained models.

    The history's ``test_loss`` is the training objective (recon + beta KL); the sum of its
    parts is the beta = 1 bound, the figure the comparison table reports.
    """
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, trained in histories.items():
        h = trained.history
        variant = getattr(trained.model.config, "conditioning", "")
        neg_elbo = [r + k for r, k in zip(h.test_recon, h.test_kl, strict=True)]
        ax.plot(h.epoch, neg_elbo, "o-", ms=3, label=name, color=VARIANT_COLORS.get(variant))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test negative ELBO (nats / image)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


PRIOR_MARKERS = {"own": "o", "Gaussian": "s", "mixture": "^"}  # the frontier's prior kinds


def _prior_kind(point: dict) -> str:
    if not point["fitted_after_training"]:
        return "own"
    return "mixture" if point["prior"].startswith("mixture") else "Gaussian"


def frontier_label(point: dict) -> str:
    """A short name for a frontier point's training setting: "concat k8 b3 e10 (P init PyTorch)"."""
    text = f"{point['conditioning']} k{point['latent_dim']} b{point['beta']:g} e{point['epochs']}"
    if point["conditioning"].startswith("project") and point["projection_init_std"] is None:
        text += " (P: PyTorch init)"
    return text


def plot_frontier(points: Sequence[dict], target_accuracy: float = LABEL_ACCURACY_TARGET,
                  target_nats: float = 100.0, chosen: dict | None = None):
    """Label accuracy at temperature 1 against test negative ELBO, one point per (setting, prior).

    The vertical axis is the error rate 1 - accuracy on a log scale, turned so that up is
    better and labelled as accuracy: 90%, 99% and 99.9% are equally far apart. Colour: the
    conditioning; marker: the prior (the model's own, or a Gaussian or mixture fitted per
    label after training); a grey line joins one trained model's priors. The green corner
    is the goal (at least ``target_accuracy``, at most ``target_nats``).
    """
    fig, ax = plt.subplots(figsize=(10, 6.2))
    error = [max(1 - p["label_accuracy"], 1e-4) for p in points]
    own_points = []  # each model's own-prior point, labelled once the axes are final
    for name in dict.fromkeys(p["model"] for p in points):
        pts = sorted((p for p in points if p["model"] == name), key=lambda p: p["neg_elbo_nats"])
        ax.plot([p["neg_elbo_nats"] for p in pts], [1 - p["label_accuracy"] for p in pts], "-", color="0.8", zorder=1)
        own_points.append(next(p for p in pts if not p["fitted_after_training"]))
        for p in pts:
            ax.scatter(p["neg_elbo_nats"], 1 - p["label_accuracy"], marker=PRIOR_MARKERS[_prior_kind(p)], s=46,
                       color=VARIANT_COLORS.get(p["conditioning"], "gray"), edgecolor="black", linewidth=0.4, zorder=3)
    lo_x, hi_x = min(p["neg_elbo_nats"] for p in points) - 1, max(p["neg_elbo_nats"] for p in points) + 1.5
    lo_y, hi_y = min(error) / 1.6, min(1.0, max(error) * 1.6)
    ax.fill_between([lo_x, target_nats], lo_y, 1 - target_accuracy, color="green", alpha=0.12, label="goal")
    ax.axhline(1 - target_accuracy, color="green", ls=":", lw=1)
    ax.axvline(target_nats, color="green", ls=":", lw=1)
    if chosen is not None:
        ax.scatter(chosen["neg_elbo_nats"], 1 - chosen["label_accuracy"], s=260, facecolor="none", edgecolor="red",
                   linewidth=1.6, zorder=4, label="chosen")
    for variant, color in VARIANT_COLORS.items():
        if any(p["conditioning"] == variant for p in points):
            ax.scatter([], [], color=color, marker="o", label=variant)
    for kind, marker in PRIOR_MARKERS.items():
        text = {"own": "the model's own prior", "Gaussian": "Gaussian fitted per label",
                "mixture": "mixture fitted per label"}[kind]
        ax.scatter([], [], color="white", edgecolor="black", marker=marker, label=text)
    ax.set_yscale("log")
    ax.set_xlim(lo_x, hi_x)
    ax.set_ylim(hi_y, lo_y)  # small error at the top
    ticks = [t for t in (0.6, 0.3, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001) if lo_y <= t <= hi_y]
    ax.set_yticks(ticks, [f"{1 - t:.1%}".replace(".0%", "%") for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("test negative ELBO (nats per image, lower is better)")
    ax.set_ylabel("label accuracy at temperature 1 (log scale of the error rate)")
    ax.set_title("The frontier: does the model draw the asked-for digit, and what does it cost in likelihood?")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left", ncol=2)
    fig.tight_layout()
    _label_without_overlap(fig, ax, own_points)
    fig.tight_layout()  # again, to make room for labels that reach past the axes
    return fig


def _label_without_overlap(fig, ax, own_points: Sequence[dict]) -> None:
    """Name each model beside its own-prior point: below it, else above, else further out,
    whichever first keeps clear of the labels already placed."""
    renderer = fig.canvas.get_renderer()
    offsets = (-11, 10, -22, 21)  # points below / above the marker, the last kept whatever it overlaps
    placed = []
    for own in own_points:
        xy = (own["neg_elbo_nats"], 1 - own["label_accuracy"])
        for dy in offsets:
            label = ax.annotate(frontier_label(own), xy, fontsize=7, xytext=(5, dy), textcoords="offset points",
                                color="0.3")
            box = label.get_window_extent(renderer)
            if dy == offsets[-1] or not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        placed.append(box)
