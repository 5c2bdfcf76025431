"""Notebook 04's interactive explorers: sliders over the latent space, traversals,
interpolations and the 2-D plane, each redrawing one small PNG per event.

Every explorer is a class that builds its ipywidgets once, keeps them as attributes
(so a test or a notebook cell can set ``explorer.t.value = 0.5`` and read
``explorer.image.value``) and displays as one ipywidgets container. Only widgets and
options present in both ipywidgets 7.7 (Colab) and 8 (JupyterLab) are used:
``Image`` with PNG bytes, ``FloatSlider``, ``IntSlider``, ``SelectionSlider``,
``Dropdown``, ``ToggleButtons``, ``Button``, ``BoundedIntText``, ``HTML``, ``HBox``
and ``VBox`` with ``Layout``, and ``observe(..., names="value")``.

Why it is fast: a slider event changes one number of a cached code ``z``, decodes one
image under ``torch.no_grad`` on the model's device, turns it into a PNG with Pillow
(nearest-neighbour upscaling, no matplotlib) and assigns the bytes to an ``Image``.
No figure is rebuilt per event; the only matplotlib figure (the 2-D explorer's
scatter of test codes) is drawn once and the marker is painted onto a copy.

Models come from ``course_models`` (through ``train_or_load``, so notebook 04 works on
its own). The AE is ``ae-<VAE_LATENT>``: the same latent size as the VAE, so the two
can be compared fairly. An AE has no prior, so its sliders span the spread of its
test codes (mean +- 3 standard deviations per dimension); a VAE or CVAE's sliders
span +- 3 prior standard deviations.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import ipywidgets as w
import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from torch import nn

from .data import MNISTSplit, load_mnist
from .losses import gaussian_kl
from .models import CVAE, VAE, AutoEncoder
from .plotting import gaussian_grid, plot_latent_scatter
from .recipes import AE_LATENT_SIZES, VAE_LATENT
from .settings import pick_device

# The model picker: label shown -> course recipe name.
AE_NAME = f"ae-{VAE_LATENT}"  # same latent size as the VAE: a fair comparison
MODEL_CHOICES: dict[str, str] = {
    "AE": AE_NAME,
    "VAE": "vae",
    "CVAE (concat)": "cvae-concat",
    "CVAE (project)": "cvae-project",
}
PLANE_MODEL = "vae-2d"
SLIDER_SPAN = 3.0  # sliders run over center +- SLIDER_SPAN * scale
ACTIVE_KL_NATS = 0.01  # a dimension whose average KL is below this carries almost no information
SCALE = 5  # 28 px -> 140 px for the main image
SPHERICAL, LINEAR = "spherical", "linear"

assert VAE_LATENT in AE_LATENT_SIZES, "the AE beside the VAE must have the VAE's latent size"


# ----------------------------------------------------------------------------- images
def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 1, 28, 28) or (1, 28, 28) or (28, 28) pixels in [0, 1] -> uint8 array (N, 28, 28)."""
    x = images.detach().reshape(-1, 28, 28).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.cpu().numpy()


def png_bytes(pixels: np.ndarray, scale: int = 1) -> bytes:
    """A uint8 image (H, W) grey or (H, W, 3) RGB as PNG bytes, upscaled ``scale`` times
    with nearest neighbour (so pixels stay crisp squares)."""
    img = PILImage.fromarray(np.ascontiguousarray(pixels))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), PILImage.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=1)  # fast; the images are tiny anyway
    return buffer.getvalue()


def digit_png(x_hat: torch.Tensor, scale: int = SCALE) -> bytes:
    """One decoded digit (any shape with 784 pixels) as PNG bytes, ``28 * scale`` px wide."""
    return png_bytes(to_uint8(x_hat)[0], scale)


