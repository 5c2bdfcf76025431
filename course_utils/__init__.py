"""course_utils: the code behind the course "From autoencoders to conditional VAEs".

Layers, lowest first; each module imports only from the layers above it in this list:

    settings     paths, device, seeding, fast mode (and its sizes), the writable cache
    data         MNIST from the shipped files, as tensors; mini-batches
    losses       loss formulas on tensors (Bernoulli and Gaussian terms, Gaussian KL)
    checks       the limits on every model input (images, labels, codes), stated once
    models       AutoEncoder, VAE, CVAE (one interface) and the digit classifier
    checkpoints  save and load a model with its config, history and metrics
    training     the training loop (fit) and its History
    metrics      evaluate, label accuracy, -log p(x), and the measures lessons share
    recipes      the course's named models, train-or-load, the judging classifier
    plotting     image tiling, PNGs and the figures the notebooks share (matplotlib)
    explorers    notebook 04's ipywidgets explorers (user interface only)
    lessons/     one module per notebook: nb01_compression ... nb04_traversal
    solutions/   the exercises: checks and revealable solutions

``import course_utils`` loads the core (settings to recipes) and nothing that draws:
``cu.plotting``, ``cu.explorers``, ``cu.lessons`` and ``cu.solutions`` are imported on
first use. Nothing runs at import time.
"""

import importlib
from typing import Any

from .checkpoints import Checkpoint, CheckpointError, load_checkpoint, load_model, save_checkpoint
from .data import Batch, MNISTDataError, MNISTSplit, batches, load_mnist, prepare_mnist
from .losses import LossParts, bernoulli_nll, gaussian_kl, gaussian_kl_per_dim, gaussian_nll, log_normal
from .metrics import LabelAccuracy, evaluate, importance_sampled_nll, label_accuracy, psnr_db
from .models import (
    CVAE,
    VAE,
    AEConfig,
    AEOutput,
    AutoEncoder,
    ClassifierConfig,
    CVAEConfig,
    DigitClassifier,
    LatentModel,
    Posterior,
    VAEConfig,
    VAEOutput,
    reparameterize,
)
from .recipes import Recipe, Trained, course_names, course_recipe, load_classifier, train_or_load
from .settings import (
    CourseError,
    cache_dir,
    checkpoint_dir,
    course_root,
    describe_device,
    is_ci,
    is_fast_mode,
    mode_name,
    pick_device,
    release_freed_memory,
    seed_everything,
    shipped_checkpoint_dir,
)
from .training import History, TrainConfig, TrainingDiverged, fit

__version__ = "0.1.0"

# Modules that pull in matplotlib, ipywidgets or the lessons: imported when first used.
_ON_DEMAND = ("plotting", "explorers", "lessons", "solutions", "colab", "cli")
_CORE = ("settings", "data", "losses", "checks", "models", "checkpoints", "training", "metrics", "recipes")

__all__ = [name for name in dir() if not name.startswith("_") and name not in ("importlib", "Any")]
__all__ += [*_CORE, *_ON_DEMAND]


def __getattr__(name: str) -> Any:
    """``cu.plotting`` and the other drawing modules are imported on first use (PEP 562)."""
    if name in _ON_DEMAND:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
