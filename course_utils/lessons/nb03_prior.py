"""Notebook 03's priors: ``project`` read as a learned prior, the label-swap test, priors fitted after training.

- ``project_as_learned_prior``: a KL is unchanged when both of its Gaussians shift
  together, so the ``project`` CVAE (decoder input z + P e_y, prior N(0, I)) is exactly a
  CVAE on u = z + P e_y with the prior N(P e_y, I) and a decoder that never sees y. The
  function computes both losses from one model's weights and the same noise.
- ``prior_kl_both_ways``: the learned-prior CVAE's KL in its prior's coordinates u (two
  diagonal Gaussians) equals the standardized code's KL against N(0, I).
- ``label_swap``: encode mu(x, a), decode it with a label b != a, and ask the classifier
  whether it drew b. This measures whether the decoder listens to the label; the latent
  probe of section 6 measures something else, how much q(z | x, y) depends on the class.
- ``FittedPrior``: a per-class Gaussian or Gaussian mixture fitted, after training, to the
  aggregate posterior (codes z ~ q(z | x, y) of the training images): a prior that needs
  no retraining. ``score_prior`` measures label accuracy at temperature 1 and the test
  negative ELBO with such a prior (its KL by Monte Carlo), a point of the frontier.

Names follow the math: x (images), z (codes), mu / logvar (q(z | x, y)), y (labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from ..data import IMAGE_SHAPE, NUM_CLASSES, MNISTSplit, batches
from ..losses import LOG_2PI, LossParts, bernoulli_nll, gaussian_kl, gaussian_kl_between, log_normal
from ..metrics import decode_images, label_accuracy, posteriors
from ..models import CVAE, DigitClassifier, reparameterize


# ----------------------------------------------------------------------------- project is a learned prior
class PriorEquivalence(NamedTuple):
    project: LossParts  # the project CVAE's own loss (beta = 1)
    learned_prior: LossParts  # the same weights as a CVAE with prior N(P e_y, I) and a label-free decoder
    max_abs_diff: float  # largest difference between the two, over loss, recon and kl


@torch.no_grad()
def project_as_learned_prior(model: CVAE, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> PriorEquivalence:
    """Both readings of a ``project`` CVAE's weights, on the same images and the same noise ``eps``.

    Reading 2: q(u | x, y) = N(mu + P e_y, sigma^2), prior p(u | y) = N(P e_y, I), and the
    decoder applied to u alone. Its KL is the two-Gaussian closed form, not notebook 02's.
    """
    if model.config.conditioning != "project":
        raise ValueError(f"this reading is of the 'project' variant, got {model.config.conditioning!r}")
    model.eval()
    own = model.loss(x, y, beta=1.0, eps=eps)
    post = model.encode(x, y)
    offsets = model.label_projection(model.one_hot(y, len(x)))  # P e_y, (B, k)
    u_mu = post.mu + offsets  # the posterior moved by the label's offset
    u = reparameterize(u_mu, post.logvar, eps)  # = z + P e_y with the same eps
    logits = model.decoder(u).reshape(-1, *IMAGE_SHAPE)  # the decoder never sees y itself
    recon = bernoulli_nll(logits, x.reshape(-1, *IMAGE_SHAPE)).mean()
    kl = gaussian_kl_between(u_mu, post.logvar, offsets, torch.zeros_like(offsets)).mean()
    other = LossParts(recon + kl, recon, kl)
    diff = max(float((a - b).abs()) for a, b in zip(own, other, strict=True))
    return PriorEquivalence(own, other, diff)


class KLBothWays(NamedTuple):
    in_prior_coordinates: torch.Tensor  # (B,) KL(q(u | x, y) || N(mu_y, sigma_y^2)), two diagonal Gaussians
    standardized: torch.Tensor  # (B,) KL(q(z | x, y) || N(0, I)) of the standardized code
    max_abs_diff: float


@torch.no_grad()
def prior_kl_both_ways(model: CVAE, x: torch.Tensor, y: torch.Tensor) -> KLBothWays:
    """The learned-prior CVAE's KL computed in u (what its loss uses) and in z (what ``encode`` returns)."""
    model.eval()
    q_u, p_u = model.encode_u(x, y), model.prior(y, len(x))
    in_u = gaussian_kl_between(q_u.mu, q_u.logvar, p_u.mu, p_u.logvar)
    q_z = model.encode(x, y)
    in_z = gaussian_kl(q_z.mu, q_z.logvar)
    return KLBothWays(in_u, in_z, float((in_u - in_z).abs().max()))


