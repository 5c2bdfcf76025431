"""A read-only course (a JupyterHub's shared folder): MNIST is laid out in the cache, never in the course.

Root ignores permission bits, so these tests make the course "read-only" in one of two ways:
``settings.is_writable`` patched to say so (the course copy itself stays writable, and a
listing taken before and after shows that nothing was written into it anyway), and, where
``unshare`` works (root on Linux), a real read-only bind mount in a private mount namespace,
where any write fails with EROFS.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import REPO, VENV_PYTHON, copy_course_root, subprocess_env

import course_utils as cu
from course_utils import data as course_data
from course_utils import settings

FILES = list(course_data.MNIST_SHA256)


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` with its size and mtime (ns): a write changes it."""
    out = {}
    for path in sorted(folder.rglob("*")):
        stat = path.lstat()
        out[str(path.relative_to(folder))] = (stat.st_size if path.is_file() else -1, stat.st_mtime_ns)
    return out


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE", str(folder))
    return folder


@pytest.fixture
def read_only(course_copy: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The course copy counts as read-only (as on a hub); everything else stays writable."""
    course = course_copy.resolve()
    real = settings.is_writable

    def is_writable(folder: Path) -> bool:
        folder = Path(folder).resolve()
        return not (folder == course or course in folder.parents) and real(folder)

    monkeypatch.setattr(settings, "is_writable", is_writable)
    return course_copy


class FakeMNIST:
    """Stands in for torchvision's MNIST: records where it was asked to download, and "downloads"
    by writing the decompressed files from a private copy of the shipped .gz files (or wrong bytes)."""

    calls: list[str] = []
    source: Path = REPO / "data" / "mnist"
    wrong = False

    def __init__(self, root: str, train: bool = True, download: bool = False, **kwargs):
        FakeMNIST.calls.append(root)
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            data = gzip.decompress((self.source / f"{name}.gz").read_bytes())
            (raw / name).write_bytes(b"\0" * len(data) if self.wrong else data)


@pytest.fixture
def fake_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> type[FakeMNIST]:
    source = tmp_path / "official"
    shutil.copytree(REPO / "data" / "mnist", source)
    monkeypatch.setattr(FakeMNIST, "calls", [])
    monkeypatch.setattr(FakeMNIST, "source", source)
    monkeypatch.setattr(FakeMNIST, "wrong", False)
    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    return FakeMNIST


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    class OfflineMNIST:
        def __init__(self, root, *args, **kwargs):
            calls.append(root)
            raise OSError("no route to host")

    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineMNIST)
    return calls


# ----------------------------------------------------------------------------- where files go
def test_work_dir_is_the_course_when_writable_else_the_cache(course_copy, cache, monkeypatch):
    assert settings.work_dir() == course_copy.resolve()
    monkeypatch.setattr(settings, "is_writable", lambda folder: False)
    assert settings.work_dir() == cache.resolve()


def test_writable_course_lays_out_in_the_course_and_leaves_the_cache_alone(course_copy, cache):
    assert cu.prepare_mnist() == course_copy.resolve() / "data"
    assert sorted(p.name for p in (course_copy / "data" / "MNIST" / "raw").iterdir()) == sorted(FILES)
    assert not cache.exists()


def test_read_only_course_lays_out_in_the_cache_and_writes_nothing_into_the_course(read_only, cache):
    before = listing(read_only)
    root = cu.prepare_mnist()
    assert root == cache.resolve() / "data"
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(FILES)
    test = cu.load_mnist("test")
    assert len(test) == 10_000
    dataset = torchvision.datasets.MNIST(str(root), train=False, download=False)  # torchvision reads it too
    assert len(dataset) == 10_000
    assert listing(read_only) == before
    assert course_data.prepared_dir() == cache.resolve() / "data"


def test_read_only_course_with_a_checked_layout_uses_it_and_writes_no_cache(course_copy, cache, monkeypatch):
    cu.prepare_mnist()  # the instructor ran the course once, then made the folder read-only
    monkeypatch.setattr(settings, "is_writable", lambda folder: not Path(folder).resolve().is_relative_to(
        course_copy.resolve()))
    before = listing(course_copy)
    assert cu.prepare_mnist() == course_copy.resolve() / "data"
    assert len(cu.load_mnist("test")) == 10_000
    assert not cache.exists()
    assert listing(course_copy) == before


def test_read_only_course_with_a_wrong_layout_ignores_it(course_copy, cache, monkeypatch):
    cu.prepare_mnist()
    stale = course_copy / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    stale.write_bytes(b"\0" * stale.stat().st_size)
    monkeypatch.setattr(settings, "is_writable", lambda folder: not Path(folder).resolve().is_relative_to(
        course_copy.resolve()))
    before = listing(course_copy)
    assert cu.prepare_mnist() == cache.resolve() / "data"
    labels = cu.load_mnist("test").y
    assert torch.bincount(labels, minlength=10).tolist()[0] == 980  # the real labels, not the zeros
    assert listing(course_copy) == before


def test_stale_file_in_the_cache_is_rebuilt_from_the_shipped_file(read_only, cache):
    root = cu.prepare_mnist()
    target = root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    good = target.read_bytes()
    target.write_bytes(good[:100])
    cu.prepare_mnist()
    assert target.read_bytes() == good
    assert not list(target.parent.glob("*.partial"))


def test_explicit_read_only_root_goes_to_the_cache(read_only, cache):
    assert cu.prepare_mnist(read_only / "data") == cache.resolve() / "data"


def test_unwritable_cache_is_one_clear_line(course_copy, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("COURSE_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(settings, "is_writable", lambda folder: False)
    with pytest.raises(cu.MNISTDataError) as info:
        cu.prepare_mnist()
    message = str(info.value)
    assert "COURSE_CACHE" in message and "\n" not in message
    assert str(blocker) in message


# ----------------------------------------------------------------------------- missing .gz
def test_missing_gz_in_a_read_only_course_downloads_into_the_cache(read_only, cache, fake_download):
    (read_only / "data" / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    before = listing(read_only)
    root = cu.prepare_mnist()
    assert root == cache.resolve() / "data"
    assert fake_download.calls and all(Path(c) == root for c in fake_download.calls)
    assert len(cu.load_mnist("test")) == 10_000
    assert listing(read_only) == before  # no .gz was "restored" into the read-only course


def test_missing_gz_in_a_writable_course_is_restored_after_the_download(course_copy, cache, fake_download):
    gz = course_copy / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
    gz.unlink()
    assert cu.prepare_mnist() == course_copy.resolve() / "data"
    assert fake_download.calls == [str(course_copy.resolve() / "data")] * 2
    assert gzip.decompress(gz.read_bytes()) == (course_copy / "data" / "MNIST" / "raw" / gz.stem).read_bytes()
    assert not cache.exists()


def test_missing_gz_with_a_good_decompressed_copy_needs_no_download(read_only, cache, offline):
    cu.prepare_mnist()
    (read_only / "data" / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    assert cu.prepare_mnist() == cache.resolve() / "data"
    assert offline == []


def test_wrong_download_says_torchvision_downloaded_it(read_only, cache, fake_download):
    (read_only / "data" / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    fake_download.wrong = True
    with pytest.raises(cu.MNISTDataError, match="download step, train-images-idx3-ubyte .* wrong SHA-256"):
        cu.prepare_mnist()


def test_stale_file_and_missing_gz_offline_does_not_claim_a_download(read_only, cache, offline):
    root = cu.prepare_mnist()
    stale = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    stale.write_bytes(b"\0" * stale.stat().st_size)
    (read_only / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(cu.MNISTDataError) as info:
        cu.load_mnist("test")
    message = str(info.value)
    assert "downloaded" not in message
    assert "could not download" in message and "git checkout -- data/mnist" in message
    assert offline == [str(root)]  # the download was tried, into the cache
    assert not stale.exists()  # the wrong copy is gone, never used


def test_stale_file_and_missing_gz_without_download_names_the_stale_file(read_only, cache):
    root = cu.prepare_mnist()
    stale = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    stale.write_bytes(b"\0" * stale.stat().st_size)
    (read_only / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(cu.MNISTDataError) as info:
        cu.prepare_mnist(download=False)
    message = str(info.value)
    assert "downloaded" not in message and "wrong SHA-256" in message and "t10k-labels-idx1-ubyte" in message
    assert "git checkout -- data/mnist" in message and "\n" not in message


# ----------------------------------------------------------------------------- a real read-only mount
def _can_unshare() -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


CHILD = """
import json, sys
import course_utils as cu
from course_utils import settings
root = cu.prepare_mnist()
test = cu.load_mnist("test")
print(json.dumps({"root": str(root), "n": len(test), "writable": settings.is_writable(settings.course_root()),
                  "work_dir": str(settings.work_dir())}))
"""


@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare -m (Linux) for a read-only bind mount")
def test_read_only_bind_mount_loads_mnist_from_the_cache(tmp_path):
    course = copy_course_root(tmp_path / "course")
    cache = tmp_path / "cache"
    before = listing(course)
    script = (
        'mount --bind "$COURSE_ROOT" "$COURSE_ROOT" && mount -o remount,bind,ro "$COURSE_ROOT" && '
        '! touch "$COURSE_ROOT/probe" 2>/dev/null && exec "$0" -c "$1"'
    )
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(VENV_PYTHON), CHILD],
        env=subprocess_env(COURSE_ROOT=str(course), COURSE_CACHE=str(cache)),
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"root": str(cache.resolve() / "data"), "n": 10_000, "writable": False,
                      "work_dir": str(cache.resolve())}
    assert sorted(p.name for p in (cache / "data" / "MNIST" / "raw").iterdir()) == sorted(FILES)
    assert listing(course) == before


@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare -m (Linux) for a read-only bind mount")
def test_classroom_read_only_prefix_blocks_writes_for_its_command_only(tmp_path):
    sys.path.insert(0, str(REPO / "classroom"))
    try:
        import common
    finally:
        sys.path.remove(str(REPO / "classroom"))
    folder = tmp_path / "course"
    folder.mkdir()
    (folder / "a").write_text("x")
    before = common.listing(folder)
    cmd = [*common.read_only_prefix([folder]), "sh", "-c", f"echo y > '{folder}/a' || echo refused"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and "refused" in result.stdout
    assert common.changes(before, common.listing(folder)) == []
    (folder / "b").write_text("z")  # outside the namespace the folder is still writable
    assert common.changes(before, common.listing(folder)) == ["+ b"]
