"""Exercises of notebook 01: checks and solutions (see course_utils.solutions)."""

from __future__ import annotations

from typing import Any

from ..lessons.nb01_compression import (
    byte_ratio,
    code_confusion_of,
    compression_ratio,
    confused_pairs,
    lesson_data,
    lesson_pca,
    pca_components_to_match,
)
from ..metrics import evaluate
from ..recipes import course_recipe, train_or_load
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