# ----------------------------------------------------------------------------- the label-swap test
class LabelSwap(NamedTuple):
    accuracy: float  # share of swapped decodes that the classifier reads as the new label b
    kept_source: float  # share read as the image's own label a: the code overrode the label
    n: int  # number of swapped decodes


@torch.no_grad()
def label_swap(model: CVAE, classifier: DigitClassifier, data: MNISTSplit, n: int = 2000, seed: int = 0) -> LabelSwap:
    """Encode mu(x, a) with the image's own label a, decode it with b != a; does the classifier read b?

    b = (a + r) mod 10 with r drawn uniformly from 1..9 (seeded), one swap per image.
    """
    if not model.conditional:
        raise TypeError("the label-swap test needs a conditional model (a CVAE)")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=g)[:n]
    x, a = data.x[order.to(data.x.device)], data.y[order.to(data.y.device)].cpu()
    b = (a + torch.randint(1, NUM_CLASSES, (len(a),), generator=g)) % NUM_CLASSES
    mu = posteriors(model, x, a).mu  # the code of x under its own label
    device = next(model.parameters()).device
    read = classifier.to(device).predict(decode_images(model, mu, b).to(device)).cpu()
    return LabelSwap(float((read == b).float().mean()), float((read == a).float().mean()), len(a))


