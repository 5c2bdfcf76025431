"""lessons.nb02_vae (notebook 02): the ELBO identity, the Monte Carlo KL, gradient-estimator variances, latent maps."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import small_vae

import course_utils as cu
from course_utils import solutions
from course_utils.lessons import nb02_vae as vm


def test_linear_gaussian_elbo_identity() -> None:
    toy = vm.LinearGaussian(w=1.5, b=-0.3, s=0.7)
    x = torch.tensor([0.4, -2.0, 3.0], dtype=torch.float64)
    posterior = toy.posterior(x)
    q = vm.Gaussian1D(torch.tensor([0.0, 1.0, -0.5], dtype=torch.float64),
                      torch.tensor([-1.0, 0.5, -3.0], dtype=torch.float64))
    gap = toy.log_marginal(x) - toy.elbo(x, *q)
    assert torch.allclose(gap, vm.gaussian_kl_1d(q, posterior), atol=1e-12)
    assert torch.allclose(toy.elbo(x, *posterior), toy.log_marginal(x), atol=1e-12)
    z = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    grid = torch.trapezoid(toy.log_joint(x[:1], z).exp(), z).log()
    assert torch.allclose(grid, toy.log_marginal(x[:1]), atol=1e-8)


def test_monte_carlo_kl_matches_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 3, generator=g, dtype=torch.float64)
    est = vm.monte_carlo_kl(mu, logvar, 50_000, generator=g)
    assert est.estimate.shape == (5,) and est.n_samples == 50_000
    z_score = (est.estimate - cu.gaussian_kl(mu, logvar)) / est.standard_error
    assert z_score.abs().max() < 4.5
    with pytest.raises(ValueError):
        vm.monte_carlo_kl(mu[0], logvar[0])


@pytest.mark.parametrize(("mu", "sigma"), [(1.0, 1.0), (0.5, 0.3), (-2.0, 1.5)])
def test_gradient_estimators_unbiased_with_derived_variances(mu: float, sigma: float) -> None:
    r = vm.gradient_estimator_variance(mu, sigma, 200_000, generator=torch.Generator().manual_seed(1))
    exact = vm.exact_square_variances(mu, sigma)
    assert r.exact == 2 * mu
    assert abs(r.reparam_mean - r.exact) < 4 * math.sqrt(exact.reparam / r.n_samples)
    assert abs(r.score_mean - r.exact) < 4 * math.sqrt(exact.score / r.n_samples)
    assert r.reparam_variance == pytest.approx(exact.reparam, rel=0.05)
    assert r.score_variance == pytest.approx(exact.score, rel=0.15)
    assert r.ratio == pytest.approx(r.score_variance / r.reparam_variance)


def test_empty_cells_and_grid() -> None:
    g = torch.Generator().manual_seed(2)
    filled = torch.randn(20_000, 2, generator=g)
    assert vm.empty_cell_share(filled) == 0.0
    streak = torch.stack([torch.linspace(-2, 2, 5000), torch.zeros(5000)], dim=1)
    assert vm.empty_cell_share(streak) > 0.9
    fit = vm.fit_gaussian(filled * torch.tensor([3.0, 0.5]) + 1.0)
    codes = vm.gaussian_grid_codes(5, fit=fit)
    assert codes.shape == (25, 2)
    assert torch.allclose(codes.mean(0), fit.mean, atol=1e-5)  # the grid is symmetric about the mean


def test_trained_model_helpers(train_small) -> None:
    vae = small_vae(latent_dim=3)
    x = train_small.x[:64]
    nll = vm.prior_sampled_nll(vae, x[:4], k=300, generator=torch.Generator().manual_seed(0), chunk=128)
    assert nll.shape == (4,) and torch.isfinite(nll).all()
    grid = vm.temperature_samples(vae, (0.5, 1.0), n=3)
    assert grid.images.shape == (6, 1, 28, 28) and grid.temperatures == (0.5, 1.0)
    # the same noise for each temperature: T = 0 would give the decoded origin in every column
    flat = vm.temperature_samples(vae, (0.0,), n=2).images
    assert torch.allclose(flat[0], flat[1])


def test_sample_quality_ranges() -> None:
    torch.manual_seed(0)
    classifier = cu.DigitClassifier()
    images = torch.rand(20, 1, 28, 28)
    q = vm.sample_quality(images, classifier)
    assert 0 <= q.confident_share <= 1 and 0 < q.mean_confidence <= 1
    assert q.diversity > 0 and 0 <= q.class_entropy_bits <= math.log2(10) + 1e-9


@pytest.mark.parametrize("key", ["02.gaussian-kl", "02.reparameterize", "02.neg-elbo", "02.temperature", "02.beta"])
def test_nb02_solutions_pass_their_checks(key: str) -> None:
    exercise = solutions.get(key)
    correct, feedback = exercise.checker(exercise.solver())
    assert correct, feedback


def test_nb02_checks_catch_the_classic_mistakes() -> None:
    wrong_sigma = solutions.get("02.reparameterize").checker(lambda mu, logvar, eps: mu + logvar.exp() * eps)
    assert not wrong_sigma[0] and "exp(0.5 * logvar)" in wrong_sigma[1]
    no_sum = solutions.get("02.gaussian-kl").checker(lambda mu, logvar: -0.5 * (1 + logvar - mu**2 - logvar.exp()))
    assert not no_sum[0] and "dim=1" in no_sum[1]
    assert not solutions.get("02.temperature").checker("a")[0]
    assert not solutions.get("02.beta").checker("z")[0]


def test_box_cells_and_nearest_code_ratio() -> None:
    g = torch.Generator().manual_seed(3)
    uniform = torch.rand(20_000, 2, generator=g) * 4 - 2
    low, high = torch.tensor([-2.0, -2.0]), torch.tensor([2.0, 2.0])
    assert vm.empty_box_cell_share(uniform, low, high) == 0.0
    corner = torch.rand(5000, 2, generator=g) - 2  # fills only [-2, -1]^2
    assert vm.empty_box_cell_share(corner, low, high) == pytest.approx(1 - 1 / 16)
    codes, test_codes = torch.randn(4000, 2, generator=g), torch.randn(1000, 2, generator=g)
    assert vm.nearest_code_ratio(torch.randn(1000, 2, generator=g), codes, test_codes) == pytest.approx(1.0, abs=0.2)
    assert vm.nearest_code_ratio(torch.randn(1000, 2, generator=g) + 10, codes, test_codes) > 10


def test_radius_by_temperature_shell() -> None:
    g = torch.Generator().manual_seed(4)
    codes = torch.randn(5000, 16, generator=g)
    stats = vm.radius_by_temperature(codes, (0.5, 1.0, 1.5), n=2000)
    assert [s.temperature for s in stats] == [0.5, 1.0, 1.5]
    assert stats[1].median_radius == pytest.approx(4.0, rel=0.1)  # sqrt(16)
    inside = [s.share_of_codes_inside for s in stats]
    assert inside[0] < 0.01 and 0.3 < inside[1] < 0.7 and inside[2] > 0.7


def test_linear_grid_matches_the_quantile_grid_order_and_two_grids_plot() -> None:
    linear = vm.linear_grid_codes(5, half_width=4.0)
    assert linear.shape == (25, 2)
    assert linear[0].tolist() == [-4.0, 4.0] and linear[4].tolist() == [4.0, 4.0] and linear[-1].tolist() == [4.0, -4.0]
    quantile = vm.gaussian_grid_codes(5)
    assert torch.equal(torch.sign(linear), torch.sign(quantile))  # the same corners, in the same order
    fig = vm.plot_two_grids(small_vae(latent_dim=2).decode, {"linear": linear, "quantile": quantile}, title="t")
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["linear", "quantile"]


def test_train_epoch_solution_passes_and_a_per_pixel_mean_fails(monkeypatch) -> None:
    import torch.nn.functional as F

    monkeypatch.setenv("COURSE_FAST", "1")  # one pass over 2,000 images: 16 steps
    exercise = solutions.get("02.train-epoch")
    correct, feedback = exercise.checker(exercise.solver())
    assert correct, feedback

    def per_pixel_mean(model, data, batch_size=128, lr=1e-3, seed=0):
        out = model(data.x[:batch_size])
        loss = F.binary_cross_entropy_with_logits(out.logits, data.x[:batch_size])
        return [float(loss.detach())] * math_steps(len(data), batch_size)

    def math_steps(n: int, b: int) -> int:
        return -(-n // b)

    wrong = exercise.checker(per_pixel_mean)
    assert not wrong[0] and "784" in wrong[1]


def test_kl_general_solution_passes_and_catches_the_usual_slips() -> None:
    exercise = solutions.get("02.kl-general")
    assert exercise.checker(exercise.solver())[0]
    ignores_prior = exercise.checker(lambda mu, lv, pm, plv: cu.gaussian_kl(mu, lv))
    assert not ignores_prior[0] and "prior" in ignores_prior[1]
    solve = exercise.solver()
    swapped = exercise.checker(lambda mu, lv, pm, plv: solve(pm, plv, mu, lv))
    assert not swapped[0] and "swapped" in swapped[1]
    no_sum = exercise.checker(lambda mu, lv, pm, plv: 0.5 * (plv - lv + (lv.exp() + (mu - pm) ** 2) / plv.exp() - 1))
    assert not no_sum[0] and "dim=1" in no_sum[1]
