"""The course's named models and train-or-load: what each notebook trains, and how.

``course_recipe(name)`` gives the recipe for a name (cut down in fast mode);
``train_or_load(name)`` loads a checkpoint that matches its recipe, or trains one;
``load_classifier()`` gives the digit classifier that judges generated digits.
``python -m course_utils train all`` trains every model. The defaults and why they
were chosen are in the README ("Course defaults").

Where checkpoints live: the shipped ones in ``checkpoints/`` are only ever read (unless
``train`` is told ``--out checkpoints``); anything trained here goes to
``settings.checkpoint_dir()`` (``checkpoints/trained`` or ``checkpoints/fast``, or the
per-user cache when the course folder is read-only).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from .checkpoints import CheckpointError, build_model, load_checkpoint, read_payload, round_to_half, save_checkpoint
from .data import load_mnist
from .metrics import evaluate, evaluation_data
from .models import AEConfig, ClassifierConfig, CVAEConfig, DigitClassifier, VAEConfig
from .settings import (
    FAST_MAX_EPOCHS,
    FAST_TRAIN_SIZE,
    checkpoint_dir,
    course_root,
    is_fast_mode,
    pick_device,
    seed_everything,
    shipped_checkpoint_dir,
)
from .training import History, TrainConfig, fit, optimizer_name, precision_name, resolve_precision


# ----------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class Recipe:
    """Everything needed to build and train one of the course's models."""

    model_class: str  # "AutoEncoder", "VAE", "CVAE" or "DigitClassifier"
    config: Any  # the model's config dataclass
    train: TrainConfig

    def spec(self) -> dict[str, Any]:
        return {
            "model_class": self.model_class,
            "config": dataclasses.asdict(self.config),
            "train": _train_spec(self.train),
        }

    def build(self) -> nn.Module:
        return build_model(self.model_class, dataclasses.asdict(self.config))

    def fast(self) -> Recipe:
        """The same recipe cut down for fast mode (CI)."""
        train = dataclasses.replace(
            self.train,
            epochs=min(self.train.epochs, FAST_MAX_EPOCHS),
            train_size=min(self.train.train_size or FAST_TRAIN_SIZE, FAST_TRAIN_SIZE),
        )
        return dataclasses.replace(self, train=train)


def _train_spec(train: TrainConfig) -> dict[str, Any]:
    """The TrainConfig as a checkpoint stores it. precision="auto", the default, is left out, as in
    the checkpoints made before the field existed: those still match their recipes."""
    spec = dataclasses.asdict(train)
    if spec.get("precision") == "auto":
        del spec["precision"]
    return spec


HIDDEN = (512, 256)  # every MLP in the course: 784 -> 512 -> 256 -> z, mirrored back
# Images per Adam step of every course model but pytorch/examples' VAE. On the course's
# 2-core CPU an image costs about half what it does at batch 128; the recipes train more epochs (and all but
# the CVAEs at a higher learning rate) to keep each model's quality (README, "Course defaults")
BATCH = 256

AE_LATENT_SIZES = (2, 4, 8, 16, 32, 64)  # notebook 01's compression sweep
BETAS = (0.5, 1.0, 4.0)  # notebook 02's beta sweep
CVAE_LATENT_SIZES = (2, 8, 20, 64)  # notebook 03's "does the decoder listen?" sweep
CVAE_SEEDS = (0, 1, 2)  # notebook 03's repeats of the comparison

VAE_LATENT = 32  # notebook 02's main VAE
CVAE_LATENT = 8  # default latent size of both CVAE variants (see notebook 03, section 6)
CVAE_BETA = 3.0  # KL weight of the CVAEs: beta = 1 left label accuracy at 93-95% (README, at batch 128)
CVAE_EPOCHS = 16  # every CVAE, default and sweep alike, trains this long
CVAE_CONDITIONINGS = ("concat", "project", "prior")  # notebook 03's three variants (models.CVAE)
UNTUNED_BETA = 1.0  # notebook 03's untuned comparison ("cvae-<variant>-untuned"): the true bound, PyTorch's init
FRONTIER_LATENT, FRONTIER_EPOCHS = 16, 32  # "cvae-<variant>-frontier": beta = 1, notebook 03's frontier (README)


