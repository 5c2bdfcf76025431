"""MNIST from the files shipped in ``data/mnist``, held as tensors on the device.

The four IDX files ship with the course (gzip-compressed). ``load_mnist`` checks the
SHA-256 of what it decompresses, lays the raw files out where
``torchvision.datasets.MNIST`` finds them (``data/MNIST/raw`` inside ``work_dir()``: the
course folder when it is writable, else the per-user cache, so a read-only course on a
JupyterHub still loads), and only when the shipped files are missing falls back to
torchvision's download, into that same writable folder. A corrupt file is never replaced
silently: the error says which file and how to restore it. A decompressed copy is used
only when its SHA-256 is right; a wrong one is rebuilt from the shipped file.

Batches are drawn by index from one tensor (``batches``), not through a per-image
PIL transform and a DataLoader. On a 2-core CPU, drawing an epoch of batches is about 40
times faster that way, and a whole training epoch of a 784-400-20 VAE about 1.5-1.7 times
(``benchmarks/bench_pipeline.py``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from . import settings

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


class MNISTDataError(settings.CourseError, RuntimeError):
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
    """``data/`` of the course: ``mnist/`` holds the shipped .gz files (only ever read)."""
    return settings.course_root() / "data"


def prepared_dir() -> Path:
    """Where the decompressed layout goes: ``data/`` of ``work_dir()`` (the course, or the cache)."""
    return settings.work_dir() / "data"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def _write_atomically(target: Path, write) -> None:
    """Write ``target`` through a private temporary file, so a reader (another kernel of the
    same student, say) never sees half a file and two writers never share a temporary name."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unwritable(folder: Path, err: OSError) -> MNISTDataError:
    return MNISTDataError(
        f"Cannot write the decompressed MNIST files into {folder} ({err.strerror or err}): "
        "set COURSE_CACHE to a folder you can write to."
    )


def _is_good(path: Path, name: str) -> bool:
    return path.is_file() and path.stat().st_size > 0 and _file_sha256(path) == MNIST_SHA256[name]


def prepare_mnist(root: Path | None = None, download: bool = True) -> Path:
    """Check the shipped MNIST files and lay them out for torchvision.

    Returns the folder to pass as ``root`` to ``torchvision.datasets.MNIST`` (the files
    end up in ``<returned folder>/MNIST/raw``). By default the shipped files are read
    from the course's ``data/mnist`` and laid out under ``work_dir() / "data"``: in the
    course when it is writable, else in the per-user cache (``COURSE_CACHE``). Given
    ``root``, the shipped files are read from ``root/mnist`` and laid out in ``root``
    (or in the cache when ``root`` is read-only). A read-only course that already holds
    a checked layout (an instructor ran it once before making it read-only) is used as it
    is. Only if the shipped files are missing, and ``download`` is True, does torchvision
    download them, into the returned folder.
    """
    if root is None:
        shipped, out = data_dir() / "mnist", prepared_dir()
    else:
        root = Path(root)
        shipped = root / "mnist"
        out = root if settings.is_writable(root) else settings.cache_dir() / "data"
    beside = shipped.parent
    if out != beside and all(_is_good(beside / "MNIST" / "raw" / n, n) for n in MNIST_SHA256):
        return beside  # a read-only course whose instructor laid the files out: use them, write nothing
    raw_dir = out / "MNIST" / "raw"
    missing = [n for n in MNIST_SHA256 if not (shipped / f"{n}.gz").exists()]
    try:
        raw_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(raw_dir, err) from err
    if missing:
        _download_with_torchvision(out, shipped, missing, download)
    for name in MNIST_SHA256:
        target = raw_dir / name
        if name in missing or _is_good(target, name):
            continue  # a missing .gz was handled (and checked) above
        raw = _decompressed(shipped / f"{name}.gz", name)
        try:
            _write_atomically(target, lambda f, raw=raw: f.write(raw))
        except OSError as err:
            raise _unwritable(raw_dir, err) from err
    return out


def _download_with_torchvision(out: Path, shipped: Path, missing: list[str], download: bool) -> None:
    """Get the files whose .gz is not shipped: from a good decompressed copy, else from torchvision."""
    raw_dir = out / "MNIST" / "raw"
    names = ", ".join(f"{n}.gz" for n in missing)
    stale = [n for n in missing if (raw_dir / n).exists() and not _is_good(raw_dir / n, n)]
    if stale:
        if not download:
            raise MNISTDataError(
                f"data/mnist lacks {names}, and the decompressed copy of {', '.join(stale)} in {raw_dir} has "
                "the wrong SHA-256. Restore data/mnist from the course repository (git checkout -- data/mnist)."
            )
        for name in stale:  # our own decompressed copy, wrong: never used; torchvision fetches it afresh
            (raw_dir / name).unlink()
            (raw_dir / f"{name}.gz").unlink(missing_ok=True)
    if all(_is_good(raw_dir / n, n) for n in missing):
        _restore_shipped(shipped, raw_dir, missing)
        return
    if not download:
        raise MNISTDataError(
            f"data/mnist lacks {names}. Restore them from the course repository "
            "(git checkout -- data/mnist)."
        )
    from torchvision import datasets

    try:
        datasets.MNIST(str(out), train=True, download=True)
        datasets.MNIST(str(out), train=False, download=True)
    except Exception as err:  # network errors come in many types
        raise MNISTDataError(
            f"data/mnist lacks {names}, and torchvision could not download MNIST "
            f"({type(err).__name__}: {' '.join(str(err).split())}). Restore the files from the course "
            "repository (git checkout -- data/mnist)."
        ) from err
    for name in missing:
        if not _is_good(raw_dir / name, name):
            raise MNISTDataError(
                f"after torchvision's download step, {name} in {raw_dir} is missing or has the wrong SHA-256. Delete "
                f"{raw_dir} and restore data/mnist from the course repository (git checkout -- data/mnist)."
            )
    _restore_shipped(shipped, raw_dir, missing)


def _restore_shipped(shipped: Path, raw_dir: Path, missing: list[str]) -> None:
    """Put the checked files back into data/mnist as .gz, when the course folder is writable."""
    if not settings.is_writable(shipped):
        return  # a read-only course: the checked copy in raw_dir serves
    try:
        shipped.mkdir(parents=True, exist_ok=True)
        for name in missing:
            raw = (raw_dir / name).read_bytes()

            def write(f, raw=raw, name=name):
                with gzip.GzipFile(filename=f"{name}.gz", mode="wb", fileobj=f, mtime=0) as gz:
                    gz.write(raw)

            _write_atomically(shipped / f"{name}.gz", write)
    except OSError:
        return  # best effort: the checked copy in raw_dir serves


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
    """Delete the decompressed copy in ``data/MNIST`` of ``work_dir()`` (rebuilt on the next load)."""
    shutil.rmtree(prepared_dir() / "MNIST", ignore_errors=True)
