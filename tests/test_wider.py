"""The model whose accuracy counts most on the study's front made one value wider: once the study
has measured a few models, after any trial, the searched front member with the largest share
of the hypervolume (the span of latency over which its accuracy counts, a tenth of the
baseline's latency at least) has one parameter its
technique widens the model with (a student's width, channel pruning's keep) set one choice
larger, and is queued once, deployed as it was. No TensorFlow: the built-in space and Optuna's
in-memory storage."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from autotune.storage import store
from autotune.study.deployments import Deployer
from autotune.study.ways import Replay
from autotune.study.wider import front_weights
from tests.chain_study import DEPLOY, SPACE, STUDENT, WITHIN, measured, queued_by
from tests.chain_study import new_study as _study


def _measured(study, params, accuracy, speedup, reference=None):
    """A measured trial at ``accuracy`` (the baseline's: 0.99) and ``speedup``, every step of
    its chain as accurate."""
    return measured(study, params, [accuracy] * 5, speedup, {store.REFERENCE: reference} if reference else None, thins=False)


def _front(study):
    return front_weights(study.get_trials(deepcopy=False), "env")


def _wider(study, trial) -> list[tuple[int, str]]:
    return queued_by(study, trial, "on_wider", store.WIDER_OF)


def _slow_models(study):
    """Two models far off the front: the study has measured enough to widen."""
    _measured(study, STUDENT | {"distill": False, "prune": True, "structure": "2:4"} | DEPLOY, 0.975, speedup=1.1)
    _measured(study, STUDENT | {"distill": False, "channel_prune": True, "keep": 0.25} | DEPLOY, 0.97, speedup=2.0)


def test_the_front_member_whose_accuracy_counts_most_is_widened_one_value_once():
    study = _study()
    _slow_models(study)
    # The front: a width-0.25 student at x10 (a drop of 0.006) and a width-0.5 one at x7.5
    # (0.002). The slower one's accuracy counts from 1/7.5 of the baseline's latency to all of
    # it (0.87), the faster one's from 1/10 to 1/7.5 (0.03).
    fast = _measured(study, STUDENT | DEPLOY, 0.984, speedup=10.0)
    accurate = _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, 0.988, speedup=7.5)
    (top, w_top), (low, w_low) = [(t.number, w) for t, _, w in _front(study)][:2]
    assert (top, low) == (accurate.number, fast.number)
    assert w_top == pytest.approx(1 - 1 / 7.5) and w_low == pytest.approx(1 / 7.5 - 1 / 10)
    assert _wider(study, fast) == [(accurate.number, "distill w0.75 T2 α0.9 → int8 · litert · 2 threads")]
    (queued,) = [t for t in study.trials if store.WIDER_OF in t.user_attrs]
    recipe = SPACE(Replay(dict(queued.system_attrs["fixed_params"]), study)).to_dict()
    assert recipe["steps"][0]["params"]["temperature"] == 2.0 and recipe["runtime"]["threads"] == 2
    # Asked again after any trial: that model was widened already, and the faster student's
    # accuracy counts for too little (0.03 against 0.87) to spend a model on.
    assert _wider(study, _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY | {"precision": "fp16"}, 0.988, speedup=4.0)) == []
    # A member as accurate as the base model is not widened: wider, it is only more like it.
    study = _study()
    _slow_models(study)
    _measured(study, STUDENT | DEPLOY, 0.984, speedup=10.0)
    at_base = _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, 0.99, speedup=7.5)
    assert _front(study)[0][0].number == at_base.number
    assert _wider(study, at_base) == []


@pytest.mark.parametrize(
    "made, wider",
    [
        ({"distill": False, "channel_prune": True, "keep": 0.5}, "channel-prune keep 0.75"),
        # The last step that thins is widened, not the first.
        ({"channel_prune": True, "keep": 0.5}, "distill w0.25 T2 α0.9 → channel-prune keep 0.75"),
        # At its widest it is left off: the student alone (which the cache holds).
        ({"distill_width": 0.5, "channel_prune": True, "keep": 0.75}, "distill w0.5 T2 α0.9"),
        ({"distill_width": 0.5, "channel_prune": True, "keep": 0.75, "prune": True, "structure": "2:4"}, "distill w0.5 T2 α0.9 → prune 2:4"),
        # A width-0.75 student is as wide as the space makes one, and left off it is the base
        # model, which the references measure: nothing to queue.
        ({"distill_width": 0.75}, None),
    ],
)
def test_the_last_step_that_thins_is_widened_one_value_or_left_off_at_its_widest(made, wider):
    study = _study()
    _slow_models(study)
    model = _measured(study, STUDENT | made | DEPLOY, 0.986, speedup=3.0)
    assert _wider(study, model) == ([(model.number, f"{wider} → int8 · litert · 2 threads")] if wider else [])


def test_a_member_that_cannot_be_widened_passes_its_turn_to_one_whose_accuracy_counts_enough():
    study = _study()
    _slow_models(study)
    # The baseline at int8 (x2.5, no drop) counts from 0.4 to 1 (0.6); the student at x10
    # from 0.1 to 0.4 (0.3), more than a tenth of the baseline's latency: the student is widened.
    base_int8 = _measured(study, {}, 0.99, speedup=2.5, reference="int8-baseline")
    student = _measured(study, STUDENT | DEPLOY, 0.984, speedup=10.0)
    assert _front(study)[0][0].number == base_int8.number
    assert _wider(study, student) == [(student.number, "distill w0.5 T2 α0.9 → int8 · litert · 2 threads")]
    # Where the student counts over less than a tenth (0.25 - 0.2), nothing.
    study = _study()
    _slow_models(study)
    _measured(study, {}, 0.99, speedup=4.0, reference="int8-baseline")
    student = _measured(study, STUDENT | DEPLOY, 0.984, speedup=5.0)
    assert _wider(study, student) == []


def test_nothing_is_widened_before_the_study_has_measured_a_few_models():
    study = _study()
    student = _measured(study, STUDENT | DEPLOY, 0.984, speedup=10.0)
    assert _wider(study, student) == []
    _slow_models(study)
    assert _wider(study, student) == [(student.number, "distill w0.5 T2 α0.9 → int8 · litert · 2 threads")]


def _accurate(study, trial) -> list[tuple[int, list[str]]]:
    """Run the deployer after ``trial``: the siblings it queued for the front member whose
    accuracy counts most (that member's trial, and the recipes as users read them)."""
    found: list[tuple[int, list[str]]] = []
    Deployer(SPACE, 50, "env", lambda n, k: None, within=WITHIN, on_accurate=lambda n, texts: found.append((n, texts)))(study, trial)
    marked = [t for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) if t.user_attrs.get(store.SIBLING_OF, {}).get("accurate")]
    assert len(marked) == sum(len(texts) for _, texts in found)
    assert {t.user_attrs[store.SIBLING_OF]["trial"] for t in marked} == {n for n, _ in found}
    for _ in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study.tell(study.ask(), state=TrialState.FAIL)
    return found


def test_the_front_member_whose_accuracy_counts_most_is_trained_other_ways_at_its_shape_once():
    study = _study()
    _slow_models(study)
    _measured(study, STUDENT | DEPLOY, 0.984, speedup=10.0)
    # At the baseline's accuracy, so not widened; but a sibling as fast and one sample more
    # accurate would add 0.87 of that sample to the hypervolume.
    accurate = _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, 0.99, speedup=7.5)
    ((number, recipes),) = _accurate(study, accurate)
    assert number == accurate.number
    assert set(recipes[:2]) == {"distill w0.5 T4 α0.9 → int8 · litert · 2 threads", "distill w0.5 T2 α0.5 → int8 · litert · 2 threads"}
    assert recipes[2:] == ["distill w0.5 T4 α0.5 → int8 · litert · 2 threads"]
    # Asked again after any trial: that shape was trained other ways already.
    assert _accurate(study, _measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, 0.985, speedup=2.0)) == []