def _ae(k: int) -> Recipe:
    train = TrainConfig(epochs=14, batch_size=BATCH, lr=2e-3)
    return Recipe("AutoEncoder", AEConfig(latent_dim=k, hidden_dims=HIDDEN), train)


def _vae(k: int, epochs: int, beta: float = 1.0, cosine_lr: bool = False) -> Recipe:
    train = TrainConfig(epochs=epochs, batch_size=BATCH, lr=1.5e-3, beta=beta, cosine_lr=cosine_lr)
    return Recipe("VAE", VAEConfig(latent_dim=k, hidden_dims=HIDDEN), train)


def cvae_recipe(conditioning: str, k: int = CVAE_LATENT, seed: int = 0, beta: float = CVAE_BETA,
                projection_init_std: float | None = 3.0, epochs: int = CVAE_EPOCHS) -> Recipe:
    """A CVAE trained the course's way (MLP ``HIDDEN``, batch ``BATCH``, Adam 1e-3, cosine learning rate)."""
    config = CVAEConfig(latent_dim=k, hidden_dims=HIDDEN, conditioning=conditioning,
                        projection_init_std=projection_init_std)
    train = TrainConfig(epochs=epochs, batch_size=BATCH, beta=beta, seed=seed, cosine_lr=True)
    return Recipe("CVAE", config, train)


def cvae_name(conditioning: str, latent_dim: int = CVAE_LATENT, seed: int = 0) -> str:
    """The checkpoint name of a CVAE: the sweep point at the default size is the default model."""
    name = f"cvae-{conditioning}"
    if latent_dim != CVAE_LATENT:
        name += f"-z{latent_dim}"
    if seed != 0:
        name += f"-seed{seed}"
    return name


def canonical_name(name: str) -> str:
    """Map an alias such as "cvae-concat-z8" (8 being the default size) to "cvae-concat"."""
    for conditioning in CVAE_CONDITIONINGS:
        if name == f"cvae-{conditioning}-z{CVAE_LATENT}":
            return cvae_name(conditioning)
    return name


def _all_recipes() -> dict[str, Recipe]:
    recipes: dict[str, Recipe] = {
        "classifier": Recipe("DigitClassifier", ClassifierConfig(),
                             TrainConfig(epochs=5, batch_size=BATCH, lr=2e-3, cosine_lr=True)),
    }
    for k in AE_LATENT_SIZES:
        recipes[f"ae-{k}"] = _ae(k)
    # 40 epochs with a cosine-decayed learning rate: <= 100 nats in about 2 minutes on 2 CPU cores
    recipes["vae"] = _vae(VAE_LATENT, epochs=40, cosine_lr=True)
    recipes["vae-2d"] = _vae(2, epochs=26)
    for beta in BETAS:
        recipes[f"vae-beta-{beta:g}"] = _vae(16, epochs=14, beta=beta)
    # Notebook 02's baseline: pytorch/examples vae/main.py's VAE (784-400-20, summed BCE + KL, Adam 1e-3,
    # batch 128, constant learning rate), trained 30 epochs; its history holds epoch 10, the example's default
    recipes["vae-examples"] = Recipe("VAE", VAEConfig(latent_dim=20, hidden_dims=(400,)), TrainConfig(epochs=30))
    for conditioning in CVAE_CONDITIONINGS:
        for seed in CVAE_SEEDS:
            recipes[cvae_name(conditioning, seed=seed)] = cvae_recipe(conditioning, seed=seed)
        for k in CVAE_LATENT_SIZES:
            recipes.setdefault(cvae_name(conditioning, k), cvae_recipe(conditioning, k=k))
    # Notebook 03: seed 003's own design once, and the three variants untuned (beta = 1, P at PyTorch's init)
    recipes["cvae-project-relu"] = cvae_recipe("project-relu")
    for conditioning in CVAE_CONDITIONINGS:
        std = None if conditioning == "project" else 3.0
        recipes[f"cvae-{conditioning}-untuned"] = cvae_recipe(conditioning, beta=UNTUNED_BETA, projection_init_std=std)
    for conditioning in ("concat", "prior"):  # the frontier's best settings at beta = 1 (a prior fitted after training)
        recipes[f"cvae-{conditioning}-frontier"] = cvae_recipe(conditioning, k=FRONTIER_LATENT, beta=1.0,
                                                         epochs=FRONTIER_EPOCHS)
    return recipes


