"""Scoring trained models: test metrics, label accuracy and the measures the lessons share.

Every measure the notebooks use in more than one place is defined here, once:

- ``codes`` / ``posteriors``: a model's codes for many images, in batches;
- ``kl_per_dimension``: the average KL of each latent dimension;
- ``active_units``: Burda et al.'s count of dimensions whose mean varies, Var_x(mu_j) > 0.01;
- ``readability``: how confidently the digit classifier reads images (confidence > threshold);
- ``evaluate``, ``label_accuracy``, ``importance_sampled_nll``, ``psnr_db``.

Nothing here trains or loads a model: the classifier that judges generated digits is
passed in (``recipes.load_classifier`` gives the course's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from torch import nn

from .data import IMAGE_SHAPE, NUM_CLASSES, MNISTSplit, batches, load_mnist
from .losses import bernoulli_nll, gaussian_kl, gaussian_kl_per_dim, log_normal
from .models import DigitClassifier, LatentModel, Posterior
from .settings import CourseTypeError, CourseValueError, split_limits

CONFIDENT = 0.9  # the classifier "reads" an image when its top probability is above this
ACTIVE_VARIANCE = 0.01  # Burda et al. 2016, section 5.2: a unit is active when Var_x(mu_j) > 0.01
EVAL_BATCH = 1000  # images per forward pass when scoring


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _in_batches(model: LatentModel, inputs: torch.Tensor, y: torch.Tensor | None, batch_size: int,
                step: Callable[[torch.Tensor, torch.Tensor | None], Any]) -> Iterator[Any]:
    """``step(inputs_b, y_b)`` on each batch, moved to the model's device (model in eval mode)."""
    model.eval()
    device = _device(model)
    for i in range(0, len(inputs), batch_size):
        yb = y[i : i + batch_size].to(device) if y is not None else None
        yield step(inputs[i : i + batch_size].to(device), yb)


