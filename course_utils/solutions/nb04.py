"""Exercises of notebook 04: checks and solutions (see course_utils.solutions)."""

from __future__ import annotations

from typing import Any

from ..data import load_mnist
from ..latent import prepare_model
from ..lessons.nb04_traversal import slant_effect
from ..recipes import VAE_LATENT, train_or_load
from .registry import exercise

# ----------------------------------------------------------------------------- 04.slant-dimension
SLANT_MODEL = "vae"  # the model whose slant dimension the exercise asks for
SLANT_SHARE = 0.4  # a dimension whose effect is at least this share of the strongest one counts as right


def _slant_effect():

    test = load_mnist("test")
    model = train_or_load(SLANT_MODEL, verbose=False).model
    return slant_effect(prepare_model("VAE", SLANT_MODEL, model, test), test)


def _check_slant_dimension(answer: Any) -> tuple[bool, str]:
    if isinstance(answer, bool) or int(answer) != answer:
        raise TypeError("give the index d of one latent dimension z[d], an integer")
    d = int(answer)
    measured = _slant_effect()
    k = len(measured.effect)
    if not 0 <= d < k:
        return False, f"the VAE's latent dimensions are z[0] .. z[{k - 1}]; {d} is not one of them."
    best = measured.dims[0]
    rank = measured.dims.index(d)
    mine, top = float(measured.effect[d]), float(measured.effect[best])
    if abs(mine) >= SLANT_SHARE * abs(top):
        return True, (f"moving z[{d}] by one prior standard deviation changes the slant by {mine:+.3f} on average "
                      f"(rank {rank + 1} of {k}; the strongest, z[{best}], by {top:+.3f}).")
    return False, (f"z[{d}] changes the slant by only {mine:+.3f} per standard deviation (rank {rank + 1} of {k}); "
                   f"the strongest dimension changes it by {top:+.3f}. Look again at the traversal grid: which row "
                   f"leans the digit over as you read it from left to right?")


@exercise("04.slant-dimension", _check_slant_dimension,
          "Measure instead of guessing: for 100 encoded test digits, set each dimension to -1.5 and +1.5 prior "
          "standard deviations, decode, and compare the slant (the least-squares slope of the ink's column "
          "against its height, widgets.slant). The dimension whose move changes the slant most is the answer.")
def slant_dimension_solution() -> int:
    measured = _slant_effect()  # widgets.slant_effect on the VAE and the test set
    return measured.dims[0]


# ----------------------------------------------------------------------------- 04.ae-holes
AE_HOLES_CHOICES = {
    "a": "The AE's decoder is too small to draw digits; a bigger decoder would fix it.",
    "b": "Nothing in the AE's loss says what codes between the training codes should decode to: its codes "
         "form separate clumps with empty space between them, and a straight line crosses that space. The "
         "VAE's noise and KL term make whole neighbourhoods of codes decode to digits and pack them together.",
    "c": "Linear interpolation is the mistake: with spherical interpolation the AE's path stays among digits.",
    "d": "The AE has a smaller latent space than the VAE, so it has room for fewer digits.",
}
AE_HOLES_ANSWER = "b"
_AE_HOLES_FEEDBACK = {
    "a": "the same decoder reconstructs test digits well; the trouble is only between codes it was trained on.",
    "c": "compare the table in section 4: spherical paths help the AE only a little; its midpoints stay "
         "double exposures of the two digits.",
    "d": f"the two have the same latent size here (ae-{VAE_LATENT} beside the {VAE_LATENT}-dimensional VAE).",
}


def _check_ae_holes(answer: Any) -> tuple[bool, str]:
    choice = str(answer).strip().lower().strip("()")
    if choice not in AE_HOLES_CHOICES:
        raise ValueError(f"answer with one letter of {', '.join(AE_HOLES_CHOICES)}")
    if choice == AE_HOLES_ANSWER:
        return True, ("the AE is only asked to reconstruct its training images, so only the codes of those images "
                      "are trained; the VAE decodes noisy codes around each image and keeps them near the prior.")
    return False, _AE_HOLES_FEEDBACK[choice]


@exercise("04.ae-holes", _check_ae_holes,
          "The AE minimises reconstruction error at the training codes only, so the decoder's output between "
          "them is untrained and the codes sit in separate clumps (notebook 01's holes). The VAE decodes "
          "z = mu + sigma * eps, so every code near mu must decode to the digit, and the KL term pulls all "
          "codes towards N(0, I), closing the gaps a path would cross.")
def ae_holes_solution() -> str:
    return "b"


# ----------------------------------------------------------------------------- 04.cvae-style
CVAE_STYLE_CHOICES = {
    "a": "Which digit is drawn: z holds the identity, the label only its style.",
    "b": "The style (slant, width, stroke thickness) while it stays a 7: the label holds the identity, z the rest.",
    "c": "Nothing: a CVAE ignores z once it knows the label.",
}
CVAE_STYLE_ANSWER = "b"


def _check_cvae_style(answer: Any) -> tuple[bool, str]:
    choice = str(answer).strip().lower().strip("()")
    if choice not in CVAE_STYLE_CHOICES:
        raise ValueError(f"answer with one letter of {', '.join(CVAE_STYLE_CHOICES)}")
    if choice == CVAE_STYLE_ANSWER:
        return True, ("the decoder is given y, so z has no reason to store which digit it is: its KL cost buys "
                      "only what y does not say, the handwriting.")
    if choice == "a":
        return False, "try it: with the digit picker fixed, the sliders bend and thicken the same digit."
    return False, "the sliders do change the image; look at the traversal grid for a CVAE."


@exercise("04.cvae-style", _check_cvae_style,
          "p(x | z, y) gets the label from y, and every bit stored in z costs KL. So the encoder keeps out of z "
          "what y already says, and z holds the style: moving it changes how the digit is written, not which.")
def cvae_style_solution() -> str:
    return "b"
