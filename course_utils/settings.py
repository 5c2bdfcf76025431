"""Run-time settings shared by every notebook: paths, device, seeding, fast mode.

Nothing here runs at import time; every function reads the environment when called.

Environment variables (all optional):
    COURSE_FAST    "1" trains every model on a small subset for few epochs (CI);
                   "0" forces full mode. Unset: fast mode when ``CI`` is set.
    COURSE_DEVICE  "cuda", "mps" or "cpu": use this device instead of the automatic
                   choice (for a classroom machine with a broken GPU driver).
    COURSE_ROOT    folder that holds ``data/`` and ``checkpoints/`` (Colab sets it).
    COURSE_CACHE   writable folder for what the course writes when its own folder is
                   read-only (default: the platform's per-user cache folder).
"""

from __future__ import annotations

import ctypes
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
DEVICE_CHOICES = ("cuda", "mps", "cpu")

# Fast mode (CI), stated once: every model trains on the first FAST_TRAIN_SIZE training
# images for at most FAST_MAX_EPOCHS epochs, and is scored on the first FAST_TEST_SIZE
# test images.
FAST_TRAIN_SIZE = 2000
FAST_MAX_EPOCHS = 2
FAST_TEST_SIZE = 1000


# ----------------------------------------------------------------------------- errors
class CourseError(Exception):
    """Every error the course raises on purpose: its message says in one line what to do.

    Each one also derives from the built-in error it replaces (ValueError, RuntimeError, ...),
    so ``except ValueError`` keeps working; ``python -m course_utils`` prints any CourseError
    as one line with exit code 2.
    """


class CourseValueError(CourseError, ValueError):
    """A value the course cannot use (a pixel outside [0, 1], a label out of range, ...)."""


class CourseTypeError(CourseError, TypeError):
    """An argument of the wrong kind (a list where a tensor is needed, integer pixels, ...)."""


class SettingError(CourseError, ValueError):
    """A ``COURSE_*`` environment variable holds a value the course does not understand."""


class DeviceUnavailable(CourseError, RuntimeError):
    """``COURSE_DEVICE`` asks for a device this machine does not have."""


class CourseRootNotFound(CourseError, FileNotFoundError):
    """The course folder (the one with ``data/mnist``) cannot be found."""


def is_ci() -> bool:
    """True when running under continuous integration (the ``CI`` variable is set)."""
    return os.environ.get("CI", "").strip().lower() not in {"", *_FALSE}


