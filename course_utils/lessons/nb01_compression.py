"""Notebook 01: an autoencoder as a compressor, PCA as its linear baseline, and why
an autoencoder's code space is not something you can sample from. Everything is measured:

- ``compression_row``: a code's size (numbers, bytes) and its distortion (MSE per pixel, PSNR);
- ``fit_pca`` / ``PCA``: principal components from ``torch.linalg.eigh`` of the pixel covariance;
- ``code_box`` / ``sample_code_box``, ``interpolate_codes``: uniform draws from the bounding box
  of a set of codes, straight lines between two codes;
- ``nearest_code_distance``, ``code_confusion`` / ``most_confused_pair``: holes between codes,
  and which digits a 2-D code mixes up (a nearest-neighbour vote among training codes);
- ``classifier_features`` / ``frechet_distance``: a sample-quality measure that compares whole
  sets of images (the FID's formula on the digit classifier's features), not one confidence;
- the notebook's plots (distortion, readability, digit mix, interpolation paths).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import IMAGE_SHAPE, NUM_CLASSES, NUM_PIXELS, MNISTSplit, load_mnist
from ..metrics import PathReading, Readability, codes, decode_images, psnr_db, read_paths
from ..models import DigitClassifier
from ..plotting import DIGIT_COLORS, image_grid
from ..settings import is_fast_mode, split_limits

IMAGE_BYTES = NUM_PIXELS  # an MNIST image stored as it ships: one uint8 per pixel


# ----------------------------------------------------------------------------- data
class LessonData(NamedTuple):
    train: MNISTSplit  # what PCA is fit on and codes are compared with
    test: MNISTSplit  # what every distortion is measured on


def lesson_data(device: torch.device | str = "cpu") -> LessonData:
    """The images notebook 01 measures on.

    Full mode: all 60,000 training and 10,000 test images. Fast mode (CI): the first
    2,000 training and 1,000 test images, the same subsets the fast-mode models see.
    """
    train_limit, test_limit = split_limits()
    train = load_mnist("train", device=device, limit=train_limit)
    test = load_mnist("test", device=device, limit=test_limit)
    return LessonData(train, test)


@functools.lru_cache(maxsize=2)
def _lesson_pca(fast: bool) -> PCA:
    return fit_pca(lesson_data().train.x)


def lesson_pca() -> PCA:
    """``fit_pca`` of ``lesson_data().train``, computed once per mode and then reused."""
    return _lesson_pca(is_fast_mode())


# ----------------------------------------------------------------------------- sizes
def compression_ratio(latent_dim: int, num_pixels: int = NUM_PIXELS) -> float:
    """How many pixel values each code number stands for: ``num_pixels / latent_dim``."""
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be at least 1, got {latent_dim}")
    return num_pixels / latent_dim


def code_bytes(latent_dim: int, dtype: torch.dtype = torch.float16) -> int:
    """Bytes needed to store one code of ``latent_dim`` numbers as ``dtype``."""
    return latent_dim * torch.empty((), dtype=dtype).element_size()


def byte_ratio(latent_dim: int, dtype: torch.dtype = torch.float16, image_bytes: int = IMAGE_BYTES) -> float:
    """Bytes of the image (784 uint8 pixels) divided by bytes of its code."""
    return image_bytes / code_bytes(latent_dim, dtype)


class CompressionRow(NamedTuple):
    """One line of the compression table: a code size, what it saves, what it costs."""

    method: str  # "AE" or "PCA"
    latent_dim: int  # k, the numbers in the code
    ratio: float  # 784 / k: pixel values per code number
    code_bytes: int  # bytes of the code stored as float16 (2 k)
    byte_ratio: float  # 784 bytes of uint8 pixels / code_bytes
    mse_per_pixel: float  # mean squared error per pixel on the test set, pixels in [0, 1]
    psnr_db: float  # 10 log10(1 / mse_per_pixel)


def compression_row(method: str, latent_dim: int, mse_per_pixel: float) -> CompressionRow:
    """A ``CompressionRow`` for a ``latent_dim``-number code with the given test MSE."""
    return CompressionRow(
        method=method,
        latent_dim=latent_dim,
        ratio=compression_ratio(latent_dim),
        code_bytes=code_bytes(latent_dim),
        byte_ratio=byte_ratio(latent_dim),
        mse_per_pixel=mse_per_pixel,
        psnr_db=psnr_db(mse_per_pixel),
    )


def format_rows(rows: Sequence[CompressionRow]) -> str:
    """The rows as a fixed-width text table (for printing in a notebook)."""
    head = f"{'method':>6} {'k':>3} {'784/k':>7} {'bytes':>5} {'bytes ratio':>11} {'MSE/pixel':>10} {'PSNR dB':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.method:>6} {r.latent_dim:>3} {r.ratio:>7.1f} {r.code_bytes:>5} {r.byte_ratio:>11.1f} "
                     f"{r.mse_per_pixel:>10.4f} {r.psnr_db:>8.2f}")
    return "\n".join(lines)


def mse_per_pixel(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Mean over images and pixels of (x_hat - x)^2; both (N, 1, 28, 28) or (N, 784)."""
    return float((x_hat.reshape(len(x), -1) - x.reshape(len(x), -1)).pow(2).mean())


