"""Exercises of notebook 03: checks and solutions (see course_utils.solutions)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from ..lessons.nb03_conditioning import label_effect, matrix_rank, parameter_counts
from ..losses import gaussian_kl_between
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


# ----------------------------------------------------------------------------- 03.decoder-input
# The set-up the notebook's exercise cell shows: two small CVAEs built after torch.manual_seed(4).
INPUT_SEED = 4
INPUT_LATENT = 3


class DecoderInputSetup(NamedTuple):
    z: torch.Tensor  # (5, 3) codes
    y: torch.Tensor  # (5,) labels
    P: torch.Tensor  # (3, 10): the project model's label_projection.weight
    models: dict[str, CVAE]  # "concat" and "project", whose decoder_input the answer must reproduce


def decoder_input_setup() -> DecoderInputSetup:
    """The exercise's weights and inputs: small CVAEs (latent size 3, one hidden layer of 8) and five (z, y)."""
    torch.manual_seed(INPUT_SEED)
    models = {c: CVAE(CVAEConfig(latent_dim=INPUT_LATENT, hidden_dims=(8,), conditioning=c)).eval()
              for c in ("concat", "project")}
    g = torch.Generator().manual_seed(INPUT_SEED)
    z = torch.randn(5, INPUT_LATENT, generator=g)
    y = torch.tensor([0, 3, 3, 7, 9])
    return DecoderInputSetup(z, y, models["project"].label_projection.weight.detach().clone(), models)


def _check_decoder_input(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict) or set(answer) != {"concat", "project"}:
        return False, 'answer should be a dict {"concat": <tensor>, "project": <tensor>}'
    setup = decoder_input_setup()
    for conditioning in ("concat", "project"):
        got = answer[conditioning]
        with torch.no_grad():
            want = setup.models[conditioning].decoder_input(setup.z, setup.y)
        if not isinstance(got, torch.Tensor):
            return False, f"{conditioning}: expected a tensor, got {type(got).__name__}"
        if tuple(got.shape) != tuple(want.shape):
            hint = " (one row per code: [z; onehot(y)] has k + 10 columns)" if conditioning == "concat" else \
                " (z + P onehot(y) stays in the latent space: k columns)"
            return False, f"{conditioning}: shape {tuple(got.shape)}, expected {tuple(want.shape)}{hint}"
        got = got.detach().float()
        swapped = torch.cat([want[:, INPUT_LATENT:], want[:, :INPUT_LATENT]], dim=1)
        if conditioning == "concat" and torch.allclose(got, swapped, atol=1e-6):
            return False, "concat: z comes first, then the one-hot"
        if not torch.allclose(got, want, atol=1e-5):
            worst = float((got - want).abs().max())
            return False, f"{conditioning}: differs from the model's decoder_input by up to {worst:.3g}"
    return True, "both reproduce CVAE.decoder_input: [z; onehot(y)] for concat, z + P onehot(y) for project"


DECODER_INPUT_EXPLANATION = (
    "concat glues the one-hot after z: torch.cat([z, onehot(y)], dim=1), k + 10 numbers. project maps the "
    "one-hot into the latent space with P (k x 10) and adds it: z + onehot(y) @ P.T, which is z + P[:, y]."
)


@exercise("03.decoder-input", _check_decoder_input, DECODER_INPUT_EXPLANATION)
def _solve_decoder_input() -> dict[str, torch.Tensor]:
    setup = decoder_input_setup()
    onehot = F.one_hot(setup.y, 10).float()  # (5, 10)
    return {"concat": torch.cat([setup.z, onehot], dim=1),  # (5, 3 + 10)
            "project": setup.z + onehot @ setup.P.T}  # (5, 3): column y of P added to each z


# ----------------------------------------------------------------------------- 03.prior-kl
PRIOR_SEED = 5


class PriorKLSetup(NamedTuple):
    model: CVAE  # a small "prior" CVAE whose prior tables were moved away from N(0, I)
    x: torch.Tensor  # (16, 784) random images
    y: torch.Tensor  # (16,) labels


def prior_kl_setup() -> PriorKLSetup:
    """The exercise's learned-prior CVAE (seeded weights) and 16 images with labels."""
    torch.manual_seed(PRIOR_SEED)
    model = CVAE(CVAEConfig(latent_dim=4, hidden_dims=(16,), conditioning="prior")).eval()
    with torch.no_grad():
        model.prior_mu.normal_(0, 2)
        model.prior_logvar.normal_(0, 0.7)
    g = torch.Generator().manual_seed(PRIOR_SEED)
    return PriorKLSetup(model, torch.rand(16, 784, generator=g), torch.arange(16) % 10)


def _check_prior_kl(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, "answer should be your function kl_diag(mu, logvar, prior_mu, prior_logvar)"
    setup = prior_kl_setup()
    with torch.no_grad():
        q, p = setup.model.encode_u(setup.x, setup.y), setup.model.prior(setup.y)
        want = gaussian_kl_between(q.mu, q.logvar, p.mu, p.logvar)
        got = answer(q.mu, q.logvar, p.mu, p.logvar)
    if not isinstance(got, torch.Tensor):
        return False, f"kl_diag returned {type(got).__name__}, expected a tensor"
    if got.shape == q.mu.shape:
        return False, f"shape {tuple(got.shape)}: sum over the latent dimensions, one KL per row"
    if tuple(got.shape) != tuple(want.shape):
        return False, f"shape {tuple(got.shape)}, expected {tuple(want.shape)} (one KL per image)"
    zero = torch.zeros_like(q.mu)
    with torch.no_grad():
        if torch.allclose(got, gaussian_kl_between(q.mu, q.logvar, zero, zero), atol=1e-4):
            return False, "that is the KL against N(0, I): the prior's mean and variance must enter"
        model_kl = setup.model.loss(setup.x, setup.y).kl
    if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
        return False, f"differs from the closed form by up to {(got - want).abs().max():.3g} nats"
    return True, (f"matches the closed form; its mean, {float(got.mean()):.3f} nats, is the KL term of the model's "
                  f"loss ({float(model_kl):.3f})")


PRIOR_KL_EXPLANATION = (
    "Per dimension, KL(N(m, s^2) || N(m_p, v)) = 1/2 (log v - log s^2 + (s^2 + (m - m_p)^2) / v - 1); "
    "sum it over the latent dimensions. With m_p = 0 and v = 1 it is notebook 02's formula."
)


@exercise("03.prior-kl", _check_prior_kl, PRIOR_KL_EXPLANATION)
def _solve_prior_kl():
    def kl_diag(mu, logvar, prior_mu, prior_logvar):
        ratio = (logvar.exp() + (mu - prior_mu).pow(2)) / prior_logvar.exp()
        return 0.5 * (prior_logvar - logvar + ratio - 1).sum(dim=1)  # (B,)

    return kl_diag