def course_names() -> list[str]:
    """Every model name the notebooks use, in training order."""
    return list(_all_recipes())


def course_recipe(name: str, fast: bool | None = None) -> Recipe:
    """The recipe for one of the course's models; cut down when in fast mode."""
    recipes = _all_recipes()
    name = canonical_name(name)
    if name not in recipes:
        raise KeyError(f"no course model called {name!r}; the names are: {', '.join(recipes)}")
    fast = is_fast_mode() if fast is None else fast
    return recipes[name].fast() if fast else recipes[name]


# The figures the README promises for the shipped checkpoints (full mode, test set).
# tests/test_shipped_checkpoints.py checks each one against the file in checkpoints/.
TARGETS: dict[str, tuple[str, str, float]] = {
    "classifier": ("accuracy", ">=", 0.99),
    "vae": ("neg_elbo_nats", "<=", 100.0),
    "cvae-concat": ("label_accuracy", ">=", 0.98),
    "cvae-project": ("label_accuracy", ">=", 0.98),
    "cvae-prior": ("label_accuracy", ">=", 0.98),
}


def headline_metric(name: str) -> str:
    """The metric that sums up a named model: what its row in the README reports."""
    recipe = course_recipe(name, fast=False)
    return {
        "DigitClassifier": "accuracy",
        "AutoEncoder": "mse_per_pixel",
        "VAE": "neg_elbo_nats",
        "CVAE": "label_accuracy",
    }[recipe.model_class]


# ----------------------------------------------------------------------------- train or load
class Trained(NamedTuple):
    model: nn.Module
    history: History
    metrics: dict[str, Any]
    path: Path
    loaded: bool  # True: read from a checkpoint; False: trained just now


def _spec_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    out = []
    for part in ("model_class", "config", "train"):
        a, b = saved.get(part), wanted[part]
        if isinstance(b, dict) and isinstance(a, dict):
            for key in sorted(set(a) | set(b)):
                va = tuple(a[key]) if isinstance(a.get(key), list | tuple) else a.get(key)
                vb = tuple(b[key]) if isinstance(b.get(key), list | tuple) else b.get(key)
                if va != vb:
                    out.append(f"{part}.{key}: saved {va!r}, wanted {vb!r}")
        elif a != b:
            out.append(f"{part}: saved {a!r}, wanted {b!r}")
    return out


def checkpoint_differences(path: Path, recipe: Recipe) -> list[str]:
    """How the checkpoint at ``path`` differs from ``recipe`` (empty: it matches and is complete)."""
    if not path.exists():
        return [f"{path} does not exist"]
    try:
        payload = read_payload(path)
    except CheckpointError as err:
        return [f"unreadable ({err})"]
    saved = {k: payload.get(k) for k in ("model_class", "config", "train")}
    differences = _spec_differences(saved, recipe.spec())
    if not differences and not payload.get("metrics"):
        differences.append("incomplete (it has no test metrics: training was interrupted)")
    return differences


