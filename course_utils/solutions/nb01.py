"""Exercises of notebook 01: checks and solutions (see course_utils.solutions)."""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import torch

from ..lessons.nb01_compression import (
    byte_ratio,
    code_confusion_of,
    compression_ratio,
    confused_pairs,
    frechet_distance,
    lesson_data,
    lesson_pca,
    pca_components_to_match,
)
from ..metrics import evaluate
from ..models import AEConfig, AutoEncoder
from ..recipes import course_recipe, train_or_load
from ..settings import FAST_TRAIN_SIZE, is_fast_mode, seed_everything
from ..training import TrainConfig, fit
from .registry import exercise

# ----------------------------------------------------------------------------- 01.byte-ratio
BYTE_RATIO_LATENT = 12  # the code size the exercise asks about (not one of the course's models)


def _check_byte_ratio(answer: Any) -> tuple[bool, str]:

    value = float(answer)
    right = byte_ratio(BYTE_RATIO_LATENT)
    if abs(value - right) <= 0.01 * right:
        return True, (f"a {BYTE_RATIO_LATENT}-number float16 code takes {2 * BYTE_RATIO_LATENT} bytes; the image "
                      f"takes 784, so the code is {right:.2f} times smaller.")
    if abs(value - compression_ratio(BYTE_RATIO_LATENT)) < 0.01:
        return False, "that is 784 / k, numbers per number. The question asks for bytes: how many bytes is a float16?"
    if abs(value - 4 * 784 / (2 * BYTE_RATIO_LATENT)) < 0.01:
        return False, "the image is stored as uint8 (one byte per pixel), not float32."
    if abs(value - 784 / (4 * BYTE_RATIO_LATENT)) < 0.01:
        return False, "the code is stored as float16 (2 bytes per number), not float32."
    return False, f"{value:g} is not it. Count the bytes of the image and of the code, then divide."


BYTE_RATIO_EXPLANATION = ("The image is 784 uint8 pixels = 784 bytes. A float16 number takes 2 bytes, so a "
                          "12-number code takes 24 bytes. The ratio is 784 / 24.")


@exercise("01.byte-ratio", _check_byte_ratio, BYTE_RATIO_EXPLANATION)
def byte_ratio_solution() -> float:
    image_bytes = 28 * 28 * 1  # uint8: one byte per pixel
    code_bytes = 12 * 2  # float16: two bytes per number
    return image_bytes / code_bytes


# ----------------------------------------------------------------------------- 01.confused-pair
def _course_confusion():

    model = train_or_load("ae-2", verbose=False).model
    return code_confusion_of(model, lesson_data(next(model.parameters()).device))


def _as_pair(answer: Any) -> tuple[int, int]:
    a, b = (int(v) for v in answer)
    if a == b or not (0 <= a <= 9 and 0 <= b <= 9):
        raise ValueError("give two different digits 0..9, for example (3, 5)")
    return (min(a, b), max(a, b))


def _check_confused_pair(answer: Any) -> tuple[bool, str]:

    pair = _as_pair(answer)
    ranking = confused_pairs(_course_confusion())
    rank = next(i for i, p in enumerate(ranking) if (p.a, p.b) == pair)
    top = ", ".join(f"{p.a}-{p.b} ({p.rate:.1%})" for p in ranking[:3])  # rate: mean of both directions
    if rank == 0:
        return True, f"{pair[0]} and {pair[1]} overlap most. The three most confused pairs: {top}."
    return False, (f"{pair[0]}-{pair[1]} ranks #{rank + 1} of 45 (confusion {ranking[rank].rate:.1%}; the top pair "
                   f"reaches {ranking[0].rate:.1%}). Look again where two colours share the same patch of the plot.")


CONFUSED_PAIR_EXPLANATION = ("Encode training and test images with ae-2, let the 15 nearest of 10,000 training "
                             "codes vote on the digit of each test code (cc.code_confusion), and take the pair "
                             "with the largest (confusion[a, b] + confusion[b, a]) / 2.")


@exercise("01.confused-pair", _check_confused_pair, CONFUSED_PAIR_EXPLANATION)
def confused_pair_solution() -> tuple[int, int]:
    import course_utils as cu
    from course_utils.lessons import nb01_compression as cc

    ae2 = cu.train_or_load("ae-2", verbose=False).model
    data = cc.lesson_data(next(ae2.parameters()).device)
    confusion = cc.code_confusion_of(ae2, data)  # (10, 10): row = true digit, column = digit voted for
    pair = cc.most_confused_pair(confusion)
    return (pair.a, pair.b)


