"""Pictures the notebooks share: image tiling and PNG encoding, image grids, training
curves, latent maps.

Every figure function returns the matplotlib Figure (so a notebook can save or tweak
it) and gives each figure a title and labelled axes. ``tile`` is the one place images
are laid out in a mosaic, for figures (``image_grid``) and for the explorers' PNGs alike.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from .training import History

DIGIT_COLORS = plt.get_cmap("tab10")
SCALE = 5  # the explorers' main image: 28 px -> 140 px


# ----------------------------------------------------------------------------- tiling and PNG
def tile(images: np.ndarray, ncol: int, pad: int = 2, value: float = 1.0) -> np.ndarray:
    """Digits (N, 28, 28) -> one (H, W) mosaic of the same dtype, ``ncol`` per row, gaps of ``value``."""
    n = len(images)
    nrow = max(1, (n + ncol - 1) // ncol)
    out = np.full((nrow * (28 + pad) + pad, ncol * (28 + pad) + pad), value, dtype=images.dtype)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        out[pad + r * (28 + pad) : pad + r * (28 + pad) + 28, pad + c * (28 + pad) : pad + c * (28 + pad) + 28] = img
    return out


def _to_numpy_images(images: torch.Tensor) -> np.ndarray:
    """(N, 1, 28, 28) or (N, 784) tensor -> (N, 28, 28) float array in [0, 1]."""
    return images.detach().float().cpu().reshape(-1, 28, 28).clamp(0, 1).numpy()


def image_grid(images: torch.Tensor, nrow: int, pad: int = 2) -> np.ndarray:
    """Tile images into one (H, W) float array, ``nrow`` images per row, white gaps."""
    return tile(_to_numpy_images(images).astype(np.float64), nrow, pad, value=1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 1, 28, 28) or (1, 28, 28) or (28, 28) pixels in [0, 1] -> uint8 array (N, 28, 28)."""
    x = images.detach().reshape(-1, 28, 28).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.cpu().numpy()


def tile_uint8(images: np.ndarray, ncol: int, pad: int = 2) -> np.ndarray:
    """``tile`` for uint8 digits with dark grey gaps (the explorers' strips and grids)."""
    return tile(images, ncol, pad, value=80)


def png_bytes(pixels: np.ndarray, scale: int = 1) -> bytes:
    """A uint8 image (H, W) grey or (H, W, 3) RGB as PNG bytes, upscaled ``scale`` times
    with nearest neighbour (so pixels stay crisp squares)."""
    img = PILImage.fromarray(np.ascontiguousarray(pixels))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), PILImage.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=1)  # fast; the images are tiny anyway
    return buffer.getvalue()


def digit_png(x_hat: torch.Tensor, scale: int = SCALE) -> bytes:
    """One decoded digit (any shape with 784 pixels) as PNG bytes, ``28 * scale`` px wide."""
    return png_bytes(to_uint8(x_hat)[0], scale)