def train_or_load(
    name: str,
    recipe: Recipe | None = None,
    device: torch.device | str | None = None,
    directory: str | Path | None = None,
    verbose: bool = True,
    progress: bool | None = None,
) -> Trained:
    """Load the checkpoint ``<name>.pt`` if it matches ``recipe``; else train it and save it.

    ``recipe`` defaults to the course's recipe for ``name`` (``course_recipe``), cut down
    in fast mode. Without ``directory`` it looks in ``checkpoint_dir()`` (models trained
    here), then in the shipped ``checkpoints/``, and saves what it trains in
    ``checkpoint_dir()``: a shipped checkpoint is never overwritten. With ``directory`` it
    looks and saves only there. Prints which of the two it did. ``progress``: ``fit``'s bar.
    """
    name = canonical_name(name)
    recipe = recipe if recipe is not None else course_recipe(name)
    device = torch.device(device) if device is not None else pick_device()
    say = print if verbose else (lambda *a, **k: None)
    if directory is not None:
        target = Path(directory) / f"{name}.pt"
        candidates = [target]
    else:
        target = checkpoint_dir() / f"{name}.pt"
        candidates = [target, shipped_checkpoint_dir() / f"{name}.pt"]
    reasons = []
    for path in candidates:
        if not path.exists():
            continue
        differences = checkpoint_differences(path, recipe)
        if not differences:
            ckpt = load_checkpoint(path, recipe.model_class, device)
            say(f"Loaded {name} from {_short(path)} (trained earlier; metrics {_fmt(ckpt.metrics)})")
            return Trained(ckpt.model, History.from_dict(ckpt.history), ckpt.metrics, path, True)
        reasons.append(f"{_short(path)} does not match the recipe ({'; '.join(differences[:3])})")
    if reasons:
        say("; ".join(reasons) + ": training a new one.")
    say(f"Training {name} on {device} ({recipe.train.epochs} epochs"
        f"{', ' + str(recipe.train.train_size) + ' images' if recipe.train.train_size else ''})...")
    seed_everything(recipe.train.seed)
    model = recipe.build().to(device)
    train = load_mnist("train", device=device)
    test = evaluation_data("test", device)
    start = time.perf_counter()
    history = fit(model, train, test, recipe.train, progress=progress)
    seconds = time.perf_counter() - start
    # Checkpoints store float16 weights: score the rounded weights, so that what the
    # notebook shows now is exactly what the next run loads.
    round_to_half(model)
    classifier = load_classifier(device) if model.conditional else None
    metrics = {**evaluate(model, data=test, classifier=classifier), "train_seconds": seconds, "device": str(device),
               "precision": precision_name(resolve_precision(recipe.train, device)),  # what "auto" chose
               "optimizer": optimizer_name(device)}
    save_checkpoint(target, model, recipe.spec()["train"], history.as_dict(), metrics, half=True)
    say(f"Trained {name} in {seconds:.0f} s and saved it to {_short(target)}; metrics {_fmt(metrics)}")
    return Trained(model.eval(), history, metrics, target, False)


def load_classifier(device: torch.device | str | None = None) -> DigitClassifier:
    """The digit classifier that judges generated digits.

    It is a measuring instrument, not a lesson: every mode loads the shipped full-mode
    checkpoint ``checkpoints/classifier.pt``. Only if that file is missing or stale is one
    trained (the full recipe in full mode, a quick one in fast mode), into
    ``checkpoint_dir()``, so CI never spends minutes on it.
    """
    full = course_recipe("classifier", fast=False)
    shipped = shipped_checkpoint_dir() / "classifier.pt"
    if not checkpoint_differences(shipped, full):
        return load_checkpoint(shipped, full.model_class, device or pick_device()).model
    recipe = course_recipe("classifier")
    return train_or_load("classifier", recipe, device=device, verbose=False).model


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(course_root()))
    except ValueError:
        return str(path)


def _fmt(metrics: dict[str, Any]) -> str:
    keys = ("neg_elbo_nats", "mse_per_pixel", "label_accuracy", "accuracy")
    shown = [f"{k}={metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), float)]
    return ", ".join(shown) or "none"