# ----------------------------------------------------------------------------- 01.pca-match
MATCH_MODEL = "ae-8"  # the autoencoder whose test MSE PCA must match


def _pca_needed() -> tuple[int, float]:

    model = train_or_load(MATCH_MODEL, verbose=False).model
    test = lesson_data(next(model.parameters()).device).test
    target = evaluate(model, data=test)["mse_per_pixel"]
    return pca_components_to_match(lesson_pca(), test.x.cpu(), target), target


def _latent(name: str) -> int:

    return course_recipe(name).config.latent_dim


def _check_pca_match(answer: Any) -> tuple[bool, str]:
    value = int(answer)
    if value != answer:
        raise ValueError("the answer is a whole number of components")
    needed, target = _pca_needed()
    if value == needed:
        return True, (f"PCA needs {needed} components to reach {MATCH_MODEL}'s test MSE of {target:.4f}, "
                      f"where the autoencoder uses {_latent(MATCH_MODEL)} numbers.")
    hint = "too few: PCA's error is still above the target there" if value < needed else "more than needed"
    return False, f"{value} components is {hint}. Find the first k where pca.mse_curve(test.x) <= the AE's MSE."


PCA_MATCH_EXPLANATION = ("pca.mse_curve(data.test.x)[k] is PCA's test MSE with k components, for every k at "
                         "once. The answer is the first k where it drops to the autoencoder's test MSE or below "
                         "(cc.pca_components_to_match does the same).")


@exercise("01.pca-match", _check_pca_match, PCA_MATCH_EXPLANATION)
def pca_match_solution() -> int:
    import torch

    import course_utils as cu
    from course_utils.lessons import nb01_compression as cc

    ae8 = cu.train_or_load("ae-8", verbose=False).model
    data = cc.lesson_data(next(ae8.parameters()).device)
    target = cu.evaluate(ae8, data=data.test)["mse_per_pixel"]
    curve = cc.lesson_pca().mse_curve(data.test.x.cpu())  # PCA's test MSE for k = 0, 1, ..., 784
    return int(torch.nonzero(curve <= target)[0])


# ----------------------------------------------------------------------------- 01.training-loop
LOOP_CONFIG = AEConfig(latent_dim=8, hidden_dims=(256,))  # a small AE: 784-256-8, mirrored
LOOP_BATCH = 128
FALL_FACTOR = 3.0  # the mean loss of the last 10 steps must be at least this many times below the first 10
MSE_MARGIN = 1.15  # the test MSE may be at most 15% above cu.fit's on the same budget


class LoopBudget(NamedTuple):
    images: int  # the first this many training images
    steps: int  # Adam steps of batch LOOP_BATCH
    epochs: int  # the same budget in passes over the images (what cu.fit counts)


def loop_budget() -> LoopBudget:
    """Full mode: 300 steps, one pass over the first 38,400 images; fast mode: 10 passes over 2,000."""
    images, epochs = (FAST_TRAIN_SIZE, 10) if is_fast_mode() else (38_400, 1)
    return LoopBudget(images, epochs * math.ceil(images / LOOP_BATCH), epochs)


def loop_model(seed: int = 0) -> AutoEncoder:
    """A fresh AE of ``LOOP_CONFIG`` with the weights every seed-``seed`` run starts from."""
    seed_everything(seed)
    return AutoEncoder(LOOP_CONFIG)


@functools.lru_cache(maxsize=2)
def _fit_reference(fast: bool) -> float:
    budget, data = loop_budget(), lesson_data()
    model = loop_model()
    fit(model, data.train.subset(budget.images), config=TrainConfig(epochs=budget.epochs, batch_size=LOOP_BATCH),
        progress=False)
    return evaluate(model, data=data.test)["mse_per_pixel"]


def reference_test_mse() -> float:
    """Test MSE per pixel of ``loop_model()`` after ``cu.fit`` with the loop's budget (computed once per mode)."""
    return _fit_reference(is_fast_mode())


