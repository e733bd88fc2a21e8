"""Every shipped search space samples only valid recipes, and the default one reaches every
technique. Sampling imports no TensorFlow."""

from __future__ import annotations

import optuna
import pytest

from autotune.plugins import load_space
from autotune.recipe import Recipe


def _sample(space, n, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    recipes = []
    for _ in range(n):
        trial = study.ask()
        recipe = space(trial)
        assert isinstance(recipe, Recipe)
        recipe.validate()
        recipes.append(recipe)
        study.tell(trial, 0.0)
    return recipes


@pytest.mark.parametrize("name", ["default", "quick"])
def test_shipped_spaces_sample_valid_recipes(name):
    assert len(_sample(load_space(name), 200)) == 200


def test_default_space_reaches_every_technique_precision_and_engine():
    recipes = _sample(load_space("default"), 300)
    names = {step.name for r in recipes for step in r.steps}
    assert names == {"distill", "channel-prune", "prune", "qat"}
    assert {r.precision for r in recipes} == {"fp32", "fp16", "dynamic-int8", "int8"}
    assert {r.runtime.engine for r in recipes} == {"litert", "tensorflow"}
    assert any(s.name == "qat" and s.preserve_sparsity for r in recipes for s in r.steps)
    assert any(s.name == "prune" and s.structure == "2:4" for r in recipes for s in r.steps)


def test_quick_space_never_trains():
    assert all(not r.steps for r in _sample(load_space("quick"), 100))