# ----------------------------------------------------------------------------- priors fitted after training
@torch.no_grad()
def aggregate_posterior_samples(model: CVAE, data: MNISTSplit, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One z ~ q(z | x, y) per image of ``data`` (on the CPU), with the labels: the aggregate posterior."""
    post = posteriors(model, data.x, data.y)
    eps = torch.randn(post.mu.shape, generator=torch.Generator().manual_seed(seed))
    return reparameterize(post.mu, post.logvar, eps), data.y.cpu()


def _log_gaussian(z: torch.Tensor, mean: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, L L^T) for z (n, k) against K components (K, k), (K, k, k): shape (n, K)."""
    diff = z[:, None, :] - mean[None]  # (n, K, k)
    inverse = torch.linalg.solve_triangular(chol, torch.eye(z.shape[1], dtype=chol.dtype).expand_as(chol), upper=False)
    solved = torch.einsum("kij,nkj->nki", inverse, diff)  # L^-1 (z - m)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (K,)
    return -0.5 * (solved.pow(2).sum(-1) + log_det + z.shape[1] * LOG_2PI)


@dataclass
class FittedPrior:
    """p(z | y) for each label: a mixture of ``components`` full-covariance Gaussians (1: one Gaussian)."""

    weights: torch.Tensor  # (C, K) mixture weights, each row sums to 1
    means: torch.Tensor  # (C, K, k)
    chol: torch.Tensor  # (C, K, k, k) Cholesky factors of the covariances
    name: str

    @property
    def components(self) -> int:
        return int(self.weights.shape[1])

    def log_prob(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log p(z | y) per row, (B,)."""
        z, y = z.double().cpu(), y.cpu()
        out = torch.empty(len(z), dtype=torch.float64)
        for c in y.unique().tolist():
            keep = y == c
            out[keep] = torch.logsumexp(_log_gaussian(z[keep], self.means[c], self.chol[c])
                                        + self.weights[c].log(), dim=1)
        return out

    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One z ~ p(z | y) per label, (B, k) float32 on the CPU."""
        y = y.cpu()
        which = torch.stack([torch.multinomial(self.weights[c], 1, generator=generator)[0] for c in y.tolist()])
        eps = torch.randn(len(y), self.means.shape[-1], generator=generator, dtype=torch.float64)
        z = self.means[y, which] + (self.chol[y, which] @ eps[..., None])[..., 0]
        return z.float()


def _kmeans_plus_plus(z: torch.Tensor, components: int, generator: torch.Generator) -> torch.Tensor:
    """Starting means: a random code, then each next one drawn with probability ~ squared distance to the chosen."""
    if components == 1:
        return z.mean(0, keepdim=True)
    chosen = [z[torch.randint(len(z), (1,), generator=generator)][0]]
    for _ in range(components - 1):
        d2 = torch.cdist(z, torch.stack(chosen)).min(1).values.pow(2)
        chosen.append(z[torch.multinomial(d2 / d2.sum(), 1, generator=generator)][0])
    return torch.stack(chosen)


def fit_prior(z: torch.Tensor, y: torch.Tensor, components: int = 1, iterations: int = 100,
              ridge: float = 1e-4, seed: int = 0) -> FittedPrior:
    """Fit p(z | y) to codes by maximum likelihood: a Gaussian per label, or a mixture by EM.

    Maximum likelihood on samples of the aggregate posterior is what maximizes the ELBO over
    the prior: the KL term averaged over images is E_x E_q[log q] - E_{q(z|y)}[log p(z | y)].
    ``ridge`` is added to every covariance's diagonal. EM starts from ``components`` codes
    of the label picked by k-means++ seeding (Arthur and Vassilvitskii 2007; seeded).
    """
    if components < 1:
        raise ValueError(f"components must be at least 1, got {components}")
    z, y = z.double().cpu(), y.cpu()
    k = z.shape[1]
    eye = torch.eye(k, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    weights, means, chols = [], [], []
    for c in range(NUM_CLASSES):
        zc = z[y == c]
        if len(zc) < components * (k + 1):
            raise ValueError(f"label {c} has {len(zc)} codes: too few for {components} components in {k} dimensions")
        mean = _kmeans_plus_plus(zc, components, g)
        cov = (torch.cov(zc.T).reshape(k, k) + ridge * eye).expand(components, k, k).clone()
        w = torch.full((components,), 1.0 / components, dtype=torch.float64)
        for _ in range(iterations if components > 1 else 0):
            log_r = _log_gaussian(zc, mean, torch.linalg.cholesky(cov)) + w.log()
            r = torch.softmax(log_r, dim=1)  # E step: responsibilities (n, K)
            nk = r.sum(0).clamp_min(1e-9)  # M step
            w, mean = nk / len(zc), (r.T @ zc) / nk[:, None]
            diff = zc[:, None, :] - mean[None]
            cov = torch.einsum("nk,nki,nkj->kij", r, diff, diff) / nk[:, None, None] + ridge * eye
        if components == 1:
            cov = torch.cov(zc.T).reshape(1, k, k) + ridge * eye
        weights.append(w)
        means.append(mean)
        chols.append(torch.linalg.cholesky(cov))
    name = "Gaussian fitted per label" if components == 1 else f"mixture of {components} fitted per label"
    return FittedPrior(torch.stack(weights), torch.stack(means), torch.stack(chols), name)


class PriorScore(NamedTuple):
    label_accuracy: float  # temperature 1: z drawn from the prior, decoded with its label
    neg_elbo_nats: float  # test negative ELBO with this prior, nats per image
    recon_nats: float
    kl_nats: float  # KL(q(z | x, y) || p(z | y)), by Monte Carlo for a fitted prior


@torch.no_grad()
def score_prior(model: CVAE, prior: FittedPrior | None, test: MNISTSplit, classifier: DigitClassifier,
                n_per_class: int = 500, kl_samples: int = 16, seed: int = 0) -> PriorScore:
    """Label accuracy and test -ELBO of ``model`` with a fitted prior (None: the model's own prior).

    The -ELBO is a valid bound for any prior: recon (one z per image) + KL, the KL estimated
    as the mean of log q(z | x, y) - log p(z | y) over ``kl_samples`` codes per image.
    """
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    recon_sum = kl_sum = 0.0
    for x, y in batches(test.to(device), 500, shuffle=False):
        mu, logvar = model.encode(x, y)
        z = reparameterize(mu, logvar, torch.randn(mu.shape, generator=g).to(device))
        recon_sum += float(bernoulli_nll(model.decode(z, y), x).sum())
        if prior is None:
            kl_sum += float(gaussian_kl(mu, logvar).sum())
            continue
        for _ in range(kl_samples):
            z = reparameterize(mu, logvar, torch.randn(mu.shape, generator=g).to(device))
            log_q = log_normal(z, mu, logvar).double().cpu()
            kl_sum += float((log_q - prior.log_prob(z, y)).sum()) / kl_samples
    n = len(test)
    if prior is None:
        accuracy = label_accuracy(model, classifier, n_per_class=n_per_class, seed=seed).accuracy
    else:
        labels = torch.arange(NUM_CLASSES).repeat_interleave(n_per_class)
        images = decode_images(model, prior.sample(labels, generator=g), labels)
        read = classifier.to(device).predict(images.to(device)).cpu()
        accuracy = float((read == labels).float().mean())
    return PriorScore(accuracy, (recon_sum + kl_sum) / n, recon_sum / n, kl_sum / n)

