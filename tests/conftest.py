"""Shared fixtures: small data subsets, small models, a throw-away course root.

Tests never write into the repository's checkpoints/: anything that trains uses
``tmp_path`` (``train_or_load(..., directory=tmp_path)``), and tests that damage
data work on a copy of ``data/mnist`` in a temporary course root (``COURSE_ROOT``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

import course_utils as cu
from course_utils import data as course_data

REPO = Path(__file__).resolve().parent.parent
SHIPPED_MNIST = REPO / "data" / "mnist"
VENV_PYTHON = Path(sys.executable)  # the interpreter running the tests (.venv/bin/python)

# Variables that change what course_utils does; each test starts without them.
COURSE_VARIABLES = ("COURSE_DEVICE", "COURSE_ROOT", "COURSE_FAST", "CI", "COURSE_SOLUTIONS", "COURSE_CACHE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in full mode on the CPU with the repository as course root."""
    for name in COURSE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def train_small() -> cu.MNISTSplit:
    """The first 512 training images."""
    return cu.load_mnist("train", limit=512)


@pytest.fixture(scope="session")
def test_small() -> cu.MNISTSplit:
    """The first 256 test images."""
    return cu.load_mnist("test", limit=256)


@pytest.fixture
def x_batch(test_small: cu.MNISTSplit) -> torch.Tensor:
    return test_small.x[:8]


@pytest.fixture
def y_batch(test_small: cu.MNISTSplit) -> torch.Tensor:
    return test_small.y[:8]


def small_vae(latent_dim: int = 4, seed: int = 0) -> cu.VAE:
    torch.manual_seed(seed)
    return cu.VAE(cu.VAEConfig(latent_dim=latent_dim, hidden_dims=(32,)))


def small_ae(latent_dim: int = 4, seed: int = 0) -> cu.AutoEncoder:
    torch.manual_seed(seed)
    return cu.AutoEncoder(cu.AEConfig(latent_dim=latent_dim, hidden_dims=(32,)))


def small_cvae(conditioning: str = "concat", latent_dim: int = 4, seed: int = 0) -> cu.CVAE:
    torch.manual_seed(seed)
    return cu.CVAE(cu.CVAEConfig(latent_dim=latent_dim, hidden_dims=(32,), conditioning=conditioning))


def small_classifier(seed: int = 0) -> cu.DigitClassifier:
    """In eval mode (no dropout), as a loaded or trained classifier is."""
    torch.manual_seed(seed)
    return cu.DigitClassifier(cu.ClassifierConfig(channels=(4, 8), hidden_dim=16)).eval()


def copy_course_root(dest: Path) -> Path:
    """A course root at ``dest`` holding a private copy of the shipped data/mnist files."""
    (dest / "data").mkdir(parents=True)
    shutil.copytree(SHIPPED_MNIST, dest / "data" / "mnist")
    return dest


@pytest.fixture
def course_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """COURSE_ROOT pointing at a temporary copy of the course's data (safe to damage)."""
    root = copy_course_root(tmp_path / "course")
    monkeypatch.setenv("COURSE_ROOT", str(root))
    monkeypatch.setattr(course_data, "_CACHE", {})  # images read from the copy are freed afterwards
    return root


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python: one thread, no course variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in COURSE_VARIABLES}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env
