"""Notebook 04's explorers, driven headlessly: every control must redraw its image.

Most tests use small untrained models (no checkpoints, no training, a second or two);
``test_course_models_fast_mode`` goes through ``train_or_load`` in fast mode, into tmp_path.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import ipywidgets
import pytest
import torch
from explorer_drivers import other_value, redraws
from PIL import Image

import course_utils as cu
from course_utils import explorers, latent
from course_utils.lessons import nb04_traversal as nb04
from course_utils.plotting import digit_png

HIDDEN = (64, 32)


@pytest.fixture(scope="module")
def test_split() -> cu.MNISTSplit:
    return cu.load_mnist("test", limit=300)


@pytest.fixture(scope="module")
def models(test_split) -> dict[str, latent.ExplorerModel]:
    torch.manual_seed(0)
    built = {
        "AE": cu.AutoEncoder(cu.AEConfig(latent_dim=6, hidden_dims=HIDDEN)),
        "VAE": cu.VAE(cu.VAEConfig(latent_dim=6, hidden_dims=HIDDEN)),
        "CVAE (concat)": cu.CVAE(cu.CVAEConfig(latent_dim=4, hidden_dims=HIDDEN, conditioning="concat")),
        "CVAE (project)": cu.CVAE(cu.CVAEConfig(latent_dim=4, hidden_dims=HIDDEN, conditioning="project")),
    }
    return {label: latent.prepare_model(label, label.lower(), m, test_split) for label, m in built.items()}


@pytest.fixture(scope="module")
def plane_model(test_split) -> latent.ExplorerModel:
    torch.manual_seed(1)
    return latent.prepare_model("VAE (2-D)", "vae-2d", cu.VAE(cu.VAEConfig(latent_dim=2, hidden_dims=HIDDEN)),
                                 test_split)


def _size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


# ----------------------------------------------------------------------------- helpers
def test_png_bytes_is_a_scaled_png():
    png = digit_png(torch.rand(1, 1, 28, 28), scale=5)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert _size(png) == (140, 140)


def test_prepare_model_ranks_by_kl(models, test_split):
    vae = models["VAE"]
    kl = cu.metrics.kl_per_dimension(vae.model, test_split.x, test_split.y)
    assert torch.allclose(kl, vae.activity)
    assert vae.order == torch.argsort(kl, descending=True).tolist()
    post = vae.model.encode(test_split.x)
    assert torch.allclose(kl.sum(), cu.gaussian_kl(post.mu, post.logvar).mean(), rtol=1e-4)
    ae = models["AE"]
    assert torch.allclose(ae.center, ae.codes.mean(0)) and ae.active == ae.order


def test_slerp_and_lerp():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, generator=g), torch.randn(16, generator=g)
    t = torch.linspace(0, 1, 7)
    s = latent.slerp(a, b, t)
    assert torch.allclose(s[0], a, atol=1e-5) and torch.allclose(s[-1], b, atol=1e-5)
    expected_norm = (1 - t) * a.norm() + t * b.norm()
    assert torch.allclose(s.norm(dim=1), expected_norm, atol=1e-4)
    assert torch.allclose(latent.lerp(a, b, 0.25)[0], 0.75 * a + 0.25 * b)
    same = latent.slerp(a, 2 * a, t)  # parallel: falls back to the straight line
    assert torch.allclose(same, latent.lerp(a, 2 * a, t), atol=1e-5)


def test_slant_sign():
    def bar(direction: int) -> torch.Tensor:
        img = torch.zeros(1, 1, 28, 28)
        for row in range(4, 24):
            img[0, 0, row, 14 + direction * (14 - row) // 2] = 1.0  # row 4 is the top
        return img

    assert nb04.slant(bar(+1)).item() > 0.4  # "/" leans right
    assert nb04.slant(bar(-1)).item() < -0.4  # "\" leans left
    assert abs(nb04.slant(bar(0)).item()) < 1e-6


# ----------------------------------------------------------------------------- explorers
def test_latent_explorer_every_control_redraws(models, test_split):
    e = explorers.LatentExplorer(models, test_split, shown=3)
    for i, (label, m) in enumerate(models.items()):
        e.model.value = label
        assert len(e.slider_box.children) == min(3, m.latent_dim)
        assert e.digit.layout.display == ("" if m.conditional else "none")
        for slider in e.visible_sliders:
            assert redraws(e.image, slider), f"{label}: {slider.description}"
        for control in (e.random, e.encode):
            assert redraws(e.image, control), f"{label}: {control.description}"
        if m.conditional:
            assert redraws(e.image, e.digit)
        e.index.value = 5 + i
        assert redraws(e.original, e.encode)  # the encoded test digit is shown
        assert int(e.digit.value) == int(test_split.y[5 + i]) or not m.conditional
        e.shown.value = m.latent_dim
        assert len(e.slider_box.children) == m.latent_dim


def test_latent_explorer_code_follows_sliders(models, test_split):
    e = explorers.LatentExplorer(models, test_split)
    e.model.value = "VAE"
    d = models["VAE"].order[0]
    e.slider(d).value = 1.25
    assert e.z[0, d].item() == pytest.approx(1.25)
    e.index.value = 3
    e.encode.click()
    code = models["VAE"].encode(test_split.x[3:4])[0]
    assert torch.allclose(e.z[0], code)
    expected = digit_png(models["VAE"].decode(code[None]))
    assert e.image.value == expected


def test_traversal_explorer_every_control_redraws(models, test_split):
    e = explorers.TraversalExplorer(models, test_split)
    for label, m in models.items():
        e.model.value = label
        controls = [e.dim, e.span, e.steps, e.base] + ([e.digit] if m.conditional else [])
        for control in controls:
            assert redraws(e.image, control), f"{label}: {control.description}"
        e.base.value = "prior mean"
        assert redraws(e.image, e.index), f"{label}: test #"
        assert e.base.value == "test digit"  # choosing a test digit holds the others at its code
        for control in (e.rows, e.span, e.steps):
            assert redraws(e.grid, control), f"{label}: grid, {control.description}"
    e.reset("VAE")
    assert e.model.value == "VAE" and e.span.value == latent.SLIDER_SPAN and e.base.value == "prior mean"


def test_traversal_row_varies_one_dimension(models):
    m = models["VAE"]
    images = latent.traverse(m, [m.order[0]], span=2, steps=5)
    assert images.shape == (5, 1, 28, 28)
    z = torch.zeros(5, m.latent_dim)
    z[:, m.order[0]] = torch.linspace(-2, 2, 5)
    assert torch.allclose(images, m.decode(z))


def test_interpolation_explorer_every_control_redraws(models, test_split):
    e = explorers.InterpolationExplorer([models["AE"], models["VAE"]], test_split, 0, 1)
    for control in (e.path, e.index_a, e.index_b, e.t):
        before = [img.value for img in e.images]
        control.value = other_value(control)
        assert all(img.value != old for img, old in zip(e.images, before, strict=True)), control.description
    for control in (e.path, e.index_a):
        assert all(redraws(strip, control) for strip in e.strips[:1]), control.description
    with pytest.raises(ValueError):
        explorers.InterpolationExplorer([models["CVAE (concat)"]], test_split)


def test_plane_explorer_moves_the_marker(plane_model):
    e = explorers.PlaneExplorer(plane_model)
    for control in (e.z1, e.z2):
        assert redraws(e.image, control)
        assert redraws(e.scatter, control)
    left, right = e.plane.to_pixel(-1.0, 0.0), e.plane.to_pixel(1.0, 0.0)
    low, high = e.plane.to_pixel(0.0, -1.0), e.plane.to_pixel(0.0, 1.0)
    assert right[0] > left[0] and high[1] < low[1]  # z1 to the right, z2 upwards
    assert _size(e.scatter.value) == (e.plane.rgb.shape[1], e.plane.rgb.shape[0])


def test_a_raising_callback_fails_loudly(models, test_split, monkeypatch):
    e = explorers.LatentExplorer(models, test_split)
    e.model.value = "VAE"

    def broken(*args, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(models["VAE"], "decode", broken)
    with pytest.raises(RuntimeError, match="exploded"):
        e.visible_sliders[0].value = other_value(e.visible_sliders[0])


@pytest.mark.parametrize("label", ["CVAE (concat)", "CVAE (project)"])
def test_traversal_digit_picker_works_with_others_at_a_test_digit(models, test_split, label):
    """With "others = test digit", the picker must still choose the digit drawn (it used the test label)."""
    e = explorers.TraversalExplorer(models, test_split)
    e.model.value = label
    e.base.value = "test digit"
    own = int(test_split.y[int(e.index.value)])
    e.digit.value = own
    _, y = e.base_code()
    assert int(y[0]) == own
    other = (own + 3) % 10
    assert redraws(e.image, e.digit, other), "the digit picker did not change the row"
    _, y = e.base_code()
    assert int(y[0]) == other


def test_displays_as_one_container(models, test_split):
    e = explorers.LatentExplorer(models, test_split)
    assert isinstance(e.widget, ipywidgets.Box)
    assert hasattr(e, "_ipython_display_")


# Widgets and names that exist in ipywidgets 7.7 (Colab) as well as 8.
IPYWIDGETS_7_AND_8 = {
    "Image", "FloatSlider", "IntSlider", "SelectionSlider", "Dropdown", "ToggleButtons", "Button",
    "BoundedIntText", "HTML", "HBox", "VBox", "Box", "Layout", "Widget", "SliderStyle",
}


def test_only_widgets_shared_by_ipywidgets_7_and_8():
    source = Path(explorers.__file__).read_text()
    used = set(re.findall(r"\bw\.([A-Z]\w*)", source))
    assert used <= IPYWIDGETS_7_AND_8, f"not checked against ipywidgets 7.7: {used - IPYWIDGETS_7_AND_8}"
    assert "description_allow_html" not in source and "tooltip=" not in source


# ----------------------------------------------------------------------------- course models
def test_course_models_fast_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_FAST", "1")
    test = cu.load_mnist("test", limit=500)
    models = nb04.course_models(torch.device("cpu"), {"AE": nb04.AE_NAME, "VAE": "vae"}, test=test,
                                   directory=tmp_path)  # trains tiny models here, never in checkpoints/
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [f"{nb04.AE_NAME}.pt", "vae.pt"]
    assert models["AE"].latent_dim == models["VAE"].latent_dim
    assert "VAE" in nb04.activity_table(models)
    e = explorers.LatentExplorer(models, test)
    assert redraws(e.image, e.encode)


@pytest.mark.parametrize("key", ["04.build-explorer", "04.digit-picker", "04.cvae-width", "04.ae-hole"])
def test_nb04_solutions_pass_their_checks(key):
    from course_utils import solutions

    exercise = solutions.get(key)
    correct, feedback = exercise.checker(exercise.solver())
    assert correct, feedback


# ----------------------------------------------------------------------------- notebook 04's lesson measures
def test_width_measures_the_spread_of_the_columns():
    narrow, wide = torch.zeros(1, 1, 28, 28), torch.zeros(1, 1, 28, 28)
    narrow[..., 4:24, 13:15] = 1.0  # two columns: spread 0.5 px
    wide[..., 4:24, 4:24] = 1.0  # twenty columns: spread sqrt((20^2 - 1) / 12) px
    assert nb04.width(narrow).item() == pytest.approx(0.5, abs=1e-4)
    assert nb04.width(wide).item() == pytest.approx(((20**2 - 1) / 12) ** 0.5, abs=1e-3)


def test_label_entropy_is_at_most_ln_10():
    assert nb04.label_entropy(torch.arange(10).repeat(7)) == pytest.approx(2.302585, abs=1e-5)
    assert nb04.label_entropy(torch.zeros(20, dtype=torch.long)) == pytest.approx(0.0)


def test_path_sag_of_orthogonal_codes():
    m = latent.prepare_model("VAE", "vae", cu.VAE(cu.VAEConfig(latent_dim=2, hidden_dims=HIDDEN)),
                             cu.load_mnist("test", limit=20))
    m.codes = torch.tensor([[3.0, 0.0], [0.0, 3.0]])  # two codes of length 3 at right angles
    sag = nb04.path_sag(m, pairs=400)
    assert sag.median_norm == pytest.approx(3.0) and sag.shell == pytest.approx(2 ** 0.5)
    assert sag.midpoint_ratio == pytest.approx(2 ** -0.5, abs=1e-4)  # pairs of one code with itself give 1, others 0.71


def test_label_sweep_and_traversal_reading(models, test_split):
    cvae = models["CVAE (project)"]
    images = nb04.label_sweep(cvae, torch.zeros(cvae.latent_dim))
    assert images.shape == (10, 1, 28, 28)
    assert torch.allclose(images[3:4], cvae.decode(torch.zeros(1, cvae.latent_dim), torch.tensor([3])))
    classifier = cu.DigitClassifier(cu.ClassifierConfig(channels=(4, 8), hidden_dim=16)).eval()
    p7 = nb04.traversal_reading(cvae, classifier, 7, steps=5)
    assert p7.shape == (cvae.latent_dim, 5) and bool(((p7 >= 0) & (p7 <= 1)).all())
    with pytest.raises(ValueError, match="not conditional"):
        nb04.plot_label_sweep([models["VAE"]], test_split, [0])


# ----------------------------------------------------------------------------- notebook 04's exercises
def _late_binding_explorer(m, dims):
    """The classic mistake: every callback sees the loop's last d."""
    z = m.center.clone().reshape(1, -1)
    image = ipywidgets.Image(value=digit_png(m.decode(z)), format="png")
    sliders = []
    for d in dims:
        low, high = m.slider_range(d)
        slider = ipywidgets.FloatSlider(value=0.0, min=low, max=high, step=0.05)

        def on_change(change):
            z[0, d] = change["new"]  # noqa: B023 (the bug this test is about)
            image.value = digit_png(m.decode(z))

        slider.observe(on_change, names="value")
        sliders.append(slider)
    return explorers.MiniExplorer(sliders, image, ipywidgets.VBox(sliders))


