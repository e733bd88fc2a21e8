"""Every trained model deployed its other ways: which trials are queued after a model is first
measured (the space's own choices, the same steps, nothing measured twice, within the budget)
and which ways of deploying the study has shown never win. No TensorFlow: the built-in space
and Optuna's in-memory storage."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from autotune.search.plugins import load_space
from autotune.search.recipe import PRECISIONS
from autotune.storage import store
from autotune.storage.record import TrialRecord
from autotune.measure.stats import usable_cores
from autotune.study.best_deployment import BestDeployment, winning_deployment
from autotune.study.deployments import plan
from autotune.study.ways import FAR_SLOWER, LOSER_AFTER, LOSER_EVERY, TIE, Replay, deployment_kind, losers, made_key

SPACE = load_space("default")
STUDENT = {"distill": True, "distill_width": 0.5, "temperature": 4.0, "alpha": 0.9, "channel_prune": False, "prune": False}


def _study() -> optuna.Study:
    return optuna.create_study(directions=["minimize", "maximize"])


def _measure(study, params, p50, accuracy=0.98, feasible=True, **attrs):
    """A complete trial of the built-in space with these parameters, as a run records it."""
    study.enqueue_trial(params)
    trial = study.ask()
    recipe = SPACE(trial)
    trial.set_user_attr(store.RECIPE, recipe.to_dict())
    trial.set_user_attr(store.ENV_ID, "env")
    trial.set_user_attr(store.METRICS, {"latency_p50_ms": p50, "accuracy": accuracy, "accuracy_drop": 0.99 - accuracy, "feasible": feasible})
    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    study.tell(trial, [p50, accuracy])
    return study.trials[-1]


def _recipes(study, queued):
    return [SPACE(Replay(p, study)).to_dict() for p in queued]


def test_a_new_model_is_queued_for_every_other_way_the_space_deploys_it():
    study = _study()
    first = _measure(study, STUDENT | {"engine": "litert", "precision": "fp32", "threads": 1}, 0.05)
    queued = plan(study, first, SPACE, "env", room=100)
    recipes = _recipes(study, queued)
    cores = usable_cores()
    # Each precision × thread count on LiteRT, and TensorFlow with and without XLA; not the first one again.
    litert = {(p, t) for p in PRECISIONS for t in range(1, cores + 1)} - {("fp32", 1)}
    assert {(r["precision"], r["runtime"]["threads"]) for r in recipes if r["runtime"]["engine"] == "litert"} == litert
    assert sorted(r["runtime"]["xla"] for r in recipes if r["runtime"]["engine"] == "tensorflow") == [False, True]
    assert len(recipes) == len(litert) + 2
    # The same student every time (int8 answers "no QAT", which would be another model).
    assert all(r["steps"] == first.user_attrs[store.RECIPE]["steps"] for r in recipes)
    assert all(p["distill_width"] == 0.5 for p in queued)


def test_nothing_is_queued_twice_nor_past_the_budget():
    study = _study()
    first = _measure(study, STUDENT | {"engine": "litert", "precision": "fp32", "threads": 1}, 0.05)
    _measure(study, STUDENT | {"engine": "litert", "precision": "int8", "threads": 1, "qat": False}, 0.04)
    recipes = _recipes(study, plan(study, first, SPACE, "env", room=100))
    assert not [r for r in recipes if r["precision"] == "int8" and r["runtime"]["threads"] == 1 and r["runtime"]["engine"] == "litert"]
    assert len(plan(study, first, SPACE, "env", room=3)) == 3
    assert plan(study, first, SPACE, "env", room=0) == []
    # Once its deployments are queued, a model is not expanded again; a gated trial never is.
    study.enqueue_trial(STUDENT | {"engine": "litert", "precision": "fp16", "threads": 1}, user_attrs={store.DEPLOYMENT_OF: {"trial": first.number, "made": "x"}})
    study.enqueue_trial({"threads": 2}, user_attrs={store.DEPLOYMENT_OF: {"trial": first.number, "made": made_key(first.user_attrs[store.RECIPE])}})
    assert plan(study, first, SPACE, "env", room=100) == []
    gated = _study()
    g = _measure(gated, STUDENT | {"engine": "litert", "precision": "fp32", "threads": 1}, 0.05)
    g.user_attrs[store.METRICS]["gated"] = True
    g.user_attrs[store.GATED] = "accuracy 0.5 after training: not converted or timed"
    assert plan(gated, g, SPACE, "env", room=100) == []


def test_a_way_that_never_won_is_tried_only_now_and_then():
    study = _study()
    assert LOSER_AFTER <= 3
    for width in (0.25, 0.5, 0.75):
        made = {**STUDENT, "distill_width": width}
        _measure(study, made | {"engine": "litert", "precision": "fp32", "threads": 2}, 0.05)
        _measure(study, made | {"engine": "litert", "precision": "fp16", "threads": 2}, 0.09)  # always slower
    assert losers(study.trials) == {"fp16 · litert · 2t"}
    # The next new model (the 4th: LOSER_EVERY divides it) still tries fp16; the 5th does not.
    assert LOSER_EVERY == 4
    fourth = _measure(study, {**STUDENT, "distill": False} | {"engine": "litert", "precision": "fp32", "threads": 1}, 0.2)
    kinds = {deployment_kind(r) for r in _recipes(study, plan(study, fourth, SPACE, "env", room=100))}
    assert "fp16 · litert · 2t" in kinds
    fifth = _measure(study, {**STUDENT, "distill": False, "channel_prune": True, "keep": 0.5} | {"engine": "litert", "precision": "fp32", "threads": 1}, 0.1)
    kinds = {deployment_kind(r) for r in _recipes(study, plan(study, fifth, SPACE, "env", room=100))}
    assert "fp16 · litert · 2t" not in kinds and "fp32 · litert · 2t" in kinds


def test_a_way_as_fast_as_the_timing_tells_or_more_accurate_than_every_faster_way_is_kept():
    # As on a Zen 4 study of the demo: dynamic-int8 a little slower than int8 on every model
    # (a difference the search's timing does not resolve) stays; so does fp16 where it keeps
    # a sample int8 loses, not far slower; fp32, slower than fp16 and no more accurate, does not.
    study = _study()
    for width in (0.25, 0.5, 0.75):
        made = {**STUDENT, "distill_width": width}
        _measure(study, made | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.05, accuracy=0.97)
        _measure(study, made | {"engine": "litert", "precision": "dynamic-int8", "threads": 2}, 0.05 * (1 + (TIE - 1) / 2), accuracy=0.97)
        _measure(study, made | {"engine": "litert", "precision": "fp16", "threads": 2}, 0.05 * FAR_SLOWER * 0.9, accuracy=0.98)
        _measure(study, made | {"engine": "litert", "precision": "fp32", "threads": 2}, 0.05 * FAR_SLOWER * 0.95, accuracy=0.98)
    assert losers(study.trials) == {"fp32 · litert · 2t"}
    # Beyond the limit, more accurate is no trade-off: that fp16 is a loser like fp32.
    beyond = _study()
    for width in (0.25, 0.5):
        made = {**STUDENT, "distill_width": width}
        _measure(beyond, made | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.05, accuracy=0.97)
        _measure(beyond, made | {"engine": "litert", "precision": "fp16", "threads": 2}, 0.05 * FAR_SLOWER * 0.9, accuracy=0.98, feasible=False)
    assert losers(beyond.trials) == {"fp16 · litert · 2t"}


def test_a_way_far_slower_on_the_first_model_and_no_more_accurate_is_left_out_at_once():
    study = _study()
    made = dict(STUDENT)
    _measure(study, made | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.05, accuracy=0.97)
    _measure(study, made | {"engine": "tensorflow", "xla": False}, 0.05 * FAR_SLOWER * 1.5, accuracy=0.97)  # slower, no better
    _measure(study, made | {"engine": "litert", "precision": "fp32", "threads": 1}, 0.05 * FAR_SLOWER * 1.2, accuracy=0.98)  # slower, more accurate
    _measure(study, made | {"engine": "litert", "precision": "fp16", "threads": 2}, 0.05 * 1.5, accuracy=0.97)  # slower, not far
    assert losers(study.trials) == {f"fp32 · tensorflow · {usable_cores()}t"}
    second = _measure(study, {**STUDENT, "distill_width": 0.25} | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.03)
    kinds = {deployment_kind(r) for r in _recipes(study, plan(study, second, SPACE, "env", room=100))}
    assert not any("tensorflow" in k and "XLA" not in k for k in kinds)
    assert {"fp32 · litert · 1t", "fp16 · litert · 2t"} <= kinds


def test_a_model_first_measured_on_tensorflow_is_deployed_on_litert_every_way():
    study = _study()
    first = _measure(study, STUDENT | {"engine": "tensorflow", "xla": True}, 1.2)
    recipes = _recipes(study, plan(study, first, SPACE, "env", room=100))
    litert = {(r["precision"], r["runtime"]["threads"]) for r in recipes if r["runtime"]["engine"] == "litert"}
    assert litert == {(p, t) for p in PRECISIONS for t in range(1, usable_cores() + 1)}
    assert [r["runtime"]["xla"] for r in recipes if r["runtime"]["engine"] == "tensorflow"] == [False]



@pytest.mark.parametrize("base", ["random", "tpe"])
def test_once_ways_were_compared_a_searched_trial_is_deployed_the_way_that_won_most(base):
    study = _study()
    # Before any model was measured two ways, the sampler chooses the deployment too.
    assert winning_deployment(study.trials) is None
    for width in (0.25, 0.5):
        made = {**STUDENT, "distill_width": width}
        _measure(study, made | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.03)
        _measure(study, made | {"engine": "litert", "precision": "fp32", "threads": 2}, 0.05)
        _measure(study, made | {"engine": "tensorflow", "xla": True}, 0.2)
    # One model where fp32 won does not outvote two where int8 did.
    made = {**STUDENT, "distill_width": 0.75}
    _measure(study, made | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.05)
    _measure(study, made | {"engine": "litert", "precision": "fp32", "threads": 2}, 0.04)
    assert winning_deployment(study.trials) == {"engine": "litert", "precision": "int8", "threads": 2}
    # TPE samples the deployment jointly with the rest (multivariate): overridden there too.
    study.sampler = BestDeployment(optuna.samplers.RandomSampler(seed=0) if base == "random" else store.tpe_sampler(0))
    made_ways, deployed = set(), set()
    for _ in range(15):
        trial = study.ask()
        recipe = SPACE(trial).to_dict()
        made_ways.add(made_key(recipe))
        deployed.add(deployment_kind(recipe))
        study.tell(trial, [0.1, 0.9])
    assert deployed == {"int8 · litert · 2t"}  # every searched trial deployed the winning way
    assert len(made_ways) >= 4  # while how the model is made is the sampler's


def test_on_a_checking_model_only_the_loser_left_out_longest_comes_back():
    study = _study()
    for i, width in enumerate((0.25, 0.5, 0.75)):
        made = {**STUDENT, "distill_width": width}
        _measure(study, made | {"engine": "litert", "precision": "fp32", "threads": 2}, 0.05)
        _measure(study, made | {"engine": "litert", "precision": "fp16", "threads": 2}, 0.09)
        if i < 2:
            _measure(study, made | {"engine": "litert", "precision": "fp16", "threads": 1}, 0.09)
    assert losers(study.trials) == {"fp16 · litert · 2t", "fp16 · litert · 1t"}
    fourth = _measure(study, {**STUDENT, "distill": False} | {"engine": "litert", "precision": "fp32", "threads": 1}, 0.2)
    kinds = {deployment_kind(r) for r in _recipes(study, plan(study, fourth, SPACE, "env", room=100))}
    assert "fp16 · litert · 1t" in kinds and "fp16 · litert · 2t" not in kinds  # measured on 2 models, not 3


def test_after_a_repeat_the_random_proposal_may_deploy_any_way():
    # As a run composes them: the random proposal after a repeat is outside BestDeployment,
    # so a deployment the budget left unqueued can still be reached.
    study = _study()
    for width in (0.25, 0.5):
        made = {**STUDENT, "distill_width": width}
        _measure(study, made | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.03)
        _measure(study, made | {"engine": "litert", "precision": "fp32", "threads": 2}, 0.05)
    sampler = store.AfterRepeats(BestDeployment(optuna.samplers.RandomSampler(seed=1)), seed=1)
    study.sampler = sampler
    kinds = set()
    for _ in range(12):
        marker = study.ask()  # recorded as a repeat: the next proposal is the random one
        marker.set_user_attr(store.REPEAT_OF, 0)
        SPACE(marker)
        study.tell(marker, [0.1, 0.9])
        trial = study.ask()
        kinds.add(deployment_kind(SPACE(trial).to_dict()))
        study.tell(trial, [0.1, 0.9])
    assert len(kinds) >= 3  # random deployments, not only the winning int8


class _Recording(optuna.samplers.RandomSampler):
    """Random, and keeps the trials it was shown when asked for a proposal."""

    def infer_relative_search_space(self, study, trial):
        self.seen = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        self.seen_cached = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
        return {}


def test_the_sampler_of_models_sees_each_model_once_at_its_best_way_and_no_deployment_parameters():
    study = _study()
    study.enqueue_trial({})  # the baseline: queued empty, no parameters
    base = study.ask()
    study.tell(base, [0.3, 0.99])
    fast = {**STUDENT, "distill_width": 0.25}
    _measure(study, fast | {"engine": "litert", "precision": "fp32", "threads": 2}, 0.05)
    _measure(study, fast | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.03, accuracy=0.985)
    _measure(study, fast | {"engine": "litert", "precision": "int8", "threads": 1, "qat": False}, 0.02, accuracy=0.90, feasible=False)
    _measure(study, fast | {"engine": "tensorflow", "xla": True}, 0.2)
    slow = {**STUDENT, "distill_width": 0.75}
    _measure(study, slow | {"engine": "litert", "precision": "fp16", "threads": 1}, 0.09)
    _measure(study, slow | {"engine": "litert", "precision": "fp16", "threads": 1}, 0.09, **{store.REPEAT_OF: 5})
    recording = _Recording(seed=0)
    study.sampler = BestDeployment(recording)
    trial = study.ask()
    SPACE(trial)  # the sampler is asked at the first suggestion
    for seen in (recording.seen, recording.seen_cached):
        # Two models, not seven trials: the baseline (no parameters) and the repeat tell nothing new.
        assert len(seen) == 2
        by_width = {t.params["distill_width"]: t for t in seen}
        # The fastest feasible way stands for the student, not its fastest infeasible one.
        assert by_width[0.25].values == [0.03, 0.985]
        assert by_width[0.75].values == [0.09, 0.98]
        for t in seen:
            assert not set(t.params) & {"engine", "precision", "threads", "xla"}
            assert not set(t.distributions) & {"engine", "precision", "threads", "xla"}
    # The study itself is untouched.
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 7
    assert study.trials[2].params["precision"] == "int8"
    study.tell(trial, [0.1, 0.9])


def test_tpe_models_how_a_model_is_made_jointly_and_leaves_deployment_to_the_study():
    study = _study()
    for i, width in enumerate((0.25, 0.5, 0.75, 0.25, 0.5, 0.75)):
        made = {**STUDENT, "distill_width": width, "alpha": (0.5, 0.9)[i % 2]}
        _measure(study, made | {"engine": "litert", "precision": "fp32", "threads": 2}, 0.05 * (i + 1))
        _measure(study, made | {"engine": "litert", "precision": "fp16", "threads": 2}, 0.06 * (i + 1))
    sampler = BestDeployment(optuna.samplers.TPESampler(seed=0, multivariate=True, group=True, n_startup_trials=5))
    trial = study.ask()
    space = sampler.infer_relative_search_space(study, trial)
    assert {"distill_width", "alpha"} <= set(space)
    assert not set(space) & {"engine", "precision", "threads", "xla"}
    assert set(sampler.sample_relative(study, trial, space)) <= set(space)
    study.tell(trial, [0.1, 0.9])


def _reference(study, precision, p50):
    """A reference as a run records it: queued without parameters, the base model deployed."""
    study.enqueue_trial({})
    trial = study.ask()
    recipe = {"precision": precision, "steps": [], "runtime": {"engine": "litert", "threads": 2, "batch_size": 1, "xla": False}}
    trial.set_user_attr(store.RECIPE, recipe)
    trial.set_user_attr(store.ENV_ID, "env")
    trial.set_user_attr(store.METRICS, {"latency_p50_ms": p50, "accuracy": 0.99, "accuracy_drop": 0.0, "feasible": True})
    study.tell(trial, [p50, 0.99])


def test_the_references_compare_two_ways_so_the_first_searched_model_is_deployed_the_faster():
    study = _study()
    _reference(study, "fp32", 0.42)  # the baseline
    _reference(study, "int8", 0.53)  # slower here: an AVX2 CPU's full int8
    assert winning_deployment(study.trials) == {"engine": "litert", "precision": "fp32", "threads": 2}
    study.sampler = BestDeployment(optuna.samplers.RandomSampler(seed=0))
    deployed = set()
    for _ in range(8):
        trial = study.ask()
        deployed.add(deployment_kind(SPACE(trial).to_dict()))
        study.tell(trial, [0.1, 0.9])
    assert deployed == {"fp32 · litert · 2t"}  # not a random way (the TensorFlow runtime half the time)


def test_tpe_is_asked_again_rather_than_proposing_a_model_the_study_made():
    # Six students, one far the best: TPE alone proposes the best region again and again.
    study = _study()
    for i, (width, alpha) in enumerate([(w, a) for w in (0.25, 0.5, 0.75) for a in (0.5, 0.9)]):
        made = {**STUDENT, "distill_width": width, "alpha": alpha}
        _measure(study, made | {"engine": "litert", "precision": "fp32", "threads": 2}, 0.02 if i == 0 else 0.2, accuracy=0.985 if i == 0 else 0.9)
    study.sampler = BestDeployment(store.tpe_sampler(0), seed=0)
    made_before = {made_key(TrialRecord.from_trial(t).recipe) for t in study.trials}
    for _ in range(12):
        trial = study.ask()
        recipe = SPACE(trial).to_dict()
        key = made_key(recipe)
        assert key not in made_before, f"proposed a model the study made already: {recipe['steps']}"
        made_before.add(key)
        trial.set_user_attr(store.RECIPE, recipe)
        trial.set_user_attr(store.METRICS, {"latency_p50_ms": 0.2, "accuracy": 0.9, "accuracy_drop": 0.09, "feasible": True})
        study.tell(trial, [0.2, 0.9])


def test_a_model_beyond_the_accuracy_limit_is_deployed_only_at_its_other_precisions():
    study = _study()
    first = _measure(study, STUDENT | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.05, accuracy=0.95, feasible=False)
    recipes = _recipes(study, plan(study, first, SPACE, "env", room=100))
    # One way per other precision, at the engine and threads it was measured at: no other
    # thread count or engine, which compute the same (infeasible) numbers.
    assert sorted(r["precision"] for r in recipes) == sorted(set(PRECISIONS) - {"int8"})
    assert {(r["runtime"]["engine"], r["runtime"]["threads"]) for r in recipes} == {("litert", 2)}
    # A feasible model is deployed every way (the same student, another width).
    ok = _measure(study, {**STUDENT, "distill_width": 0.25} | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.04)
    assert len(plan(study, ok, SPACE, "env", room=100)) > len(recipes) + 2


def test_a_far_slower_way_is_not_kept_for_being_more_accurate_beyond_the_limit():
    study = _study()
    made = dict(STUDENT)
    _measure(study, made | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.05, accuracy=0.95, feasible=False)
    _measure(study, made | {"engine": "tensorflow", "xla": False}, 0.05 * FAR_SLOWER * 1.5, accuracy=0.96, feasible=False)  # more accurate, still beyond
    assert losers(study.trials) == {f"fp32 · tensorflow · {usable_cores()}t"}


def test_a_thread_count_slower_at_every_precision_of_the_first_model_is_left_out_of_the_next():
    study = _study()
    made = dict(STUDENT)
    for precision, p50 in (("fp32", 0.05), ("dynamic-int8", 0.03), ("int8", 0.02)):
        q = {"qat": False} if precision == "int8" else {}
        _measure(study, made | {"engine": "litert", "precision": precision, "threads": 2} | q, p50)
        _measure(study, made | {"engine": "litert", "precision": precision, "threads": 1} | q, p50 * 1.3)
    assert {"fp32 · litert · 1t", "dynamic-int8 · litert · 1t", "int8 · litert · 1t"} <= losers(study.trials)
    second = _measure(study, {**STUDENT, "distill_width": 0.25} | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.015)
    kinds = {deployment_kind(r) for r in _recipes(study, plan(study, second, SPACE, "env", room=100))}
    # fp16 at one thread was never measured, yet one thread lost three comparisons out of three.
    assert not any(" 1t" in k for k in kinds)
    assert {"fp16 · litert · 2t", "dynamic-int8 · litert · 2t"} <= kinds


def test_a_thread_count_that_was_once_the_fastest_is_kept():
    study = _study()
    made = dict(STUDENT)
    for precision, one_thread in (("fp32", 0.06), ("fp16", 0.06), ("dynamic-int8", 0.02)):
        _measure(study, made | {"engine": "litert", "precision": precision, "threads": 2}, 0.05 if precision != "dynamic-int8" else 0.03)
        _measure(study, made | {"engine": "litert", "precision": precision, "threads": 1}, one_thread)
    assert "dynamic-int8 · litert · 1t" not in losers(study.trials)  # the model's fastest way
    second = _measure(study, {**STUDENT, "distill_width": 0.25} | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}, 0.015)
    kinds = {deployment_kind(r) for r in _recipes(study, plan(study, second, SPACE, "env", room=100))}
    assert "dynamic-int8 · litert · 1t" in kinds


def test_a_model_whose_trained_weights_are_already_beyond_the_limit_is_deployed_no_other_way():
    study = _study()
    params = STUDENT | {"engine": "litert", "precision": "int8", "threads": 2, "qat": False}
    hopeless = _measure(study, params, 0.05, accuracy=0.95, feasible=False, **{store.LINEAGE: [{"step": "distill", "accuracy_keras": 0.95}]})
    assert plan(study, hopeless, SPACE, "env", room=100) == []
    # Quantization lost accuracy the float weights had: the other precisions may be within the limit.
    other = {**params, "distill_width": 0.25}
    lossy = _measure(study, other, 0.05, accuracy=0.95, feasible=False, **{store.LINEAGE: [{"step": "distill", "accuracy_keras": 0.985}]})
    assert sorted(r["precision"] for r in _recipes(study, plan(study, lossy, SPACE, "env", room=100))) == sorted(set(PRECISIONS) - {"int8"})


def test_a_thread_count_that_lost_on_litert_is_not_held_against_tensorflow():
    cores = usable_cores()
    if cores < 2:
        pytest.skip("one usable core: a single thread count, nothing to compare")
    study = _study()
    made = dict(STUDENT)
    # All cores lose to one thread on LiteRT at two precisions; TensorFlow always runs on all cores.
    for precision in ("fp32", "dynamic-int8"):
        _measure(study, made | {"engine": "litert", "precision": precision, "threads": 1}, 0.03)
        _measure(study, made | {"engine": "litert", "precision": precision, "threads": cores}, 0.04)
    assert f"fp32 · litert · {cores}t" in losers(study.trials)
    second = _measure(study, {**STUDENT, "distill_width": 0.25} | {"engine": "litert", "precision": "int8", "threads": 1, "qat": False}, 0.02)
    kinds = {deployment_kind(r) for r in _recipes(study, plan(study, second, SPACE, "env", room=100))}
    assert f"fp32 · tensorflow · {cores}t" in kinds and f"fp16 · litert · {cores}t" not in kinds
