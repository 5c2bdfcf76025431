"""data: MNIST from the shipped files (offline), layout for torchvision, clear errors, batches."""

from __future__ import annotations

import gzip
import socket
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import course_utils as cu
from course_utils import data as course_data

# Label counts of the official MNIST files (LeCun, Cortes and Burges; the bytes torchvision downloads).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
FILES = list(course_data.MNIST_SHA256)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def download_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Record (and refuse) every torchvision MNIST download; the list must stay empty."""
    calls: list[tuple] = []

    def download(self, *args, **kwargs):
        calls.append(("download", self.root))
        raise AssertionError("torchvision tried to download MNIST")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", download)
    return calls


# ----------------------------------------------------------------------------- loading
def test_load_mnist_offline_sizes_statistics_and_labels(no_network, download_calls):
    train = cu.load_mnist("train")
    test = cu.load_mnist("test")
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.x.shape == (60_000, 1, 28, 28) and test.x.shape == (10_000, 1, 28, 28)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    assert float(train.x.mean()) == pytest.approx(0.1307, abs=1e-3)
    assert float(train.x.std()) == pytest.approx(0.3081, abs=1e-3)
    assert torch.bincount(train.y, minlength=10).tolist() == TRAIN_COUNTS
    assert torch.bincount(test.y, minlength=10).tolist() == TEST_COUNTS
    assert download_calls == []


def test_load_mnist_limit_keeps_the_first_images():
    full = cu.load_mnist("test")
    part = cu.load_mnist("test", limit=100)
    assert len(part) == 100
    assert torch.equal(part.x, full.x[:100]) and torch.equal(part.y, full.y[:100])
    assert len(cu.load_mnist("test", limit=10**6)) == 10_000


def test_load_mnist_rejects_an_unknown_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        cu.load_mnist("validation")


def test_mnist_split_subset_and_to():
    split = cu.load_mnist("test", limit=10)
    assert len(split.subset(3)) == 3
    assert split.subset(None) is split
    moved = split.to("cpu")
    assert torch.equal(moved.x, split.x)


def test_prepare_mnist_lays_out_files_for_torchvision(course_copy: Path, no_network, download_calls):
    root = cu.prepare_mnist()
    assert root == course_copy / "data"
    raw = root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(FILES)
    for split, train in (("train", True), ("test", False)):
        dataset = torchvision.datasets.MNIST(str(root), train=train, download=False)
        ours = cu.load_mnist(split)
        assert len(dataset) == len(ours)
        image, label = dataset[7]
        pixels = torch.as_tensor(np.array(image), dtype=torch.float32).reshape(1, 28, 28) / 255
        assert label == int(ours.y[7])
        assert torch.equal(pixels, ours.x[7])
    assert download_calls == []


def test_prepare_mnist_repairs_a_damaged_decompressed_copy(course_copy: Path):
    root = cu.prepare_mnist()
    target = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    good = target.read_bytes()
    target.write_bytes(b"\0" * len(good))
    cu.prepare_mnist()
    assert target.read_bytes() == good


# ----------------------------------------------------------------------------- damaged files
def _flip_byte(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def _position_that_breaks_zlib(path: Path) -> int:
    """A byte whose flip corrupts the compressed stream itself, so zlib (not gzip's CRC
    check) is what notices: zlib.error is not an OSError and must be caught too."""
    data = path.read_bytes()
    for position in range(len(data) - 9, 20, -1):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        try:
            gzip.decompress(bytes(damaged))
        except zlib.error:
            return position
        except (OSError, EOFError):
            continue
    raise AssertionError("no byte flip breaks zlib")  # pragma: no cover


def _damage(kind: str, path: Path) -> None:
    if kind == "garbage":
        path.write_bytes(b"this is not a gzip file at all\n" * 10)
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "flipped-middle":
        _flip_byte(path, path.stat().st_size // 2)
    elif kind == "flipped-deflate":
        _flip_byte(path, _position_that_breaks_zlib(path))
    elif kind == "wrong-content":
        with gzip.open(path, "wb") as f:  # a valid gzip, but not the MNIST bytes
            f.write(b"\x00\x00\x08\x01" + b"\x00" * 100)
    else:  # pragma: no cover
        raise ValueError(kind)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "flipped-middle", "flipped-deflate", "wrong-content"])
def test_corrupt_file_raises_a_clear_error_and_downloads_nothing(course_copy, no_network, download_calls, kind):
    name = "t10k-labels-idx1-ubyte"
    gz = course_copy / "data" / "mnist" / f"{name}.gz"
    before = gz.read_bytes()
    _damage(kind, gz)
    assert gz.read_bytes() != before
    with pytest.raises(cu.MNISTDataError) as info:
        cu.load_mnist("test")
    message = str(info.value)
    assert f"{name}.gz" in message  # names the file
    assert "git checkout -- data/mnist/" in message  # says how to fix it
    assert download_calls == []
    assert gz.read_bytes() != before  # the damaged file was not silently replaced


def test_missing_file_and_failing_download_gives_restore_hint(course_copy, monkeypatch, no_network):
    (course_copy / "data" / "mnist" / "train-labels-idx1-ubyte.gz").unlink()

    class OfflineMNIST:
        def __init__(self, *args, **kwargs):
            raise OSError("no route to host")

    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineMNIST)
    with pytest.raises(cu.MNISTDataError) as info:
        cu.load_mnist("train")
    message = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in message
    assert "could not download" in message
    assert "git checkout -- data/mnist" in message


def test_missing_file_without_download_says_restore(course_copy):
    (course_copy / "data" / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(cu.MNISTDataError, match="git checkout -- data/mnist") as info:
        cu.prepare_mnist(download=False)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)


# ----------------------------------------------------------------------------- batches
@pytest.fixture
def tiny() -> cu.MNISTSplit:
    """103 real images whose "labels" are their own indices, so a batch tells where it came from."""
    images = cu.load_mnist("test", limit=103).x
    return cu.MNISTSplit(images, torch.arange(len(images)))


def _order(split: cu.MNISTSplit, batch_size: int, **kwargs) -> list[torch.Tensor]:
    parts = []
    for batch in cu.batches(split, batch_size, **kwargs):
        assert isinstance(batch, cu.Batch)
        assert torch.equal(batch.x, split.x[batch.y])  # images stay paired with their labels
        parts.append(batch.y)
    return parts


@pytest.mark.parametrize("batch_size", [1, 10, 103, 500])
def test_batches_cover_every_index_exactly_once(tiny, batch_size):
    parts = _order(tiny, batch_size, generator=torch.Generator().manual_seed(0))
    indices = torch.cat(parts)
    assert sorted(indices.tolist()) == list(range(len(tiny)))
    assert [len(p) for p in parts[:-1]] == [batch_size] * (len(parts) - 1)
    assert 1 <= len(parts[-1]) <= batch_size


def test_batches_reproducible_with_a_seeded_generator(tiny):
    a = torch.cat(_order(tiny, 10, generator=torch.Generator().manual_seed(42)))
    b = torch.cat(_order(tiny, 10, generator=torch.Generator().manual_seed(42)))
    c = torch.cat(_order(tiny, 10, generator=torch.Generator().manual_seed(43)))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, torch.arange(len(tiny)))  # it does shuffle


def test_batches_reshuffle_on_every_pass_and_keep_order_without_shuffle(tiny):
    generator = torch.Generator().manual_seed(0)
    first = torch.cat(_order(tiny, 10, generator=generator))
    second = torch.cat(_order(tiny, 10, generator=generator))
    assert not torch.equal(first, second)
    plain = torch.cat(_order(tiny, 10, shuffle=False))
    assert torch.equal(plain, torch.arange(len(tiny)))


def test_batches_rejects_a_bad_batch_size(tiny):
    with pytest.raises(ValueError, match="batch_size"):
        next(cu.batches(tiny, 0))
