"""Quality and training time of the course's models against the usual reference.

Trains, from scratch and in one run:
  1. pytorch/examples' VAE (MLP 784-400-20, summed BCE + KL, Adam 1e-3, batch 128,
     10 epochs), the figure most people quote, on the course's data pipeline;
  2. the course's "vae" recipe (course_utils.recipes);
and then scores both default CVAE variants ("cvae-concat", "cvae-project": loaded
from checkpoints/ when present, else trained) by label accuracy.

Targets (issue 3): course VAE test negative ELBO <= 100 nats in under 5 minutes of
training on a 2-core CPU; both CVAEs' label accuracy >= 98%.

    python benchmarks/bench_models.py            # everything (about 6 minutes on 2 cores)
    python benchmarks/bench_models.py --skip-reference
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("COURSE_FAST", "0")  # the benchmark always measures full mode

import torch  # noqa: E402

import course_utils as cu  # noqa: E402


def train_fresh(name: str, recipe: cu.Recipe, device: torch.device) -> tuple[cu.History, dict, float]:
    cu.seed_everything(recipe.train.seed)
    model = recipe.build().to(device)
    train, test = cu.load_mnist("train", device), cu.load_mnist("test", device)
    start = time.perf_counter()
    history = cu.fit(model, train, test, recipe.train, progress=False)
    seconds = time.perf_counter() - start
    return history, cu.evaluate(model, data=test), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-reference", action="store_true", help="do not train pytorch/examples' VAE")
    parser.add_argument("--skip-cvae", action="store_true", help="do not score the CVAEs")
    args = parser.parse_args()
    device = cu.pick_device()
    print(f"device: {cu.describe_device(device)}; torch {torch.__version__}")
    rows = []
    if not args.skip_reference:
        reference = cu.Recipe("VAE", cu.VAEConfig(latent_dim=20, hidden_dims=(400,)), cu.TrainConfig(epochs=10))
        history, metrics, seconds = train_fresh("reference", reference, device)
        print("pytorch/examples VAE, test -ELBO per epoch:", ", ".join(f"{v:.1f}" for v in history.test_loss))
        rows.append(("pytorch/examples VAE 784-400-20, 10 epochs", metrics["neg_elbo_nats"], seconds))
    recipe = cu.course_recipe("vae", fast=False)
    history, metrics, seconds = train_fresh("vae", recipe, device)
    print("course VAE, test -ELBO per epoch:", ", ".join(f"{v:.1f}" for v in history.test_loss))
    rows.append((f"course VAE {recipe.config.hidden_dims}, z={recipe.config.latent_dim}, "
                 f"{recipe.train.epochs} epochs", metrics["neg_elbo_nats"], seconds))
    print(f"\n{'model':58s} {'test -ELBO (nats)':>18s} {'train time (s)':>15s}")
    for name, nats, secs in rows:
        print(f"{name:58s} {nats:18.2f} {secs:15.1f}")
    ok = metrics["neg_elbo_nats"] <= 100 and seconds < 300
    print(f"target (<= 100 nats, < 300 s): {'met' if ok else 'NOT met'}")
    if not args.skip_cvae:
        classifier = cu.load_classifier(device)
        print(f"\nclassifier test accuracy: {cu.evaluate(classifier)['accuracy']:.4f}")
        for name in ("cvae-concat", "cvae-project"):
            trained = cu.train_or_load(name, device=device, verbose=False)
            acc = cu.label_accuracy(trained.model, classifier, n_per_class=500)
            print(f"{name:14s} label accuracy {acc.accuracy:.4f} (5000 samples); "
                  f"worst digit {min(range(10), key=lambda d: acc.per_class[d])} "
                  f"at {min(acc.per_class):.3f}; train time {trained.metrics.get('train_seconds', float('nan')):.0f} s")


if __name__ == "__main__":
    main()