def test_a_front_member_whose_accuracy_counts_for_little_is_not_trained_other_ways():
    study = _study()
    _slow_models(study)
    # The baseline at int8 (x4, no drop) counts from 0.25 to 1; a width-0.5 student at x4.5
    # from 0.22 to 0.25, less than a tenth of the baseline's latency; the fastest student (x10)
    # from 0.1 to 0.22, and is trained other ways as the study's fastest already.
    _measured(study, {}, 0.99, speedup=4.0, reference="int8-baseline")
    _measured(study, STUDENT | DEPLOY, 0.984, speedup=10.0)
    student = _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, 0.987, speedup=4.5)
    assert [w for _, r, w in _front(study) if r.recipe["steps"]][1] < 0.1
    assert _accurate(study, student) == []


def test_a_model_whose_pruned_twin_had_siblings_is_still_trained_other_ways():
    study = _study()
    _slow_models(study)
    # The study's fastest, a pruned width-0.5 student, had its siblings; the same student
    # unpruned, at the baseline's accuracy, shares its shape but not its accuracy.
    pruned = _measured(study, STUDENT | {"distill_width": 0.5, "temperature": 4.0, "prune": True, "structure": "2:4"} | DEPLOY, 0.987, speedup=6.2)
    _accurate(study, pruned)
    assert any(store.SIBLING_OF in t.user_attrs for t in study.trials)
    plain = _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, 0.99, speedup=6.1)
    ((number, recipes),) = _accurate(study, plain)
    assert number == plain.number and "distill w0.5 T2 α0.5 → int8 · litert · 2 threads" in recipes
