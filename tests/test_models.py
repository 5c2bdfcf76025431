"""models: shapes, value ranges, named outputs, reparameterization, sampling, input checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import small_ae, small_classifier, small_cvae, small_vae
from torch import nn

import course_utils as cu

B, K = 8, 4  # batch size of x_batch; latent size of the small models
CONDITIONINGS = ["concat", "project", "prior", "project-relu"]


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
    width = K + 10 if conditioning in ("concat", "prior") else K
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


def test_classifier_computes_channels_last_and_reads_channels_first_weights(x_batch):
    """Its convolution weights are stored channels-last (fast max pooling on a CPU); a state dict
    saved channels-first, as every checkpoint before that was, loads and gives the same logits."""
    model = small_classifier()
    assert all(conv.weight.is_contiguous(memory_format=torch.channels_last) for conv in model.features[::3])
    feature_maps = model.features(x_batch.reshape(-1, 1, 28, 28))
    assert feature_maps.is_contiguous(memory_format=torch.channels_last) and not feature_maps.is_contiguous()
    channels_first = small_classifier(seed=1).to(memory_format=torch.contiguous_format)
    assert channels_first.features[3].weight.is_contiguous()
    model.load_state_dict(channels_first.state_dict())
    assert model.features[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(x_batch), channels_first(x_batch), atol=1e-5)


def test_classifier_pools_before_its_relu_with_the_same_logits_and_gradients(x_batch):
    """max(relu(a), relu(b), ...) = relu(max(a, b, ...)): pooling first gives the same function and
    gradients with the ReLU on a quarter of the values (its forward and backward were about a quarter
    of a classifier step's CPU time); the convolutions keep their places, so checkpoints load."""
    model = small_classifier()
    kinds = [type(layer) for layer in model.features]
    assert kinds == [nn.Conv2d, nn.MaxPool2d, nn.ReLU] * 2
    conv1, conv2 = model.features[0], model.features[3]

    def conv_relu_pool(x: torch.Tensor) -> torch.Tensor:  # the textbook order
        x = F.max_pool2d(F.relu(conv1(x.reshape(-1, 1, 28, 28))), 2)
        return F.max_pool2d(F.relu(conv2(x)), 2)

    model.eval()
    torch.testing.assert_close(model.features(x_batch.reshape(-1, 1, 28, 28)), conv_relu_pool(x_batch),
                               rtol=0, atol=0)
    conv_relu_pool(x_batch).square().sum().backward()
    textbook = [p.grad.clone() for p in model.features.parameters()]
    model.zero_grad()
    model.features(x_batch.reshape(-1, 1, 28, 28)).square().sum().backward()
    for ours, theirs in zip(model.features.parameters(), textbook):
        torch.testing.assert_close(ours.grad, theirs)


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


# ----------------------------------------------------------------------------- the learned prior, seed 003's design
def _prior_cvae(seed: int = 0) -> cu.CVAE:
    """A "prior" CVAE whose prior tables are moved away from N(0, I), as training would."""
    model = small_cvae("prior", seed=seed)
    with torch.no_grad():
        model.prior_mu.normal_(0, 2, generator=torch.Generator().manual_seed(seed))
        model.prior_logvar.normal_(0, 0.5, generator=torch.Generator().manual_seed(seed + 1))
    return model


def test_learned_prior_starts_at_the_standard_normal_and_has_one_row_per_label(y_batch):
    model = small_cvae("prior")
    prior = model.prior(y_batch)
    assert prior.mu.shape == prior.logvar.shape == (B, K)
    assert not prior.mu.any() and not prior.logvar.any()
    model = _prior_cvae()
    prior = model.prior(y_batch)
    torch.testing.assert_close(prior.mu, model.prior_mu[y_batch].detach())
    torch.testing.assert_close(prior.logvar, model.prior_logvar[y_batch].detach())
    assert not small_cvae("concat").prior(y_batch).mu.any()  # N(0, I) for the other variants


def test_learned_prior_loss_is_the_two_gaussian_kl_and_equals_the_standardized_elbo(x_batch, y_batch):
    from course_utils.models import _elbo_parts

    model = _prior_cvae()
    eps = torch.randn(B, K, generator=torch.Generator().manual_seed(0))
    parts = model.loss(x_batch, y_batch, beta=2.0, eps=eps)
    q, p = model.encode_u(x_batch, y_batch), model.prior(y_batch)
    kl = cu.losses.gaussian_kl_between(q.mu, q.logvar, p.mu, p.logvar).mean()
    torch.testing.assert_close(parts.kl, kl)
    torch.testing.assert_close(parts.loss, parts.recon + 2.0 * kl)
    # The interface's standardized z gives the same bound with notebook 02's KL against N(0, I)
    same = _elbo_parts(model(x_batch, y_batch, eps=eps), x_batch, 2.0)
    for a, b in zip(parts, same, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    assert float(kl.detach()) > 1.0  # the moved prior is far from N(0, I): the check is not trivially 0 = 0


def test_learned_prior_decodes_u_and_samples_from_the_labels_prior(x_batch, y_batch):
    model = _prior_cvae()
    q_u, q_z = model.encode_u(x_batch, y_batch), model.encode(x_batch, y_batch)
    p = model.prior(y_batch)
    # decode(z, y) reads u = mu_y + sigma_y z: the standardized mean maps back to q(u)'s mean
    torch.testing.assert_close(model.decoder_input(q_z.mu, y_batch)[:, :K], q_u.mu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(q_z.logvar, q_u.logvar - p.logvar)
    # at temperature 0 a sample is the label's prior mean, decoded with the label
    labels = torch.tensor([2, 7])
    expected = torch.sigmoid(model.decoder(torch.cat([model.prior_mu[labels], torch.eye(10)[labels]], 1)))
    torch.testing.assert_close(model.sample(labels, temperature=0.0).flatten(1), expected.detach())


def test_seed_003_design_has_a_label_blind_encoder_and_non_negative_offsets(x_batch, y_batch):
    model = small_cvae("project-relu")
    a, b = model.encode(x_batch, y_batch), model.encode(x_batch, (y_batch + 3) % 10)
    assert torch.equal(a.mu, b.mu) and torch.equal(a.logvar, b.logvar)
    assert model.encoder[0][0].in_features == 784
    z = torch.zeros(10, K)
    assert (model.decoder_input(z, torch.arange(10)) >= 0).all()
    assert model.label_projection.bias is not None


def test_projection_init_std_none_keeps_pytorchs_init():
    torch.manual_seed(0)
    default = cu.CVAE(cu.CVAEConfig(latent_dim=K, hidden_dims=(8,), conditioning="project", projection_init_std=None))
    bound = 1 / 10**0.5  # kaiming-uniform bound of nn.Linear(10, k): 1 / sqrt(fan_in)
    assert float(default.label_projection.weight.detach().abs().max()) <= bound
    wide = small_cvae("project")
    assert float(wide.label_projection.weight.detach().std()) > 1.5  # the course's std 3
