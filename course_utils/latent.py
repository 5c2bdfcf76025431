"""Trained models prepared for exploring their latent space, and paths through it.

``prepare_model`` encodes the test set once and ranks the dimensions; ``ExplorerModel``
then decodes and encodes with one call whatever model it holds. ``slerp``, ``lerp``,
``path_codes`` and ``traverse`` are the path maths the explorers and notebook 04 use.
No user interface here: that is ``explorers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .data import MNISTSplit
from .metrics import active_units, codes, kl_per_dimension
from .models import LatentModel

SLIDER_SPAN = 3.0  # sliders and traversals run over center +- SLIDER_SPAN * scale
SPHERICAL, LINEAR = "spherical", "linear"


# ----------------------------------------------------------------------------- models
@dataclass
class ExplorerModel:
    """One trained model prepared for the explorers: codes, ranking and slider ranges."""

    label: str  # what the picker shows, e.g. "VAE"
    name: str  # the course recipe, e.g. "vae"
    model: LatentModel
    codes: torch.Tensor  # (N, k) test codes on the CPU: z for the AE, mu for a VAE/CVAE
    labels: torch.Tensor  # (N,) digit labels of those test images
    activity: torch.Tensor  # (k,) average KL per dimension (nats); code variance for the AE
    active_mask: torch.Tensor  # (k,) bool: Var(mu_j) > 0.01 (metrics.active_units); all True for the AE
    order: list[int]  # dimensions sorted by activity, most active first
    center: torch.Tensor  # (k,) 0 for a VAE/CVAE (the prior mean); mean test code for the AE
    scale: torch.Tensor  # (k,) 1 for a VAE/CVAE (the prior std); std of the test codes for the AE

    @property
    def conditional(self) -> bool:
        return self.model.conditional

    @property
    def variational(self) -> bool:
        return self.model.variational

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def active(self) -> list[int]:
        """Dimensions in use, most active first (Burda et al.'s Var(mu_j) > 0.01; every AE dimension)."""
        return [d for d in self.order if bool(self.active_mask[d])]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1], (B, 1, 28, 28), from codes (B, k) (and labels (B,) for a CVAE)."""
        if self.conditional and y is None:
            raise ValueError(f"{self.label} is a CVAE: give the digit labels y")
        y = y.to(self.device) if y is not None else None
        return torch.sigmoid(self.model.decode(z.to(self.device), y))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, k) on the model's device: z for the AE, the posterior mean mu otherwise."""
        y = y.to(self.device) if y is not None else None
        return self.model.code(x.to(self.device), y)

    def slider_range(self, d: int) -> tuple[float, float]:
        c, s = float(self.center[d]), float(self.scale[d])
        return c - SLIDER_SPAN * s, c + SLIDER_SPAN * s


@torch.no_grad()
def prepare_model(label: str, name: str, model: LatentModel, test: MNISTSplit) -> ExplorerModel:
    """Encode the test set once and rank the dimensions (see ExplorerModel)."""
    z = codes(model, test.x, test.y)  # (N, k) on the CPU
    k = z.shape[1]
    if model.variational:
        center, scale = torch.zeros(k), torch.ones(k)  # the prior N(0, I)
        activity = kl_per_dimension(model, test.x, test.y)
        active = active_units(z)
    else:
        center, scale = z.mean(0), z.std(0).clamp_min(1e-6)
        activity = z.var(0)
        active = torch.ones(k, dtype=torch.bool)
    order = torch.argsort(activity, descending=True).tolist()
    return ExplorerModel(label, name, model, z, test.y.cpu(), activity, active, order, center, scale)


# ----------------------------------------------------------------------------- paths
def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation between codes a and b (k,) at t (T,) -> (T, k).

    Follows the great circle between the directions of a and b while the length
    changes linearly (Shoemake 1985; White 2016 for generative models). Falls back to
    the straight line when a and b point the same way.
    """
    t = torch.as_tensor(t, dtype=a.dtype).reshape(-1, 1)
    na, nb = a.norm(), b.norm()
    cos = torch.dot(a, b) / (na * nb).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(torch.sin(omega)) < 1e-6:
        return (1 - t) * a + t * b
    direction = (torch.sin((1 - t) * omega) * a / na + torch.sin(t * omega) * b / nb) / torch.sin(omega)
    return direction * ((1 - t) * na + t * nb)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Straight-line interpolation (1 - t) a + t b, shape (T, k)."""
    t = torch.as_tensor(t, dtype=a.dtype).reshape(-1, 1)
    return (1 - t) * a + t * b


def path_codes(m: ExplorerModel, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float, kind: str) -> torch.Tensor:
    """Codes on the path from a to b at t. Spherical paths are taken around the prior mean
    in standardized units ((z - center) / scale), which for a VAE is plain slerp."""
    if kind == LINEAR:
        return lerp(a, b, t)
    if kind != SPHERICAL:
        raise ValueError(f"path must be {LINEAR!r} or {SPHERICAL!r}, got {kind!r}")
    center, scale = m.center.to(a), m.scale.to(a)
    return slerp((a - center) / scale, (b - center) / scale, t) * scale + center


def traverse(
    m: ExplorerModel,
    dims: Sequence[int],
    span: float = SLIDER_SPAN,
    steps: int = 9,
    base: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """Traversals (len(dims) * steps, 1, 28, 28): row r sets z[dims[r]] to center +- span * scale
    in ``steps`` equal steps, every other coordinate held at ``base`` (default: the center).
    A CVAE needs the label ``y`` (one label, shape (1,))."""
    base = m.center.clone() if base is None else base.reshape(-1).cpu()
    offsets = torch.linspace(-span, span, steps)
    z = base.repeat(len(dims), steps, 1)  # (rows, steps, k)
    for r, d in enumerate(dims):
        z[r, :, d] = m.center[d] + offsets * m.scale[d]
    z = z.reshape(-1, m.latent_dim)
    labels = y.reshape(-1)[:1].repeat(len(z)) if y is not None else None
    return m.decode(z, labels)
