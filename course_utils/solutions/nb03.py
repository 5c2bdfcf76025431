"""Exercises of notebook 03: checks and solutions (see course_utils.solutions)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..lessons.nb03_conditioning import label_effect, matrix_rank, parameter_counts
from ..models import CVAE, CVAEConfig
from ..recipes import HIDDEN
from .registry import exercise

# ----------------------------------------------------------------------------- 03.identity-fresh-layer
# The set-up the notebook's exercise cell shows: a fresh layer that reads [z; onehot(y)].
IDENTITY_SEED = 3
IDENTITY_LATENT = 5
IDENTITY_CLASSES = 10
IDENTITY_OUT = 4


def identity_layer() -> torch.nn.Linear:
    """The exercise's fresh layer: Linear(5 + 10, 4) initialised after torch.manual_seed(3)."""
    torch.manual_seed(IDENTITY_SEED)
    return torch.nn.Linear(IDENTITY_LATENT + IDENTITY_CLASSES, IDENTITY_OUT)


def _check_bias_table(answer: Any) -> tuple[bool, str]:
    layer = identity_layer()
    W = layer.weight.detach()
    shape = (IDENTITY_CLASSES, IDENTITY_OUT)
    if not isinstance(answer, torch.Tensor):
        return False, f"answer should be a tensor of shape {shape}, got {type(answer).__name__}"
    answer = answer.detach().float()
    if tuple(answer.shape) == shape[::-1]:
        return False, f"shape {tuple(answer.shape)}: transpose it, so that row y is the bias of class y"
    if tuple(answer.shape) != shape:
        return False, f"the table should have one row per class: shape {shape}, got {tuple(answer.shape)}"
    if torch.allclose(answer, W[:, :IDENTITY_CLASSES].T, atol=1e-6):
        return False, "those are the first columns of W, which multiply z; the label's columns come after z's"
    # Does the table make the identity hold on random inputs?
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, IDENTITY_LATENT, generator=g)
    y = torch.randint(0, IDENTITY_CLASSES, (64,), generator=g)
    with torch.no_grad():
        lhs = layer(torch.cat([z, F.one_hot(y, IDENTITY_CLASSES).float()], dim=1))
        rhs = layer.bias + z @ W[:, :IDENTITY_LATENT].T + answer[y]
    diff = float((lhs - rhs).abs().max())
    if diff > 1e-5:
        return False, f"with this table W [z; y] + b and W_z z + b + B[y] differ by up to {diff:.3g}"
    return True, (f"W [z; onehot(y)] + b equals W_z z + b + B[y] (max difference {diff:.1e}): "
                  "the table is W's last 10 columns, transposed, one learned bias per class")


IDENTITY_EXPLANATION = (
    "W [z; onehot(y)] = W_z z + W_y onehot(y), and W_y onehot(y) is column y of W_y. So the "
    "per-class bias table is W_y transposed: W's columns after the first latent_dim ones."
)


@exercise("03.identity-fresh-layer", _check_bias_table, IDENTITY_EXPLANATION)
def _solve_identity() -> torch.Tensor:
    layer = identity_layer()
    W_y = layer.weight.detach()[:, IDENTITY_LATENT:]  # (4, 10): columns that multiply the one-hot
    return W_y.T  # (10, 4): row y is the bias label y adds


# ----------------------------------------------------------------------------- 03.more-parameters
PARAMETER_QUESTION_LATENT = 300  # "which variant has more parameters at this latent size?"


def _cvae_total(k: int, conditioning: str) -> int:

    return parameter_counts(CVAE(CVAEConfig(latent_dim=k, hidden_dims=HIDDEN, conditioning=conditioning))).total


def _check_more_parameters(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict) or set(answer) != {"equal_at", "more_at_300"}:
        return False, 'answer should be a dict {"equal_at": <int>, "more_at_300": "concat" or "project"}'
    k = answer["equal_at"]
    if not isinstance(k, int) or k < 1:
        return False, f"equal_at should be a positive integer latent size, got {k!r}"
    a, b = _cvae_total(k, "concat"), _cvae_total(k, "project")
    if a != b:
        more = "concat" if a > b else "project"
        return False, f"at latent size {k}, concat has {a:,} parameters and project {b:,} ({more} has more)"
    big = PARAMETER_QUESTION_LATENT
    a, b = _cvae_total(big, "concat"), _cvae_total(big, "project")
    right = "concat" if a > b else "project"
    if answer["more_at_300"] != right:
        return False, f"equal_at is right; but at latent size {big} concat has {a:,} and project {b:,}"
    return True, (f"both have the same count at latent size {k}; at {big}, {right} has more "
                  f"({max(a, b) - min(a, b):,} more): concat pays C x hidden for W_y, project pays C x k for P")


PARAMETERS_EXPLANATION = (
    "Only the label's weights differ. concat: W_y has C x h entries (h = the width of the "
    "decoder's first layer, recipes.HIDDEN[-1]); project: P has C x k entries. They are equal "
    "when k = h; above that, project's P is the larger one."
)


@exercise("03.more-parameters", _check_more_parameters, PARAMETERS_EXPLANATION)
def _solve_more_parameters() -> dict[str, Any]:

    h = HIDDEN[-1]  # the decoder's first layer has h outputs: W_y is h x 10, P is k x 10
    return {"equal_at": h, "more_at_300": "project" if 300 > h else "concat"}


# ----------------------------------------------------------------------------- 03.label-rank
RANK_QUESTION_LATENT = 2


def _label_ranks(k: int) -> dict[str, int]:

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return {c: matrix_rank(label_effect(CVAE(CVAEConfig(latent_dim=k, hidden_dims=HIDDEN, conditioning=c))))
                for c in ("concat", "project")}


def _check_label_rank(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict) or set(answer) != {"concat", "project"}:
        return False, 'answer should be a dict {"concat": <int>, "project": <int>}'
    ranks = _label_ranks(RANK_QUESTION_LATENT)
    wrong = [f"{c}: you said {answer[c]!r}" for c in ranks if answer[c] != ranks[c]]
    if wrong:
        return False, ("not quite (" + "; ".join(wrong) + "). Hint: project's column c is W_z P e_c, "
                       "and P e_c lives in the latent space")
    return True, (f"concat's 10 per-class biases span {ranks['concat']} directions; project's pass through "
                  f"the {RANK_QUESTION_LATENT}-D latent space, so they span only {ranks['project']}")


RANK_EXPLANATION = (
    "concat: the label's effect is W_y, an h x 10 matrix of free weights, rank 10. project: it is "
    "W_z P with P of shape (k, 10), so its rank is at most min(k, 10) = 2 at k = 2."
)


@exercise("03.label-rank", _check_label_rank, RANK_EXPLANATION)
def _solve_label_rank() -> dict[str, int]:
    return {"concat": IDENTITY_CLASSES, "project": min(RANK_QUESTION_LATENT, IDENTITY_CLASSES)}
