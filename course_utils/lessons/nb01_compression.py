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
- ``pixel_statistics`` / ``pixel_moments``: summaries of the training pixels, in chunks.

The notebook's figures are in ``nb01_figures``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data import IMAGE_SHAPE, NUM_CLASSES, NUM_PIXELS, MNISTSplit, load_mnist
from ..metrics import PathReading, Readability, codes, decode_images, psnr_db, read_paths
from ..models import CLASSIFIER_BATCH, DigitClassifier
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


class Scored(NamedTuple):
    z: torch.Tensor  # (N, k) codes, on the CPU
    mse_per_pixel: float  # mean over images and pixels of (x_hat - x)^2


@torch.no_grad()
def score_autoencoder(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> Scored:
    """Codes and MSE per pixel of ``x`` under any model whose output has ``.z`` and ``.x_hat``
    (the student's too), in batches: all 60,000 images at once would hold two 188 MB copies."""
    z, squared_error = [], 0.0
    for part in x.split(batch_size):
        out = model(part)
        z.append(out.z.cpu())
        squared_error += float((out.x_hat - part).pow(2).sum(dtype=torch.float64))
    return Scored(torch.cat(z), squared_error / x.numel())


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
    def mse_curve(self, x: torch.Tensor, chunk: int = 2_000) -> torch.Tensor:
        """Test MSE per pixel of the k-component reconstruction for every k = 0 .. 784.

        The columns are orthonormal, so the error of keeping k of them is what the
        other 784 - k coordinates held: ``||x - mean||^2 - sum_{j<=k} z_j^2``. Summed over
        chunks of ``chunk`` images, so no float64 copy of the whole set is made.
        """
        x = x.reshape(len(x), -1)
        total = torch.zeros((), dtype=self.mean.dtype, device=self.mean.device)  # sum of ||x - mean||^2
        kept = torch.zeros(x.shape[1], dtype=self.mean.dtype, device=self.mean.device)  # sum of z_j^2, per j
        for part in x.split(chunk):
            centred = part.to(self.mean) - self.mean  # (chunk, 784)
            total += centred.pow(2).sum()
            kept += (centred @ self.components).pow(2).sum(0)  # every principal coordinate
        kept = torch.cat([kept.new_zeros(1), (kept / len(x)).cumsum(0)])
        return ((total / len(x) - kept) / x.shape[1]).clamp_min(0)

    def mse(self, x: torch.Tensor, k: int, chunk: int = 2_000) -> float:
        """Test MSE per pixel of the k-component reconstruction of ``x`` (``chunk`` images at a time)."""
        squared = sum(float((self.reconstruct(part, k) - part).pow(2).sum(dtype=torch.float64))
                      for part in x.split(chunk))
        return squared / x.numel()


@torch.no_grad()
def fit_pca(x: torch.Tensor, chunk: int = 2_000) -> PCA:
    """PCA of images ``x`` (N, 1, 28, 28) by an eigendecomposition of their covariance.

    Works in float64 with ``torch.linalg.eigh`` on the 784 x 784 covariance matrix (no
    SVD of the N x 784 data, no extra library); returns components sorted by variance.
    Sums go over chunks of ``chunk`` images: a float64 copy of all 60,000 would be 376 MB.
    """
    x = x.reshape(len(x), -1)  # (N, 784)
    mean = sum(part.double().sum(0) for part in x.split(chunk)) / len(x)  # (784,)
    covariance = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
    for part in x.split(chunk):
        centred = part.double() - mean  # (chunk, 784)
        covariance += centred.T @ centred
    covariance /= len(x)  # (784, 784)
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
def classifier_features(classifier: DigitClassifier, images: torch.Tensor,
                        batch_size: int = CLASSIFIER_BATCH) -> torch.Tensor:
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


# ----------------------------------------------------------------------------- plots
class PixelStatistics(NamedTuple):
    mean: float  # mean pixel value
    std: float  # standard deviation of all pixel values
    share_zero: float  # share of pixel values that are exactly 0 (black background)
    share_above_half: float  # share of pixel values above 0.5 (ink)
    constant_pixels: int  # pixel positions that have the same value in every image


def pixel_moments(flat: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel mean and sum of squared deviations of ``flat`` (N, 784), float64, in chunks."""
    mean = sum(part.double().sum(0) for part in flat.split(chunk)) / len(flat)
    squares = sum((part.double() - mean).pow(2).sum(0) for part in flat.split(chunk))
    return mean, squares


def pixel_statistics(x: torch.Tensor, chunk: int = 2_000) -> PixelStatistics:
    """Summary numbers of images ``x`` (N, 1, 28, 28) with pixels in [0, 1] (chunked: no copy of x)."""
    flat = x.reshape(len(x), -1)
    constant = int((flat.max(0).values == flat.min(0).values).sum())
    pixel_mean, squares = pixel_moments(flat, chunk)
    mean = pixel_mean.mean()  # every pixel position counts the same number of images
    # sum over all values of (v - mean)^2 = per-pixel squares + N (pixel mean - mean)^2
    spread = squares.sum() + len(flat) * (pixel_mean - mean).pow(2).sum()
    std = (spread / (flat.numel() - 1)).sqrt()
    zero = sum(int((part == 0).sum()) for part in flat.split(chunk))
    ink = sum(int((part > 0.5).sum()) for part in flat.split(chunk))
    return PixelStatistics(float(mean), float(std), zero / flat.numel(), ink / flat.numel(), constant)


def digit_mix(reading: Readability) -> torch.Tensor:
    """Share of each digit 0..9 among the images read with confidence above the threshold, (10,)."""
    confident = reading.digit[reading.confidence > reading.threshold]
    counts = torch.bincount(confident, minlength=NUM_CLASSES).float()
    return counts / counts.sum().clamp_min(1)


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


def digits_of(data: MNISTSplit, digit: int, n: int = 1) -> torch.Tensor:
    """The first ``n`` images of ``digit`` in ``data``, shape (n, 1, 28, 28)."""
    keep = torch.nonzero(data.y == digit).flatten()[:n]
    return data.x[keep]
