"""How the CVAE's label accuracy depends on latent size, beta and the projection's scale.

Trains each setting given on the command line from scratch (seed 0, the course's
784-512-256 MLP, Adam 1e-3, batch 128, cosine learning rate) and prints the label
accuracy (the share of samples for label k that the course's classifier reads as k)
at temperatures 0.8 and 1, with the test negative ELBO. This is how the course's CVAE
defaults (course_utils/recipes.py) were chosen; the README lists the figures.

    python benchmarks/bench_cvae_defaults.py concat:8:3:10 project:8:3:10
    python benchmarks/bench_cvae_defaults.py project:8:1:10:1.0   # P at std 1
    python benchmarks/bench_cvae_defaults.py project:8:1:10:none prior:8:1:10   # P at PyTorch's init; learned prior

Each setting is CONDITIONING:LATENT:BETA:EPOCHS[:P_INIT_STD] (CONDITIONING: concat, project,
prior or project-relu; P_INIT_STD "none": PyTorch's init); about 1.5 minutes per setting and
10 epochs on one CPU core. The frontier with priors fitted after training: bench_cvae_frontier.py.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("COURSE_FAST", "0")


import course_utils as cu  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("settings", nargs="+", help="CONDITIONING:LATENT:BETA:EPOCHS[:P_INIT_STD]")
    parser.add_argument("--samples-per-class", type=int, default=300)
    args = parser.parse_args()
    device = cu.pick_device()
    classifier = cu.load_classifier(device)
    train, test = cu.load_mnist("train", device), cu.load_mnist("test", device, limit=2000)
    print(f"{'setting':24s} {'acc T=0.8':>10s} {'acc T=1':>8s} {'-ELBO':>7s} {'KL':>6s} {'seconds':>8s}")
    for setting in args.settings:
        parts = setting.split(":")
        conditioning, latent, beta, epochs = parts[0], int(parts[1]), float(parts[2]), int(parts[3])
        p_std = cu.CVAEConfig().projection_init_std
        if len(parts) > 4:
            p_std = None if parts[4] == "none" else float(parts[4])
        cu.seed_everything(0)
        config = cu.CVAEConfig(latent, (512, 256), conditioning, projection_init_std=p_std)
        model = cu.CVAE(config).to(device)
        start = time.perf_counter()
        cu.fit(model, train, test, cu.TrainConfig(epochs=epochs, beta=beta, cosine_lr=True), progress=False)
        seconds = time.perf_counter() - start
        acc = [cu.label_accuracy(model, classifier, args.samples_per_class, temperature=t).accuracy
               for t in (0.8, 1.0)]
        metrics = cu.evaluate(model, data=test, classifier=classifier)
        print(f"{setting:24s} {acc[0]:10.4f} {acc[1]:8.4f} {metrics['neg_elbo_nats']:7.2f} "
              f"{metrics['kl_nats']:6.2f} {seconds:8.0f}", flush=True)


if __name__ == "__main__":
    main()