def tile(images: np.ndarray, ncol: int, pad: int = 2, value: int = 80) -> np.ndarray:
    """uint8 digits (N, 28, 28) -> one (H, W) uint8 mosaic, ``ncol`` per row, grey gaps."""
    n = len(images)
    nrow = max(1, math.ceil(n / ncol))
    out = np.full((nrow * (28 + pad) + pad, ncol * (28 + pad) + pad), value, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        out[pad + r * (28 + pad): pad + r * (28 + pad) + 28, pad + c * (28 + pad): pad + c * (28 + pad) + 28] = img
    return out


def _label_rows(mosaic: np.ndarray, labels: Sequence[str], scale: int, margin: int = 44, pad: int = 2) -> np.ndarray:
    """Upscale a mosaic and write one label left of each row of digits."""
    img = PILImage.fromarray(mosaic).resize((mosaic.shape[1] * scale, mosaic.shape[0] * scale), PILImage.NEAREST)
    canvas = PILImage.new("L", (img.width + margin, img.height), 255)
    canvas.paste(img, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for r, text in enumerate(labels):
        y = (pad + r * (28 + pad) + 10) * scale
        draw.text((3, y), text, fill=0, font=font)
    return np.asarray(canvas)


# ----------------------------------------------------------------------------- models
@dataclass
class ExplorerModel:
    """One trained model prepared for the explorers: codes, ranking and slider ranges."""

    label: str  # what the picker shows, e.g. "VAE"
    name: str  # the course recipe, e.g. "vae"
    model: nn.Module
    codes: torch.Tensor  # (N, k) test codes on the CPU: z for the AE, mu for a VAE/CVAE
    labels: torch.Tensor  # (N,) digit labels of those test images
    activity: torch.Tensor  # (k,) average KL per dimension (nats); code variance for the AE
    order: list[int]  # dimensions sorted by activity, most active first
    center: torch.Tensor  # (k,) 0 for a VAE/CVAE (the prior mean); mean test code for the AE
    scale: torch.Tensor  # (k,) 1 for a VAE/CVAE (the prior std); std of the test codes for the AE

    @property
    def kind(self) -> str:
        """"ae", "vae" or "cvae"."""
        if isinstance(self.model, CVAE):
            return "cvae"
        return "vae" if isinstance(self.model, VAE) else "ae"

    @property
    def conditional(self) -> bool:
        return isinstance(self.model, CVAE)

    @property
    def latent_dim(self) -> int:
        return int(self.model.config.latent_dim)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def active(self) -> list[int]:
        """Dimensions in use, most active first: average KL above ACTIVE_KL_NATS (every AE dimension)."""
        if self.kind == "ae":
            return list(self.order)
        return [d for d in self.order if float(self.activity[d]) > ACTIVE_KL_NATS]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1], (B, 1, 28, 28), from codes (B, k) (and labels (B,) for a CVAE)."""
        z = z.to(self.device)
        if self.conditional:
            if y is None:
                raise ValueError(f"{self.label} is a CVAE: give the digit labels y")
            return torch.sigmoid(self.model.decode(z, y.to(self.device)))
        return torch.sigmoid(self.model.decode(z))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, k) on the model's device: z for the AE, the posterior mean mu otherwise."""
        x = x.to(self.device)
        if self.conditional:
            return self.model.encode(x, y.to(self.device)).mu
        if isinstance(self.model, AutoEncoder):
            return self.model.encode(x)
        return self.model.encode(x).mu

    def slider_range(self, d: int) -> tuple[float, float]:
        c, s = float(self.center[d]), float(self.scale[d])
        return c - SLIDER_SPAN * s, c + SLIDER_SPAN * s


def dimension_kl(model: nn.Module, data: MNISTSplit, batch_size: int = 1000) -> torch.Tensor:
    """Average KL(q(z_j | x) || N(0, 1)) of each latent dimension j over ``data``, shape (k,).

    The KL of the whole code is the sum of these (the prior and posterior are diagonal).
    A dimension whose posterior is the prior for every x has KL 0: the decoder cannot
    read anything from it (an inactive unit, in the sense of Burda et al. 2015).
    """
    device = next(model.parameters()).device
    total = torch.zeros(model.config.latent_dim)
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            x = data.x[start: start + batch_size].to(device)
            y = data.y[start: start + batch_size].to(device)
            post = model.encode(x, y) if isinstance(model, CVAE) else model.encode(x)
            kl = -0.5 * (1 + post.logvar - post.mu.pow(2) - post.logvar.exp())  # (B, k), per dimension
            total += kl.sum(0).cpu()
            assert torch.allclose(kl.sum(1), gaussian_kl(post.mu, post.logvar), rtol=1e-4, atol=1e-4)
    return total / len(data)


@torch.no_grad()
def prepare_model(label: str, name: str, model: nn.Module, test: MNISTSplit) -> ExplorerModel:
    """Encode the test set once and rank the dimensions (see ExplorerModel)."""
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(test), 1000):
        x = test.x[start: start + 1000].to(device)
        y = test.y[start: start + 1000].to(device)
        if isinstance(model, CVAE):
            chunks.append(model.encode(x, y).mu)
        elif isinstance(model, VAE):
            chunks.append(model.encode(x).mu)
        else:
            chunks.append(model.encode(x))
    codes = torch.cat(chunks).float().cpu()
    k = codes.shape[1]
    if isinstance(model, AutoEncoder):
        center, scale = codes.mean(0), codes.std(0).clamp_min(1e-6)
        activity = codes.var(0)
    else:
        center, scale = torch.zeros(k), torch.ones(k)
        activity = dimension_kl(model, test)
    order = torch.argsort(activity, descending=True).tolist()
    return ExplorerModel(label, name, model, codes, test.y.cpu(), activity, order, center, scale)


def course_models(
    device: torch.device | None = None,
    choices: Mapping[str, str] = MODEL_CHOICES,
    test: MNISTSplit | None = None,
    directory: str | Path | None = None,
) -> dict[str, ExplorerModel]:
    """Train or load the models of the explorers' picker and prepare each one.

    ``directory`` is where ``train_or_load`` looks for (and saves) checkpoints; by default
    the course's own (``checkpoint_dir()``)."""
    from .training import train_or_load

    device = device if device is not None else pick_device()
    test = test if test is not None else load_mnist("test")
    out = {}
    for label, name in choices.items():
        model = train_or_load(name, device=device, directory=directory).model
        out[label] = prepare_model(label, name, model, test)
    return out


def plane_model(device: torch.device | None = None, test: MNISTSplit | None = None) -> ExplorerModel:
    """The 2-D VAE (``vae-2d``), trained or loaded, prepared for the PlaneExplorer."""
    from .training import train_or_load

    device = device if device is not None else pick_device()
    test = test if test is not None else load_mnist("test")
    return prepare_model("VAE (2-D)", PLANE_MODEL, train_or_load(PLANE_MODEL, device=device).model, test)


