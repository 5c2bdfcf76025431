"""The numerical checks and small experiments of notebook 02 (the VAE and its objective).

Everything here is a measuring tool for a derivation the notebook makes on paper:

- ``LinearGaussian``: a latent-variable model small enough that p(x) and p(z | x) are
  exact, so the ELBO identity log p(x) = ELBO + KL(q(z|x) || p(z|x)) can be checked.
- ``monte_carlo_kl``: KL(q || N(0, I)) estimated by sampling, with its standard error,
  to check the closed form.
- ``gradient_estimator_variance``: the reparameterized and the score-function (REINFORCE)
  estimators of one gradient, their means and variances, measured side by side.
- ``temperature_samples`` / ``sample_quality`` / ``radius_by_temperature``: prior samples
  at several temperatures, what a digit classifier makes of them, and where they lie
  relative to the encoder's codes.
- ``fit_gaussian`` / ``gaussian_grid_codes`` / ``empty_cell_share``: how much of a 2-D
  latent space's probability mass holds no code at all (the "holes").
- ``linear_grid_codes`` / ``plot_two_grids``: a linear [-4, 4] grid beside the Gaussian-quantile
  grid, decoded side by side;
- ``prior_sampled_nll``: why p(x) is not estimated by sampling the prior. (The shared
  measures, such as ``metrics.active_units`` and ``metrics.kl_per_dimension``, are in
  ``course_utils.metrics``.)

Names follow the math: x, x_hat, z, mu, logvar (= log sigma^2), sigma = exp(logvar / 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..losses import LOG_2PI, bernoulli_nll
from ..metrics import CONFIDENT, readability
from ..plotting import gaussian_grid, image_grid

# ----------------------------------------------------------------------------- a tractable model


class Gaussian1D(NamedTuple):
    mu: torch.Tensor  # mean
    logvar: torch.Tensor  # log of the variance


@dataclass(frozen=True)
class LinearGaussian:
    """p(z) = N(0, 1), p(x | z) = N(w z + b, s^2): one latent number, one observed number.

    Unlike a VAE, everything is exact here: p(x) = N(b, w^2 + s^2) and the posterior
    p(z | x) is Gaussian, so ELBO identities can be checked to rounding error.
    """

    w: float = 2.0  # how strongly x depends on z
    b: float = 0.5  # offset of x
    s: float = 0.5  # standard deviation of the observation noise

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(x | z) + log p(z), elementwise."""
        log_px_z = -0.5 * (LOG_2PI + 2 * math.log(self.s) + (x - self.w * z - self.b) ** 2 / self.s**2)
        log_pz = -0.5 * (LOG_2PI + z**2)
        return log_px_z + log_pz

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log N(x; b, w^2 + s^2), exact."""
        var = self.w**2 + self.s**2
        return -0.5 * (LOG_2PI + math.log(var) + (x - self.b) ** 2 / var)

    def posterior(self, x: torch.Tensor) -> Gaussian1D:
        """The exact posterior p(z | x) = N(w (x - b) / (w^2 + s^2), s^2 / (w^2 + s^2))."""
        var = self.w**2 + self.s**2
        mu = self.w * (x - self.b) / var
        return Gaussian1D(mu, torch.full_like(mu, math.log(self.s**2 / var)))

    def elbo(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The ELBO for q(z) = N(mu, exp(logvar)) in closed form: E_q[log p(x|z)] - KL(q || p(z))."""
        var = logvar.exp()
        expected_log_px_z = -0.5 * (
            LOG_2PI + 2 * math.log(self.s) + ((x - self.w * mu - self.b) ** 2 + self.w**2 * var) / self.s**2
        )
        kl = -0.5 * (1 + logvar - mu**2 - var)
        return expected_log_px_z - kl

    def log_weights(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, n_samples: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i) for z_i ~ q = N(mu, exp(logvar)), shape (n_samples, *x.shape).

        Their mean estimates the ELBO; the log of the mean of their exponentials
        estimates log p(x): the two sides of Jensen's inequality.
        """
        eps = torch.randn((n_samples, *mu.shape), generator=generator, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        log_q = -0.5 * (LOG_2PI + logvar + eps**2)
        return self.log_joint(x, z) - log_q


def gaussian_kl_1d(p: Gaussian1D, q: Gaussian1D) -> torch.Tensor:
    """KL(N(p.mu, p.var) || N(q.mu, q.var)), elementwise, in closed form."""
    return 0.5 * (q.logvar - p.logvar + (p.logvar.exp() + (p.mu - q.mu) ** 2) / q.logvar.exp() - 1)


# ----------------------------------------------------------------------------- KL by sampling


class MonteCarloEstimate(NamedTuple):
    estimate: torch.Tensor  # the sample mean, one value per row
    standard_error: torch.Tensor  # sample standard deviation / sqrt(n_samples), per row
    n_samples: int  # samples per row


@torch.no_grad()
def monte_carlo_kl(
    mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 10_000, generator: torch.Generator | None = None
) -> MonteCarloEstimate:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row by sampling, with its standard error.

    KL = E_q[log q(z) - log p(z)]: draw z ~ q, average log q(z) - log p(z). The
    standard error says how far the average may honestly sit from the closed form.
    """
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(f"mu and logvar must both have shape (B, d), got {tuple(mu.shape)}, {tuple(logvar.shape)}")
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 to estimate a standard error, got {n_samples}")
    eps = torch.randn((n_samples, *mu.shape), generator=generator, dtype=mu.dtype).to(mu.device)
    z = mu + torch.exp(0.5 * logvar) * eps  # (n, B, d) samples of q
    log_q = -0.5 * (LOG_2PI + logvar + eps**2).sum(-1)  # (z - mu)^2 / sigma^2 = eps^2
    log_p = -0.5 * (LOG_2PI + z**2).sum(-1)
    terms = log_q - log_p  # (n, B)
    return MonteCarloEstimate(terms.mean(0), terms.std(0) / math.sqrt(n_samples), n_samples)


