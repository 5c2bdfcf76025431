"""The CVAE frontier: label accuracy at temperature 1 against test negative ELBO, one point per setting.

For each trained CVAE (the course's recipes, plus a few settings trained here only) and
each prior (the model's own; a Gaussian, or a mixture of Gaussians, fitted per label
after training to the training images' codes z ~ q(z | x, y): no retraining), it measures

- label accuracy: 500 samples per digit at temperature 1, read by the course's classifier;
- the test negative ELBO with that prior (nats per image, all 10,000 test images; a fitted
  prior's KL by Monte Carlo, 16 codes per image).

It writes the points to benchmarks/cvae_frontier.json, which notebook 03 plots (it never
retrains them). Course models load from checkpoints/ (train_or_load trains a missing one);
settings added to EXTRAS train once (``recipes.cvae_recipe``: seed 0, the course's MLP, batch and
Adam, cosine learning rate) into build/cvae-frontier/ and load from there on later runs.

    .venv/bin/python benchmarks/bench_cvae_frontier.py             # every setting: about 10 min
                                                                   # on 2 CPU cores with the checkpoints
    .venv/bin/python benchmarks/bench_cvae_frontier.py --only cvae-prior-untuned
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("COURSE_FAST", "0")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))

import course_utils as cu  # noqa: E402
from course_utils.lessons import nb03_prior as pr  # noqa: E402

OUT = cu.course_root() / "benchmarks" / "cvae_frontier.json"
EXTRA_DIR = cu.course_root() / "build" / "cvae-frontier"
COURSE_MODELS = ("cvae-concat", "cvae-project", "cvae-prior", "cvae-project-relu",
                 "cvae-concat-untuned", "cvae-project-untuned", "cvae-prior-untuned",
                 "cvae-concat-frontier", "cvae-prior-frontier")
MIXTURE = 10  # components per label of the fitted mixture


# Settings trained only here, to find what reaches the target, e.g.
# "frontier-concat-z32-beta1-e30": cu.recipes.cvae_recipe("concat", k=32, beta=1.0, epochs=30). The two that did
# ("cvae-concat-frontier", "cvae-prior-frontier": z = 16, beta = 1, now 32 epochs) became course recipes.
EXTRAS: dict[str, cu.Recipe] = {}


def _load(name: str, device: torch.device) -> cu.Trained:
    if name in EXTRAS:
        return cu.train_or_load(name, EXTRAS[name], device=device, directory=EXTRA_DIR)
    return cu.train_or_load(name, device=device)


def measure(name: str, device: torch.device, classifier: cu.DigitClassifier, train: cu.MNISTSplit,
            test: cu.MNISTSplit) -> list[dict]:
    trained = _load(name, device)
    model, recipe = trained.model, (EXTRAS.get(name) or cu.course_recipe(name))
    z, y = pr.aggregate_posterior_samples(model, train)
    priors = {"own": None, "Gaussian fitted per label": pr.fit_prior(z, y, 1),
              f"mixture of {MIXTURE} fitted per label": pr.fit_prior(z, y, MIXTURE)}
    points = []
    for prior_name, prior in priors.items():
        start = time.perf_counter()
        score = pr.score_prior(model, prior, test, classifier)
        own = "learned N(mu_y, sigma_y^2)" if model.config.conditioning == "prior" else "N(0, I)"
        point = {
            "model": name, "conditioning": model.config.conditioning, "latent_dim": model.config.latent_dim,
            "beta": recipe.train.beta, "epochs": recipe.train.epochs,
            "projection_init_std": model.config.projection_init_std,
            "prior": own if prior is None else prior_name, "fitted_after_training": prior is not None,
            "prior_components": 0 if prior is None else prior.components,
            **score._asdict(), "label_samples": 500 * 10,
        }
        points.append(point)
        print(f"{name:32s} {point['prior']:32s} label accuracy {score.label_accuracy:7.2%}  "
              f"-ELBO {score.neg_elbo_nats:7.2f}  ({time.perf_counter() - start:.0f} s)", flush=True)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="measure only these models (merged into the existing file)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    device = cu.pick_device()
    classifier = cu.load_classifier(device)
    train, test = cu.load_mnist("train", device), cu.load_mnist("test", device)
    names = args.only or [*COURSE_MODELS, *EXTRAS]
    old = json.loads(args.out.read_text())["points"] if args.out.exists() and args.only else []
    points = [p for p in old if p["model"] not in names]
    for name in names:
        points.extend(measure(name, device, classifier, train, test))
    order = [*COURSE_MODELS, *EXTRAS]
    points.sort(key=lambda p: (order.index(p["model"]) if p["model"] in order else len(order), p["prior_components"]))
    meta = {"script": "benchmarks/bench_cvae_frontier.py", "device": cu.describe_device(device),
            "torch": torch.__version__, "python": platform.python_version(),
            "extras": {k: cu.Recipe.spec(r) for k, r in EXTRAS.items()},
            "measured": time.strftime("%Y-%m-%d")}
    args.out.write_text(json.dumps({"meta": meta, "points": points}, indent=1) + "\n")
    print(f"wrote {len(points)} points to {args.out}")


if __name__ == "__main__":
    main()