def activity_table(models: Mapping[str, ExplorerModel], top: int = 5) -> str:
    """A text table: latent size, active dimensions, total KL (nats per image) and the most active dimensions."""
    lines = [f"{'model':<15} {'recipe':<13} {'k':>3} {'active':>6} {'KL nats':>8}   "
             "most active first (avg KL in nats; AE: variance of the codes)"]
    for m in models.values():
        top_dims = ", ".join(f"z[{d}] {float(m.activity[d]):.2f}" for d in m.order[:top])
        total = "-" if m.kind == "ae" else f"{float(m.activity.sum()):.1f}"
        lines.append(f"{m.label:<15} {m.name:<13} {m.latent_dim:>3} {len(m.active):>6} {total:>8}   {top_dims}")
    return "\n".join(lines)


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


# ----------------------------------------------------------------------------- base
class Explorer:
    """Base class: ``widget`` is the container shown; ``image`` the main decoded digit."""

    widget: w.Box
    image: w.Image

    def _mark(self, name: str) -> None:
        """A CSS class on the container, ``course-<name>-explorer``: a handle for the browser test."""
        self.widget.add_class(f"course-{name}-explorer")

    def _ipython_display_(self) -> None:  # works with ipywidgets 7 and 8 alike
        from IPython.display import display

        display(self.widget)

    @property
    def timed_slider(self) -> w.Widget:
        """The slider a student moves most; the benchmark times its callback."""
        raise NotImplementedError


def _image(scale: int = SCALE) -> w.Image:
    blank = png_bytes(np.zeros((28, 28), dtype=np.uint8), scale)
    return w.Image(value=blank, format="png")


def _digit_picker() -> w.ToggleButtons:
    return w.ToggleButtons(options=[(str(d), d) for d in range(10)], value=0, description="digit y",
                           style={"button_width": "26px"})


def _column(children: Sequence[w.Widget], **layout: str) -> w.VBox:
    """A VBox whose children keep their natural width (a flex column would stretch an image)."""
    return w.VBox(list(children), layout=w.Layout(align_items="flex-start", **layout))


def _row(children: Sequence[w.Widget], **layout: str) -> w.HBox:
    """An HBox whose children keep their natural height."""
    return w.HBox(list(children), layout=w.Layout(align_items="flex-start", **layout))


def _show(widget: w.Widget, visible: bool) -> None:
    widget.layout.display = "" if visible else "none"