# ----------------------------------------------------------------------------- gradient estimators


class GradientVariance(NamedTuple):
    exact: float  # the true d/dmu E_{z ~ N(mu, sigma^2)}[f(z)]
    reparam_mean: float  # mean of the reparameterized single-sample estimates
    reparam_variance: float  # their variance
    score_mean: float  # mean of the score-function (REINFORCE) single-sample estimates
    score_variance: float  # their variance
    ratio: float  # score_variance / reparam_variance
    n_samples: int  # single-sample estimates drawn of each kind


def gradient_estimator_variance(
    mu: float,
    sigma: float,
    n_samples: int = 100_000,
    objective: Callable[[torch.Tensor], torch.Tensor] = torch.square,
    generator: torch.Generator | None = None,
) -> GradientVariance:
    """Measure two single-sample estimators of d/dmu E_{z ~ N(mu, sigma^2)}[f(z)].

    Both are computed by autograd, one estimate per sample (each sample has its own
    copy of mu, so ``mu_copies.grad`` holds every per-sample gradient):

    - reparameterized: z = mu + sigma * eps, gradient of f(z) with respect to mu;
    - score function: gradient of f(z).detach() * log N(z; mu, sigma^2) with z held fixed,
      i.e. f(z) * d/dmu log q(z).

    Both are unbiased; the returned variances are what differs. ``exact`` assumes the
    default f(z) = z^2 (then d/dmu E[z^2] = d/dmu (mu^2 + sigma^2) = 2 mu); for another
    objective it is NaN.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    eps = torch.randn(n_samples, generator=generator, dtype=torch.float64)

    mu_copies = torch.full((n_samples,), float(mu), dtype=torch.float64, requires_grad=True)
    z = mu_copies + sigma * eps
    objective(z).sum().backward()
    reparam = mu_copies.grad.detach().clone()

    mu_copies = torch.full((n_samples,), float(mu), dtype=torch.float64, requires_grad=True)
    z = (mu + sigma * eps).detach()  # a sample: no path from z back to mu
    log_q = torch.distributions.Normal(mu_copies, sigma).log_prob(z)
    (objective(z) * log_q).sum().backward()
    score = mu_copies.grad.detach().clone()

    exact = 2 * mu if objective is torch.square else math.nan
    r_var, s_var = float(reparam.var()), float(score.var())
    return GradientVariance(exact, float(reparam.mean()), r_var, float(score.mean()), s_var, s_var / r_var, n_samples)


class ExactVariances(NamedTuple):
    reparam: float  # Var[2 (mu + sigma eps)] = 4 sigma^2
    score: float  # Var[z^2 (z - mu) / sigma^2] = mu^4 / sigma^2 + 14 mu^2 + 15 sigma^2


def exact_square_variances(mu: float, sigma: float) -> ExactVariances:
    """The two estimators' variances for f(z) = z^2, derived by hand (see notebook 02)."""
    return ExactVariances(4 * sigma**2, mu**4 / sigma**2 + 14 * mu**2 + 15 * sigma**2)


