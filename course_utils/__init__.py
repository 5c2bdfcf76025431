"""course_utils: the code behind the course "From autoencoders to conditional VAEs".

Notebooks import everything from here; nothing runs at import time.
"""

# The lesson modules, reachable as cu.plotting, cu.compression, ... after `import course_utils as cu`.
from . import colab, compression, conditioning, plotting, recipes, solutions, vae_math, widgets
from .checkpoints import Checkpoint, CheckpointError, load_checkpoint, load_model, save_checkpoint
from .data import Batch, MNISTDataError, MNISTSplit, batches, load_mnist, prepare_mnist
from .losses import (
    LossParts,
    bernoulli_nll,
    gaussian_kl,
    gaussian_nll,
    importance_sampled_nll,
    log_normal,
    model_loss,
)
from .models import (
    CVAE,
    VAE,
    AEConfig,
    AEOutput,
    AutoEncoder,
    ClassifierConfig,
    CVAEConfig,
    DigitClassifier,
    Posterior,
    VAEConfig,
    VAEOutput,
    reparameterize,
)
from .recipes import course_names, course_recipe
from .settings import (
    checkpoint_dir,
    course_root,
    describe_device,
    is_ci,
    is_fast_mode,
    mode_name,
    pick_device,
    seed_everything,
)
from .training import (
    History,
    LabelAccuracy,
    Recipe,
    TrainConfig,
    Trained,
    TrainingDiverged,
    evaluate,
    fit,
    label_accuracy,
    load_classifier,
    psnr_db,
    train_or_load,
)

__version__ = "0.1.0"

__all__ = [name for name in dir() if not name.startswith("_")]