# ----------------------------------------------------------------------------- explorer 1-2
class LatentExplorer(Explorer):
    """Model picker, one slider per latent dimension (most active first), digit picker
    for a CVAE, "random z" and "encode a test digit" buttons, and the decoded image."""

    def __init__(self, models: Mapping[str, ExplorerModel], test: MNISTSplit, shown: int = 8, seed: int = 0):
        if not models:
            raise ValueError("give at least one model")
        self.models = dict(models)
        self.test = test
        self.generator = torch.Generator().manual_seed(seed)
        self._hold = False
        self._sliders: dict[str, list[w.FloatSlider]] = {}
        self._z: dict[str, torch.Tensor] = {}
        self._shown_default = shown
        self._slider_style = w.SliderStyle(description_width="48px")  # shared by every slider: a smaller
        self._slider_layout = w.Layout(width="330px")  # widget state in the saved notebook
        first = next(iter(self.models.values()))
        self.model = w.Dropdown(options=list(self.models), value=first.label, description="model")
        self.shown = w.IntSlider(value=min(shown, first.latent_dim), min=1, max=first.latent_dim,
                                 description="sliders", continuous_update=False)
        self.digit = _digit_picker()
        self.random = w.Button(description="random z", icon="random")
        self.encode = w.Button(description="encode a test digit")
        self.index = w.BoundedIntText(value=0, min=0, max=len(test) - 1, description="test #",
                                      layout=w.Layout(width="150px"))
        self.image = _image()
        self.original = _image()
        self.caption = w.HTML()
        self.slider_box = _column([])
        self.model.observe(self._on_model, names="value")
        self.shown.observe(self._on_shown, names="value")
        self.digit.observe(lambda change: self.redraw(), names="value")
        self.random.on_click(self._on_random)
        self.encode.on_click(self._on_encode)
        pictures = _row([_column([w.HTML("<b>decoded x&#770;</b>"), self.image]),
                         _column([w.HTML("<b>encoded test digit</b>"), self.original])])
        controls = _column([self.model, self.shown, self.digit, _row([self.random, self.encode, self.index]),
                            self.caption])
        self.widget = _column([controls, _row([self.slider_box, pictures])])
        # CSS classes: handles for the browser test (tests/test_browser.py)
        self.slider_box.add_class("course-latent-sliders")
        self.image.add_class("course-latent-image")
        self._mark("latent")
        self._select(first.label)

    # state -------------------------------------------------------------------------
    @property
    def current(self) -> ExplorerModel:
        return self.models[self.model.value]

    @property
    def z(self) -> torch.Tensor:
        """The current code (1, k) of the selected model (what the image shows)."""
        return self._z[self.model.value]

    @property
    def sliders(self) -> list[w.FloatSlider]:
        """All sliders of the selected model, most active dimension first."""
        return self._sliders[self.model.value]

    @property
    def visible_sliders(self) -> list[w.FloatSlider]:
        return self.sliders[: self.shown.value]

    def slider(self, d: int) -> w.FloatSlider:
        """The slider of latent dimension ``d`` (z[d]) of the selected model."""
        return self.sliders[self.current.order.index(d)]

    @property
    def timed_slider(self) -> w.FloatSlider:
        return self.visible_sliders[0]

    # building ------------------------------------------------------------------------
    def _build(self, m: ExplorerModel) -> None:
        sliders = []
        for d in m.order:
            low, high = m.slider_range(d)
            s = w.FloatSlider(value=float(m.center[d]), min=low, max=high, step=(high - low) / 120,
                              description=f"z[{d}]", readout_format=".2f", continuous_update=True,
                              style=self._slider_style, layout=self._slider_layout)
            s.observe(self._slider_callback(d), names="value")
            sliders.append(s)
        self._sliders[m.label] = sliders
        self._z[m.label] = m.center.reshape(1, -1).clone().to(m.device)

    def _slider_callback(self, d: int) -> Callable[[dict], None]:
        def on_change(change: dict) -> None:
            if self._hold:
                return
            self.z[0, d] = float(change["new"])  # one number of the cached code
            self.redraw()

        return on_change

    def _select(self, label: str) -> None:
        m = self.models[label]
        if label not in self._sliders:
            self._build(m)
        self._hold = True
        try:
            self.shown.max = m.latent_dim
            self.shown.value = min(self._shown_default, m.latent_dim)
        finally:
            self._hold = False
        self.slider_box.children = tuple(self.visible_sliders)
        _show(self.digit, m.conditional)
        ranking = ", ".join(f"z[{d}] {float(m.activity[d]):.2f}" for d in m.order[:6])
        what = "variance of the test codes (an AE has no KL)" if m.kind == "ae" else "average KL in nats"
        self.caption.value = (f"<small>{m.label} = <code>{m.name}</code>, k = {m.latent_dim}; sliders ranked by "
                              f"{what}: {ranking}, ... Hidden dimensions keep their value.</small>")
        self.redraw()

    # callbacks -----------------------------------------------------------------------
    def redraw(self) -> None:
        """Decode the current code (one image) and show it."""
        if self._hold:
            return
        m = self.current
        y = torch.tensor([self.digit.value]) if m.conditional else None
        self.image.value = digit_png(m.decode(self.z, y))

    def _on_model(self, change: dict) -> None:
        self._select(change["new"])

    def _on_shown(self, change: dict) -> None:
        if not self._hold:
            self.slider_box.children = tuple(self.visible_sliders)

    def set_code(self, z: torch.Tensor, digit: int | None = None) -> None:
        """Show code z (k,) or (1, k): move every slider to it, then redraw once."""
        m = self.current
        self._hold = True
        try:
            self.z.copy_(z.reshape(1, -1).to(self.z))
            if digit is not None and m.conditional:
                self.digit.value = int(digit)
            for d, s in zip(m.order, self.sliders, strict=True):
                low, high = m.slider_range(d)
                s.value = min(max(float(self.z[0, d]), low), high)  # the slider shows it clipped
        finally:
            self._hold = False
        self.redraw()

    def _on_random(self, _button: w.Button | None = None) -> None:
        m = self.current
        eps = torch.randn(m.latent_dim, generator=self.generator)
        self.set_code(m.center + m.scale * eps)  # the prior for a VAE; a Gaussian fit for the AE

    def _on_encode(self, _button: w.Button | None = None) -> None:
        m = self.current
        i = int(self.index.value)
        x, y = self.test.x[i: i + 1], self.test.y[i: i + 1]
        self.original.value = digit_png(x)
        self.set_code(m.encode(x, y).cpu(), digit=int(y[0]))


# ----------------------------------------------------------------------------- explorer 3
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


