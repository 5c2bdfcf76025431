"""models: shapes, value ranges, named outputs, reparameterization, sampling, input checks."""

from __future__ import annotations

import pytest
import torch
from conftest import small_ae, small_classifier, small_cvae, small_vae

import course_utils as cu

B, K = 8, 4  # batch size of x_batch; latent size of the small models
CONDITIONINGS = ["concat", "project"]


def _in_unit_interval(t: torch.Tensor) -> bool:
    return bool(((t >= 0) & (t <= 1)).all())


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float rounding (a BLAS kernel may round rows of one batch differently)."""
    return torch.allclose(a.detach(), b.detach(), rtol=0, atol=1e-6)


def _different(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).detach().abs().max()) > 1e-4


# ----------------------------------------------------------------------------- shapes
def test_autoencoder_shapes_and_ranges(x_batch):
    model = small_ae(latent_dim=K)
    out = model(x_batch)
    assert isinstance(out, cu.AEOutput)
    assert out._fields == ("z", "logits", "x_hat")
    assert out.z.shape == (B, K)
    assert out.logits.shape == out.x_hat.shape == (B, 1, 28, 28)
    assert _in_unit_interval(out.x_hat)
    assert torch.allclose(out.x_hat, torch.sigmoid(out.logits))
    assert torch.equal(model.encode(x_batch), out.z)
    assert torch.equal(model.decode(out.z), out.logits)


def test_autoencoder_accepts_flat_images(x_batch):
    model = small_ae(latent_dim=K)
    assert torch.equal(model(x_batch.flatten(1)).z, model(x_batch).z)


def test_autoencoder_bottleneck_is_linear():
    model = small_ae(latent_dim=K)
    assert isinstance(model.encoder[-1], torch.nn.Linear)  # no ReLU clipping the code


def test_vae_shapes_and_ranges(x_batch):
    model = small_vae(latent_dim=K)
    out = model(x_batch)
    assert isinstance(out, cu.VAEOutput)
    assert out._fields == ("mu", "logvar", "z", "logits", "x_hat")
    for name in ("mu", "logvar", "z"):
        assert getattr(out, name).shape == (B, K)
    assert out.logits.shape == out.x_hat.shape == (B, 1, 28, 28)
    assert _in_unit_interval(out.x_hat)
    posterior = model.encode(x_batch)
    assert isinstance(posterior, cu.Posterior)
    assert torch.equal(posterior.mu, out.mu) and torch.equal(posterior.logvar, out.logvar)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_cvae_shapes_and_ranges(x_batch, y_batch, conditioning):
    model = small_cvae(conditioning, latent_dim=K)
    out = model(x_batch, y_batch)
    assert isinstance(out, cu.VAEOutput)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (B, K)
    assert out.x_hat.shape == (B, 1, 28, 28)
    assert _in_unit_interval(out.x_hat)
    width = K + 10 if conditioning == "concat" else K
    assert model.decoder_input(out.z, y_batch).shape == (B, width)


def test_cvae_decoder_input_is_what_the_docstring_says(y_batch):
    z = torch.randn(B, K)
    onehot = torch.nn.functional.one_hot(y_batch, 10).float()
    concat = small_cvae("concat", latent_dim=K)
    assert torch.equal(concat.decoder_input(z, y_batch), torch.cat([z, onehot], 1))
    project = small_cvae("project", latent_dim=K)
    expected = z + onehot @ project.label_projection.weight.T
    assert torch.allclose(project.decoder_input(z, y_batch), expected)


def test_classifier_shapes(x_batch):
    model = small_classifier()
    logits = model(x_batch)
    assert logits.shape == (B, 10)
    predicted = model.predict(x_batch, batch_size=3)
    assert predicted.shape == (B,)
    assert torch.equal(predicted, logits.argmax(1))
    assert int(predicted.min()) >= 0 and int(predicted.max()) <= 9


# ----------------------------------------------------------------------------- reparameterize
def test_reparameterize_with_pinned_eps_is_the_formula():
    mu = torch.tensor([[0.5, -1.0, 2.0]])
    logvar = torch.tensor([[0.0, 2.0, -3.0]])
    eps = torch.tensor([[1.0, -0.5, 0.25]])
    expected = mu + torch.exp(0.5 * logvar) * eps
    assert torch.allclose(cu.reparameterize(mu, logvar, eps), expected)
    assert torch.allclose(small_vae().reparameterize(mu, logvar, eps), expected)
    # By hand for one coordinate: 2 + exp(-1.5) * 0.25
    assert float(cu.reparameterize(mu, logvar, eps)[0, 2]) == pytest.approx(2 + 0.25 * 0.22313016, rel=1e-6)


def test_reparameterize_with_zero_eps_is_mu():
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    assert torch.equal(cu.reparameterize(mu, logvar, torch.zeros(5, 3)), mu)


def test_reparameterize_gradients_flow_to_mu_and_logvar():
    mu = torch.randn(4, 3, requires_grad=True)
    logvar = torch.randn(4, 3, requires_grad=True)
    eps = torch.randn(4, 3)
    z = cu.reparameterize(mu, logvar, eps)
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))  # dz/dmu = 1
    assert torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)  # dz/dlogvar


def test_reparameterize_draws_fresh_noise_without_eps():
    torch.manual_seed(0)
    mu, logvar = torch.zeros(1000, 2), torch.zeros(1000, 2)
    a, b = cu.reparameterize(mu, logvar), cu.reparameterize(mu, logvar)
    assert not torch.equal(a, b)
    assert abs(float(a.mean())) < 0.15 and abs(float(a.std()) - 1) < 0.1


def test_reparameterize_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        cu.reparameterize(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="eps must have the shape"):
        cu.reparameterize(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 3))


def test_vae_gradients_reach_the_encoder(x_batch):
    model = small_vae()
    out = model(x_batch)
    out.mu.retain_grad()
    out.logvar.retain_grad()
    out.logits.sum().backward()
    assert out.mu.grad is not None and out.mu.grad.abs().sum() > 0
    assert out.logvar.grad is not None and out.logvar.grad.abs().sum() > 0
    assert model.to_logvar.weight.grad.abs().sum() > 0


def test_vae_forward_with_pinned_eps_is_deterministic(x_batch):
    model = small_vae()
    eps = torch.randn(B, K)
    a, b = model(x_batch, eps=eps), model(x_batch, eps=eps)
    assert torch.equal(a.z, b.z) and torch.equal(a.x_hat, b.x_hat)
    assert torch.allclose(a.z, a.mu + torch.exp(0.5 * a.logvar) * eps)


# ----------------------------------------------------------------------------- sampling
def test_vae_sample_shape_range_and_generator():
    model = small_vae()
    images = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 28, 28)
    assert _in_unit_interval(images)
    again = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, again)
    other = model.sample(6, generator=torch.Generator().manual_seed(1))
    assert _different(images, other)


def test_vae_sample_temperature_zero_gives_identical_images():
    model = small_vae()
    images = model.sample(5, temperature=0.0)
    assert all(_same(images[0], image) for image in images)
    assert _same(images[0], torch.sigmoid(model.decode(torch.zeros(1, K)))[0])
    warm = model.sample(5, temperature=1.0)
    assert _different(warm[0], warm[1])


def test_vae_sample_zero_images():
    assert small_vae().sample(0).shape == (0, 1, 28, 28)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_cvae_sample_shape_and_range(conditioning):
    model = small_cvae(conditioning)
    images = model.sample([0, 1, 2, 9], generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 1, 28, 28)
    assert _in_unit_interval(images)
    zero_temperature = model.sample(torch.tensor([3, 3, 3]), temperature=0.0)
    assert _same(zero_temperature[0], zero_temperature[2])


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_cvae_label_changes_the_output_with_z_pinned(conditioning):
    model = small_cvae(conditioning)
    z = torch.randn(1, K).repeat(10, 1)  # the same z for every label
    images = torch.sigmoid(model.decode(z, torch.arange(10)))
    for i in range(10):
        for j in range(i + 1, 10):
            assert _different(images[i], images[j]), f"labels {i} and {j} decode alike"
    same = torch.sigmoid(model.decode(z, torch.full((10,), 4)))
    assert all(_same(same[0], image) for image in same)
    # Through sample(): the same generator seed pins z
    a = model.sample([7, 7], generator=torch.Generator().manual_seed(5))
    b = model.sample([7, 7], generator=torch.Generator().manual_seed(5))
    c = model.sample([1, 2], generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert _different(a[0], c[0]) and _different(a[1], c[1])


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_cvae_forward_label_matters_with_eps_pinned(x_batch, y_batch, conditioning):
    model = small_cvae(conditioning)
    eps = torch.randn(B, K)
    a, b = model(x_batch, y_batch, eps), model(x_batch, y_batch, eps)
    assert torch.equal(a.x_hat, b.x_hat)
    c = model(x_batch, (y_batch + 1) % 10, eps)
    assert all(_different(a.x_hat[i], c.x_hat[i]) for i in range(B))


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "shape", [(B, 28, 28), (B, 3, 28, 28), (1, 28, 28), (28, 28), (B, 783), (B, 1, 32, 32)]
)
def test_wrong_image_shape_raises(shape):
    for model in (small_ae(), small_vae(), small_classifier()):
        with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
            model(torch.rand(*shape))


def test_single_image_error_suggests_unsqueeze():
    with pytest.raises(ValueError, match="unsqueeze"):
        small_vae()(torch.rand(1, 28, 28))


def test_uint8_images_raise_and_say_divide_by_255(x_batch):
    images = (x_batch * 255).to(torch.uint8)
    for model in (small_ae(), small_vae(), small_classifier()):
        with pytest.raises(TypeError, match="255"):
            model(images)
    with pytest.raises(TypeError, match="floating point"):
        small_cvae()(images, torch.zeros(B, dtype=torch.long))


def test_non_tensor_images_raise():
    with pytest.raises(TypeError, match="torch.Tensor"):
        small_vae()([[0.0] * 784])


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_cvae_rejects_bad_labels(x_batch, conditioning):
    model = small_cvae(conditioning)
    z = torch.randn(B, K)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        model(x_batch, torch.full((B,), 10))
    with pytest.raises(ValueError, match=r"0\.\.9"):
        model.decode(z, torch.full((B,), -1))
    with pytest.raises(TypeError, match="integers"):
        model(x_batch, torch.zeros(B))  # float labels
    with pytest.raises(TypeError, match="integers"):
        model.decode(z, torch.zeros(B, dtype=torch.bool))
    with pytest.raises(ValueError, match=f"{B} images but {B - 1} labels"):
        model(x_batch, torch.zeros(B - 1, dtype=torch.long))
    with pytest.raises(ValueError, match=f"{B} images but {B + 1} labels"):
        model.decode(z, torch.zeros(B + 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        model(x_batch, torch.zeros(B, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model(x_batch, [0] * B)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        model.sample([3, 12])
    with pytest.raises(TypeError, match="integers"):
        model.sample([0.5, 1.5])


def test_bad_conditioning_raises():
    with pytest.raises(ValueError, match="concat") as info:
        cu.CVAE(cu.CVAEConfig(hidden_dims=(8,), conditioning="add"))
    assert "'add'" in str(info.value)


def test_wrong_latent_shape_raises():
    with pytest.raises(ValueError, match=f"z must have shape \\(B, {K}\\)"):
        small_vae().decode(torch.zeros(2, K + 1))
    with pytest.raises(ValueError, match="z must have shape"):
        small_ae().decode(torch.zeros(K))
    with pytest.raises(ValueError, match="z must have shape"):
        small_cvae().decode(torch.zeros(2, K + 1), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("temperature", [-0.1, -1, float("nan")])
def test_negative_or_nan_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        small_vae().sample(2, temperature=temperature)
    with pytest.raises(ValueError, match="temperature"):
        small_cvae().sample([0, 1], temperature=temperature)


def test_negative_sample_count_raises():
    with pytest.raises(ValueError, match="number of samples"):
        small_vae().sample(-1)


def test_model_classes_registry_rebuilds_every_model():
    from course_utils.models import MODEL_CLASSES

    assert set(MODEL_CLASSES) == {"AutoEncoder", "VAE", "CVAE", "DigitClassifier"}
    for cls, config_cls in MODEL_CLASSES.values():
        assert isinstance(cls(config_cls()), cls)
