"""Training same-shaped models together: does one stacked step beat one step per model?

notebook 02's three beta-VAEs (``vae-beta-0.5``, ``vae-beta-1``, ``vae-beta-4``) share one
architecture and one schedule, as do the seed repeats of each CVAE. The issue's lever is to
train such a group as one model with ``torch.func`` (``stack_module_state`` + ``vmap``).
``vmap`` cannot run the course's models as they are: their input checks read values on the host
(``check_images`` takes the pixels' min and max to give its one-line error), which ``vmap``
refuses. So this benchmark times the lever's best case instead: the same network written with
its weights stacked (M, n_in, n_out) and every layer one batched matmul (``torch.baddbmm``),
each model its own beta and its own noise, fit's Adam (``training.adam``) over the stacked weights. That is
what ``vmap`` would lower to, without its overhead.

It times, in turns (``--rounds``), M steps of ``fit`` (``bench_gpu.time_steps``, one per
model, as ``train all`` runs them) against one grouped step of the M models, in the precision
``fit`` picks here. Nothing is asserted; the figures are in the README ("Training speed").

    python benchmarks/bench_grouped.py                 # the three betas, 1 and 2 threads, about 1 minute
    python benchmarks/bench_grouped.py --threads 1     # as `train all --jobs 2` runs each model
    python benchmarks/bench_grouped.py --names vae-beta-1 vae-beta-1 vae-beta-1 vae-beta-1   # M = 4
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("COURSE_FAST", "0")  # the full recipes, whatever CI says

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_common import load_average, machine_line  # noqa: E402  (this folder is on sys.path when a script in it runs)
from bench_gpu import time_steps  # noqa: E402
from torch import nn  # noqa: E402

import course_utils as cu  # noqa: E402
from course_utils.data import NUM_PIXELS  # noqa: E402
from course_utils.training import adam, resolve_precision  # noqa: E402

DEFAULT_NAMES = ("vae-beta-0.5", "vae-beta-1", "vae-beta-4")


class StackedVAE(nn.Module):
    """M copies of a course VAE's network, weights stacked on a leading model axis."""

    def __init__(self, m: int, hidden: tuple[int, ...], k: int, betas: list[float], device: torch.device):
        super().__init__()

        def layer(n_in: int, n_out: int) -> tuple[nn.Parameter, nn.Parameter]:
            w = torch.randn(m, n_in, n_out, device=device) / math.sqrt(n_in)  # (M, n_in, n_out)
            return nn.Parameter(w), nn.Parameter(torch.zeros(m, 1, n_out, device=device))

        sizes = [NUM_PIXELS, *hidden]
        self.encoder = [layer(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        self.to_mu, self.to_logvar = layer(sizes[-1], k), layer(sizes[-1], k)
        back = [k, *sizes[::-1]]
        self.decoder = [layer(a, b) for a, b in zip(back[:-1], back[1:])]
        self.beta = torch.tensor(betas, device=device)  # (M,) each model's KL weight
        layers = [*self.encoder, self.to_mu, self.to_logvar, *self.decoder]
        self.weights = nn.ParameterList([t for pair in layers for t in pair])  # what Adam steps

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over the M models of recon + beta * KL (nats per image); x is (M, B, 784)."""
        h = x
        for w, b in self.encoder:
            h = torch.relu(torch.baddbmm(b, h, w))  # (M, B, n_in) -> (M, B, n_out)
        mu = torch.baddbmm(self.to_mu[1], h, self.to_mu[0])  # (M, B, k)
        logvar = torch.baddbmm(self.to_logvar[1], h, self.to_logvar[0])
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        h = z
        for i, (w, b) in enumerate(self.decoder):
            h = torch.baddbmm(b, h, w)
            h = torch.relu(h) if i < len(self.decoder) - 1 else h  # (M, B, 784) logits at the end
        recon = F.binary_cross_entropy_with_logits(h.float(), x, reduction="none").sum(-1).mean(-1)  # (M,)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).float().sum(-1).mean(-1)  # (M,)
        return (recon + self.beta * kl).sum()


def grouped_step_seconds(recipes: list[cu.Recipe], train: cu.MNISTSplit, device: torch.device, steps: int) -> float:
    """Seconds of one step of all the models in ``recipes`` at once (after a warm-up)."""
    first = recipes[0]
    m, batch = len(recipes), first.train.batch_size
    model = StackedVAE(m, tuple(first.config.hidden_dims), first.config.latent_dim,
                       [r.train.beta for r in recipes], device)
    optimizer = adam(model, first.train.lr)  # fit's Adam: fused on CPU and CUDA
    dtype = resolve_precision(first.train, device)
    images = train.x.reshape(len(train), -1)
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        idx = torch.randint(len(train), (m, batch), generator=generator).to(device)  # each model its own batch
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = model.loss(images[idx])  # (M, B, 784)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(10):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    with torch.no_grad():
        loss_value = float(model.loss(images[:batch].expand(m, -1, -1)))  # the one synchronisation
    if not math.isfinite(loss_value):
        raise SystemExit(f"the grouped models diverged (loss {loss_value}): lower the learning rate")
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="*", default=list(DEFAULT_NAMES), help="same-shaped VAE recipes")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per round (default 60)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of both ways (default 3)")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2], help="torch thread counts (default 1 2)")
    args = parser.parse_args(argv)
    recipes = [cu.course_recipe(name, fast=False) for name in args.names]
    shapes = {(r.model_class, r.config.latent_dim, tuple(r.config.hidden_dims), r.train.batch_size) for r in recipes}
    if len(shapes) != 1 or recipes[0].model_class != "VAE":
        parser.error(f"--names must be VAE recipes of one shape and batch size, got {sorted(shapes)}")
    device = cu.pick_device()
    print(machine_line(device))
    dtype = resolve_precision(recipes[0].train, device)
    print(f"{len(recipes)} models: {', '.join(args.names)}; precision: {dtype or torch.float32}")
    train = cu.load_mnist("train", device=device)
    print("\n| threads | one step per model (fit), summed | one grouped step | gain |")
    print("| --- | --- | --- | --- |")
    for threads in args.threads:
        torch.set_num_threads(max(1, threads))
        separate, grouped = [], []
        for _ in range(args.rounds):
            separate.append(sum(time_steps(r, train, device, args.steps)[0] for r in recipes))
            grouped.append(grouped_step_seconds(recipes, train, device, args.steps))
        a, g = statistics.median(separate), statistics.median(grouped)
        print(f"| {torch.get_num_threads()} | {1e3 * a:.1f} ms | {1e3 * g:.1f} ms | {a / g:.2f}x |")
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
