"""lessons.nb03_conditioning (notebook 03): the identity, sizes and ranks, statistics, probes, figures."""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import pytest
import torch
from conftest import small_cvae

import course_utils as cu
from course_utils import solutions
from course_utils.lessons import nb03_conditioning as cd
from course_utils.lessons import nb03_figures as cdf


def test_concat_is_a_per_class_bias_on_an_untrained_layer():
    model = small_cvae("concat", latent_dim=4)
    check = cd.check_concat_identity(cd.first_decoder_layer(model), latent_dim=4)
    assert check.max_abs_diff < 1e-5
    assert check.split.W_z.shape == (32, 4) and check.split.W_y.shape == (32, 10)


def test_the_identity_splits_the_label_block_out_of_the_layer():
    model = small_cvae("concat", latent_dim=4)
    layer = cd.first_decoder_layer(model)
    W_z, W_y = cd.split_label_weights(layer, latent_dim=4)
    torch.testing.assert_close(torch.cat([W_z, W_y], dim=1), layer.weight)
    with pytest.raises(TypeError, match="nn.Linear"):
        cd.first_decoder_layer(type("Fake", (), {"decoder": [torch.nn.ReLU()]})())


def test_parameter_counts_differ_only_by_the_label_weights():
    concat, project = cd.parameter_counts(small_cvae("concat", 4)), cd.parameter_counts(small_cvae("project", 4))
    assert concat.encoder == project.encoder
    assert concat.label_weights == 32 * 10 and project.label_weights == 4 * 10
    assert concat.total - project.total == 32 * 10 - 4 * 10
    assert sum(concat.as_dict().values()) == 2 * concat.total


def test_label_effect_ranks_and_offsets():
    torch.manual_seed(0)
    concat, project = small_cvae("concat", 4), small_cvae("project", 4)
    assert cd.matrix_rank(cd.label_effect(concat)) == 10  # ten independent biases in a 32-wide layer
    assert cd.matrix_rank(cd.label_effect(project)) == 4  # pushed through a 4-D latent space
    offsets = cd.label_offsets(project)
    assert offsets.shape == (10, 4)
    torch.testing.assert_close(offsets, project.label_projection.weight.T)
    with pytest.raises(ValueError, match="project"):
        cd.label_offsets(concat)
    crowding = cd.offset_crowding(project)
    assert crowding.closest == pytest.approx(float(crowding.nearest.min()))
    assert (crowding.nearest_digit != torch.arange(10)).all()


def test_summaries_and_the_gap_rule():
    s = cd.summarize([1.0, 2.0, 3.0])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    assert math.isnan(cd.summarize([5.0]).std)

    def run(variant: str, seed: int, acc: float) -> cd.RunResult:
        return cd.RunResult(f"cvae-{variant}-{seed}", variant, seed, 8, 100, 1.0, 110.0 + seed, acc)

    clear = cd.comparison_table([run("concat", s, 0.90 + 0.001 * s) for s in range(3)]
                                + [run("project", s, 0.99 + 0.001 * s) for s in range(3)])
    gap = cd.compare_variants(clear, "label_accuracy", higher_is_better=True)
    assert gap.leader == "project" and gap.clear is True and gap.gap == pytest.approx(0.09)
    assert gap.test.verdict == "clear" and "p < 0.001: clear" in cd.describe_gap(gap)
    noisy = cd.comparison_table([run("concat", s, [0.90, 0.99, 0.95][s]) for s in range(3)]
                                + [run("project", s, [0.96, 0.92, 0.97][s]) for s in range(3)])
    assert cd.compare_variants(noisy, "label_accuracy", True).clear is False
    assert "label accuracy" in str(noisy)


def test_latent_probe_reads_a_digit_only_when_the_code_carries_it():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (2000,), generator=g)
    carries = torch.nn.functional.one_hot(y, 10).float() * 3 + 0.3 * torch.randn(2000, 10, generator=g)
    blind = torch.randn(2000, 10, generator=g)
    assert cd.latent_probe(carries, y, steps=200).accuracy > 0.95
    assert cd.latent_probe(blind, y, steps=200).accuracy < 0.2