class TraversalExplorer(Explorer):
    """Vary one dimension over a range while the others stay fixed (a row of images),
    and every active dimension at once (a grid, one row per dimension)."""

    def __init__(self, models: Mapping[str, ExplorerModel], test: MNISTSplit, max_rows: int = 12):
        self.models = dict(models)
        self.test = test
        self._hold = False
        first = next(iter(self.models.values()))
        self.model = w.Dropdown(options=list(self.models), value=first.label, description="model")
        self.dim = w.Dropdown(options=[("z[0]", 0)], value=0, description="dimension")
        self.span = w.FloatSlider(value=SLIDER_SPAN, min=0.25, max=2 * SLIDER_SPAN, step=0.25, description="range +-",
                                  readout_format=".2f")
        self.steps = w.IntSlider(value=9, min=3, max=15, step=2, description="steps")
        self.rows = w.IntSlider(value=1, min=1, max=first.latent_dim, description="grid rows")
        self.base = w.ToggleButtons(options=["prior mean", "test digit"], value="prior mean", description="others")
        self.index = w.BoundedIntText(value=0, min=0, max=len(test) - 1, description="test #",
                                      layout=w.Layout(width="150px"))
        self.digit = _digit_picker()
        self.image = _image(3)  # the row
        self.grid = _image(2)  # all active dimensions
        self.caption = w.HTML()
        self.max_rows = max_rows
        self.model.observe(lambda c: self._select(c["new"]), names="value")
        for control in (self.span, self.steps, self.base, self.digit):
            control.observe(lambda c: self.redraw(), names="value")
        self.index.observe(self._on_index, names="value")
        self.dim.observe(lambda c: self.redraw(grid=False), names="value")
        self.rows.observe(lambda c: self.redraw(row=False), names="value")
        controls = _column([self.model, self.dim, self.span, self.steps, self.rows,
                            _row([self.base, self.index]), self.digit])
        self.widget = _column([controls, self.caption, w.HTML("<b>one dimension</b>"), self.image,
                               w.HTML("<b>all active dimensions (one per row, most active on top)</b>"), self.grid])
        self._mark("traversal")
        self._select(first.label)

    @property
    def current(self) -> ExplorerModel:
        return self.models[self.model.value]

    @property
    def timed_slider(self) -> w.FloatSlider:
        return self.span

    def _select(self, label: str) -> None:
        m = self.models[label]
        unit = "nats" if m.kind != "ae" else "var"
        self._hold = True
        try:
            self.dim.options = [(f"z[{d}] ({float(m.activity[d]):.2f} {unit})", d) for d in m.order]
            self.dim.value = m.order[0]
            self.rows.max = m.latent_dim
            self.rows.value = max(1, min(len(m.active), self.max_rows))
            if m.conditional:
                self.digit.value = int(self.digit.value)
        finally:
            self._hold = False
        _show(self.digit, m.conditional)
        span_unit = "standard deviations of its test codes" if m.kind == "ae" else "prior standard deviations"
        self.caption.value = (f"<small>{m.label}: {len(m.active)} active of {m.latent_dim} dimensions. "
                              f"Columns run over the range in {span_unit}.</small>")
        self.redraw()

    def _on_index(self, change: dict) -> None:
        if self._hold:
            return
        if self.base.value != "test digit":  # choosing a test digit means: hold the others at its code
            self._hold = True
            try:
                self.base.value = "test digit"
            finally:
                self._hold = False
        self.redraw()

    def base_code(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The code (k,) the others are held at, and the label y (CVAE)."""
        m = self.current
        y = torch.tensor([self.digit.value]) if m.conditional else None
        if self.base.value == "prior mean":
            return m.center.clone(), y
        i = int(self.index.value)
        label = self.test.y[i: i + 1]
        if m.conditional:
            y = label
        return m.encode(self.test.x[i: i + 1], label)[0].cpu(), y

    def traversal(self, dims: Sequence[int]) -> torch.Tensor:
        """Decoded images (len(dims) * steps, 1, 28, 28) for the current settings: row r varies z[dims[r]]."""
        base, y = self.base_code()
        return traverse(self.current, dims, self.span.value, self.steps.value, base, y)

    def reset(self, label: str = "VAE") -> None:
        """Back to the defaults: model ``label``, range +-3, 9 steps, others at the prior mean, test # 0."""
        self._hold = True
        try:
            self.span.value, self.steps.value, self.base.value = SLIDER_SPAN, 9, "prior mean"
            self.index.value = 0
        finally:
            self._hold = False
        if self.model.value != label:
            self.model.value = label
        else:
            self._select(label)

    def redraw(self, row: bool = True, grid: bool = True) -> None:
        if self._hold:
            return
        m = self.current
        steps = self.steps.value
        if row:
            self.image.value = png_bytes(tile(to_uint8(self.traversal([self.dim.value])), steps), 3)
        if grid:
            dims = m.order[: self.rows.value]
            mosaic = tile(to_uint8(self.traversal(dims)), steps)
            self.grid.value = png_bytes(_label_rows(mosaic, [f"z[{d}]" for d in dims], scale=2))


# ----------------------------------------------------------------------------- explorer 4
class InterpolationExplorer(Explorer):
    """Two test digits by index, a slider for t, linear or spherical paths; each model's
    current image and its whole path as a strip, the models side by side."""

    def __init__(self, models: Sequence[ExplorerModel], test: MNISTSplit, index_a: int = 0, index_b: int = 1,
                 steps: int = 10):
        if any(m.conditional for m in models):
            raise ValueError("interpolation compares unconditional models (AE, VAE)")
        self.models = list(models)
        self.test = test
        self.steps = steps
        self._codes: list[tuple[torch.Tensor, torch.Tensor]] = []
        n = len(test) - 1
        self.index_a = w.BoundedIntText(value=index_a, min=0, max=n, description="from #",
                                        layout=w.Layout(width="150px"))
        self.index_b = w.BoundedIntText(value=index_b, min=0, max=n, description="to #",
                                        layout=w.Layout(width="150px"))
        self.t = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.02, description="t", readout_format=".2f")
        self.path = w.ToggleButtons(options=[LINEAR, SPHERICAL], value=LINEAR, description="path")
        self.images = [_image(4) for _ in self.models]
        self.strips = [_image(2) for _ in self.models]
        self.image = self.images[0]
        for control in (self.index_a, self.index_b, self.path):
            control.observe(lambda c: self._on_endpoints(), names="value")
        self.t.observe(lambda c: self.redraw(), names="value")
        rows = [_row([_column([w.HTML(f"<b>{m.label}</b> (<code>{m.name}</code>) at t"), img], width="170px"),
                      _column([w.HTML("the whole path"), strip])])
                for m, img, strip in zip(self.models, self.images, self.strips, strict=True)]
        caption = w.HTML("<small>Each strip: test digit #from, the decoded path from t = 0 to t = 1 in equal "
                         "steps, test digit #to. One model per row, so the paths line up.</small>")
        self.widget = _column([_row([self.index_a, self.index_b]), self.path, self.t, *rows, caption])
        self._mark("interpolation")
        self._on_endpoints()

    @property
    def timed_slider(self) -> w.FloatSlider:
        return self.t

    def _on_endpoints(self) -> None:
        ia, ib = int(self.index_a.value), int(self.index_b.value)
        x = self.test.x[[ia, ib]]
        self._codes = []
        ends = to_uint8(x)
        t = torch.linspace(0, 1, self.steps)
        for m, strip in zip(self.models, self.strips, strict=True):
            codes = m.encode(x).cpu()
            a, b = codes[0], codes[1]
            self._codes.append((a, b))
            path = to_uint8(m.decode(path_codes(m, a, b, t, self.path.value)))
            strip.value = png_bytes(tile(np.concatenate([ends[:1], path, ends[1:]]), self.steps + 2), 2)
        self.redraw()

    def redraw(self) -> None:
        """Decode one image per model at the current t."""
        for m, (a, b), img in zip(self.models, self._codes, self.images, strict=True):
            img.value = digit_png(m.decode(path_codes(m, a, b, self.t.value, self.path.value)), 4)


