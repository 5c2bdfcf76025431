"""MNIST from the files shipped in ``data/mnist``, held as tensors on the device.

The four IDX files ship with the course (gzip-compressed). ``load_mnist`` checks the
SHA-256 of what it decompresses, lays the raw files out where
``torchvision.datasets.MNIST`` finds them (``data/MNIST/raw``), and only when the
shipped files are missing falls back to torchvision's download. A corrupt file is
never replaced silently: the error says which file and how to restore it.

Batches are drawn by index from one tensor (``batches``), not through a per-image
PIL transform and a DataLoader. On a 2-core CPU, drawing an epoch of batches is about 40
times faster that way, and a whole training epoch of a 784-400-20 VAE about 1.5-1.7 times
(``benchmarks/bench_pipeline.py``).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from .settings import course_root

# SHA-256 of the decompressed files (identical to the official MNIST bytes).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
IMAGE_SHAPE = (1, 28, 28)
NUM_PIXELS = 28 * 28
NUM_CLASSES = 10


class MNISTDataError(RuntimeError):
    """A shipped MNIST file is missing or corrupt; the message says how to fix it."""


@dataclass
class MNISTSplit:
    """One split of MNIST as two tensors on one device."""

    x: torch.Tensor  # (N, 1, 28, 28) float32 pixels in [0, 1]
    y: torch.Tensor  # (N,) int64 digit labels 0..9

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> MNISTSplit:
        return MNISTSplit(self.x.to(device), self.y.to(device))

    def subset(self, n: int | None) -> MNISTSplit:
        """The first ``n`` examples (all of them when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return MNISTSplit(self.x[:n], self.y[:n])


class Batch(NamedTuple):
    x: torch.Tensor  # (B, 1, 28, 28) pixels in [0, 1]
    y: torch.Tensor  # (B,) labels


def data_dir() -> Path:
    """``data/`` of the course: ``mnist/`` holds the shipped .gz files."""
    return course_root() / "data"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _restore_hint(name: str) -> str:
    return (
        f"Restore data/mnist/{name}.gz from the course repository "
        f"(git checkout -- data/mnist/{name}.gz), or delete it to let torchvision "
        "download MNIST when you are online."
    )


def _decompressed(gz_path: Path, name: str) -> bytes:
    try:
        with gzip.open(gz_path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: damaged compressed data
        raise MNISTDataError(
            f"{gz_path} is not a readable gzip file ({err}). {_restore_hint(name)}"
        ) from err
    digest = _sha256(raw)
    if digest != MNIST_SHA256[name]:
        raise MNISTDataError(
            f"{gz_path} decompresses to bytes whose SHA-256 is {digest[:12]}..., "
            f"not the expected {MNIST_SHA256[name][:12]}...: the file is corrupt or is "
            f"not MNIST. {_restore_hint(name)}"
        )
    return raw


def prepare_mnist(root: Path | None = None, download: bool = True) -> Path:
    """Check the shipped MNIST files and lay them out for torchvision.

    Returns the folder to pass as ``root`` to ``torchvision.datasets.MNIST``
    (the files end up in ``<root>/MNIST/raw``). Only if ``data/mnist`` lacks the
    files, and ``download`` is True, does torchvision download them.
    """
    root = Path(root) if root is not None else data_dir()
    shipped = root / "mnist"
    raw_dir = root / "MNIST" / "raw"
    missing = [n for n in MNIST_SHA256 if not (shipped / f"{n}.gz").exists()]
    if missing:
        _download_with_torchvision(root, missing, download)
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name in MNIST_SHA256:
        target = raw_dir / name
        if target.exists() and target.stat().st_size > 0:
            if _sha256(target.read_bytes()) == MNIST_SHA256[name]:
                continue
            if name in missing:
                raise MNISTDataError(
                    f"{target} (downloaded by torchvision) has the wrong SHA-256. "
                    f"Delete {raw_dir} and try again."
                )
        raw = _decompressed(shipped / f"{name}.gz", name)
        tmp = target.with_suffix(".partial")
        tmp.write_bytes(raw)
        tmp.replace(target)
    return root


def _download_with_torchvision(root: Path, missing: list[str], download: bool) -> None:
    names = ", ".join(f"{n}.gz" for n in missing)
    if not download:
        raise MNISTDataError(
            f"data/mnist lacks {names}. Restore them from the course repository "
            "(git checkout -- data/mnist)."
        )
    from torchvision import datasets

    try:
        datasets.MNIST(str(root), train=True, download=True)
        datasets.MNIST(str(root), train=False, download=True)
    except Exception as err:  # network errors come in many types
        raise MNISTDataError(
            f"data/mnist lacks {names}, and torchvision could not download MNIST "
            f"({type(err).__name__}: {err}). Restore the files from the course "
            "repository (git checkout -- data/mnist)."
        ) from err
    raw_dir = root / "MNIST" / "raw"
    shipped = root / "mnist"
    shipped.mkdir(parents=True, exist_ok=True)
    for name in missing:
        raw = (raw_dir / name).read_bytes()
        if _sha256(raw) != MNIST_SHA256[name]:
            raise MNISTDataError(
                f"torchvision downloaded {name} with the wrong SHA-256. Delete "
                f"{raw_dir} and restore data/mnist from the course repository."
            )
        with gzip.GzipFile(shipped / f"{name}.gz", "wb", mtime=0) as f:
            f.write(raw)


def load_mnist(
    split: str = "train",
    device: torch.device | str = "cpu",
    limit: int | None = None,
) -> MNISTSplit:
    """MNIST ``split`` ("train" or "test") as tensors on ``device``.

    ``limit`` keeps the first ``limit`` examples (fast mode uses it).
    Pixels are float32 in [0, 1], shape (N, 1, 28, 28); labels are int64.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = prepare_mnist()
    x, y = _read_split(root / "MNIST" / "raw", split)
    data = MNISTSplit(x, y).subset(limit)
    return data.to(device)


_CACHE: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _read_split(raw_dir: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    key = (str(raw_dir), split)
    if key not in _CACHE:
        images_name, labels_name = SPLIT_FILES[split]
        images = _read_idx(raw_dir / images_name, expected_dims=3)
        labels = _read_idx(raw_dir / labels_name, expected_dims=1)
        if images.shape != (SPLIT_SIZES[split], 28, 28) or labels.shape[0] != images.shape[0]:
            raise MNISTDataError(f"{raw_dir} holds MNIST files of unexpected shape.")
        x = images.unsqueeze(1).float().div_(255.0)  # (N, 28, 28) -> (N, 1, 28, 28)
        _CACHE[key] = (x, labels.long())
    return _CACHE[key]


def _read_idx(path: Path, expected_dims: int) -> torch.Tensor:
    """Read an IDX file of unsigned bytes (the MNIST format) into a uint8 tensor."""
    raw = path.read_bytes()
    magic = int.from_bytes(raw[0:4], "big")
    dims = magic & 0xFF
    if magic >> 8 != 0x08 or dims != expected_dims:
        raise MNISTDataError(f"{path} is not an IDX file of {expected_dims}-D bytes.")
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    data = torch.frombuffer(bytearray(raw[4 + 4 * dims :]), dtype=torch.uint8)
    return data.reshape(shape)


def batches(
    data: MNISTSplit,
    batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
) -> Iterator[Batch]:
    """Yield mini-batches of ``data`` by index, reshuffled on every call.

    The permutation is drawn on the CPU from ``generator`` (seed it for a
    reproducible order), then used to index the tensors where they already live.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n = len(data)
    if shuffle:
        order = torch.randperm(n, generator=generator).to(data.x.device)
    else:
        order = torch.arange(n, device=data.x.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield Batch(data.x[idx], data.y[idx])


def remove_prepared_files() -> None:
    """Delete the decompressed copy in ``data/MNIST`` (it is rebuilt on the next load)."""
    shutil.rmtree(data_dir() / "MNIST", ignore_errors=True)
