"""settings: device choice, fast mode, seeding, course paths."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import course_utils as cu
from course_utils import settings


def _machine(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool) -> None:
    """Pretend this machine has (or lacks) a CUDA GPU and Apple's MPS backend."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


# ----------------------------------------------------------------------------- pick_device
@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [
        (True, True, "cuda"),  # CUDA wins over MPS
        (True, False, "cuda"),
        (False, True, "mps"),
        (False, False, "cpu"),
    ],
)
def test_pick_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _machine(monkeypatch, cuda, mps)
    assert cu.pick_device() == torch.device(expected)


@pytest.mark.parametrize("forced", ["cuda", "mps", "cpu"])
def test_course_device_forces_an_available_device(monkeypatch, forced):
    _machine(monkeypatch, cuda=True, mps=True)
    monkeypatch.setenv("COURSE_DEVICE", forced)
    assert cu.pick_device() == torch.device(forced)


def test_course_device_is_case_and_space_tolerant(monkeypatch):
    _machine(monkeypatch, cuda=True, mps=False)
    monkeypatch.setenv("COURSE_DEVICE", "  CPU ")
    assert cu.pick_device() == torch.device("cpu")


def test_prefer_argument_forces_a_device(monkeypatch):
    _machine(monkeypatch, cuda=True, mps=True)
    assert cu.pick_device("cpu") == torch.device("cpu")
    assert cu.pick_device(prefer="mps") == torch.device("mps")


@pytest.mark.parametrize(("forced", "words"), [("cuda", "CUDA"), ("mps", "MPS")])
def test_forcing_a_missing_device_raises_clearly(monkeypatch, forced, words):
    _machine(monkeypatch, cuda=False, mps=False)
    monkeypatch.setenv("COURSE_DEVICE", forced)
    with pytest.raises(RuntimeError) as info:
        cu.pick_device()
    message = str(info.value)
    assert f"COURSE_DEVICE={forced}" in message
    assert words in message
    assert "cpu" in message  # says what to do instead


def test_forcing_cpu_works_without_any_gpu(monkeypatch):
    _machine(monkeypatch, cuda=False, mps=False)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert cu.pick_device() == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:0", "tpu"])
def test_bad_course_device_value_raises(monkeypatch, bad):
    monkeypatch.setenv("COURSE_DEVICE", bad)
    with pytest.raises(ValueError, match="cuda, mps, cpu") as info:
        cu.pick_device()
    assert repr(bad) in str(info.value)


def test_mps_missing_from_torch_backends_means_unavailable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delattr(torch.backends, "mps")
    assert cu.pick_device() == torch.device("cpu")


def test_describe_device_cpu_mentions_threads():
    text = cu.describe_device(torch.device("cpu"))
    assert text.startswith("cpu")
    assert str(torch.get_num_threads()) in text


# ----------------------------------------------------------------------------- fast mode
@pytest.mark.parametrize(("value", "fast"), [("1", True), ("true", True), ("0", False), ("no", False)])
def test_course_fast_decides(monkeypatch, value, fast):
    monkeypatch.setenv("COURSE_FAST", value)
    assert cu.is_fast_mode() is fast
    assert cu.mode_name() == ("fast" if fast else "full")


def test_course_fast_overrides_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("COURSE_FAST", "0")
    assert cu.is_fast_mode() is False


def test_ci_means_fast_when_course_fast_unset(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert cu.is_ci()
    assert cu.is_fast_mode() is True


def test_full_mode_by_default(monkeypatch):
    assert not cu.is_ci()
    assert cu.is_fast_mode() is False
    assert cu.mode_name() == "full"


def test_ci_false_value_is_not_ci(monkeypatch):
    monkeypatch.setenv("CI", "false")
    assert not cu.is_ci()
    assert cu.is_fast_mode() is False


def test_bad_course_fast_value_raises(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "maybe")
    with pytest.raises(ValueError, match="COURSE_FAST") as info:
        cu.is_fast_mode()
    assert "'maybe'" in str(info.value)


# ----------------------------------------------------------------------------- seeding
def _draws() -> tuple[float, np.ndarray, torch.Tensor]:
    return random.random(), np.random.rand(3), torch.rand(3)


def test_seed_everything_repeats_every_generator():
    cu.seed_everything(123)
    first = _draws()
    cu.seed_everything(123)
    second = _draws()
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert torch.equal(first[2], second[2])


def test_different_seeds_give_different_draws():
    cu.seed_everything(1)
    first = _draws()
    cu.seed_everything(2)
    second = _draws()
    assert first[0] != second[0]
    assert not np.array_equal(first[1], second[1])
    assert not torch.equal(first[2], second[2])


@pytest.mark.parametrize("bad", [-1, 1.5, "0"])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        cu.seed_everything(bad)


def test_large_seed_is_accepted():
    cu.seed_everything(2**40)  # NumPy needs it reduced modulo 2**32


# ----------------------------------------------------------------------------- paths
def test_course_root_is_the_repository_by_default():
    root = cu.course_root()
    assert (root / "data" / "mnist").is_dir()
    assert (root / "course_utils").is_dir()


def test_course_root_variable_is_used(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    assert cu.course_root() == tmp_path.resolve()


def test_course_root_without_data_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no data/ folder"):
        cu.course_root()


def test_checkpoint_dir_depends_on_mode_and_is_never_the_shipped_folder(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    monkeypatch.setenv("COURSE_FAST", "0")
    assert cu.checkpoint_dir() == tmp_path.resolve() / "checkpoints" / "trained"
    assert cu.shipped_checkpoint_dir() == tmp_path.resolve() / "checkpoints"
    monkeypatch.setenv("COURSE_FAST", "1")
    assert cu.checkpoint_dir() == tmp_path.resolve() / "checkpoints" / "fast"


def test_a_read_only_course_writes_into_the_cache(tmp_path, monkeypatch):
    from course_utils import settings

    (tmp_path / "data").mkdir()
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(settings, "is_writable", lambda folder: False)
    assert cu.checkpoint_dir() == (tmp_path / "cache").resolve() / "checkpoints" / "trained"
    assert cu.shipped_checkpoint_dir() == tmp_path.resolve() / "checkpoints"


def test_device_choices_constant():
    assert settings.DEVICE_CHOICES == ("cuda", "mps", "cpu")


def test_release_freed_memory_sets_glibcs_threshold_or_says_it_cannot(monkeypatch):
    import ctypes
    import sys

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    assert cu.release_freed_memory(4) is True
    assert calls == [(cu.settings.M_MMAP_THRESHOLD, 4 << 20), (cu.settings.M_TRIM_THRESHOLD, 4 << 20)]

    def no_glibc(name):
        raise OSError("libc.so.6: cannot open shared object file")

    calls.clear()

    class OlderGlibc(FakeLibc):  # refuses an mmap threshold above 32 MiB, as mallopt(3) documents
        def mallopt(self, param, value):
            calls.append((param, value))
            return int(param != cu.settings.M_MMAP_THRESHOLD or value <= 32 << 20)

    monkeypatch.setattr(ctypes, "CDLL", lambda name: OlderGlibc())
    assert cu.release_freed_memory(128) is True  # train's setting: keep 128 MiB, map blocks from 32 MiB
    assert calls == [(cu.settings.M_MMAP_THRESHOLD, 32 << 20), (cu.settings.M_TRIM_THRESHOLD, 128 << 20)]

    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    assert cu.release_freed_memory() is False  # musl or no libc.so.6: nothing changes
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cu.release_freed_memory() is False
