"""Notebook 01's figures: pixel statistics, codes and their bounding box, distortion against
code size (with PSNR), readability, the digit mix of generated images, and interpolation paths.
The numbers behind them are computed in ``nb01_compression``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import torch

from ..data import NUM_CLASSES
from ..plotting import DIGIT_COLORS, image_grid
from .nb01_compression import CodeBox, CompressionRow, pixel_moments


def plot_codes_shuffled(z: torch.Tensor, y: torch.Tensor, title: str, ax=None, seed: int = 0):
    """2-D codes coloured by digit, drawn in a random order, so that no digit is painted over the others."""
    order = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))
    z, y = z.detach().float().cpu()[order], y.cpu()[order]
    fig, ax = plt.subplots(figsize=(5.5, 5)) if ax is None else (ax.figure, ax)
    ax.scatter(z[:, 0].numpy(), z[:, 1].numpy(), s=2, c=DIGIT_COLORS(y.numpy()), alpha=0.6)
    for d in range(NUM_CLASSES):  # legend entries only
        ax.scatter([], [], s=8, color=DIGIT_COLORS(d), label=str(d))
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title=title)
    ax.legend(markerscale=2, fontsize=7, title="digit", loc="best", ncol=2)
    return fig


def plot_pixel_statistics(x: torch.Tensor, title: str = "Pixel statistics of the MNIST training images"):
    """Histogram of pixel values, the mean image, and the per-pixel standard deviation."""
    flat = x.reshape(len(x), -1)
    chunk = 2_000  # sums over chunks of images: no float or int64 copy of the whole set
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1.4, 1, 1]})
    # bincount, not torch.histc: histc counts in float32 and stops at 2**24 per bin
    counts = sum(torch.bincount((part * 50).long().clamp(0, 49).flatten(), minlength=50).double().cpu()
                 for part in flat.split(chunk))
    axes[0].stairs(counts.numpy(), np.linspace(0, 1, 51), fill=True, color="C0")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("pixel value (0 = black, 1 = white ink)")
    axes[0].set_ylabel(f"pixels in all {len(flat):,} images (log scale)")
    axes[0].set_title("histogram of pixel values")
    pixel_mean, squares = pixel_moments(flat, chunk)
    pixel_std = (squares / max(len(flat) - 1, 1)).sqrt()  # torch.std's unbiased estimate, per pixel
    for ax, image, name in ((axes[1], pixel_mean, "mean image"), (axes[2], pixel_std, "per-pixel std")):
        shown = ax.imshow(image.reshape(28, 28).float().cpu().numpy(), cmap="magma")
        fig.colorbar(shown, ax=ax, fraction=0.046)
        ax.set_title(name)
        ax.set_xlabel("pixel column")
        ax.set_ylabel("pixel row")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_distortion_vs_code_size(ae_rows: Sequence[CompressionRow], pca_rows: Sequence[CompressionRow],
                                 title: str = "Distortion against code size (MNIST test set)"):
    """Test MSE per pixel against k for the AE and PCA, log-log, with PSNR on the right axis."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for rows, style, label in ((pca_rows, "s--", "PCA (linear)"), (ae_rows, "o-", "autoencoder (MLP)")):
        ax.plot([r.latent_dim for r in rows], [r.mse_per_pixel for r in rows], style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ks = sorted({r.latent_dim for r in [*ae_rows, *pca_rows]})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("code size k (numbers per image; 784 pixels in)")
    ax.set_ylabel("test MSE per pixel (log scale)")
    right = ax.secondary_yaxis("right", functions=(lambda m: 10 * _log10(1 / m), lambda p: 10 ** (-p / 10)))
    right.yaxis.set_major_locator(ticker.MultipleLocator(2))
    right.yaxis.set_minor_locator(ticker.NullLocator())
    right.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.0f"))
    right.set_ylabel("PSNR (dB), higher is better")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _log10(v):
    return np.log10(np.clip(v, 1e-12, None))


def plot_codes_with_box(z: torch.Tensor, y: torch.Tensor, box: CodeBox, z_box: torch.Tensor,
                        title: str = "2-D codes of test digits and uniform samples from a box"):
    """2-D codes ``z`` coloured by digit ``y``, the rectangle ``box``, and the codes ``z_box`` drawn from it."""
    fig, ax = plt.subplots(figsize=(7.2, 5.6))
    plot_codes_shuffled(z, y, title=title, ax=ax)
    low, high = box.low.tolist(), box.high.tolist()
    ax.add_patch(plt.Rectangle((low[0], low[1]), high[0] - low[0], high[1] - low[1], fill=False, ls="--",
                               color="k", label="bounding box"))
    ax.scatter(z_box[:, 0].numpy(), z_box[:, 1].numpy(), marker="x", s=18, color="k", label="box draw")
    ax.legend(markerscale=2, fontsize=8, title="digit", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def plot_readability(latent_dims: Sequence[int], curves: dict[str, Sequence[float]], levels: dict[str, float],
                     threshold: float = 0.9, title: str = "Can the classifier read what the decoder makes?"):
    """Share of images read with confidence > ``threshold`` against code size k.

    ``curves`` maps a name to one share per k (lines with markers); ``levels`` maps a name
    to a single share that does not depend on k (horizontal lines).
    """
    fig, ax = plt.subplots(figsize=(7.4, 4.0))
    for (name, level), style in zip(levels.items(), (":", "-.", "--"), strict=False):
        ax.axhline(level, color="k", ls=style, lw=1.2, label=name)
    for (name, shares), marker in zip(curves.items(), "sovD^", strict=False):
        ax.plot(list(latent_dims), list(shares), marker=marker, ls="-", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(latent_dims), [str(k) for k in latent_dims])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("code size k")
    ax.set_ylabel(f"share read with confidence > {threshold:g}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_digit_mix(mixes: dict[str, torch.Tensor], title: str = "Which digits come out?"):
    """Grouped bars: for each named set of images, the share of each digit among its confident reads."""
    fig, ax = plt.subplots(figsize=(7.4, 3.6))
    width = 0.8 / len(mixes)
    for i, (name, mix) in enumerate(mixes.items()):
        ax.bar(np.arange(NUM_CLASSES) + (i - (len(mixes) - 1) / 2) * width, mix.numpy(), width, label=name)
    ax.axhline(1 / NUM_CLASSES, color="k", ls=":", lw=1, label="every digit equally often")
    ax.set_xticks(range(NUM_CLASSES))
    ax.set_xlabel("digit the classifier reads")
    ax.set_ylabel("share of the confident reads")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_interpolation(paths: dict[str, torch.Tensor], confidence: dict[str, torch.Tensor],
                       title: str = "Walking in a straight line between two codes"):
    """Decoded images along each path (one row per path), and under them the classifier's confidence at each step."""
    names = list(paths)
    steps = len(next(iter(paths.values())))
    fig = plt.figure(figsize=(max(7.0, 0.62 * steps), 1.0 * len(names) + 2.6))
    grid = fig.add_gridspec(2, 1, height_ratios=[0.9 * len(names), 2.2])
    ax = fig.add_subplot(grid[0])
    images = torch.cat([paths[name] for name in names])
    ax.imshow(image_grid(images, nrow=steps), cmap="gray", vmin=0, vmax=1)
    cell = 28 + 2  # image_grid's default padding is 2 pixels
    ax.set_yticks([cell * i + cell / 2 + 1 for i in range(len(names))], names)
    ticks = [f"{t:.2f}" for t in torch.linspace(0, 1, steps).tolist()]
    ax.set_xticks([cell * i + cell / 2 + 1 for i in range(steps)], ticks, fontsize=7)
    ax.set_xlabel("position t along the path (0 = first digit, 1 = second digit)")
    ax.set_title(title)
    t = torch.linspace(0, 1, steps).numpy()
    ax2 = fig.add_subplot(grid[1])
    for i, name in enumerate(names):
        ax2.plot(t, confidence[name].numpy(), "o-", ms=3, color=f"C{i}", label=name)
    ax2.set_ylim(0, 1.05)
    ax2.set_xlabel("position t along the path")
    ax2.set_ylabel("classifier confidence")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
