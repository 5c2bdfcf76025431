"""Exercises of notebook 02: checks and solutions (see course_utils.solutions).

The function exercises are checked against the package's own functions on random
inputs (several shapes, extreme log-variances included), and the feedback names the
usual mistakes: a missing sum over dimensions, sigma = exp(logvar) instead of
exp(logvar / 2), a mean over pixels instead of a sum.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from ..losses import bernoulli_nll, gaussian_kl
from ..metrics import evaluate, evaluation_data
from ..models import VAE, VAEConfig, reparameterize
from ..settings import is_fast_mode, seed_everything
from ..training import TrainConfig, fit
from .registry import exercise


def _random_posteriors(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(1, 1), (7, 3), (64, 16)]
    out = [(torch.randn(*s, generator=g), 2 * torch.randn(*s, generator=g)) for s in shapes]
    out.append((torch.zeros(4, 5), torch.zeros(4, 5)))  # q = p: KL must be exactly 0
    return out


def _as_function(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, f"answer should be your function itself (no brackets), got a {type(answer).__name__}"
    return True, ""


# ----------------------------------------------------------------------------- 02.gaussian-kl
def _check_kl(answer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> tuple[bool, str]:
    ok, why = _as_function(answer)
    if not ok:
        return ok, why
    for mu, logvar in _random_posteriors():
        got = answer(mu, logvar)
        want = gaussian_kl(mu, logvar)
        if not isinstance(got, torch.Tensor):
            return False, f"return a tensor, got {type(got).__name__}"
        if got.shape == mu.shape:
            return False, "one KL per row is wanted, shape (B,): sum the per-dimension terms over dim=1"
        if got.shape != want.shape:
            return False, (f"expected shape {tuple(want.shape)} for mu of shape {tuple(mu.shape)}, "
                           f"got {tuple(got.shape)}")
        if torch.allclose(got, -want, atol=1e-5) and want.abs().max() > 1e-3:
            return False, "the sign is flipped: a KL divergence is never negative"
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            return False, (f"for mu of shape {tuple(mu.shape)} the values differ from the closed form by up to "
                           f"{float((got - want).abs().max()):.3g} nats; remember sigma^2 = exp(logvar)")
    return True, "matches the closed form on random inputs, including q = p (KL = 0)"


@exercise("02.gaussian-kl", _check_kl,
          "Each dimension contributes -1/2 (1 + log sigma^2 - mu^2 - sigma^2), with log sigma^2 = logvar "
          "and sigma^2 = exp(logvar); the dimensions are independent, so their KLs add up.")
def solve_gaussian_kl() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)

    return kl_to_standard_normal


# ----------------------------------------------------------------------------- 02.reparameterize
def _check_reparameterize(answer: Callable[..., torch.Tensor]) -> tuple[bool, str]:
    ok, why = _as_function(answer)
    if not ok:
        return ok, why
    g = torch.Generator().manual_seed(1)
    for mu, logvar in _random_posteriors(seed=1):
        eps = torch.randn(mu.shape, generator=g)
        mu_, logvar_ = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        got = answer(mu_, logvar_, eps)
        want = reparameterize(mu, logvar, eps)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return False, f"return z with the shape of mu {tuple(mu.shape)}"
        if torch.allclose(got.detach(), mu + logvar.exp() * eps, atol=1e-5) and not torch.allclose(want, got.detach()):
            return False, "sigma = exp(logvar) is sigma^2: the standard deviation is exp(0.5 * logvar)"
        if not torch.allclose(got.detach(), want, rtol=1e-4, atol=1e-5):
            return False, "z differs from mu + sigma * eps for the given eps (use the eps passed in, not a new one)"
        if not got.requires_grad:
            return False, "z has no gradient path to mu and logvar: build it from them with tensor operations"
        got.sum().backward()
        if not torch.allclose(mu_.grad, torch.ones_like(mu)):
            return False, "dz/dmu should be 1"
        if not torch.allclose(logvar_.grad, 0.5 * torch.exp(0.5 * logvar) * eps, rtol=1e-4, atol=1e-5):
            return False, "dz/dlogvar should be 0.5 * sigma * eps"
    return True, "z = mu + exp(0.5 logvar) * eps, and autograd reaches mu and logvar"


@exercise("02.reparameterize", _check_reparameterize,
          "All the randomness goes into eps, drawn outside the graph; z is then an ordinary differentiable "
          "function of mu and logvar, with sigma = exp(logvar / 2).")
def solve_reparameterize() -> Callable[..., torch.Tensor]:
    def my_reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        sigma = torch.exp(0.5 * logvar)
        return mu + sigma * eps

    return my_reparameterize


# ----------------------------------------------------------------------------- 02.neg-elbo
def _check_neg_elbo(answer: Callable[..., torch.Tensor]) -> tuple[bool, str]:
    ok, why = _as_function(answer)
    if not ok:
        return ok, why
    g = torch.Generator().manual_seed(2)
    for batch in (1, 5, 32):
        logits = 3 * torch.randn(batch, 1, 28, 28, generator=g)
        x = torch.rand(batch, 1, 28, 28, generator=g)
        mu, logvar = torch.randn(batch, 8, generator=g), torch.randn(batch, 8, generator=g)
        got = answer(logits, x, mu, logvar)
        recon = bernoulli_nll(logits, x).mean()
        kl = gaussian_kl(mu, logvar).mean()
        want = recon + kl
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return False, "return one number (a 0-d tensor): the negative ELBO averaged over the batch"
        got = got.reshape(())
        if torch.allclose(got, recon / 784 + kl, rtol=1e-4):
            return False, "the reconstruction term is a mean over pixels: sum over the 784 pixels of an image"
        if torch.allclose(got, recon, rtol=1e-4) or torch.allclose(got, recon - kl, rtol=1e-4):
            return False, "add the KL term: negative ELBO = reconstruction + KL"
        if torch.allclose(got, want * batch, rtol=1e-4) and batch > 1:
            return False, "that is the sum over the batch; average over images (nats per image)"
        if not torch.allclose(got, want, rtol=1e-4):
            return False, f"expected {float(want):.3f} nats for a batch of {batch}, got {float(got):.3f}"
    return True, "reconstruction (summed over pixels) + KL, averaged over images"


@exercise("02.neg-elbo", _check_neg_elbo,
          "-ELBO = -E_q[log p(x|z)] + KL(q(z|x) || p(z)). With one sample z the first term is the binary "
          "cross-entropy between x and the decoder's logits, summed over the 784 pixels.")
def solve_neg_elbo() -> Callable[..., torch.Tensor]:
    import torch.nn.functional as F

    def neg_elbo(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        return (recon + kl).mean()

    return neg_elbo


# ----------------------------------------------------------------------------- multiple choice
def _choice_checker(correct: str, feedback: dict[str, str]) -> Callable[[Any], tuple[bool, str]]:
    def check(answer: Any) -> tuple[bool, str]:
        if not isinstance(answer, str) or answer.strip().lower() not in feedback:
            return False, f"answer with one letter: {', '.join(repr(k) for k in feedback)}"
        letter = answer.strip().lower()
        return letter == correct, feedback[letter]

    return check


TEMPERATURE_FEEDBACK = {
    "a": "no: a small T shrinks z towards the origin; the samples become LESS varied (see the diversity column)",
    "b": "yes: N(0, I) in d dimensions is a thin shell of radius about sqrt(d), and the codes z ~ q(z|x) lie "
         "on it; T = 0.5 samples well inside it, where almost no code lies and the decoder can only "
         "compromise between the digits whose codes surround that region",
    "c": "no: the rows of the figure differ, and the classifier's table measures how",
    "d": "no: temperature changes only how z is drawn at sampling time; the trained model is the same",
}


@exercise("02.temperature", _choice_checker("b", TEMPERATURE_FEEDBACK),
          "Temperature scales the prior's standard deviation when sampling. Whether a smaller T helps depends "
          "on where the decoder was trained: here, on a shell of radius about sqrt(d), not at the centre.")
def solve_temperature() -> str:
    return "b"


BETA_FEEDBACK = {
    "a": "no: a larger beta makes the KL term cost more, so the encoder spends fewer nats on it",
    "b": "no: beta = 4 has the smallest KL, and its reconstructions are the blurriest of the three",
    "c": "yes: a small beta makes information in z cheap, so the KL grows and the reconstruction term "
         "falls; the price is a posterior further from the prior, and prior samples that fit it less well",
    "d": "no: the table and the trade-off plot show both terms moving with beta",
}


@exercise("02.beta", _choice_checker("c", BETA_FEEDBACK),
          "The loss is recon + beta * KL: beta is the price of one nat of information about x in z.")
def solve_beta() -> str:
    return "c"


# ----------------------------------------------------------------------------- 02.train-epoch
EPOCH_CONFIG = VAEConfig(latent_dim=20, hidden_dims=(400,))  # pytorch/examples' VAE, the recipe "vae-examples"
EPOCH_BATCH = 128
EPOCH_FALL = {"full": 2.5, "fast": 1.5}  # mean loss of the first steps / of the last steps must reach this
EPOCH_MARGIN_NATS = 3.0  # the test negative ELBO may be at most this far above cu.fit's after the same epoch


def epoch_fall_factor() -> float:
    """How many times the loss must fall in one epoch: 2.5x over 469 steps (full mode), 1.5x over 16 (fast mode)."""
    return EPOCH_FALL["fast" if is_fast_mode() else "full"]


def epoch_model(seed: int = 0) -> VAE:
    """A fresh 784-400-20 VAE with the weights every seed-``seed`` run starts from."""
    seed_everything(seed)
    return VAE(EPOCH_CONFIG)


@functools.lru_cache(maxsize=2)
def _fit_reference(fast: bool) -> float:
    model = epoch_model()
    fit(model, evaluation_data("train"), config=TrainConfig(epochs=1, batch_size=EPOCH_BATCH), progress=False)
    return evaluate(model, data=evaluation_data("test"))["neg_elbo_nats"]


def reference_neg_elbo() -> float:
    """Test negative ELBO (nats) of ``epoch_model()`` after one epoch of ``cu.fit`` (computed once per mode)."""
    return _fit_reference(is_fast_mode())


def _check_train_epoch(answer: Callable[..., list[float]]) -> tuple[bool, str]:
    ok, why = _as_function(answer)
    if not ok:
        return ok, why
    train, test = evaluation_data("train"), evaluation_data("test")
    model = epoch_model()
    losses = [float(v) for v in answer(model, train)]
    steps = math.ceil(len(train) / EPOCH_BATCH)
    if len(losses) != steps:
        return False, f"one pass over {len(train):,} images (batches of {EPOCH_BATCH}) is {steps} steps: {len(losses)}?"
    if not all(math.isfinite(v) for v in losses):
        return False, "some losses are not finite numbers"
    if losses[0] < 50:
        return False, (f"the first loss is {losses[0]:.3g} nats; an untrained VAE pays about 784 ln 2 = 543 nats per "
                       "image. Sum the cross-entropy over the 784 pixels of an image, then average over images.")
    if losses[0] > 5000:
        return False, f"the first loss is {losses[0]:.4g}: average over the images of the batch, do not sum them"
    window = max(2, min(10, steps // 4))
    fall, wanted = sum(losses[:window]) / sum(losses[-window:]), epoch_fall_factor()
    if fall < wanted:
        return False, (f"the loss fell only {fall:.2f}x (first {window} steps against the last {window}; "
                       f"{wanted:g}x wanted). Does each step call zero_grad, backward and step?")
    nats, reference = evaluate(model, data=test)["neg_elbo_nats"], reference_neg_elbo()
    if nats > reference + EPOCH_MARGIN_NATS:
        return False, (f"the test negative ELBO of the model you were given is {nats:.1f} nats, more than "
                       f"{EPOCH_MARGIN_NATS:g} above cu.fit's {reference:.1f} after one epoch. Train that model in "
                       "place, with z = mu + sigma * eps in the loss (model(x) does it).")
    return True, (f"the loss fell {fall:.1f}x (from {losses[0]:.0f} to {losses[-1]:.0f} nats per image); test "
                  f"negative ELBO {nats:.1f} nats against cu.fit's {reference:.1f} after the same epoch.")


@exercise("02.train-epoch", _check_train_epoch,
          "One Adam step per batch on the negative ELBO: model(x) gives mu, logvar, a reparameterized z and the "
          "logits; the loss is the BCE summed over pixels plus the closed-form KL, averaged over the batch.")
def solve_train_epoch() -> Callable[..., list[float]]:
    import torch
    import torch.nn.functional as F

    import course_utils as cu

    def train_one_epoch(model, data, batch_size=128, lr=1e-3, seed=0):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        losses = []
        for x, _ in cu.batches(data, batch_size, generator=generator):
            out = model(x)  # mu, logvar, z = mu + sigma * eps, logits, x_hat
            recon = F.binary_cross_entropy_with_logits(out.logits, x, reduction="none").flatten(1).sum(1)
            kl = -0.5 * (1 + out.logvar - out.mu.pow(2) - out.logvar.exp()).sum(1)
            loss = (recon + kl).mean()  # the negative ELBO, nats per image
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        return losses

    return train_one_epoch


# ----------------------------------------------------------------------------- 02.kl-general
def _check_kl_general(answer: Callable[..., torch.Tensor]) -> tuple[bool, str]:
    ok, why = _as_function(answer)
    if not ok:
        return ok, why
    g = torch.Generator().manual_seed(3)
    for shape in ((1, 1), (7, 3), (64, 8)):
        mu, logvar, prior_mu, prior_logvar = (torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(4))
        got = answer(mu, logvar, prior_mu, prior_logvar)
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        p = torch.distributions.Normal(prior_mu, torch.exp(0.5 * prior_logvar))
        want = torch.distributions.kl_divergence(q, p).sum(1)
        if not isinstance(got, torch.Tensor):
            return False, f"return a tensor, got {type(got).__name__}"
        if got.shape == mu.shape:
            return False, "one KL per row is wanted, shape (B,): sum over the latent dimensions (dim=1)"
        if got.shape != want.shape:
            return False, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
        if torch.allclose(got, gaussian_kl(mu, logvar), atol=1e-6):
            return False, "that is the KL to N(0, I): the prior's mean and log-variance must enter the formula"
        if torch.allclose(got, torch.distributions.kl_divergence(p, q).sum(1), atol=1e-6):
            return False, "the arguments are swapped: that is KL(prior || q), and KL is not symmetric"
        if not torch.allclose(got, want, rtol=1e-6, atol=1e-8):
            return False, (f"for shape {shape} the values differ from torch.distributions.kl_divergence by up to "
                           f"{float((got - want).abs().max()):.3g} nats")
    zeros = torch.zeros(3, 4, dtype=torch.float64)
    if float(answer(zeros + 1.0, zeros - 2.0, zeros + 1.0, zeros - 2.0).abs().max()) > 1e-9:
        return False, "KL(q || q) must be exactly 0"
    return True, "matches torch.distributions.kl_divergence on random Gaussians, and gives 0 when q is the prior"


@exercise("02.kl-general", _check_kl_general,
          "Per dimension, with v = exp(prior_logvar) and s^2 = exp(logvar): KL = 1/2 (prior_logvar - logvar + "
          "(s^2 + (mu - prior_mu)^2) / v - 1). With prior_mu = 0 and prior_logvar = 0 it is section 4's formula.")
def solve_kl_general() -> Callable[..., torch.Tensor]:
    def kl_between(mu, logvar, prior_mu, prior_logvar):
        ratio = (logvar.exp() + (mu - prior_mu).pow(2)) / prior_logvar.exp()
        return 0.5 * (prior_logvar - logvar + ratio - 1).sum(dim=1)

    return kl_between