def label_rows(mosaic: np.ndarray, labels: Sequence[str], scale: int, margin: int = 44, pad: int = 2) -> np.ndarray:
    """Upscale a uint8 mosaic and write one label left of each row of digits."""
    img = PILImage.fromarray(mosaic).resize((mosaic.shape[1] * scale, mosaic.shape[0] * scale), PILImage.NEAREST)
    canvas = PILImage.new("L", (img.width + margin, img.height), 255)
    canvas.paste(img, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for r, text in enumerate(labels):
        y = (pad + r * (28 + pad) + 10) * scale
        draw.text((3, y), text, fill=0, font=font)
    return np.asarray(canvas)


# ----------------------------------------------------------------------------- figures


def show_images(
    images: torch.Tensor,
    titles: Sequence[str] | None = None,
    nrow: int = 10,
    title: str = "",
    scale: float = 1.0,
):
    """A grid of digits, each with an optional small title (for example its label)."""
    arr = _to_numpy_images(images)
    rows = (len(arr) + nrow - 1) // nrow
    fig, axes = plt.subplots(rows, nrow, figsize=(scale * nrow * 0.9, scale * rows * (1.05 if titles else 0.9)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(arr):
            ax.imshow(arr[i], cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_rows(rows: dict[str, torch.Tensor], title: str = "", scale: float = 1.0):
    """Several equal-length rows of digits, each with a name on its left."""
    names = list(rows)
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(names), n, figsize=(scale * n * 0.9, scale * len(names) * 0.95), squeeze=False)
    for r, name in enumerate(names):
        arr = _to_numpy_images(rows[name])
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(arr):
                ax.imshow(arr[c], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_labelled_grid(images: torch.Tensor, row_labels: Sequence[str], title: str = "", ylabel: str = ""):
    """One tiled image: len(row_labels) rows of equally many digits."""
    n_rows = len(row_labels)
    per_row = len(images) // n_rows
    grid = image_grid(images, nrow=per_row)
    fig, ax = plt.subplots(figsize=(0.55 * per_row + 1, 0.55 * n_rows + 0.6))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    step = grid.shape[0] / n_rows
    ax.set_yticks([step * (i + 0.5) for i in range(n_rows)], [str(r) for r in row_labels])
    ax.set_xticks([])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_history(history: History, title: str = "Training history"):
    """Loss parts per epoch, train and test, each part on its own axes."""
    parts = [("loss", "total loss")]
    if any(history.train_kl):
        parts = [("recon", "reconstruction (nats / image)"), ("kl", "KL (nats / image)"),
                 ("loss", "recon + beta KL")]
    fig, axes = plt.subplots(1, len(parts), figsize=(4.2 * len(parts), 3.2), squeeze=False)
    for ax, (key, label) in zip(axes[0], parts):
        ax.plot(history.epoch, getattr(history, f"train_{key}"), "o-", ms=3, label="train")
        if getattr(history, f"test_{key}"):
            ax.plot(history.epoch, getattr(history, f"test_{key}"), "s--", ms=3, label="test")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_latent_scatter(z: torch.Tensor, labels: torch.Tensor, title: str, ax=None, s: float = 2.0):
    """2-D codes coloured by digit, with a legend."""
    z = z.detach().float().cpu().numpy()
    labels = labels.detach().cpu().numpy()
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 5))
    else:
        fig = ax.figure
    for d in range(10):
        keep = labels == d
        ax.scatter(z[keep, 0], z[keep, 1], s=s, color=DIGIT_COLORS(d), label=str(d), alpha=0.6)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title)
    ax.legend(markerscale=4, fontsize=7, title="digit", loc="best", ncol=2)
    return fig


def gaussian_grid(n: int, limit: float = 0.95) -> torch.Tensor:
    """n points spaced by the quantiles of N(0, 1) between (1-limit)/2 and (1+limit)/2.

    Equal steps in probability, not in z: a linear box wastes most of its grid on
    regions the prior almost never samples.
    """
    p = torch.linspace((1 - limit) / 2, (1 + limit) / 2, n)
    return torch.distributions.Normal(0.0, 1.0).icdf(p)


@torch.no_grad()
def plot_manifold(decode, n: int = 15, limit: float = 0.95, title: str = "Decoded 2-D latent space"):
    """Decode an n x n grid of Gaussian quantiles in a 2-D latent space.

    ``decode`` maps (B, 2) codes to logits (B, 1, 28, 28) (for example ``vae.decode``).
    """
    values = gaussian_grid(n, limit)
    z1, z2 = torch.meshgrid(values, values.flip(0), indexing="xy")  # z2 grows upwards
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)
    device = _decode_device(decode)
    images = torch.sigmoid(decode(z.to(device)))
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(image_grid(images, nrow=n, pad=0), cmap="gray", vmin=0, vmax=1)
    ticks = np.arange(n) * 28 + 14
    ax.set_xticks(ticks[::2], [f"{v:.1f}" for v in values[::2].tolist()])
    ax.set_yticks(ticks[::2], [f"{v:.1f}" for v in values.flip(0)[::2].tolist()])
    ax.set_xlabel("$z_1$ (Gaussian quantiles)")
    ax.set_ylabel("$z_2$ (Gaussian quantiles)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _decode_device(decode) -> torch.device:
    owner = getattr(decode, "__self__", None)
    if owner is not None:
        return next(owner.parameters()).device
    return torch.device("cpu")