# ----------------------------------------------------------------------------- codes
@torch.no_grad()
def codes(model: LatentModel, x: torch.Tensor, y: torch.Tensor | None = None,
          batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """``model.code`` of every image, in batches: (N, k) on the CPU (z for the AE, mu otherwise)."""
    out = [z.float().cpu() for z in _in_batches(model, x, y, batch_size, model.code)]
    return torch.cat(out) if out else torch.zeros(0, model.latent_dim)


@torch.no_grad()
def posteriors(model: LatentModel, x: torch.Tensor, y: torch.Tensor | None = None,
               batch_size: int = EVAL_BATCH) -> Posterior:
    """mu and logvar of q(z | x) (or q(z | x, y)) for every image, each (N, k) on the CPU."""
    if not model.variational:
        raise TypeError(f"{type(model).__name__} has no posterior: it is not a variational model")
    parts = list(_in_batches(model, x, y, batch_size, model.encode))
    return Posterior(torch.cat([p.mu.float().cpu() for p in parts]), torch.cat([p.logvar.float().cpu() for p in parts]))


@torch.no_grad()
def decode_images(model: LatentModel, z: torch.Tensor, y: torch.Tensor | None = None,
                  batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Images in [0, 1], (N, 1, 28, 28) on the CPU, decoded from codes ``z`` (sigmoid of the logits)."""
    return torch.cat([torch.sigmoid(logits).cpu() for logits in _in_batches(model, z, y, batch_size, model.decode)])


def kl_per_dimension(model: LatentModel, x: torch.Tensor, y: torch.Tensor | None = None,
                     batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Average KL(q(z_j | x) || N(0, 1)) of each latent dimension j over the images, (k,).

    Summed over j it is the KL term of the loss (the prior and posterior are diagonal).
    A dimension whose posterior is the prior for every x has KL 0: the decoder cannot
    read anything from it.
    """
    post = posteriors(model, x, y, batch_size)
    return gaussian_kl_per_dim(post.mu, post.logvar).mean(0)


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_VARIANCE) -> torch.Tensor:
    """Which latent dimensions are active: Var_x(mu_j) > threshold, a (k,) boolean mask.

    The definition of Burda, Grosse and Salakhutdinov, "Importance Weighted
    Autoencoders" (ICLR 2016), section 5.2. ``mu`` is (N, k): the posterior means of N
    images (``posteriors(model, x).mu``). An inactive dimension has the same q(z_j | x)
    whatever x is: it carries no information about the image.
    """
    if mu.dim() != 2 or len(mu) < 2:
        raise ValueError(f"mu must be (N, k) with N >= 2 images, got {tuple(mu.shape)}")
    return mu.var(0) > threshold


# ----------------------------------------------------------------------------- the classifier as judge
class Readability(NamedTuple):
    """How confidently the digit classifier reads a set of images."""

    confidence: torch.Tensor  # (N,) the classifier's largest softmax probability
    digit: torch.Tensor  # (N,) the digit it reads
    confident_share: float  # share of images with confidence > threshold
    threshold: float


def readability(classifier: DigitClassifier, images: torch.Tensor, threshold: float = CONFIDENT) -> Readability:
    """Ask the classifier which digit each image shows, and how sure it is.

    A real test digit is read with confidence near 1. A blend between two digits, or a
    scribble, is read with low confidence.
    """
    confidence, digit = classifier.probabilities(images).max(1)
    return Readability(confidence, digit, float((confidence > threshold).float().mean()), threshold)


class PathReading(NamedTuple):
    """How the classifier reads the images at each step t along paths between pairs of images."""

    t: list[float]  # positions along the paths (0 = first image, 1 = second)
    confident_share: list[float]  # at each t: share of images read with confidence > threshold
    confidence: list[float]  # at each t: the classifier's mean top probability


def read_paths(classifier: DigitClassifier, images: torch.Tensor, t: list[float],
               threshold: float = CONFIDENT) -> PathReading:
    """``images`` is (pairs, steps, ...): the step-th image on each pair's path; one reading per step."""
    pairs, steps = images.shape[:2]
    read = readability(classifier, images.reshape(pairs * steps, *IMAGE_SHAPE), threshold)
    confidence = read.confidence.reshape(pairs, steps)
    return PathReading([float(v) for v in t], (confidence > threshold).float().mean(0).tolist(),
                       confidence.mean(0).tolist())


class LabelAccuracy(NamedTuple):
    accuracy: float  # share of all generated digits read as their requested label
    per_class: list[float]  # that share for each requested label 0..9
    confusion: torch.Tensor  # (10, 10) counts: row = requested, column = read


@torch.no_grad()
def label_accuracy(
    model: LatentModel,
    classifier: DigitClassifier,
    n_per_class: int = 100,
    temperature: float = 1.0,
    seed: int = 0,
) -> LabelAccuracy:
    """How often a conditional model draws the digit it is asked for, as judged by ``classifier``."""
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise CourseValueError(f"n_per_class must be a whole number >= 1, got {n_per_class!r}")
    if not model.conditional:
        raise TypeError(f"label_accuracy needs a conditional model (a CVAE), got {type(model).__name__}")
    if classifier is None:
        raise ValueError("label_accuracy needs the classifier that judges the digits: cu.load_classifier()")
    labels = torch.arange(NUM_CLASSES).repeat_interleave(n_per_class)
    generator = torch.Generator().manual_seed(seed)
    images = model.sample(labels, temperature=temperature, generator=generator)
    read = classifier.to(images.device).predict(images).cpu()
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    confusion.index_put_((labels, read), torch.ones_like(labels), accumulate=True)
    per_class = (confusion.diag().float() / n_per_class).tolist()
    return LabelAccuracy(float((read == labels).float().mean()), per_class, confusion)


# ----------------------------------------------------------------------------- likelihood
@torch.no_grad()
def importance_sampled_nll(
    model: LatentModel,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    k: int = 100,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Estimate -log p(x) per image (nats) with k importance samples from q(z | x).

    Burda, Grosse and Salakhutdinov 2016 (IWAE), eq. (8):
    log p(x) ~ log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x).
    With k = 1 this is the ELBO in expectation; it tightens as k grows, and for every
    k its expectation is still an upper bound on -log p(x).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not model.variational:
        raise TypeError(f"{type(model).__name__} defines no p(x): importance sampling needs a VAE or CVAE")
    mu, logvar = model.encode(x, y)
    log_w = []
    for _ in range(k):
        eps = torch.randn(mu.shape, generator=generator).to(mu.device)
        z = model.reparameterize(mu, logvar, eps)
        log_px_z = -bernoulli_nll(model.decode(z, y), x.reshape(len(x), 1, 28, 28))
        log_pz = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = log_normal(z, mu, logvar)
        log_w.append(log_px_z + log_pz - log_qz)
    log_w = torch.stack(log_w)  # (k, B)
    return -(torch.logsumexp(log_w, dim=0) - math.log(k))


def psnr_db(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in decibels: 10 log10(peak^2 / MSE)."""
    if not mse >= 0:
        raise CourseValueError(f"psnr_db needs a mean squared error >= 0, got {mse}")
    return 10 * math.log10(peak**2 / mse) if mse > 0 else math.inf


# ----------------------------------------------------------------------------- evaluate
def evaluation_data(split: str = "test", device: torch.device | str = "cpu") -> MNISTSplit:
    """The images models are scored on: the whole split, or its first FAST_TEST_SIZE in fast mode."""
    limit = split_limits()[1] if split == "test" else split_limits()[0]
    return load_mnist(split, device=device, limit=limit)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: str = "test",
    data: MNISTSplit | None = None,
    classifier: DigitClassifier | None = None,
    importance_samples: int = 0,
    label_samples_per_class: int = 100,
) -> dict[str, float]:
    """Metrics of ``model`` on an MNIST split (the test set by default).

    Every generative model: ``mse_per_pixel`` and ``psnr_db`` of the reconstruction
    (the VAE's from z = mu), ``recon_nats``. Variational models add ``kl_nats`` and
    ``neg_elbo_nats`` (nats per image, one z per image), and ``nll_nats``
    (importance-sampled -log p(x)) when ``importance_samples`` > 0. A conditional model
    adds ``label_accuracy`` when a ``classifier`` is given. The classifier itself:
    ``accuracy``.
    """
    model.eval()
    device = _device(model)
    if data is not None and not isinstance(data, MNISTSplit):
        raise CourseTypeError(f"data must be an MNISTSplit (cu.load_mnist('test') or cu.MNISTSplit(x, y)), "
                              f"got {type(data).__name__}")
    data = (data if data is not None else evaluation_data(split, device)).to(device)
    if not model.generative:
        return {"accuracy": float((model.predict(data.x) == data.y).float().mean())}
    generator = torch.Generator().manual_seed(0)
    totals: dict[str, float] = {}

    def add(name: str, values: torch.Tensor) -> None:
        totals[name] = totals.get(name, 0.0) + float(values.sum())

    for x, y in batches(data, 500, shuffle=False):
        if model.variational:
            mu, logvar = model.encode(x, y)
            eps = torch.randn(mu.shape, generator=generator).to(device)
            sampled = model.decode(model.reparameterize(mu, logvar, eps), y)
            recon, kl = bernoulli_nll(sampled, x), gaussian_kl(mu, logvar)
            add("recon_nats", recon)
            add("kl_nats", kl)
            add("neg_elbo_nats", recon + kl)
            logits = model.decode(mu, y)
            if importance_samples:
                add("nll_nats", importance_sampled_nll(model, x, y, k=importance_samples, generator=generator))
        else:
            logits = model.decode(model.code(x, y), y)
            add("recon_nats", bernoulli_nll(logits, x))
        add("mse_per_pixel", (torch.sigmoid(logits) - x).pow(2).flatten(1).mean(1))
    metrics = {k: v / len(data) for k, v in totals.items()}
    metrics["psnr_db"] = psnr_db(metrics["mse_per_pixel"])
    if model.conditional and classifier is not None:
        acc = label_accuracy(model, classifier, n_per_class=label_samples_per_class)
        metrics["label_accuracy"] = acc.accuracy
    return metrics