# ----------------------------------------------------------------------------- temperature


class TemperatureSamples(NamedTuple):
    images: torch.Tensor  # (len(temperatures) * n, 1, 28, 28): n images per temperature, in order
    temperatures: tuple[float, ...]
    n_per_temperature: int


@torch.no_grad()
def temperature_samples(model, temperatures: Sequence[float], n: int = 10, seed: int = 0) -> TemperatureSamples:
    """n prior samples at each temperature, z ~ N(0, T^2 I), with the SAME noise for every T.

    Only the scale of z changes from row to row, so a column shows one direction of
    latent space drawn closer to or further from the origin.
    """
    rows = [model.sample(n, temperature=t, generator=torch.Generator().manual_seed(seed)) for t in temperatures]
    return TemperatureSamples(torch.cat(rows), tuple(float(t) for t in temperatures), n)


class SampleQuality(NamedTuple):
    confident_share: float  # share of images the classifier reads with probability > threshold
    mean_confidence: float  # mean of the classifier's top probability
    diversity: float  # mean Euclidean distance between two images (pixels in [0, 1])
    digit_mix: tuple[float, ...]  # share of each digit 0..9 among the confidently read images
    class_entropy_bits: float  # entropy of digit_mix (log2 10 = 3.32: all ten equally often)


@torch.no_grad()
def sample_quality(images: torch.Tensor, classifier: torch.nn.Module, threshold: float = CONFIDENT) -> SampleQuality:
    """How digit-like, how varied and how evenly spread over the ten digits a set of generated images is.

    The judge is a digit classifier (``course_utils.load_classifier()``): its top
    probability is its confidence (``metrics.readability``), and only images read with
    confidence > threshold count towards ``digit_mix``, so blends and scribbles do not
    count as any digit.
    """
    read = readability(classifier, images, threshold)
    flat = images.detach().float().cpu().flatten(1)
    n = len(flat)
    distances = torch.cdist(flat, flat)
    diversity = float(distances.sum() / (n * (n - 1))) if n > 1 else 0.0
    confident = read.confidence > threshold
    counts = torch.bincount(read.digit[confident], minlength=10).float()
    mix = counts / counts.sum().clamp_min(1)
    p = mix[mix > 0]
    entropy = float(-(p * p.log2()).sum())
    return SampleQuality(read.confident_share, float(read.confidence.mean()), diversity,
                         tuple(float(m) for m in mix), entropy)


# ----------------------------------------------------------------------------- 2-D latent maps


class GaussianFit(NamedTuple):
    mean: torch.Tensor  # (d,)
    chol: torch.Tensor  # (d, d) lower-triangular L with covariance = L L^T


def fit_gaussian(z: torch.Tensor) -> GaussianFit:
    """The Gaussian with the mean and covariance of the codes z, shape (N, d)."""
    z = z.detach().double().cpu()
    mean = z.mean(0)
    cov = torch.cov(z.T).reshape(z.shape[1], z.shape[1])
    return GaussianFit(mean.float(), torch.linalg.cholesky(cov).float())


def standard_fit(d: int = 2) -> GaussianFit:
    """The VAE's prior N(0, I) written as a GaussianFit."""
    return GaussianFit(torch.zeros(d), torch.eye(d))


