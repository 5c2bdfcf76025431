"""The explorers of notebook 04: sliders over the latent space, traversals,
interpolations and the 2-D plane, each redrawing one small PNG per event.

This module is user interface only: notebook 04's measurements and figures are in
``lessons/nb04_traversal.py``, the image helpers in ``plotting``, the shared measures in
``metrics``.

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

An AE has no prior, so its sliders span the spread of its test codes (mean +- 3
standard deviations per dimension); a VAE or CVAE's sliders span +- 3 prior standard
deviations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import ipywidgets as w
import numpy as np
import torch
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .data import MNISTSplit
from .latent import LINEAR, SLIDER_SPAN, SPHERICAL, ExplorerModel, path_codes, traverse
from .plotting import SCALE, digit_png, gaussian_grid, label_rows, plot_latent_scatter, png_bytes, tile_uint8, to_uint8


# ----------------------------------------------------------------------------- base
class Explorer:
    """Base class: ``widget`` is the container shown; ``image`` the main decoded digit."""

    widget: w.Box
    image: w.Image

    def _mark(self, name: str) -> None:
        """A CSS class on the container, ``course-<name>-explorer``: a handle for the browser test."""
        self.widget.add_class(f"course-{name}-explorer")

    def _ipython_display_(self) -> None:  # works with ipywidgets 7 and 8 alike
        display(self.widget)

    @property
    def timed_slider(self) -> w.Widget:
        """The slider a student moves most; the benchmark times its callback."""
        raise NotImplementedError


class MiniExplorer(NamedTuple):
    """What notebook 04's build-your-own explorer returns (exercises 1 and 5)."""

    sliders: list[w.FloatSlider]  # one per latent dimension asked for, in that order
    image: w.Image  # the decoded digit, redrawn on every move
    widget: w.Box  # what the notebook shows
    digit: w.Widget | None = None  # the digit picker, for a CVAE (exercise 5)


def _image(scale: int = SCALE) -> w.Image:
    blank = png_bytes(np.zeros((28, 28), dtype=np.uint8), scale)
    return w.Image(value=blank, format="png")


def _digit_picker() -> w.ToggleButtons:
    return w.ToggleButtons(options=[(str(d), d) for d in range(10)], value=0, description="digit y",
                           style={"button_width": "34px"})


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
        what = "variance of the test codes (an AE has no KL)" if not m.variational else "average KL in nats"
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
        unit = "nats" if m.variational else "var"
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
        span_unit = "standard deviations of its test codes" if not m.variational else "prior standard deviations"
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
        # A CVAE encodes the test digit with its own label (what q(z | x, y) was trained on),
        # then decodes that style with the digit the picker asks for.
        return m.encode(self.test.x[i: i + 1], self.test.y[i: i + 1])[0].cpu(), y

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
            self.image.value = png_bytes(tile_uint8(to_uint8(self.traversal([self.dim.value])), steps), 3)
        if grid:
            dims = m.order[: self.rows.value]
            mosaic = tile_uint8(to_uint8(self.traversal(dims)), steps)
            self.grid.value = png_bytes(label_rows(mosaic, [f"z[{d}]" for d in dims], scale=2))


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
            strip.value = png_bytes(tile_uint8(np.concatenate([ends[:1], path, ends[1:]]), self.steps + 2), 2)
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