# ----------------------------------------------------------------------------- explorer 5
class LatentPlane(NamedTuple):
    """A pre-rendered scatter of test codes and how to find a code's pixel on it."""

    rgb: np.ndarray  # (H, W, 3) uint8
    to_pixel: Callable[[float, float], tuple[int, int]]  # (z1, z2) -> (column, row)


def render_plane(m: ExplorerModel, limit: float = 3.2, n_points: int = 5000, dpi: int = 80) -> LatentPlane:
    """Scatter the test codes once with matplotlib (off-screen, no pyplot) into an RGB array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.4, 4.4), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    plot_latent_scatter(m.codes[:n_points], m.labels[:n_points], title="test codes mu (colour = digit)", ax=ax,
                        s=1.5)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.legend(markerscale=4, fontsize=7, title="digit", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    height = rgb.shape[0]
    origin, one = ax.transData.transform([(0.0, 0.0), (1.0, 1.0)])
    ax_x, ax_y = one - origin

    def to_pixel(z1: float, z2: float) -> tuple[int, int]:
        return int(round(origin[0] + ax_x * z1)), int(round(height - (origin[1] + ax_y * z2)))

    return LatentPlane(rgb, to_pixel)


def draw_marker(rgb: np.ndarray, column: int, row: int, size: int = 5) -> np.ndarray:
    """A copy of ``rgb`` with a crosshair and a red square at (column, row)."""
    out = rgb.copy()
    h, wd = out.shape[:2]
    if 0 <= row < h:
        out[row, max(0, column - 4 * size): column + 4 * size + 1] = (0, 0, 0)
    if 0 <= column < wd:
        out[max(0, row - 4 * size): row + 4 * size + 1, column] = (0, 0, 0)
    r0, r1, c0, c1 = max(0, row - size), max(0, row + size + 1), max(0, column - size), max(0, column + size + 1)
    out[r0:r1, c0:c1] = (0, 0, 0)
    out[r0 + 1: max(r0 + 1, r1 - 1), c0 + 1: max(c0 + 1, c1 - 1)] = (230, 20, 20)
    return out


class PlaneExplorer(Explorer):
    """The 2-D VAE: slide over the latent plane and see the decoded digit, with a marker
    on the scatter of test codes. The sliders step by equal prior probability
    (quantiles of N(0, 1)), the grid ``plotting.plot_manifold`` uses."""

    def __init__(self, m: ExplorerModel, n_values: int = 61, limit: float = 0.995):
        if m.latent_dim != 2 or m.conditional:
            raise ValueError("the plane explorer needs an unconditional model with a 2-D latent space")
        self.m = m
        values = [round(float(v), 3) for v in gaussian_grid(n_values, limit)]
        options = [(f"{v:+.2f}", v) for v in values]
        middle = values[len(values) // 2]
        self.z1 = w.SelectionSlider(options=options, value=middle, description="z1", continuous_update=True)
        self.z2 = w.SelectionSlider(options=options, value=middle, description="z2", continuous_update=True)
        self.plane = render_plane(m, limit=max(abs(values[0]), abs(values[-1])) + 0.25)
        self.image = _image()
        self.scatter = w.Image(value=png_bytes(self.plane.rgb), format="png")
        self._z = torch.zeros(1, 2, device=m.device)
        self.z1.observe(lambda c: self.redraw(), names="value")
        self.z2.observe(lambda c: self.redraw(), names="value")
        self.widget = _column([_row([self.z1, self.z2]),
                               _row([self.scatter, _column([w.HTML("<b>decoded x&#770;</b>"), self.image])])])
        self._mark("plane")
        self.redraw()

    @property
    def timed_slider(self) -> w.SelectionSlider:
        return self.z1

    def redraw(self) -> None:
        z1, z2 = float(self.z1.value), float(self.z2.value)
        self._z[0, 0], self._z[0, 1] = z1, z2
        self.image.value = digit_png(self.m.decode(self._z))
        self.scatter.value = png_bytes(draw_marker(self.plane.rgb, *self.plane.to_pixel(z1, z2)))


def other_value(widget: w.Widget):
    """A valid value for ``widget`` different from its current one: the far end of a
    slider's range, the next option of a picker, the next number of a bounded box."""
    if isinstance(widget, w.SelectionSlider | w.Dropdown | w.ToggleButtons):
        values = [o[1] if isinstance(o, tuple) else o for o in widget.options]
        return values[(values.index(widget.value) + 1) % len(values)]
    if isinstance(widget, w.FloatSlider | w.IntSlider):
        return widget.max if widget.value < (widget.min + widget.max) / 2 else widget.min
    if isinstance(widget, w.BoundedIntText):
        return widget.value + 1 if widget.value < widget.max else widget.value - 1
    raise TypeError(f"no rule for a {type(widget).__name__}")