def gaussian_grid_codes(n: int = 15, limit: float = 0.95, fit: GaussianFit | None = None) -> torch.Tensor:
    """An n x n grid of 2-D codes at Gaussian quantiles, shape (n * n, 2), row by row from the top.

    With ``fit`` the grid is mapped through it (z = mean + L u), so it covers a Gaussian
    fitted to some codes as the plain grid covers N(0, I). The order matches
    ``course_utils.plotting.plot_manifold`` (z_1 left to right, z_2 top to bottom decreasing).
    """
    values = gaussian_grid(n, limit)
    u1, u2 = torch.meshgrid(values, values.flip(0), indexing="xy")
    u = torch.stack([u1.reshape(-1), u2.reshape(-1)], dim=1)
    fit = fit if fit is not None else standard_fit(2)
    return fit.mean + u @ fit.chol.T


def linear_grid_codes(n: int = 15, half_width: float = 4.0) -> torch.Tensor:
    """An n x n grid of 2-D codes equally spaced over [-half_width, half_width]^2, in ``gaussian_grid_codes``' order."""
    values = torch.linspace(-half_width, half_width, n)
    u1, u2 = torch.meshgrid(values, values.flip(0), indexing="xy")
    return torch.stack([u1.reshape(-1), u2.reshape(-1)], dim=1)