def _shared_center_explorer(m, dims):
    """Edits m.center itself: z = m.center.reshape(1, -1) shares its memory."""
    z = m.center.reshape(1, -1)
    image = ipywidgets.Image(value=digit_png(m.decode(z)), format="png")
    sliders = []
    for d in dims:
        low, high = m.slider_range(d)
        slider = ipywidgets.FloatSlider(value=0.0, min=low, max=high, step=0.05)

        def on_change(change, d=d):
            z[0, d] = change["new"]
            image.value = digit_png(m.decode(z))

        slider.observe(on_change, names="value")
        sliders.append(slider)
    return explorers.MiniExplorer(sliders, image, ipywidgets.VBox(sliders))


def test_build_explorer_check_catches_the_usual_mistakes():
    check = cu.solutions.get("04.build-explorer").checker
    correct, feedback = check(_late_binding_explorer)
    assert not correct and "last d" in feedback
    correct, feedback = check(_shared_center_explorer)
    assert not correct and "m.center" in feedback
    assert not check(lambda m, dims: None)[0]
    assert not check("build_explorer")[0]
    prepared = cu.solutions.nb04._prepared("vae", "VAE")
    assert torch.equal(prepared.center, torch.zeros(prepared.latent_dim))  # the check put m.center back


def test_digit_picker_check_needs_the_picked_label():
    check = cu.solutions.get("04.digit-picker").checker
    solution = cu.solutions.get("04.digit-picker").solver()

    def ignores_the_label_after_a_move(m, dims):
        built = solution(m, dims)
        for slider in built.sliders:  # a second callback that redraws with label 0
            slider.observe(lambda change: setattr(built.image, "value", digit_png(
                m.decode(m.center.reshape(1, -1), torch.tensor([0])))), names="value")
        return built

    assert not check(ignores_the_label_after_a_move)[0]
    with pytest.raises(ValueError, match="give the digit labels"):  # exercise 1's explorer decodes without y
        check(cu.solutions.get("04.build-explorer").solver())
    assert not cu.solutions.check("04.digit-picker", cu.solutions.get("04.build-explorer").solver())


def test_measured_exercises_reject_wrong_answers():
    width = cu.solutions.nb04._width_effect()
    weakest = width.dims[-1]
    assert not cu.solutions.get("04.cvae-width").checker(weakest)[0]
    with pytest.raises(ValueError):
        cu.solutions.get("04.cvae-width").checker(99)
    a, b, t = cu.solutions.get("04.ae-hole").solver()
    correct, feedback = cu.solutions.get("04.ae-hole").checker((a, b, 0.0))  # t = 0: the test digit itself
    assert not correct and "less readable" in feedback
    assert not cu.solutions.get("04.ae-hole").checker((a, a, 0.5))[0]  # a digit to itself: no hole


def test_working_uses_the_answer_only_when_it_passes(capsys):
    from course_utils.solutions.nb04 import working

    solution = cu.solutions.get("04.build-explorer").solver()
    assert working("04.build-explorer", solution) is solution
    assert "your answer" in capsys.readouterr().out
    assert working("04.build-explorer", _late_binding_explorer) is not _late_binding_explorer
    assert working("04.build-explorer", ...) is not None
    assert "the course's solution" in capsys.readouterr().out
