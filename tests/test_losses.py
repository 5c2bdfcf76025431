"""losses: closed forms against torch.distributions and Monte Carlo, the ELBO, IWAE, beta."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import small_ae, small_classifier, small_cvae, small_vae
from torch.distributions import Bernoulli, Normal, kl_divergence

import course_utils as cu


@pytest.fixture
def posterior() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(6, 5, generator=generator, dtype=torch.float64) * 1.5
    logvar = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    return mu, logvar


@pytest.fixture(scope="module")
def trained_vae(train_small) -> cu.VAE:
    """A small VAE trained for a few epochs, so its posterior is not just the prior."""
    model = small_vae(latent_dim=4)
    cu.fit(model, train_small, None, cu.TrainConfig(epochs=3, batch_size=64), progress=False)
    return model


# ----------------------------------------------------------------------------- KL
def test_gaussian_kl_matches_torch_distributions(posterior):
    mu, logvar = posterior
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = kl_divergence(q, p).sum(1)
    kl = cu.gaussian_kl(mu, logvar)
    assert kl.shape == (6,)
    torch.testing.assert_close(kl, expected)


def test_gaussian_kl_is_zero_only_at_the_prior(posterior):
    zeros = torch.zeros(3, 4)
    assert torch.equal(cu.gaussian_kl(zeros, zeros), torch.zeros(3))
    mu, logvar = posterior
    assert bool((cu.gaussian_kl(mu, logvar) > 0).all())


def test_gaussian_kl_matches_a_monte_carlo_estimate(posterior):
    mu, logvar = posterior
    samples = 20_000
    generator = torch.Generator().manual_seed(1)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    eps = torch.randn(samples, *mu.shape, generator=generator, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * eps  # (S, B, D) draws from q
    log_ratio = (q.log_prob(z) - p.log_prob(z)).sum(-1)  # (S, B)
    estimate = log_ratio.mean(0)
    standard_error = log_ratio.std(0) / math.sqrt(samples)
    kl = cu.gaussian_kl(mu, logvar)
    assert bool(((estimate - kl).abs() < 4 * standard_error).all()), (estimate, kl, standard_error)


def test_log_normal_matches_torch_distributions(posterior):
    mu, logvar = posterior
    z = torch.randn_like(mu)
    expected = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    torch.testing.assert_close(cu.log_normal(z, mu, logvar), expected)


# ----------------------------------------------------------------------------- reconstruction
def test_bernoulli_nll_equals_the_manual_sum(x_batch):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(x_batch.shape, generator=generator) * 3
    p = torch.sigmoid(logits.double())
    x = x_batch.double()  # grey levels in [0, 1], not only 0/1
    manual = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1)
    nll = cu.bernoulli_nll(logits, x_batch)
    assert nll.shape == (x_batch.shape[0],)
    torch.testing.assert_close(nll.double(), manual, rtol=1e-5, atol=1e-3)


def test_bernoulli_nll_on_binary_pixels_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1, 28, 28, generator=generator)
    x = (torch.rand(4, 1, 28, 28, generator=generator) > 0.5).float()
    expected = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(cu.bernoulli_nll(logits, x), expected)


def test_bernoulli_nll_is_stable_for_huge_logits():
    logits = torch.tensor([[100.0, -100.0, 100.0, -100.0]])
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    nll = cu.bernoulli_nll(logits, x)
    assert torch.isfinite(nll).all()
    assert float(nll) == pytest.approx(200.0, rel=1e-4)  # two confident mistakes of 100 nats each


def test_gaussian_nll_matches_torch_distributions(x_batch):
    x_hat = torch.rand_like(x_batch)
    for sigma in (1.0, 0.3):
        expected = -Normal(x_hat, sigma).log_prob(x_batch).flatten(1).sum(1)
        torch.testing.assert_close(cu.gaussian_nll(x_hat, x_batch, sigma), expected, rtol=1e-5, atol=1e-3)


# ----------------------------------------------------------------------------- model.loss
def test_model_loss_is_the_negative_elbo_for_a_vae(x_batch):
    model = small_vae()
    torch.manual_seed(3)
    parts = model.loss(x_batch, None)
    torch.manual_seed(3)
    mu, logvar = model.encode(x_batch)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = cu.bernoulli_nll(model.decode(z), x_batch).mean()
    kl = cu.gaussian_kl(mu, logvar).mean()
    assert isinstance(parts, cu.LossParts)
    torch.testing.assert_close(parts.recon, recon)
    torch.testing.assert_close(parts.kl, kl)
    torch.testing.assert_close(parts.loss, recon + kl)


@pytest.mark.parametrize("model_maker", [small_vae, lambda: small_cvae("project")])
def test_model_loss_beta_weights_only_the_kl(x_batch, y_batch, model_maker):
    model = model_maker()
    results = {}
    for beta in (0.0, 0.5, 1.0, 4.0):
        torch.manual_seed(7)  # the same reparameterization noise for every beta
        results[beta] = model.loss(x_batch, y_batch, beta=beta)
    base = results[1.0]
    assert float(base.kl.detach()) > 0
    for beta, parts in results.items():
        torch.testing.assert_close(parts.recon, base.recon)
        torch.testing.assert_close(parts.kl, base.kl)
        torch.testing.assert_close(parts.loss, parts.recon + beta * parts.kl)
    torch.testing.assert_close(results[4.0].loss - results[0.0].loss, 4.0 * base.kl, rtol=0, atol=1e-3)


def test_model_loss_beta_changes_the_gradient(x_batch):
    grads = {}
    for beta in (0.0, 4.0):
        model = small_vae()
        torch.manual_seed(7)
        model.loss(x_batch, None, beta=beta).loss.backward()
        grads[beta] = model.to_logvar.weight.grad.clone()
    assert not torch.allclose(grads[0.0], grads[4.0])


def test_model_loss_for_the_autoencoder_is_mse(x_batch):
    model = small_ae()
    for beta in (0.0, 1.0, 4.0):
        parts = model.loss(x_batch, None, beta=beta)
        expected = F.mse_loss(model(x_batch).x_hat, x_batch)
        torch.testing.assert_close(parts.loss, expected)
        torch.testing.assert_close(parts.recon, expected)
        assert float(parts.kl) == 0.0


def test_the_classifier_loss_is_cross_entropy_and_needs_labels(x_batch, y_batch):
    classifier = small_classifier()
    parts = classifier.loss(x_batch, y_batch)
    torch.testing.assert_close(parts.loss, F.cross_entropy(classifier(x_batch), y_batch))
    with pytest.raises(ValueError, match="labels"):
        classifier.loss(x_batch, None)


def test_a_cvae_loss_without_labels_says_so(x_batch):
    with pytest.raises(ValueError, match="needs the digit labels"):
        small_cvae("concat").loss(x_batch, None)


# ----------------------------------------------------------------------------- IWAE
def test_importance_sampled_nll_k1_is_the_formula_with_pinned_noise(trained_vae, x_batch):
    nll = cu.importance_sampled_nll(trained_vae, x_batch, k=1, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        mu, logvar = trained_vae.encode(x_batch)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(11))
        z = mu + torch.exp(0.5 * logvar) * eps
        log_px_z = -cu.bernoulli_nll(trained_vae.decode(z), x_batch)
        log_pz = Normal(0.0, 1.0).log_prob(z).sum(1)
        log_qz = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1)
    torch.testing.assert_close(nll, -(log_px_z + log_pz - log_qz), rtol=1e-5, atol=1e-3)


def test_importance_sampled_nll_k1_equals_the_negative_elbo_in_expectation(trained_vae, test_small):
    x = test_small.x[:16]
    repeats = 300
    x_repeated = x.repeat(repeats, 1, 1, 1)  # (R * 16, 1, 28, 28)
    single = cu.importance_sampled_nll(trained_vae, x_repeated, k=1, generator=torch.Generator().manual_seed(0))
    single = single.reshape(repeats, 16).mean(1)  # (R,) one draw per image, averaged over images
    with torch.no_grad():  # negative ELBO: Monte Carlo reconstruction + closed-form KL
        mu, logvar = trained_vae.encode(x_repeated)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
        recon = cu.bernoulli_nll(trained_vae.decode(mu + torch.exp(0.5 * logvar) * eps), x_repeated)
        neg_elbo = (recon + cu.gaussian_kl(mu, logvar)).reshape(repeats, 16).mean(1)  # (R,)
    difference = float(single.mean() - neg_elbo.mean())
    standard_error = math.sqrt((single.var() + neg_elbo.var()) / repeats)
    assert abs(difference) < 4 * standard_error, (difference, standard_error)


def test_importance_sampled_nll_tightens_with_more_samples(trained_vae, test_small):
    x = test_small.x[:64]
    generator = torch.Generator().manual_seed(0)
    one = torch.stack([cu.importance_sampled_nll(trained_vae, x, k=1, generator=generator) for _ in range(20)])
    many = torch.stack([cu.importance_sampled_nll(trained_vae, x, k=50, generator=generator) for _ in range(2)])
    assert one.shape == (20, 64) and many.shape == (2, 64)
    # IWAE: E[-log p_hat_k] decreases with k towards -log p(x)
    assert float(many.mean()) < float(one.mean())
    assert float(many.mean(0).lt(one.mean(0)).float().mean()) > 0.8  # for most images, not just on average


def test_importance_sampled_nll_works_for_a_cvae(x_batch, y_batch):
    nll = cu.importance_sampled_nll(small_cvae("concat"), x_batch, y_batch, k=3)
    assert nll.shape == (x_batch.shape[0],)
    assert torch.isfinite(nll).all()


def test_importance_sampled_nll_rejects_k_below_one(x_batch):
    with pytest.raises(ValueError, match="k must be at least 1"):
        cu.importance_sampled_nll(small_vae(), x_batch, k=0)


def test_kl_between_two_diagonal_gaussians_matches_torch_distributions(posterior):
    mu, logvar = posterior
    generator = torch.Generator().manual_seed(1)
    prior_mu = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    prior_logvar = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(prior_mu, torch.exp(0.5 * prior_logvar))
    expected = kl_divergence(q, p).sum(1)
    torch.testing.assert_close(cu.losses.gaussian_kl_between(mu, logvar, prior_mu, prior_logvar), expected)
    # against N(0, I) it is notebook 02's closed form; against itself it is 0
    zeros = torch.zeros_like(mu)
    torch.testing.assert_close(cu.losses.gaussian_kl_between(mu, logvar, zeros, zeros), cu.gaussian_kl(mu, logvar))
    torch.testing.assert_close(cu.losses.gaussian_kl_between(mu, logvar, mu, logvar), torch.zeros(6, dtype=mu.dtype))
    # one prior row broadcasts against every posterior row
    row = cu.losses.gaussian_kl_between(mu, logvar, prior_mu[:1], prior_logvar[:1])
    torch.testing.assert_close(row, kl_divergence(q, Normal(prior_mu[:1], torch.exp(0.5 * prior_logvar[:1]))).sum(1))


def test_kl_is_unchanged_when_both_gaussians_shift_and_scale_together(posterior):
    """The fact behind notebook 03: project is a learned prior, and the standardized code of the prior CVAE."""
    mu, logvar = posterior
    generator = torch.Generator().manual_seed(2)
    shift = torch.randn(6, 5, generator=generator, dtype=torch.float64) * 3
    log_scale2 = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    before = cu.gaussian_kl(mu, logvar)
    after = cu.losses.gaussian_kl_between(mu * torch.exp(0.5 * log_scale2) + shift, logvar + log_scale2,
                                          shift, log_scale2)
    torch.testing.assert_close(after, before)
