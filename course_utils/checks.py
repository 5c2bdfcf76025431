"""The limits every course model puts on its inputs, stated once, and the checks that enforce them.

Images: a torch.Tensor of shape (B, 1, 28, 28) or (B, 784), floating point (any float dtype:
it is cast to float32, the dtype of every course model, so float64 images work), every pixel
finite and in [0, 1] give or take ``PIXEL_TOLERANCE``. Labels: a 1-D integer tensor of values
0 .. num_classes - 1, one per image. Codes z: a finite float tensor of shape (B, latent_dim).
Sampling: a whole number of images (VAE), a list or tensor of labels (CVAE), a temperature
that is a finite number >= 0.

Each check raises a ``CourseValueError`` or ``CourseTypeError`` (``settings``) whose one line
says what to do; NaN or infinite values raise ``NonFiniteInput``, which ``fit`` reports as
``TrainingDiverged`` naming the epoch and batch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar

import torch

from .data import IMAGE_SHAPE, NUM_PIXELS
from .settings import CourseTypeError, CourseValueError

PIXEL_RANGE = (0.0, 1.0)  # grey levels: 0 black, 1 white (MNIST's bytes divided by 255)
PIXEL_TOLERANCE = 1e-3  # how far a pixel may stray outside PIXEL_RANGE (float rounding of a blend)


class NonFiniteInput(CourseValueError):
    """Images or codes hold NaN or infinite values (fit turns this into TrainingDiverged)."""


# Reading a batch's pixel or label range back to the host is one synchronisation with the device
# per check: a stall on every step of a GPU. ``fit`` checks its whole data set once, then trains
# inside ``values_checked(label_bound)``, where the checks below keep their type and shape tests but
# skip the value scans (labels: while the model's num_classes is at least the bound the data set was
# checked against). Anywhere else every call scans. The value: None (scan), or that label bound.
_CHECKED_LABEL_BOUND: ContextVar[int | None] = ContextVar("course_checked_label_bound", default=None)


@contextlib.contextmanager
def values_checked(label_bound: int) -> Iterator[None]:
    """Inside: every image is taken to be checked already, and every label to lie in 0 .. label_bound - 1."""
    token = _CHECKED_LABEL_BOUND.set(label_bound)
    try:
        yield
    finally:
        _CHECKED_LABEL_BOUND.reset(token)


def require_tensor(value: object, what: str, example: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise CourseTypeError(f"{what} must be a torch.Tensor, got {type(value).__name__}: use {example}")


def _check_finite(t: torch.Tensor, what: str) -> None:
    if t.numel() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise NonFiniteInput(
            f"{what} hold {bad} NaN or infinite value(s), which a model cannot use: find where "
            "they came from, or replace them with torch.nan_to_num"
        )


def check_images(x: torch.Tensor) -> torch.Tensor:
    """Validate a batch of images and return it flattened to (B, 784), as float32.

    Any floating dtype is accepted and cast to ``torch.get_default_dtype()`` (float32, the
    dtype of every course model), so float64 or float16 images work. Integer pixels, NaN or
    infinite pixels and pixels outside [0, 1] (0..255 grey levels, say) are errors.
    """
    require_tensor(x, "images", "torch.as_tensor(images)")
    if not x.is_floating_point():
        raise CourseTypeError(
            f"images must be floating point in [0, 1], got dtype {x.dtype}; "
            "divide uint8 pixels by 255."
        )
    if x.dim() == 4 and tuple(x.shape[1:]) == IMAGE_SHAPE:
        x = x.reshape(x.shape[0], NUM_PIXELS)  # (B, 1, 28, 28) -> (B, 784)
    elif not (x.dim() == 2 and x.shape[1] == NUM_PIXELS):
        raise CourseValueError(
            f"images must have shape (B, 1, 28, 28) or (B, 784), got {tuple(x.shape)}. "
            "A single image needs a batch dimension: x.unsqueeze(0)."
        )
    x = x.to(torch.get_default_dtype())
    if x.numel() and _CHECKED_LABEL_BOUND.get() is None:
        lo, hi = torch.stack(torch.aminmax(x)).tolist()  # one pass; NaN propagates into both
        if not (math.isfinite(lo) and math.isfinite(hi)):
            _check_finite(x, "images")
        low, high = PIXEL_RANGE
        if lo < low - PIXEL_TOLERANCE or hi > high + PIXEL_TOLERANCE:
            hint = ("they look like 0..255 grey levels: divide them by 255" if hi > 2
                    else "rescale them, or clip them with x.clamp(0, 1)")
            raise CourseValueError(f"pixels must lie in [0, 1], but these run from {lo:.4g} to {hi:.4g}: {hint}")
    return x


def check_labels(y: torch.Tensor, batch_size: int | None, num_classes: int) -> torch.Tensor:
    """Validate integer labels in [0, num_classes) with one label per image."""
    require_tensor(y, "labels", "a tensor of integers, e.g. torch.tensor([3, 1, 4])")
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise CourseTypeError(f"labels must be integers 0..{num_classes - 1}, got dtype {y.dtype}: use y.long()")
    if y.dim() != 1:
        raise CourseValueError(f"labels must have shape (B,), one per image, got {tuple(y.shape)}")
    if batch_size is not None and y.shape[0] != batch_size:
        raise CourseValueError(f"got {batch_size} images but {y.shape[0]} labels: give one label per image")
    bound = _CHECKED_LABEL_BOUND.get()
    scan = bound is None or bound > num_classes
    if y.numel() and scan and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise CourseValueError(
            f"labels must lie in 0..{num_classes - 1}; got values from {int(y.min())} "
            f"to {int(y.max())}"
        )
    return y.long()


def sample_labels(labels: torch.Tensor | list[int]) -> torch.Tensor:
    """The labels given to ``CVAE.sample`` as a 1-D tensor (checked later by ``check_labels``)."""
    how = "give a list or tensor of labels, one per image, e.g. [3] or torch.full((n,), 3)"
    if isinstance(labels, str | bytes | int | float) or labels is None:
        raise CourseTypeError(f"a CVAE samples one image per label: {how}; got {labels!r}")
    if isinstance(labels, torch.Tensor):
        y = labels
    else:
        try:
            y = torch.as_tensor(list(labels))
        except (TypeError, ValueError, RuntimeError) as err:
            raise CourseTypeError(f"cannot read {labels!r} as labels: {how}") from err
        if y.numel() == 0:
            y = y.long()  # [] means no images (as VAE.sample(0) does), not float labels
    if y.dim() == 0:
        raise CourseTypeError(f"a CVAE samples one image per label: {how}; got the single number {y.item()}")
    return y


def check_latent(z: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """Validate codes z, (B, latent_dim), and return them as float32 (any float dtype is cast)."""
    require_tensor(z, "z", f"a tensor of shape (B, {latent_dim})")
    if not z.is_floating_point():
        raise CourseTypeError(f"z must be floating point, got dtype {z.dtype}: use z.float()")
    if z.dim() != 2 or z.shape[1] != latent_dim:
        raise CourseValueError(
            f"z must have shape (B, {latent_dim}) for this model, got {tuple(z.shape)}"
        )
    z = z.to(torch.get_default_dtype())
    if not z.requires_grad:  # codes the encoder made while training are checked through the loss (fit)
        _check_finite(z, "the codes z")
    return z


def check_temperature(temperature: float) -> None:
    if isinstance(temperature, str | bytes | bool):
        raise CourseTypeError(f"temperature must be a number >= 0 (1 = the prior), got {temperature!r}")
    try:
        value = float(temperature)
    except (TypeError, ValueError, RuntimeError):
        raise CourseTypeError(f"temperature must be a number >= 0 (1 = the prior), got {temperature!r}") from None
    if not 0 <= value < math.inf:
        raise CourseValueError(f"temperature must be a finite number >= 0 (1 = the prior), got {temperature}")


def check_count(n: int) -> int:
    """The number of images to sample, a whole number >= 0 (a 0-d integer tensor is accepted)."""
    if isinstance(n, torch.Tensor) and n.dim() == 0 and not n.is_floating_point():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int):
        labels = " (labels are for a CVAE's sample)" if isinstance(n, list | tuple | torch.Tensor) else ""
        raise CourseTypeError(f"the number of samples must be a whole number, e.g. sample(16); got {n!r}{labels}")
    if n < 0:
        raise CourseValueError(f"number of samples must be >= 0, got {n}")
    return n