def _check_training_loop(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, f"answer should be your function itself (no brackets), got a {type(answer).__name__}"
    budget, data = loop_budget(), lesson_data()
    model = loop_model()
    losses = [float(v) for v in answer(model, data.train.subset(budget.images), budget.steps)]
    if len(losses) != budget.steps:
        return False, f"return the loss of every step: {budget.steps} numbers, got {len(losses)}"
    if not all(math.isfinite(v) for v in losses):
        return False, "some losses are not finite numbers"
    if losses[0] > 1.0:
        return False, (f"the first loss is {losses[0]:.4g}; an untrained model's MSE per pixel is about 0.1. "
                       "Average over images and pixels (F.mse_loss), do not sum.")
    fall = sum(losses[:10]) / max(sum(losses[-10:]), 1e-12)
    if fall < FALL_FACTOR:
        return False, (f"the loss fell only {fall:.1f}x (first 10 steps against the last 10; {FALL_FACTOR:g}x "
                       "wanted). Does each step call zero_grad, backward and step, on a new batch?")
    mse, reference = evaluate(model, data=data.test)["mse_per_pixel"], reference_test_mse()
    if mse > MSE_MARGIN * reference:
        return False, (f"the loss fell {fall:.1f}x, but the model you were given reaches a test MSE of {mse:.4f}, "
                       f"more than 15% above cu.fit's {reference:.4f} on the same budget. Train that model in place.")
    return True, (f"the loss fell {fall:.1f}x (from {losses[0]:.4f} to {losses[-1]:.4f}); test MSE {mse:.4f} "
                  f"against cu.fit's {reference:.4f} after the same {budget.steps} steps.")


TRAINING_LOOP_EXPLANATION = ("Adam on the model's parameters; for each batch: x_hat = model(x).x_hat, the MSE "
                             "F.mse_loss(x_hat, x), then zero_grad, backward, step. When a pass over the images "
                             "ends before `steps`, start the next one.")


@exercise("01.training-loop", _check_training_loop, TRAINING_LOOP_EXPLANATION)
def training_loop_solution():
    import torch
    import torch.nn.functional as F

    import course_utils as cu

    def train_autoencoder(model, data, steps, batch_size=128, lr=1e-3, seed=0):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)  # fixes the order of the batches
        model.train()
        losses = []
        while len(losses) < steps:  # one shuffled pass over the images after another
            for x, _ in cu.batches(data, batch_size, generator=generator):
                loss = F.mse_loss(model(x).x_hat, x)  # (1 / N D) sum ||x - x_hat||^2
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                if len(losses) == steps:
                    break
        model.eval()
        return losses

    return train_autoencoder


# ----------------------------------------------------------------------------- 01.frechet
def _feature_sets(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = torch.randn(400, 6, generator=g, dtype=torch.float64) @ mix
    b = torch.randn(300, 6, generator=g, dtype=torch.float64) @ (mix + 0.5 * torch.eye(6, dtype=torch.float64)) + 1.0
    return [(a, b), (b, a), (a, a[torch.randperm(400, generator=g)])]  # symmetric, and 0 for the same set


def _check_frechet(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, f"answer should be your function itself (no brackets), got a {type(answer).__name__}"
    for a, b in _feature_sets(0):
        got, want = float(answer(a, b)), frechet_distance(a, b)
        means_only = float((a.mean(0) - b.mean(0)).pow(2).sum())
        if abs(got - want) <= 1e-6 * max(1.0, abs(want)):
            continue
        if abs(got - means_only) < 1e-6 * max(1.0, means_only) and abs(want - means_only) > 1e-3:
            return False, "that is only the distance between the means: add the covariance term"
        return False, (f"for sets of shape {tuple(a.shape)} and {tuple(b.shape)} expected {want:.4f}, got {got:.4f}. "
                       "Is the square root a matrix square root (not of each entry), and the covariance "
                       "torch.cov(features.T)?")
    return True, "matches the package on random feature sets; the distance of a set to itself is 0"


FRECHET_EXPLANATION = ("Fit a Gaussian to each set: mean m and covariance C = torch.cov(features.T). The distance "
                       "is ||m_a - m_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^(1/2)); the last trace is the sum of "
                       "the square roots of the eigenvalues of C_a C_b (real and >= 0).")


@exercise("01.frechet", _check_frechet, FRECHET_EXPLANATION)
def frechet_solution():
    import torch

    def my_frechet_distance(a, b):
        a, b = a.double(), b.double()
        cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
        eigenvalues = torch.linalg.eigvals(cov_a @ cov_b).real.clamp_min(0)  # those of (C_a C_b)^(1/2), squared
        cross = eigenvalues.sqrt().sum()
        return float((a.mean(0) - b.mean(0)).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)

    return my_frechet_distance