def redraws(image: w.Image, widget: w.Widget, value: object = None) -> bool:
    """Act on ``widget`` as a user would (click a button; otherwise set ``value``, by
    default ``other_value(widget)``) and say whether ``image`` changed."""
    before = bytes(image.value)
    if isinstance(widget, w.Button):
        widget.click()
    else:
        widget.value = other_value(widget) if value is None else value
    return bytes(image.value) != before


# ----------------------------------------------------------------------------- timing
class CallbackTiming(NamedTuple):
    name: str
    n: int  # slider moves timed
    median_ms: float  # wall-clock time of a move, callbacks included: what a user waits
    p95_ms: float
    max_ms: float
    cpu_median_ms: float  # CPU time of this process for a move: unaffected by other busy processes


def slider_values(slider: w.Widget, n: int) -> list:
    """n values for ``slider`` that differ from each move to the next (a sweep back and forth)."""
    if isinstance(slider, w.SelectionSlider):
        options = [v for _, v in slider.options] if isinstance(slider.options[0], tuple) else list(slider.options)
    else:
        options = np.linspace(slider.min, slider.max, 25).tolist()
    sweep = options + options[-2:0:-1]
    return [sweep[i % len(sweep)] for i in range(1, n + 1)]


def time_slider(slider: w.Widget, n: int = 200, name: str = "") -> CallbackTiming:
    """Move ``slider`` n times from code and time each move, callbacks included (ms)."""
    start_value = slider.value
    wall, cpu = [], []
    for value in slider_values(slider, n):
        if value == slider.value:
            continue
        start, start_cpu = time.perf_counter(), time.process_time()
        slider.value = value
        cpu.append((time.process_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    slider.value = start_value
    t = np.asarray(wall)
    return CallbackTiming(name or slider.description, len(t), float(np.median(t)), float(np.percentile(t, 95)),
                          float(t.max()), float(np.median(cpu)))


def timing_table(timings: Sequence[CallbackTiming]) -> str:
    """The timings as a text table (wall-clock median, 95th percentile and maximum; CPU median)."""
    lines = [f"{'explorer (slider)':<34} {'moves':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'CPU ms':>7}"]
    for t in timings:
        lines.append(f"{t.name:<34} {t.n:>5} {t.median_ms:>10.2f} {t.p95_ms:>8.2f} {t.max_ms:>8.2f} "
                     f"{t.cpu_median_ms:>7.2f}")
    return "\n".join(lines)


def time_explorers(explorers: Mapping[str, Explorer], n: int = 200) -> list[CallbackTiming]:
    """Time the main slider of every explorer (see ``Explorer.timed_slider``)."""
    return [time_slider(e.timed_slider, n, f"{name} ({e.timed_slider.description})") for name, e in explorers.items()]


# ----------------------------------------------------------------------------- measures
def slant(x: torch.Tensor) -> torch.Tensor:
    """Slant of each image (B,): how far the ink moves right per pixel upwards.

    With pixel intensities as weights, u the column and v the height (upwards) of a
    pixel, both centred on the ink's centre of mass: slant = sum(w u v) / sum(w v^2),
    the least-squares slope of u against v. Positive: leaning right, like "/".
    """
    img = x.detach().float().reshape(-1, 28, 28).cpu()
    weight = img / img.sum((1, 2), keepdim=True).clamp_min(1e-8)
    cols = torch.arange(28.0).reshape(1, 1, 28)
    heights = (27 - torch.arange(28.0)).reshape(1, 28, 1)
    u = cols - (weight * cols).sum((1, 2), keepdim=True)
    v = heights - (weight * heights).sum((1, 2), keepdim=True)
    return (weight * u * v).sum((1, 2)) / (weight * v * v).sum((1, 2)).clamp_min(1e-8)


class DimensionEffect(NamedTuple):
    dims: list[int]  # dimensions sorted by |effect|, largest first
    effect: torch.Tensor  # (k,) average change of the measure per prior standard deviation of z[d]


@torch.no_grad()
def slant_effect(m: ExplorerModel, test: MNISTSplit, n: int = 100, delta: float = 1.5) -> DimensionEffect:
    """How much moving each dimension changes the slant: for n encoded test digits, set
    z[d] to center - delta * scale and center + delta * scale and average the slope."""
    x, y = test.x[:n], test.y[:n]
    base = m.encode(x, y).cpu()  # (n, k)
    effect = torch.zeros(m.latent_dim)
    labels = y if m.conditional else None
    for d in range(m.latent_dim):
        low, high = base.clone(), base.clone()
        low[:, d] = m.center[d] - delta * m.scale[d]
        high[:, d] = m.center[d] + delta * m.scale[d]
        effect[d] = (slant(m.decode(high, labels)) - slant(m.decode(low, labels))).mean() / (2 * delta)
    dims = torch.argsort(effect.abs(), descending=True).tolist()
    return DimensionEffect(dims, effect)


class PathReading(NamedTuple):
    """How the digit classifier reads the images along interpolation paths (averaged over pairs)."""

    model: str  # the model's label, e.g. "AE"
    path: str  # LINEAR or SPHERICAL
    t: torch.Tensor  # (steps,) positions along the path
    confidence: torch.Tensor  # (steps,) average largest softmax probability
    readable: torch.Tensor  # (steps,) share of images read with confidence above the threshold
    double_exposure: float  # cosine similarity of the midpoint to the average of the two end images


@torch.no_grad()
def path_readability(
    models: Sequence[ExplorerModel],
    test: MNISTSplit,
    classifier: nn.Module,
    pairs: int = 300,
    steps: int = 11,
    paths: Sequence[str] = (LINEAR, SPHERICAL),
    threshold: float = 0.9,
    seed: int = 0,
) -> list[PathReading]:
    """Decode paths between ``pairs`` random pairs of test digits and let the classifier read them.

    ``readable`` is the share of images read with confidence above ``threshold`` (notebook
    01's readability); ``double_exposure`` compares the image at t = 0.5 with the pixel
    average of the images at t = 0 and t = 1: near 1, the midpoint is just the two digits
    faded into each other, which is not a digit.
    """
    generator = torch.Generator().manual_seed(seed)
    i = torch.randint(len(test), (pairs,), generator=generator)
    j = torch.randint(len(test), (pairs,), generator=generator)
    t = torch.linspace(0, 1, steps)
    device = next(classifier.parameters()).device
    out = []
    for m in models:
        a, b = m.encode(test.x[i]).cpu(), m.encode(test.x[j]).cpu()
        for path in paths:
            z = torch.cat([path_codes(m, a[p], b[p], t, path) for p in range(pairs)])  # (pairs * steps, k)
            x = m.decode(z)
            probs = torch.cat([torch.softmax(classifier(x[s: s + 2000].to(device)), dim=1).cpu()
                               for s in range(0, len(x), 2000)])
            confidence = probs.max(1).values.reshape(pairs, steps)
            images = x.reshape(pairs, steps, -1).cpu()
            fade = 0.5 * (images[:, 0] + images[:, -1])
            similarity = torch.nn.functional.cosine_similarity(images[:, steps // 2], fade, dim=1).mean()
            out.append(PathReading(m.label, path, t, confidence.mean(0), (confidence > threshold).float().mean(0),
                                   float(similarity)))
    return out


def readability_table(readings: Sequence[PathReading]) -> str:
    """One line per model and path: readable share at t = 0, 0.5, 1 and the double-exposure similarity."""
    lines = [f"{'model':<6} {'path':<10} {'read at t=0':>11} {'t=0.5':>6} {'t=1':>6} {'double exposure at t=0.5':>25}"]
    for r in readings:
        mid = len(r.t) // 2
        lines.append(f"{r.model:<6} {r.path:<10} {r.readable[0]:>11.2f} {r.readable[mid]:>6.2f} "
                     f"{r.readable[-1]:>6.2f} {r.double_exposure:>25.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures
def plot_activity(models: Mapping[str, ExplorerModel]):
    """Average KL of each latent dimension, sorted, one line per VAE/CVAE (log scale)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for m in models.values():
        if m.kind == "ae":
            continue
        kl = m.activity[m.order].clamp_min(1e-4).numpy()
        ax.plot(np.arange(1, len(kl) + 1), kl, "o-", ms=3, label=f"{m.label} (k = {m.latent_dim})")
    ax.axhline(ACTIVE_KL_NATS, color="grey", ls="--", lw=1, label=f"active above {ACTIVE_KL_NATS} nats")
    ax.set_yscale("log")
    ax.set_xlabel("dimension rank (most active first)")
    ax.set_ylabel("average KL (nats; floor 1e-4)")
    ax.set_title("How much each latent dimension carries: average KL on test images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_path_readability(readings: Sequence[PathReading], threshold: float = 0.9):
    """Share of images read confidently along the paths, one line per model and path kind."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    colors: dict[str, str] = {}
    for r in readings:
        color = colors.setdefault(r.model, f"C{len(colors)}")
        ax.plot(r.t.numpy(), r.readable.numpy(), "o-" if r.path == LINEAR else "s--", ms=4, color=color,
                label=f"{r.model}, {r.path}")
    ax.set_xlabel("t (0: first test digit, 1: second)")
    ax.set_ylabel(f"share read with confidence > {threshold:g}")
    ax.set_ylim(0, 1.02)
    ax.set_title("Do the paths stay among digits? (random pairs of test digits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
