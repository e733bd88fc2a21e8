"""Every shipped search space samples only valid recipes, and the default one reaches every
technique. Sampling imports no TensorFlow."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autotune.search.objective import Objective
from autotune.search.plugins import load_objective, load_space
from autotune.search.recipe import Recipe


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


def _shipped(package: str) -> list[str]:
    return sorted(p.stem for p in (Path(__file__).parent.parent / package).glob("*.py") if not p.stem.startswith("_"))


def test_the_documented_spaces_and_objectives_ship():
    assert _shipped("search_spaces") == ["default", "mobile-int8", "pruning", "quick"]
    assert _shipped("objectives") == ["edge", "latency", "regression", "throughput"]


@pytest.mark.parametrize("name", _shipped("search_spaces"))
def test_every_shipped_space_samples_valid_recipes(name):
    assert len(_sample(load_space(name), 200)) == 200


@pytest.mark.parametrize("name", _shipped("objectives"))
def test_every_shipped_objective_builds_and_names_metrics_the_runner_measures(name):
    obj = load_objective(name)(0.01)
    assert isinstance(obj, Objective)
    measured = {"latency_p50_ms", "latency_p99_ms", "throughput_sps", "size_bytes", "accuracy", "mae"}
    assert set(obj.metric_names) <= measured
    limits = {"accuracy_drop", "mae_increase", "latency_p99_ms", "size_bytes"}
    assert obj.constraints and {c.name for c in obj.constraints} <= limits
    assert obj.task == ("regression" if name == "regression" else "classification")


def test_edge_objective_has_three_objectives_with_size():
    obj = load_objective("edge")(0.01)
    assert obj.metric_names == ["latency_p50_ms", "accuracy", "size_bytes"]
    assert obj.directions == ["minimize", "maximize", "minimize"]


def test_regression_objective_bounds_the_mae_increase():
    obj = load_objective("regression")(0.05)
    assert obj.metric_names == ["latency_p50_ms", "mae"] and obj.directions == ["minimize", "minimize"]
    assert obj.feasible({"mae_increase": 0.05}) and not obj.feasible({"mae_increase": 0.051})


def test_pruning_space_prunes_and_never_distills():
    recipes = _sample(load_space("pruning"), 200)
    names = {step.name for r in recipes for step in r.steps}
    assert names == {"prune", "channel-prune"}
    assert {r.precision for r in recipes} == {"fp32", "dynamic-int8"}
    assert any(s.name == "prune" and s.structure == "2:4" for r in recipes for s in r.steps)
    assert {s.schedule for r in recipes for s in r.steps if s.name == "prune" and s.structure != "2:4"} == {"constant", "polynomial"}


def test_mobile_int8_space_is_full_integer_litert_only():
    recipes = _sample(load_space("mobile-int8"), 200)
    assert {r.precision for r in recipes} == {"int8"} and {r.runtime.engine for r in recipes} == {"litert"}
    assert {step.name for r in recipes for step in r.steps} == {"distill", "channel-prune", "qat"}


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