# ----------------------------------------------------------------------------- PCA
@dataclass(frozen=True)
class PCA:
    """Principal components of flattened images, most variance first.

    ``z = (x - mean) @ components[:, :k]`` is the k-number code and
    ``x_hat = mean + z @ components[:, :k].T`` the reconstruction: a linear encoder and a
    linear decoder whose weights are each other's transpose.
    """

    mean: torch.Tensor  # (784,) mean training image
    components: torch.Tensor  # (784, 784) orthonormal columns, sorted by variance
    variances: torch.Tensor  # (784,) variance of the training images along each column

    def encode(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The first ``k`` principal coordinates of ``x``, shape (N, k)."""
        x = x.reshape(len(x), -1).to(self.mean.dtype)
        return (x - self.mean) @ self.components[:, :k]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, 28, 28) rebuilt from ``k = z.shape[1]`` principal coordinates.

        Not clipped to [0, 1]: this is the plain linear reconstruction.
        """
        k = z.shape[1]
        x_hat = self.mean + z.to(self.mean.dtype) @ self.components[:, :k].T
        return x_hat.reshape(-1, *IMAGE_SHAPE)

    def reconstruct(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``decode(encode(x, k))``: the projection of x on the top-k principal subspace."""
        return self.decode(self.encode(x, k)).to(x.dtype)

    @torch.no_grad()
    def mse_curve(self, x: torch.Tensor) -> torch.Tensor:
        """Test MSE per pixel of the k-component reconstruction for every k = 0 .. 784.

        The columns are orthonormal, so the error of keeping k of them is what the
        other 784 - k coordinates held: ``||x - mean||^2 - sum_{j<=k} z_j^2``.
        """
        x = x.reshape(len(x), -1).to(self.mean.dtype)
        z = (x - self.mean) @ self.components  # (N, 784): every principal coordinate
        total = (x - self.mean).pow(2).sum(1).mean()
        kept = torch.cat([torch.zeros(1, dtype=z.dtype, device=z.device), z.pow(2).mean(0).cumsum(0)])
        return ((total - kept) / x.shape[1]).clamp_min(0)

    def mse(self, x: torch.Tensor, k: int) -> float:
        """Test MSE per pixel of the k-component reconstruction of ``x``."""
        return mse_per_pixel(self.reconstruct(x, k), x)


@torch.no_grad()
def fit_pca(x: torch.Tensor) -> PCA:
    """PCA of images ``x`` (N, 1, 28, 28) by an eigendecomposition of their covariance.

    Works in float64 with ``torch.linalg.eigh`` on the 784 x 784 covariance matrix (no
    SVD of the N x 784 data, no extra library); returns components sorted by variance.
    """
    x = x.reshape(len(x), -1).double()
    mean = x.mean(0)
    centred = x - mean
    covariance = centred.T @ centred / len(x)  # (784, 784)
    variances, components = torch.linalg.eigh(covariance)  # ascending order
    variances, components = variances.flip(0).clamp_min(0), components.flip(1)
    return PCA(mean=mean, components=components, variances=variances)


def pca_components_to_match(pca: PCA, x: torch.Tensor, target_mse: float) -> int:
    """The fewest principal components whose reconstruction of ``x`` has MSE <= ``target_mse``."""
    curve = pca.mse_curve(x)
    good = torch.nonzero(curve <= target_mse).flatten()
    return int(good[0]) if len(good) else len(curve)


# ----------------------------------------------------------------------------- codes
class CodeBox(NamedTuple):
    low: torch.Tensor  # (k,) smallest value of each code coordinate
    high: torch.Tensor  # (k,) largest value of each code coordinate


def code_box(z: torch.Tensor) -> CodeBox:
    """The bounding box of a set of codes: per-coordinate minimum and maximum."""
    return CodeBox(low=z.min(0).values, high=z.max(0).values)


def sample_code_box(z: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` codes drawn uniformly from the bounding box of ``z`` (a naive "generator" that lands in empty corners)."""
    box = code_box(z)
    u = torch.rand(n, z.shape[1], generator=generator, dtype=z.dtype)
    return box.low + u * (box.high - box.low)


def interpolate_codes(z_a: torch.Tensor, z_b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` codes evenly spaced on the straight line from ``z_a`` to ``z_b`` (both ends included)."""
    if z_a.shape != z_b.shape or z_a.dim() != 1:
        raise ValueError(f"z_a and z_b must be two codes of shape (k,), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    t = torch.linspace(0, 1, steps, dtype=z_a.dtype).unsqueeze(1)  # (steps, 1)
    return (1 - t) * z_a + t * z_b


# ----------------------------------------------------------------------------- holes
@torch.no_grad()
def nearest_code_distance(z: torch.Tensor, z_reference: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """Euclidean distance from each code in ``z`` to its nearest neighbour in ``z_reference``, (N,)."""
    return torch.cat([torch.cdist(z[i : i + chunk], z_reference).min(1).values for i in range(0, len(z), chunk)])


# ----------------------------------------------------------------------------- 2-D confusion
@torch.no_grad()
def code_confusion(z_train: torch.Tensor, y_train: torch.Tensor, z_test: torch.Tensor, y_test: torch.Tensor,
                   neighbours: int = 15, chunk: int = 1000) -> torch.Tensor:
    """Which digit a test code is taken for by a vote of its nearest training codes.

    Returns a (10, 10) matrix of rates: row = true digit, column = the digit most common
    among the ``neighbours`` training codes nearest to it (ties go to the smaller
    digit); each row sums to 1. Off-diagonal mass means the code puts two digits on
    top of each other.
    """
    votes = []
    for i in range(0, len(z_test), chunk):
        idx = torch.cdist(z_test[i : i + chunk], z_train).topk(neighbours, largest=False).indices
        counts = F.one_hot(y_train[idx], NUM_CLASSES).sum(1)  # (chunk, 10)
        votes.append(counts.argmax(1))
    read = torch.cat(votes)
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES)
    confusion.index_put_((y_test.cpu(), read.cpu()), torch.ones(len(read)), accumulate=True)
    return confusion / confusion.sum(1, keepdim=True).clamp_min(1)


def code_confusion_of(model: nn.Module, data: LessonData, neighbours: int = 15,
                      voters: int = 10_000) -> torch.Tensor:
    """``code_confusion`` of a model's codes: the first ``voters`` training codes vote on every test code."""
    train = data.train.subset(voters)
    z_train, z_test = codes(model, train.x), codes(model, data.test.x)
    return code_confusion(z_train, train.y.cpu(), z_test, data.test.y.cpu(), neighbours)


class DigitPair(NamedTuple):
    a: int  # the smaller digit
    b: int  # the larger digit
    rate: float  # (confusion[a, b] + confusion[b, a]) / 2: how often the two are taken for each other


def confused_pairs(confusion: torch.Tensor) -> list[DigitPair]:
    """All 45 digit pairs, most confused first (symmetrised rates from ``code_confusion``)."""
    sym = (confusion + confusion.T) / 2
    pairs = [DigitPair(a, b, float(sym[a, b])) for a in range(NUM_CLASSES) for b in range(a + 1, NUM_CLASSES)]
    return sorted(pairs, key=lambda p: (-p.rate, p.a, p.b))


def most_confused_pair(confusion: torch.Tensor) -> DigitPair:
    """The digit pair (a < b) with the largest ``(confusion[a, b] + confusion[b, a]) / 2``."""
    return confused_pairs(confusion)[0]


# ----------------------------------------------------------------------------- sample quality
@torch.no_grad()
def classifier_features(classifier: DigitClassifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The digit classifier's last hidden layer for each image: (N, 128) float64 on the CPU, dropout off."""
    was_training = classifier.training
    classifier.eval()
    device = next(classifier.parameters()).device
    hidden = classifier.head[:-2]  # everything before the last dropout and the 10 class scores
    out = [hidden(classifier.features(images[i : i + batch_size].to(device).reshape(-1, *IMAGE_SHAPE))).double().cpu()
           for i in range(0, len(images), batch_size)]
    classifier.train(was_training)
    return torch.cat(out)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two sets of features, (N, F) and (M, F).

    ||m_a - m_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)): the formula of the FID (Heusel et
    al. 2017), here on the course classifier's features. It compares whole sets, so a set
    of samples that is too blurry, too inky or shows too few digits is far from real ones
    even when the classifier reads each sample confidently. It depends on the set size:
    compare sets of equal size, and read it against two sets of real digits.
    """
    a, b = a.double(), b.double()
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T  # C_a^(1/2)
    # tr (C_a C_b)^(1/2) = sum of the square roots of the eigenvalues of C_a^(1/2) C_b C_a^(1/2)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


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


# ----------------------------------------------------------------------------- plots
class PixelStatistics(NamedTuple):
    mean: float  # mean pixel value
    std: float  # standard deviation of all pixel values
    share_zero: float  # share of pixel values that are exactly 0 (black background)
    share_above_half: float  # share of pixel values above 0.5 (ink)
    constant_pixels: int  # pixel positions that have the same value in every image


def pixel_statistics(x: torch.Tensor) -> PixelStatistics:
    """Summary numbers of images ``x`` (N, 1, 28, 28) with pixels in [0, 1]."""
    flat = x.reshape(len(x), -1)
    constant = int((flat.max(0).values == flat.min(0).values).sum())
    return PixelStatistics(float(flat.mean()), float(flat.std()), float((flat == 0).float().mean()),
                           float((flat > 0.5).float().mean()), constant)


def plot_pixel_statistics(x: torch.Tensor, title: str = "Pixel statistics of the MNIST training images"):
    """Histogram of pixel values, the mean image, and the per-pixel standard deviation."""
    flat = x.reshape(len(x), -1).float().cpu()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1.4, 1, 1]})
    # bincount, not torch.histc: histc counts in float32 and stops at 2**24 per bin
    counts = torch.bincount((flat * 50).long().clamp(0, 49).flatten(), minlength=50).double()
    axes[0].stairs(counts.numpy(), np.linspace(0, 1, 51), fill=True, color="C0")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("pixel value (0 = black, 1 = white ink)")
    axes[0].set_ylabel(f"pixels in all {len(flat):,} images (log scale)")
    axes[0].set_title("histogram of pixel values")
    for ax, image, name in ((axes[1], flat.mean(0), "mean image"), (axes[2], flat.std(0), "per-pixel std")):
        shown = ax.imshow(image.reshape(28, 28).numpy(), cmap="magma")
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


def digit_mix(reading: Readability) -> torch.Tensor:
    """Share of each digit 0..9 among the images read with confidence above the threshold, (10,)."""
    confident = reading.digit[reading.confidence > reading.threshold]
    counts = torch.bincount(confident, minlength=NUM_CLASSES).float()
    return counts / counts.sum().clamp_min(1)


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


@torch.no_grad()
def path_reading(classifier: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, t: Sequence[float],
                 model: nn.Module | None = None, threshold: float = 0.9) -> PathReading:
    """Walk from each image of ``x_a`` to the matching image of ``x_b`` and judge the points at ``t``.

    With a ``model`` the walk is a straight line between the two *codes*, decoded; without one
    it is a straight line between the two *images* (a cross-fade of the pixels).
    """
    steps = []
    if model is not None:
        z_a, z_b = codes(model, x_a), codes(model, x_b)
    for step in t:
        if model is None:
            steps.append(((1 - step) * x_a + step * x_b).cpu())
        else:
            steps.append(decode_images(model, (1 - step) * z_a + step * z_b))
    return read_paths(classifier, torch.stack(steps, dim=1), list(t), threshold)  # (pairs, steps, 1, 28, 28)


class Pairs(NamedTuple):
    a: torch.Tensor  # (M,) index of the first example of each pair
    b: torch.Tensor  # (M,) index of the second example, whose label differs


def random_pairs(y: torch.Tensor, n: int, generator: torch.Generator | None = None) -> Pairs:
    """Up to ``n`` random pairs of examples with different labels ``y`` (pairs with equal labels are dropped)."""
    a = torch.randint(0, len(y), (n,), generator=generator)
    b = torch.randint(0, len(y), (n,), generator=generator)
    keep = (y[a] != y[b]).cpu()
    return Pairs(a[keep], b[keep])


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


def digits_of(data: MNISTSplit, digit: int, n: int = 1) -> torch.Tensor:
    """The first ``n`` images of ``digit`` in ``data``, shape (n, 1, 28, 28)."""
    keep = torch.nonzero(data.y == digit).flatten()[:n]
    return data.x[keep]
