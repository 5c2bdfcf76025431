"""Losses in nats per image: reconstruction, Gaussian KL, the negative ELBO, and an
importance-sampled estimate of -log p(x).

Convention: every "nats" figure is summed over the 784 pixels (and latent
dimensions) of an image and averaged over the images of a batch.

A caution for quoting nats: MNIST's pixels are grey levels in [0, 1], not 0/1, so the
Bernoulli "log-likelihood" of a grey pixel is not a probability. Its best value is the
pixel's own entropy, about 45.5 nats per test image in total (REFERENCES.md), not 0.
Figures here are comparable with pytorch/examples' VAE (same convention), not with
likelihoods reported on binarized MNIST.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


class LossParts(NamedTuple):
    loss: torch.Tensor  # what the optimizer minimizes: recon + beta * kl (scalar)
    recon: torch.Tensor  # reconstruction term in nats per image (or MSE for the AE)
    kl: torch.Tensor  # KL(q(z|x) || p(z)) in nats per image (0 for the AE)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) for a product of Bernoullis, one value per image, shape (B,).

    Uses the with-logits form: log(sigmoid(l)) = -softplus(-l) never overflows.
    """
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return bce.flatten(1).sum(1)


def gaussian_nll(x_hat: torch.Tensor, x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """-log N(x; x_hat, sigma^2 I) per image, shape (B,).

    = sum_i (x_i - x_hat_i)^2 / (2 sigma^2) + D/2 log(2 pi sigma^2): with sigma fixed,
    minimizing it is minimizing the squared error, which is why MSE is "Gaussian".
    """
    d = x[0].numel()
    sq = (x_hat - x).pow(2).flatten(1).sum(1)
    return sq / (2 * sigma**2) + 0.5 * d * (LOG_2PI + 2 * math.log(sigma))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row, shape (B,).

    Closed form, Kingma and Welling 2014, Appendix B:
    KL = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def model_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, beta: float = 1.0) -> LossParts:
    """The training loss of any course model on one batch, split into its parts.

    AE: mean squared error per pixel. VAE / CVAE: recon + beta * KL in nats per image
    (beta = 1 is the negative ELBO; Higgins et al. 2017 for beta != 1).
    """
    from .models import CVAE, VAE, AutoEncoder

    if isinstance(model, AutoEncoder):
        out = model(x)
        mse = F.mse_loss(out.x_hat, x)
        return LossParts(loss=mse, recon=mse, kl=torch.zeros((), device=x.device))
    if isinstance(model, CVAE):
        out = model(x, y)
    elif isinstance(model, VAE):
        out = model(x)
    else:
        raise TypeError(f"model_loss expects an AutoEncoder, VAE or CVAE, got {type(model).__name__}")
    recon = bernoulli_nll(out.logits, x).mean()
    kl = gaussian_kl(out.mu, out.logvar).mean()
    return LossParts(loss=recon + beta * kl, recon=recon, kl=kl)


@torch.no_grad()
def importance_sampled_nll(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    k: int = 100,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Estimate -log p(x) per image (nats) with k importance samples from q(z | x).

    Burda et al. 2016 (IWAE), eq. (8):
    log p(x) ~ log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x).
    With k = 1 this is the ELBO in expectation; it tightens as k grows.
    """
    from .models import CVAE

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    conditional = isinstance(model, CVAE)
    mu, logvar = model.encode(x, y) if conditional else model.encode(x)
    log_w = []
    for _ in range(k):
        eps = torch.randn(mu.shape, generator=generator).to(mu.device)
        z = model.reparameterize(mu, logvar, eps)
        logits = model.decode(z, y) if conditional else model.decode(z)
        log_px_z = -bernoulli_nll(logits, x)
        log_pz = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = log_normal(z, mu, logvar)
        log_w.append(log_px_z + log_pz - log_qz)
    log_w = torch.stack(log_w)  # (k, B)
    return -(torch.logsumexp(log_w, dim=0) - math.log(k))
