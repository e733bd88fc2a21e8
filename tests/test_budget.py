"""Budget accounting and zombie handling among workers, over real Optuna trials in an
SQLite storage (no TensorFlow): the races are set up by hand, trial state by trial state."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from autotune.search.recipe import BASELINE_REF
from autotune.storage import store
from autotune.study.references import ensure_references
from autotune.study.settings import Settings
from autotune.study.workers import fail_zombies, surplus
from autotune.study.workspace import Plan


def _study(tmp_path):
    return optuna.create_study(storage=store.open_storage(f"sqlite:///{tmp_path}/s.db"), directions=["minimize", "maximize"])


def _complete(study, n):
    for _ in range(n):
        t = study.ask()
        study.tell(t, [1.0, 0.9])


def test_a_queued_retry_below_a_new_trial_takes_the_last_slot(tmp_path):
    study = _study(tmp_path)
    _complete(study, 8)
    study.enqueue_trial({"x": 1})  # a retry queued by another worker: number 8
    mine = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})  # pops the retry: it is number 8
    assert mine.number == 8 and not surplus(study, mine.number, 10)
    other = study.ask()  # number 9: the last slot
    assert not surplus(study, other.number, 10)
    study.enqueue_trial({"x": 1.5})  # number 10, queued: it fills nothing yet
    late = study.ask()  # number 10 is popped: 8 and 9 are running, 0-7 complete: the budget is full
    assert surplus(study, late.number, 10)


def test_the_last_slot_goes_to_the_trial_queued_ahead_not_to_the_lower_number(tmp_path):
    storage = store.open_storage(f"sqlite:///{tmp_path}/s.db")
    study = store.Study(study_name=_study(tmp_path).study_name, storage=storage)
    _complete(study, 9)
    study.enqueue_trial({"x": 1})  # number 9: an ordinary queued trial
    study.enqueue_trial({"x": 1.5}, user_attrs={store.NARROWER_OF: {"trial": 8, "made": "m", store.FIRST: True}})  # number 10
    ahead = study.ask()  # pops the trial queued ahead, number 10: the last slot is its
    assert ahead.number == 10 and not surplus(study, ahead.number, 10)
    behind = study.ask()  # number 9 comes after it
    assert behind.number == 9 and surplus(study, behind.number, 10)


def test_a_trial_that_never_started_is_failed_and_one_that_runs_is_kept(tmp_path):
    study = _study(tmp_path)
    orphan = study.ask()  # its process died between taking it and starting it: no recipe, no heartbeat
    started = study.ask()
    started.set_user_attr(store.RECIPE_TEXT, "fp32 · litert · 2 threads")
    fail_zombies(study, Settings(grace_s=0))
    states = {t.number: t.state for t in study.get_trials()}
    assert states[orphan.number] == TrialState.FAIL and states[started.number] == TrialState.RUNNING
    young = study.ask()
    fail_zombies(study, Settings(grace_s=600))  # too recent to judge
    assert study.trials[young.number].state == TrialState.RUNNING


def test_a_reference_still_running_is_not_queued_again(tmp_path):
    from autotune.search.recipe import reference_recipes

    study = _study(tmp_path)
    plan = Plan(config=None, space=None, objective=None, references=reference_recipes(2))  # type: ignore[arg-type]
    study.enqueue_trial({}, user_attrs={store.REFERENCE: "seeds-int8"})
    running = study.ask()  # seeds-int8 is running on some worker
    ensure_references(study, plan)
    # Neither seeds-int8 a second time nor the baseline (which the run measures itself) is queued.
    assert not study.get_trials(states=(TrialState.WAITING,))
    study.tell(running, state=TrialState.FAIL)  # that worker's trial failed: the next run queues it again
    ensure_references(study, plan)
    ensure_references(study, plan)  # and only once
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs.get(store.REFERENCE) for t in queued] == ["seeds-int8"]
    assert BASELINE_REF not in {t.user_attrs.get(store.REFERENCE) for t in study.get_trials()}
