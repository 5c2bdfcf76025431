"""Every checkpoint the notebooks load ships in checkpoints/, loads, and still meets its figures.

Two checks per model: the headline metric recomputed now on the full test set equals the
one stored in the checkpoint when it was trained (so the file and the code still agree),
and, where the README promises a target (course_utils.recipes.TARGETS), it is met.
"""

from __future__ import annotations

import operator

import pytest

import course_utils as cu
from course_utils.recipes import TARGETS, course_names, headline_metric

CHECKPOINTS = cu.course_root() / "checkpoints"
COMPARE = {">=": operator.ge, "<=": operator.le}


@pytest.fixture(scope="module")
def test_set() -> cu.MNISTSplit:
    return cu.load_mnist("test")


@pytest.fixture(scope="module")
def classifier() -> cu.DigitClassifier:
    return cu.load_model(CHECKPOINTS / "classifier.pt", "DigitClassifier")


@pytest.mark.parametrize("name", course_names())
def test_shipped_checkpoint_loads_and_meets_its_figures(name, test_set, classifier):
    path = CHECKPOINTS / f"{name}.pt"
    assert path.exists(), f"{path} is missing: run python -m course_utils train all"
    ckpt = cu.load_checkpoint(path)
    recipe = cu.course_recipe(name, fast=False)
    assert type(ckpt.model).__name__ == recipe.model_class
    assert ckpt.model.config == recipe.config, "the shipped checkpoint was trained with another config"
    assert ckpt.train_config == recipe.spec()["train"], "the shipped checkpoint was trained another way"
    assert len(ckpt.history["epoch"]) == recipe.train.epochs
    metric = headline_metric(name)
    now = cu.evaluate(ckpt.model, data=test_set, classifier=classifier)[metric]
    stored = ckpt.metrics[metric]
    assert now == pytest.approx(stored, rel=1e-3, abs=1e-3), f"{name}: {metric} is {now}, stored {stored}"
    if name in TARGETS:
        key, op, bound = TARGETS[name]
        assert COMPARE[op](now, bound), f"{name}: {key} = {now:.4f}, promised {op} {bound}"


@pytest.mark.parametrize("name", course_names())
def test_shipped_checkpoint_says_how_it_was_trained(name):
    """A checkpoint records the precision ("auto" resolved) and the Adam that trained it (issue 17)."""
    metrics = cu.load_checkpoint(CHECKPOINTS / f"{name}.pt").metrics
    assert metrics.get("precision") in ("float32", "bfloat16", "float16"), \
        f"{name} does not record its precision: retrain it with python -m course_utils train {name} --out checkpoints"
    assert metrics.get("optimizer") in ("Adam", "Adam (fused)"), f"{name} does not record its optimizer"
    assert metrics.get("train_seconds", 0) > 0 and metrics.get("device"), f"{name} lacks its training time or device"