def test_posterior_gap_is_zero_for_the_prior_and_grows_with_an_offset():
    g = torch.Generator().manual_seed(1)
    y = torch.arange(10).repeat(500)
    mu = torch.randn(5000, 2, generator=g) * 0.99
    logvar = torch.full((5000, 2), math.log(0.02))  # Var(mu) + sigma^2 = 1: the prior
    at_prior = cd.posterior_gap(mu, logvar, y)
    assert at_prior.kl.abs().max() < 0.05 and at_prior.active_dims == 2
    shifted = cd.posterior_gap(mu + 2.0, logvar, y)
    assert (shifted.kl > 1.5).all() and (shifted.mean_norm > 2.5).all()


def test_samples_style_transfer_and_hardest_digits(test_small):
    model = small_cvae("project", 4)
    samples = cd.per_digit_samples(model, n_per_digit=3)
    assert samples.images.shape == (30, 1, 28, 28) and samples.z.shape == (3, 4)
    grids = cd.style_transfer(model, test_small.x[:2], test_small.y[:2])
    assert grids.shape == (2, 10, 1, 28, 28)
    confusion = torch.eye(10, dtype=torch.long) * 10
    confusion[7, 7], confusion[7, 1] = 4, 6
    hardest = cd.hardest_digits(confusion, top=1)[0]
    assert (hardest.digit, hardest.confused_with) == (7, 1)
    assert hardest.accuracy == pytest.approx(0.4) and hardest.confused_share == pytest.approx(0.6)


def test_posterior_means_use_the_true_labels(test_small):
    model = small_cvae("concat", 4)
    mu, logvar = cd.posterior_means(model, test_small)
    with torch.no_grad():
        torch.testing.assert_close(mu, model.encode(test_small.x, test_small.y).mu)
    assert logvar.shape == mu.shape == (len(test_small), 4)


# ----------------------------------------------------------------------------- exercises
@pytest.mark.parametrize("key", ["03.identity-fresh-layer", "03.more-parameters", "03.label-rank"])
def test_nb03_solutions_pass_their_checks(key: str) -> None:
    exercise = solutions.get(key)
    correct, feedback = exercise.checker(exercise.solver())
    assert correct, feedback


def test_nb03_checks_catch_wrong_answers() -> None:
    wrong_table = solutions.get("03.identity-fresh-layer").checker(torch.zeros(10, 4))
    assert not wrong_table[0]
    assert not solutions.get("03.more-parameters").checker({"equal_at": 8, "more_at_300": "project"})[0]
    assert not solutions.get("03.more-parameters").checker({"equal_at": 256, "more_at_300": "concat"})[0]
    assert not solutions.get("03.more-parameters").checker("project")[0]


def test_the_solutions_registry_has_every_notebook():
    assert {key.split(".")[0] for key in solutions.keys()} == {"01", "02", "03", "04"}
    assert isinstance(cu.solutions.get("03.label-rank"), solutions.Exercise)


def test_the_learned_prior_variant_in_the_counts_and_the_label_effect():
    model = small_cvae("prior", 4)
    with torch.no_grad():
        model.prior_mu.normal_(0, 1, generator=torch.Generator().manual_seed(0))
    counts, concat = cd.parameter_counts(model), cd.parameter_counts(small_cvae("concat", 4))
    assert counts.label_weights == 32 * 10 + 2 * 10 * 4  # W_y plus the prior's two tables
    assert counts.total == concat.total + 2 * 10 * 4 and counts.encoder == concat.encoder
    W_z, W_y = cd.split_label_weights(cd.first_decoder_layer(model), 4)
    torch.testing.assert_close(cd.label_effect(model), W_y + W_z @ model.prior_mu.detach().T)
    seed003 = cd.parameter_counts(small_cvae("project-relu", 4))
    assert seed003.label_weights == 4 * 10 + 4 and seed003.encoder == concat.encoder - 10 * 32  # no y in the encoder


def test_frontier_names_every_model_once_and_no_two_names_overlap():
    points = json.loads((cu.course_root() / "benchmarks" / "cvae_frontier.json").read_text())["points"]
    fig = cdf.plot_frontier(points, chosen=points[0])
    renderer = fig.canvas.get_renderer()
    names = [t for t in fig.axes[0].texts]
    assert sorted(t.get_text() for t in names) == sorted({cdf.frontier_label(p) for p in points})
    boxes = [t.get_window_extent(renderer) for t in names]
    overlapping = [(names[i].get_text(), names[j].get_text()) for i in range(len(boxes))
                   for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    assert not overlapping
    plt.close(fig)