def is_fast_mode() -> bool:
    """True when notebooks should train on a small subset for few epochs (CI).

    ``COURSE_FAST`` decides when it is set; otherwise fast mode follows ``CI``.
    Full mode, the classroom default, is what you get on a laptop.
    """
    value = os.environ.get("COURSE_FAST", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        raise SettingError(
            f"COURSE_FAST={value!r} is not understood: use 1 (fast mode) or 0 (full mode)."
        )
    return is_ci()


def mode_name() -> str:
    """``"fast"`` or ``"full"``, for printing in a notebook's setup cell."""
    return "fast" if is_fast_mode() else "full"


def pick_device(prefer: str | None = None) -> torch.device:
    """Pick CUDA, then Apple MPS, then CPU.

    ``prefer`` (or the ``COURSE_DEVICE`` variable) forces one of "cuda", "mps", "cpu";
    asking for a device this machine does not have raises an error saying so.
    """
    choice = (prefer or os.environ.get("COURSE_DEVICE", "")).strip().lower()
    if choice:
        if choice not in DEVICE_CHOICES:
            raise SettingError(
                f"COURSE_DEVICE={choice!r} is not a device: use one of {', '.join(DEVICE_CHOICES)}."
            )
        if choice == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailable(
                "COURSE_DEVICE=cuda, but PyTorch sees no CUDA GPU here. "
                "Unset COURSE_DEVICE or set it to cpu."
            )
        if choice == "mps" and not _mps_available():
            raise DeviceUnavailable(
                "COURSE_DEVICE=mps, but Apple's MPS backend is not available here. "
                "Unset COURSE_DEVICE or set it to cpu."
            )
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


# Mixed precision, stated once: on a CPU with bfloat16 in hardware (the cpuinfo flags below),
# bfloat16 autocast pays from BF16_MIN_BATCH images per step. Measured with `fit` on a 2-core CPU
# with AMX and AVX-512 BF16 (benchmarks/bench_levers.py): at batch 128 a step of the
# 784-512-256-32 VAE takes 8.6 ms against 11.1 ms in float32 (13.4 against 17.7 ms on one
# thread), and `train all` kept every headline metric within its tolerance (README, Benchmarks).
# Below 128 images a step is too small to gain. Other CPUs, and MPS, train in float32: on a 2-core
# Intel Xeon whose hypervisor exposes AVX-512 but neither flag, a step with bfloat16 autocast
# forced took 2.1 to 3.4 times as long as in float32 (bench_levers.py, one thread: `vae` at batch
# 128 34.7 against 10.2 ms; README, Benchmarks).
FAST_BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")
BF16_MIN_BATCH = 128


def _read_cpuinfo() -> str:
    """The text of /proc/cpuinfo ("" where it cannot be read)."""
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_has_fast_bfloat16() -> bool:
    """True when this CPU computes bfloat16 in hardware (Intel AMX or AVX-512 BF16).

    Read from the ``flags`` line of /proc/cpuinfo on Linux; False on other systems.
    """
    if not sys.platform.startswith("linux"):
        return False
    for line in _read_cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":  # every core lists the same flags: the first line is enough
            return any(flag in value.split() for flag in FAST_BFLOAT16_FLAGS)
    return False


def autocast_dtype(device: torch.device | str, batch_size: int) -> torch.dtype | None:
    """The dtype ``fit`` autocasts to when its precision is "auto"; None: plain float32.

    bfloat16 on a CPU with bfloat16 hardware when a batch holds at least ``BF16_MIN_BATCH``
    images; on CUDA bfloat16 where the GPU supports it, else float16 (fit then scales the
    loss); float32 (None) everywhere else, MPS included.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return torch.bfloat16 if batch_size >= BF16_MIN_BATCH and cpu_has_fast_bfloat16() else None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def describe_device(device: torch.device) -> str:
    """A one-line description of ``device`` for a notebook's setup cell."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (every device) with one number."""
    if not isinstance(seed, int) or seed < 0:
        raise CourseValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers, from glibc's <malloc.h>
# The largest mmap threshold glibc documents on 64-bit systems (mallopt(3)); older versions refuse more.
MAX_MMAP_THRESHOLD_MIB = 32


def release_freed_memory(threshold_mib: int = 16) -> bool:
    """Have glibc hand freed memory back to the system once ``threshold_mib`` MiB of it lie unused.

    Sets glibc's trim threshold (freed memory at the top of the heap it keeps) to
    ``threshold_mib`` and its mmap threshold (blocks it maps on their own, and unmaps when they
    are freed) to the same, at most ``MAX_MMAP_THRESHOLD_MIB``. By default glibc raises both each
    time a large block is freed, so the large tensors of later passes come from a heap it rarely
    returns. Measured here on notebook 01 (one thread): kernel peak 1,428 MiB without this, 1,189
    MiB with it at 16 MiB, in the same time (81 s against 79; a 4 MiB threshold saved no more and
    took 115 s, as every tensor above it is mapped and faulted in afresh). The notebooks call this
    in their set-up cell. The environment variables ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` do the same. ``python -m course_utils train`` asks for 128 MiB
    instead (``cli.TRAINING_FREED_BLOCK_MIB``): a training step's freed tensors are then reused,
    not faulted in afresh. Linux with glibc only; returns whether it was applied (False
    elsewhere, where it does nothing).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = int(threshold_mib) << 20
        mmap = min(int(threshold_mib), MAX_MMAP_THRESHOLD_MIB) << 20
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim))
    except (OSError, AttributeError):  # musl (Alpine) or no libc.so.6: leave the default
        return False


def course_root() -> Path:
    """The folder that holds ``data/mnist`` and ``checkpoints/``.

    Looked up in this order: ``COURSE_ROOT``; the repository this package sits in
    (an editable or in-place install); the current folder and its parents.
    """
    env = os.environ.get("COURSE_ROOT")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "data").is_dir():
            raise CourseRootNotFound(
                f"COURSE_ROOT={env} has no data/ folder. Point it at the course's "
                "repository (the folder with data/mnist and checkpoints/)."
            )
        return root
    candidates = [Path(__file__).resolve().parent.parent]
    here = Path.cwd().resolve()
    candidates += [here, *here.parents]
    for root in candidates:
        if (root / "data" / "mnist").is_dir():
            return root
    raise CourseRootNotFound(
        "Cannot find the course folder (one with data/mnist inside). Run from inside "
        "the course repository, or set COURSE_ROOT to its path."
    )


def split_limits() -> tuple[int | None, int | None]:
    """(train, test) image counts a lesson uses: all of them (None) in full mode."""
    return (FAST_TRAIN_SIZE, FAST_TEST_SIZE) if is_fast_mode() else (None, None)


def cache_dir() -> Path:
    """The per-user folder the course writes to when its own folder is read-only.

    ``COURSE_CACHE`` when set; otherwise the platform's usual cache folder:
    ``%LOCALAPPDATA%`` on Windows, ``~/Library/Caches`` on macOS, ``$XDG_CACHE_HOME``
    (default ``~/.cache``) elsewhere, each with ``ae-to-cvae-course`` inside.
    """
    env = os.environ.get("COURSE_CACHE", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ae-to-cvae-course"


def is_writable(folder: Path) -> bool:
    """True when files can be created in ``folder`` (or in the nearest folder above it that exists)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK | os.X_OK)


def work_dir() -> Path:
    """Where the course writes what it makes: its own folder when writable, else ``cache_dir()``."""
    root = course_root()
    return root if is_writable(root) else cache_dir()


def shipped_checkpoint_dir() -> Path:
    """``checkpoints/`` of the course: the shipped, full-mode checkpoints. Only read, unless asked."""
    return course_root() / "checkpoints"


def checkpoint_dir() -> Path:
    """Where train-or-load writes the checkpoints it trains.

    Never the shipped folder: ``checkpoints/fast/`` in fast mode and ``checkpoints/trained/``
    in full mode, inside ``work_dir()`` (the course folder, or the cache when it is read-only).
    """
    return work_dir() / "checkpoints" / ("fast" if is_fast_mode() else "trained")