@torch.no_grad()
def plot_two_grids(decode, grids: dict[str, torch.Tensor], title: str = ""):
    """Decode several n x n grids of 2-D codes (``gaussian_grid_codes`` order) into mosaics side by side.

    ``decode`` maps (B, 2) codes to logits; each mosaic's ticks show the z_1 and z_2 of its grid.
    """
    fig, axes = plt.subplots(1, len(grids), figsize=(6.2 * len(grids), 6.4), squeeze=False)
    device = next(decode.__self__.parameters()).device if hasattr(decode, "__self__") else torch.device("cpu")
    for ax, (name, z) in zip(axes[0], grids.items(), strict=True):
        n = int(round(len(z) ** 0.5))
        ax.imshow(image_grid(torch.sigmoid(decode(z.to(device))), nrow=n, pad=0), cmap="gray", vmin=0, vmax=1)
        ticks = np.arange(n) * 28 + 14
        ax.set_xticks(ticks[::2], [f"{v:.1f}" for v in z[:n, 0][::2].tolist()])
        ax.set_yticks(ticks[::2], [f"{v:.1f}" for v in z[::n, 1][::2].tolist()])
        ax.set(xlabel="$z_1$", ylabel="$z_2$", title=name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def empty_cell_share(z: torch.Tensor, n_per_axis: int = 20, fit: GaussianFit | None = None) -> float:
    """Share of equal-probability cells of a 2-D Gaussian that hold none of the codes z.

    The codes are whitened by ``fit`` (default: N(0, I), the VAE's prior), each axis is
    cut into ``n_per_axis`` intervals of equal probability, and the n_per_axis^2 cells
    are counted. If the codes really filled the Gaussian, every cell would expect
    N / n_per_axis^2 of them and almost none would be empty; a cell with no code is a
    hole, a region the Gaussian samples from and that no training image maps to.
    """
    if z.dim() != 2 or z.shape[1] != 2:
        raise ValueError(f"z must have shape (N, 2), got {tuple(z.shape)}")
    fit = fit if fit is not None else standard_fit(2)
    z = z.detach().float().cpu()
    u = torch.linalg.solve_triangular(fit.chol, (z - fit.mean).T, upper=False).T  # whitened codes
    p = torch.distributions.Normal(0.0, 1.0).cdf(u)
    cell = (p * n_per_axis).long().clamp(0, n_per_axis - 1)
    occupied = torch.zeros(n_per_axis, n_per_axis, dtype=torch.bool)
    occupied[cell[:, 0], cell[:, 1]] = True
    return 1.0 - float(occupied.float().mean())


def empty_box_cell_share(z: torch.Tensor, low: torch.Tensor, high: torch.Tensor, n_per_axis: int = 20) -> float:
    """Share of the n_per_axis^2 equal cells of the 2-D box [low, high] that hold none of the codes z.

    The uniform distribution on a box gives every equal-area cell the same probability,
    so this is ``empty_cell_share`` for notebook 01's bounding-box sampler.
    """
    if z.dim() != 2 or z.shape[1] != 2:
        raise ValueError(f"z must have shape (N, 2), got {tuple(z.shape)}")
    z = z.detach().float().cpu()
    low, high = low.detach().float().cpu(), high.detach().float().cpu()
    inside = ((z >= low) & (z <= high)).all(1)
    cell = ((z[inside] - low) / (high - low) * n_per_axis).long().clamp(0, n_per_axis - 1)
    occupied = torch.zeros(n_per_axis, n_per_axis, dtype=torch.bool)
    occupied[cell[:, 0], cell[:, 1]] = True
    return 1.0 - float(occupied.float().mean())


@torch.no_grad()
def nearest_code_ratio(draws: torch.Tensor, codes: torch.Tensor, reference: torch.Tensor) -> float:
    """How far sampled codes land from the data, in units of how far real codes land.

    Median distance from each draw to its nearest code in ``codes`` (for example the
    training images' codes), divided by the same median for ``reference`` (the test
    images' codes). Near 1: the draws land where the data lives; large: in empty space.
    The measure of notebook 01, section 8.
    """
    def median_nearest(z: torch.Tensor) -> torch.Tensor:
        z, c = z.detach().float().cpu(), codes.detach().float().cpu()
        return torch.cat([torch.cdist(z[i : i + 1000], c).min(1).values for i in range(0, len(z), 1000)]).median()

    return float(median_nearest(draws) / median_nearest(reference))


# ----------------------------------------------------------------------------- trained VAEs


@torch.no_grad()
def prior_sampled_nll(
    model, x: torch.Tensor, k: int = 1000, generator: torch.Generator | None = None, chunk: int = 250
) -> torch.Tensor:
    """-log p(x) per image estimated by averaging p(x | z) over z ~ p(z) (no encoder), (B,).

    Unbiased for p(x), but nearly every prior sample decodes to some other digit, so
    the average is ruled by the rare lucky z and needs enormous k: the reason the
    importance-sampled estimate draws z from q(z | x) instead.
    """
    device = x.device
    d = model.config.latent_dim
    log_px_z = []
    for start in range(0, k, chunk):
        m = min(chunk, k - start)
        z = torch.randn(m, d, generator=generator).to(device)
        logits = model.decode(z)  # (m, 1, 28, 28)
        # -log p(x_b | z_i) for every pair (i, b): (m, B)
        log_px_z.append(torch.stack([-bernoulli_nll(logits, xb.expand_as(logits)) for xb in x], dim=1))
    log_px_z = torch.cat(log_px_z)  # (k, B)
    return -(torch.logsumexp(log_px_z, dim=0) - math.log(k))


class RadiusStats(NamedTuple):
    temperature: float
    median_radius: float  # median ||z|| of prior samples at this temperature (over the chosen dimensions)
    share_of_codes_inside: float  # share of the encoder's codes with a smaller ||z||


@torch.no_grad()
def radius_by_temperature(
    codes: torch.Tensor,
    temperatures: Sequence[float],
    dims: torch.Tensor | None = None,
    n: int = 1000,
    seed: int = 0,
) -> list[RadiusStats]:
    """Where prior samples z = T * eps sit relative to the encoder's codes, by distance from the origin.

    In d dimensions ||eps|| is close to sqrt(d) (E ||eps||^2 = d), so N(0, I) is a thin
    shell rather than a ball, and a VAE's codes z ~ q(z | x) lie on that shell. A
    temperature T < 1 samples well inside it, where almost no code lies. ``dims`` (a
    boolean mask) restricts the radius to some dimensions, for example the active ones.
    """
    codes = codes.detach().float().cpu()
    dims = dims.cpu() if dims is not None else torch.ones(codes.shape[1], dtype=torch.bool)
    code_radius = codes[:, dims].norm(dim=1)
    eps = torch.randn(n, codes.shape[1], generator=torch.Generator().manual_seed(seed))[:, dims]
    stats = []
    for t in temperatures:
        radius = (t * eps).norm(dim=1)
        inside = (code_radius[None, :] < radius[:, None]).float().mean()
        stats.append(RadiusStats(float(t), float(radius.median()), float(inside)))
    return stats
