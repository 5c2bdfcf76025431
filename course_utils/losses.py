"""Loss formulas on tensors, in nats per image: reconstruction and Gaussian KL terms.

The models combine them into their own ``loss`` (models.py); nothing here knows a model.

Convention: every "nats" figure is summed over the 784 pixels (and latent
dimensions) of an image and averaged over the images of a batch.

A caution for quoting nats: MNIST's pixels are grey levels in [0, 1], not 0/1, so the
Bernoulli "log-likelihood" of a grey pixel is not a probability. Its best value is the
pixel's own entropy, about 45.5 nats per test image in total (notebook 02 computes it), not 0.
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


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_j, exp(logvar_j)) || N(0, 1)) of each dimension j, shape (B, k).

    Closed form, Kingma and Welling 2014, Appendix B:
    KL_j = -1/2 (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row, shape (B,): the sum of ``gaussian_kl_per_dim``."""
    return gaussian_kl_per_dim(mu, logvar).sum(1)


def gaussian_kl_between(
    mu: torch.Tensor, logvar: torch.Tensor, prior_mu: torch.Tensor, prior_logvar: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(prior_mu, diag(exp(prior_logvar)))) per row, shape (B,).

    Closed form, dimension by dimension (q = N(mu, s^2), p = N(m, v)):
    KL_j = 1/2 (log v_j - log s_j^2 + (s_j^2 + (mu_j - m_j)^2) / v_j - 1).
    With prior_mu = 0 and prior_logvar = 0 it is ``gaussian_kl``. The prior's tensors
    broadcast against the posterior's (a learned prior gives one row per label).
    """
    per_dim = 0.5 * (prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) / prior_logvar.exp() - 1)
    return per_dim.sum(-1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)
