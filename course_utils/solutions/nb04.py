"""Exercises of notebook 04: checks and solutions (see course_utils.solutions).

Every check measures: the two build-your-own exercises drive the student's widgets from
code (set a slider, pick a digit) and compare the image shown with the model's own
decoding; the three explorer questions are judged by a measurement on the model (slant,
width, the digit classifier's confidence), never by a fixed letter.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage

from ..data import MNISTSplit, load_mnist
from ..latent import LINEAR, SPHERICAL, ExplorerModel, prepare_model
from ..lessons.nb04_traversal import AE_NAME, path_confidence, slant_effect, style_effect, width
from ..recipes import load_classifier, train_or_load
from ..settings import is_fast_mode
from .registry import exercise, get

_PREPARED: dict[tuple[str, bool], ExplorerModel] = {}
_TEST: dict[bool, MNISTSplit] = {}


def _test() -> MNISTSplit:
    return _TEST.setdefault(is_fast_mode(), load_mnist("test"))


def _prepared(name: str, label: str) -> ExplorerModel:
    """The course model ``name`` (this mode's), prepared as the explorers prepare it; cached."""
    key = (name, is_fast_mode())
    if key not in _PREPARED:
        _PREPARED[key] = prepare_model(label, name, train_or_load(name, verbose=False).model, _test())
    return _PREPARED[key]


def _as_function(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, f"answer should be your function itself (no brackets), got a {type(answer).__name__}"
    return True, ""


def _as_dimension(answer: Any, k: int, model: str) -> int:
    if isinstance(answer, bool) or int(answer) != answer:
        raise TypeError("give the index d of one latent dimension z[d], an integer")
    d = int(answer)
    if not 0 <= d < k:
        raise ValueError(f"the {model}'s latent dimensions are z[0] .. z[{k - 1}]; {d} is not one of them")
    return d


def working(key: str, answer: Any) -> Any:
    """``answer`` if it passes the check of exercise ``key``; until then the course's solution (says which).

    Lets the cell after a build-your-own exercise show a working explorer whether or not
    the exercise is done, without stopping "Run all" and without printing the solution."""
    if callable(answer):
        try:
            passed = get(key).checker(answer)[0]
        except Exception:  # a student's function may fail in any way; solutions.check says how
            passed = False
        if passed:
            print(f"your answer to {key} (it passes the check)")
            return answer
    print(f"the course's solution of {key}: yours replaces it once solutions.check({key!r}, answer) says correct")
    return get(key).solver()


# ----------------------------------------------------------------------------- widgets driven from code
def _pixels(png: bytes) -> torch.Tensor:
    """The 28 x 28 digit in an upscaled PNG, in [0, 1] (box-averaged back down)."""
    img = PILImage.open(io.BytesIO(bytes(png))).convert("L")
    if img.size != (28, 28):
        img = img.resize((28, 28), PILImage.BOX)
    return torch.from_numpy(np.asarray(img, dtype=np.float32).copy()) / 255


def _shows(image: Any, m: ExplorerModel, z: torch.Tensor, y: int | None = None) -> bool:
    """Whether ``image`` shows the decoding of code z (k,) (with label y for a CVAE)."""
    labels = torch.tensor([y]) if y is not None else None
    want = m.decode(z.reshape(1, -1), labels).cpu().reshape(28, 28)
    return float((_pixels(image.value) - want).abs().mean()) < 0.01


def _parts(built: Any, dims: list[int]) -> tuple[bool, str]:
    if not (hasattr(built, "sliders") and hasattr(built, "image")):
        return False, f"return explorers.MiniExplorer(sliders, image, widget), got a {type(built).__name__}"
    if len(built.sliders) != len(dims):
        return False, f"asked for sliders over {len(dims)} dimensions {dims}, got {len(built.sliders)} sliders"
    return True, ""


def _move_sliders(built: Any, m: ExplorerModel, dims: list[int], y: Callable[[], int | None]) -> tuple[bool, str]:
    """Move each slider in turn; after each move the image must show the code with every moved value."""
    z = m.center.clone()
    for i, (d, slider) in enumerate(zip(dims, built.sliders, strict=True)):
        low, high = m.slider_range(d)
        if slider.min > low + 0.01 or slider.max < high - 0.01:
            return False, (f"slider {i} (z[{d}]) spans [{slider.min:.2f}, {slider.max:.2f}]; let it span "
                           f"m.slider_range({d}) = ({low:.2f}, {high:.2f}), 3 prior standard deviations each way")
        before = bytes(built.image.value)
        slider.value = low + (0.85 if i % 2 == 0 else 0.2) * (high - low)
        z[d] = float(slider.value)  # what the slider holds after rounding to its step
        if bytes(built.image.value) == before:
            return False, (f"moving slider {i} (z[{d}]) did not change image.value: does its callback, registered "
                           f"with slider.observe(callback, names=\"value\"), decode and assign a new PNG?")
        if not _shows(built.image, m, z, y()):
            wrong = m.center.clone()
            wrong[dims[-1]] = z[d]
            if i < len(dims) - 1 and _shows(built.image, m, wrong, y()):
                return False, (f"slider {i} moved z[{dims[-1]}], not z[{d}]: every callback defined in the loop "
                               "sees the loop's last d. Give each its own: def on_change(change, d=d): ...")
            return False, (f"after moving slider {i} to {z[d]:.2f}, the image is not the decoding of the code with "
                           f"z[{d}] = {z[d]:.2f} (the other moved sliders kept, the rest at m.center): write the "
                           "value into one shared code z and decode all of z")
    return True, ""


def _run_built(answer: Any, name: str, label: str, steps: Callable[[Any, ExplorerModel, list[int]], tuple[bool, str]],
               ) -> tuple[bool, str]:
    ok, why = _as_function(answer)
    if not ok:
        return ok, why
    m = _prepared(name, label)
    dims = m.order[:3]
    center = m.center.clone()
    try:
        built = answer(m, dims)
        ok, why = _parts(built, dims)
        if ok:
            ok, why = steps(built, m, dims)
    finally:
        changed = not torch.equal(m.center, center)
        m.center.copy_(center)
    if changed:
        return False, ("your sliders wrote into m.center itself (z = m.center.reshape(1, -1) shares its memory): "
                       "start from a copy, z = m.center.clone().reshape(1, -1)")
    return ok, why


# ----------------------------------------------------------------------------- 04.build-explorer
def _check_build_explorer(answer: Any) -> tuple[bool, str]:
    def steps(built: Any, m: ExplorerModel, dims: list[int]) -> tuple[bool, str]:
        ok, why = _move_sliders(built, m, dims, lambda: None)
        return ok, why or (f"three sliders over z{dims}: each move redraws the decoding of the whole code, "
                           "checked pixel by pixel against the VAE's own decoder.")

    return _run_built(answer, "vae", "VAE", steps)


@exercise("04.build-explorer", _check_build_explorer,
          "An explorer is a code z that the sliders edit, an Image, and one callback per slider: it writes the "
          "slider's new value into z and replaces the Image's PNG with the decoding of z. Callbacks defined in a "
          "loop need their own d (a default argument), or they all move the last dimension.")
def build_explorer_solution() -> Callable[..., Any]:
    import ipywidgets as widgets

    from course_utils import explorers, plotting

    def build_explorer(m, dims):
        z = m.center.clone().reshape(1, -1)  # the code the sliders edit: a copy, m.center stays as it is
        image = widgets.Image(value=plotting.digit_png(m.decode(z)), format="png")
        sliders = []
        for d in dims:
            low, high = m.slider_range(d)
            slider = widgets.FloatSlider(value=float(z[0, d]), min=low, max=high, step=(high - low) / 100,
                                         description=f"z[{d}]")

            def on_change(change, d=d):  # d=d: each callback keeps its own dimension
                z[0, d] = change["new"]
                image.value = plotting.digit_png(m.decode(z))

            slider.observe(on_change, names="value")
            sliders.append(slider)
        return explorers.MiniExplorer(sliders, image, widgets.VBox([*sliders, image]))

    return build_explorer


# ----------------------------------------------------------------------------- 04.digit-picker
def _set_digit(picker: Any, digit: int) -> int:
    """Set a digit picker (ToggleButtons, Dropdown, IntSlider, ...) to ``digit``; return the label it now holds."""
    try:
        picker.value = digit
    except Exception:  # a picker whose values are strings
        picker.value = str(digit)
    return int(picker.value)


def _check_digit_picker(answer: Any) -> tuple[bool, str]:
    def steps(built: Any, m: ExplorerModel, dims: list[int]) -> tuple[bool, str]:
        picker = getattr(built, "digit", None)
        if picker is None or not hasattr(picker, "value"):
            return False, "return the digit picker too: explorers.MiniExplorer(sliders, image, widget, digit)"
        first = (int(picker.value) + 3) % 10
        before = bytes(built.image.value)
        y = _set_digit(picker, first)
        if bytes(built.image.value) == before:
            return False, f"picking digit {first} did not change the image: observe the picker and redraw"
        if not _shows(built.image, m, m.center, y):
            return False, f"after picking {first}, the image is not m.decode(z, torch.tensor([{first}]))"
        ok, why = _move_sliders(built, m, dims, lambda: int(picker.value))
        if not ok:
            return False, why + " (with the label the picker shows)"
        z = m.center.clone()
        for d, slider in zip(dims, built.sliders, strict=True):
            z[d] = float(slider.value)
        second = _set_digit(picker, (first + 4) % 10)
        if not _shows(built.image, m, z, second):
            return False, (f"after moving the sliders and picking {second}, the image is not the moved code decoded "
                           f"with y = {second}: the picker's callback must decode the sliders' code, not a fresh one")
        return True, (f"the digit picker redraws with its label and the sliders keep the code: y = {first}, then the "
                      f"sliders, then y = {second}, each checked against the CVAE's own decoder.")

    return _run_built(answer, "cvae-project", "CVAE (project)", steps)


@exercise("04.digit-picker", _check_digit_picker,
          "A CVAE's decoder takes the label as well: keep build_explorer's code and sliders, add a picker for "
          "y = 0..9, and make one redraw function, used by the sliders and the picker alike, that decodes the "
          "shared z with the picker's current label.")
def digit_picker_solution() -> Callable[..., Any]:
    import ipywidgets as widgets
    import torch

    from course_utils import explorers, plotting

    def build_cvae_explorer(m, dims):
        z = m.center.clone().reshape(1, -1)
        digit = widgets.ToggleButtons(options=[(str(d), d) for d in range(10)], value=0, description="digit y")
        image = widgets.Image(format="png")

        def redraw(change=None):  # one redraw for every control: the current z with the current label
            image.value = plotting.digit_png(m.decode(z, torch.tensor([digit.value])))

        sliders = []
        for d in dims:
            low, high = m.slider_range(d)
            slider = widgets.FloatSlider(value=float(z[0, d]), min=low, max=high, step=(high - low) / 100,
                                         description=f"z[{d}]")

            def on_change(change, d=d):
                z[0, d] = change["new"]
                redraw()

            slider.observe(on_change, names="value")
            sliders.append(slider)
        digit.observe(redraw, names="value")
        redraw()
        return explorers.MiniExplorer(sliders, image, widgets.VBox([digit, *sliders, image]), digit)

    return build_cvae_explorer


# ----------------------------------------------------------------------------- 04.slant-dimension
SLANT_MODEL = "vae"  # the model whose slant dimension the exercise asks for
SHARE = 0.4  # a dimension whose effect is at least this share of the strongest one counts as right


def _slant_effect():
    return slant_effect(_prepared(SLANT_MODEL, "VAE"), _test())


def _check_slant_dimension(answer: Any) -> tuple[bool, str]:
    measured = _slant_effect()
    k = len(measured.effect)
    d = _as_dimension(answer, k, "VAE")
    best = measured.dims[0]
    rank = measured.dims.index(d)
    mine, top = float(measured.effect[d]), float(measured.effect[best])
    if abs(mine) >= SHARE * abs(top):
        return True, (f"moving z[{d}] by one prior standard deviation changes the slant by {mine:+.3f} on average "
                      f"(rank {rank + 1} of {k}; the strongest, z[{best}], by {top:+.3f}).")
    return False, (f"z[{d}] changes the slant by only {mine:+.3f} per standard deviation (rank {rank + 1} of {k}); "
                   f"the strongest dimension changes it by {top:+.3f}. Look again at the traversal grid: which row "
                   f"leans the digit over as you read it from left to right?")


@exercise("04.slant-dimension", _check_slant_dimension,
          "Measure instead of guessing: for 100 encoded test digits, set each dimension to -1.5 and +1.5 prior "
          "standard deviations, decode, and compare the slant (the least-squares slope of the ink's column "
          "against its height, nb04.slant). The dimension whose move changes the slant most is the answer.")
def slant_dimension_solution() -> int:
    import course_utils as cu
    from course_utils import latent
    from course_utils.lessons import nb04_traversal as nb04

    test = cu.load_mnist("test")
    vae = latent.prepare_model("VAE", "vae", cu.train_or_load("vae", verbose=False).model, test)
    return nb04.slant_effect(vae, test).dims[0]


# ----------------------------------------------------------------------------- 04.cvae-width
WIDTH_MODEL, WIDTH_LABEL = "cvae-concat", "CVAE (concat)"


def _width_effect():
    return style_effect(_prepared(WIDTH_MODEL, WIDTH_LABEL), _test(), width, n=200)


def _check_cvae_width(answer: Any) -> tuple[bool, str]:
    measured = _width_effect()
    k = len(measured.effect)
    d = _as_dimension(answer, k, WIDTH_LABEL)
    best = measured.dims[0]
    mine, top = float(measured.effect[d]), float(measured.effect[best])
    per_label = measured.per_label[d]
    same = int(((per_label * mine) > 0).sum())
    if abs(mine) >= SHARE * abs(top):
        return True, (f"moving z[{d}] by one prior standard deviation changes the width of the ink by {mine:+.2f} px "
                      f"on average (the strongest, z[{best}], by {top:+.2f} px), in the same direction for {same} of "
                      f"the 10 digits: the label says which digit, z[{d}] how wide it is written.")
    return False, (f"z[{d}] changes the width by only {mine:+.2f} px per standard deviation; the strongest dimension "
                   f"changes it by {top:+.2f} px. Move each slider of {WIDTH_LABEL} from end to end and watch "
                   "the digit grow wide or narrow.")


@exercise("04.cvae-width", _check_cvae_width,
          "For 200 encoded test digits, set each dimension to -1.5 and +1.5 prior standard deviations, decode "
          "with the digit's own label and compare the width of the ink (the spread of its columns, nb04.width). "
          "The dimension whose move changes the width most is the answer.")
def cvae_width_solution() -> int:
    import course_utils as cu
    from course_utils import latent
    from course_utils.lessons import nb04_traversal as nb04

    test = cu.load_mnist("test")
    cvae = latent.prepare_model("CVAE (concat)", "cvae-concat", cu.train_or_load("cvae-concat", verbose=False).model,
                                test)
    return nb04.style_effect(cvae, test, nb04.width, n=200).dims[0]


# ----------------------------------------------------------------------------- 04.ae-hole
HOLE_STEPS = 51  # the check scans t = 0, 0.02, ..., 1
HOLE_SLACK = 0.1  # the answer's confidence may be this much above the lowest point of the path
HOLE_READABLE = 0.9  # a path whose every image is read this confidently has no hole


def _hole_answer(answer: Any) -> tuple[int, int, float, str]:
    if hasattr(answer, "index_a") and hasattr(answer, "t"):  # the interpolation explorer itself
        path = answer.path.value if hasattr(answer, "path") else LINEAR
        return int(answer.index_a.value), int(answer.index_b.value), float(answer.t.value), str(path)
    a, b, t, *rest = answer
    return int(a), int(b), float(t), str(rest[0]) if rest else LINEAR


def _check_ae_hole(answer: Any) -> tuple[bool, str]:
    a, b, t, path = _hole_answer(answer)
    test = _test()
    if not (0 <= a < len(test) and 0 <= b < len(test)) or not 0 <= t <= 1 or path not in (LINEAR, SPHERICAL):
        raise ValueError(f"answer (from #, to #, t) with test indices below {len(test)} and 0 <= t <= 1")
    classifier = load_classifier()
    ae, vae = _prepared(AE_NAME, "AE"), _prepared("vae", "VAE")
    scan = path_confidence(ae, test, classifier, a, b, torch.linspace(0, 1, HOLE_STEPS), path).confidence
    lowest = float(scan.min())
    at = torch.tensor([t])
    mine = path_confidence(ae, test, classifier, a, b, at, path)
    theirs = path_confidence(vae, test, classifier, a, b, at, path)
    said = (f"at t = {t:.2f} the classifier reads the AE's image as a {int(mine.digit[0])} with confidence "
            f"{float(mine.confidence[0]):.2f}, the VAE's as a {int(theirs.digit[0])} with "
            f"{float(theirs.confidence[0]):.2f}")
    if lowest >= HOLE_READABLE:
        return False, (f"every image on the AE's {path} path from #{a} to #{b} is read with confidence "
                       f">= {HOLE_READABLE}: no hole. Try two different digits (the explorer starts with a 4 and a 1).")
    if float(mine.confidence[0]) <= lowest + HOLE_SLACK:
        return True, f"{said}; the least readable point of the AE's path has confidence {lowest:.2f}."
    return False, (f"{said}, but the AE's path from #{a} to #{b} gets less readable elsewhere (confidence "
                   f"{lowest:.2f}). Move t slowly and watch the AE's row for the picture that is no digit at all.")


@exercise("04.ae-hole", _check_ae_hole,
          "Decode the AE's path at 51 values of t, let the course's digit classifier read each image, and take "
          "the t where it is least confident: that is where the path crosses a hole between the AE's codes.")
def ae_hole_solution() -> tuple[int, int, float]:
    import torch

    import course_utils as cu
    from course_utils import latent
    from course_utils.lessons import nb04_traversal as nb04

    test = cu.load_mnist("test")
    ae = latent.prepare_model("AE", nb04.AE_NAME, cu.train_or_load(nb04.AE_NAME, verbose=False).model, test)
    a, b = int((test.y == 4).nonzero()[0]), int((test.y == 1).nonzero()[0])  # the explorer's first pair
    t = torch.linspace(0, 1, 51)
    reading = nb04.path_confidence(ae, test, cu.load_classifier(), a, b, t)
    return a, b, float(t[reading.confidence.argmin()])
