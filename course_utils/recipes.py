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
CVAE_BETA = 1.0
CVAE_EPOCHS = 20


def _ae(k: int) -> Recipe:
    return Recipe("AutoEncoder", AEConfig(latent_dim=k, hidden_dims=HIDDEN), TrainConfig(epochs=10))


def _vae(k: int, epochs: int, beta: float = 1.0, cosine_lr: bool = False) -> Recipe:
    train = TrainConfig(epochs=epochs, beta=beta, cosine_lr=cosine_lr)
    return Recipe("VAE", VAEConfig(latent_dim=k, hidden_dims=HIDDEN), train)


def _cvae(conditioning: str, k: int = CVAE_LATENT, seed: int = 0, epochs: int = CVAE_EPOCHS) -> Recipe:
    config = CVAEConfig(latent_dim=k, hidden_dims=HIDDEN, conditioning=conditioning)
    return Recipe("CVAE", config, TrainConfig(epochs=epochs, beta=CVAE_BETA, seed=seed))


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
        recipes[f"cvae-{conditioning}"] = _cvae(conditioning)
        for seed in CVAE_SEEDS[1:]:
            recipes[f"cvae-{conditioning}-seed{seed}"] = _cvae(conditioning, seed=seed)
        for k in CVAE_LATENT_SIZES:
            recipes[f"cvae-{conditioning}-z{k}"] = _cvae(conditioning, k=k, epochs=10)
    return recipes


def course_names() -> list[str]:
    """Every model name the notebooks use, in training order."""
    return list(_all_recipes())


def course_recipe(name: str, fast: bool | None = None) -> Recipe:
    """The recipe for one of the course's models; cut down when in fast mode."""
    recipes = _all_recipes()
    if name not in recipes:
        raise KeyError(f"no course model called {name!r}; the names are: {', '.join(recipes)}")
    fast = is_fast_mode() if fast is None else fast
    return recipes[name].fast() if fast else recipes[name]
