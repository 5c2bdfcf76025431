"""The course's named models: what each notebook trains, with the settings it uses.

``course_recipe(name)`` gives the recipe for a name (cut down in fast mode);
``python -m course_utils train all`` trains every one of them into ``checkpoints/``.
The defaults and why they were chosen are in the README ("Course defaults").
"""

from __future__ import annotations

from .models import AEConfig, ClassifierConfig, CVAEConfig, VAEConfig
from .settings import is_fast_mode
from .training import Recipe, TrainConfig

HIDDEN = (512, 256)  # every MLP in the course: 784 -> 512 -> 256 -> z, mirrored back

AE_LATENT_SIZES = (2, 4, 8, 16, 32, 64)  # notebook 01's compression sweep
BETAS = (0.5, 1.0, 4.0)  # notebook 02's beta sweep
CVAE_LATENT_SIZES = (2, 8, 20, 64)  # notebook 03's "does the decoder listen?" sweep
CVAE_SEEDS = (0, 1, 2)  # notebook 03's repeats of the comparison

VAE_LATENT = 32  # notebook 02's main VAE
CVAE_LATENT = 8  # default latent size of both CVAE variants (see notebook 03, section 6)
CVAE_BETA = 3.0  # KL weight of the CVAEs: beta = 1 left label accuracy at 93-95% (README)
CVAE_EPOCHS = 10  # every CVAE, default and sweep alike, trains this long


def _ae(k: int) -> Recipe:
    return Recipe("AutoEncoder", AEConfig(latent_dim=k, hidden_dims=HIDDEN), TrainConfig(epochs=10))


def _vae(k: int, epochs: int, beta: float = 1.0, cosine_lr: bool = False) -> Recipe:
    train = TrainConfig(epochs=epochs, beta=beta, cosine_lr=cosine_lr)
    return Recipe("VAE", VAEConfig(latent_dim=k, hidden_dims=HIDDEN), train)


def _cvae(conditioning: str, k: int = CVAE_LATENT, seed: int = 0) -> Recipe:
    config = CVAEConfig(latent_dim=k, hidden_dims=HIDDEN, conditioning=conditioning)
    return Recipe("CVAE", config, TrainConfig(epochs=CVAE_EPOCHS, beta=CVAE_BETA, seed=seed, cosine_lr=True))


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
    for conditioning in ("concat", "project"):
        if name == f"cvae-{conditioning}-z{CVAE_LATENT}":
            return cvae_name(conditioning)
    return name


def _all_recipes() -> dict[str, Recipe]:
    recipes: dict[str, Recipe] = {
        "classifier": Recipe("DigitClassifier", ClassifierConfig(), TrainConfig(epochs=5, cosine_lr=True)),
    }
    for k in AE_LATENT_SIZES:
        recipes[f"ae-{k}"] = _ae(k)
    # 40 epochs with a cosine-decayed learning rate: <= 100 nats in under 5 minutes on 2 CPU cores
    recipes["vae"] = _vae(VAE_LATENT, epochs=40, cosine_lr=True)
    recipes["vae-2d"] = _vae(2, epochs=20)
    for beta in BETAS:
        recipes[f"vae-beta-{beta:g}"] = _vae(16, epochs=10, beta=beta)
    for conditioning in ("concat", "project"):
        for seed in CVAE_SEEDS:
            recipes[cvae_name(conditioning, seed=seed)] = _cvae(conditioning, seed=seed)
        for k in CVAE_LATENT_SIZES:
            recipes.setdefault(cvae_name(conditioning, k), _cvae(conditioning, k=k))
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
