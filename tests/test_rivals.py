"""What a noisy search timing must be able to beat to be taken again: the fastest trial of
the study, measured here within every constraint, that is at least as accurate. No
TensorFlow: Optuna's in-memory storage."""

from __future__ import annotations

import optuna

from autotune.storage import store
from autotune.study.trial import feasible_rivals, shape_reading, to_beat
from autotune.study.ways import shape_key


RECIPE = {"steps": [], "precision": "int8", "runtime": {"engine": "litert", "threads": 2, "batch_size": 1}}


def _measured(study, speedup, drop, *, feasible=True, gated=False, env="here", batch=1, recipe=RECIPE):
    trial = study.ask()
    trial.set_user_attr(store.ENV_ID, env)
    if recipe is not None:
        trial.set_user_attr(store.RECIPE, recipe)
    metrics = {"speedup": speedup, "accuracy_drop": drop, "quality_loss": drop, "feasible": feasible, "gated": gated, "batch_size": batch}
    trial.set_user_attr(store.METRICS, metrics)
    study.tell(trial, [1.0 / speedup, 0.99 - drop])


def test_a_timing_must_beat_the_fastest_feasible_trial_at_least_as_accurate():
    study = optuna.create_study(directions=["minimize", "maximize"])
    _measured(study, 1.0, 0.0)  # the baseline
    _measured(study, 3.0, 0.0)  # as accurate, three times faster
    _measured(study, 9.0, 0.005)  # faster, less accurate
    _measured(study, 20.0, 0.001, feasible=False)  # past another constraint: no rival
    _measured(study, 30.0, 0.0, gated=True)  # never timed
    _measured(study, 40.0, 0.0, env="another host")  # timed elsewhere
    _measured(study, 50.0, 0.0, batch=8)  # another batch size
    old = study.ask()  # measured before speed-ups were recorded: no rival, and no error
    old.set_user_attr(store.ENV_ID, "here")
    old.set_user_attr(store.METRICS, {"accuracy_drop": 0.0, "feasible": True})
    study.tell(old, [0.1, 0.99])
    rivals = feasible_rivals(study.get_trials(deepcopy=False), "here")
    assert sorted(r[:3] for r in rivals) == [(0.0, 1.0, 1), (0.0, 3.0, 1), (0.0, 50.0, 8), (0.005, 9.0, 1)]
    # A model that loses nothing must beat ×3; one that loses as much as the ×9 one, ×9.
    assert to_beat(rivals, 0.0, 1) == 3.0
    assert to_beat(rivals, 0.002, 1) == 3.0
    assert to_beat(rivals, 0.005, 1) == 9.0
    # More accurate than every rival: the baseline's 1, as before any rival.
    assert to_beat(rivals, -0.003, 1) == 1.0
    assert to_beat([], 0.0, 1) == 1.0
    assert to_beat(rivals, 0.0, 8) == 50.0 and to_beat(rivals, 0.0, 4) == 1.0  # rivals at the same batch size only


def test_a_timing_expects_the_best_reading_of_its_shape_among_the_rivals():
    study = optuna.create_study(directions=["minimize", "maximize"])
    fp32 = RECIPE | {"precision": "fp32"}
    _measured(study, 3.0, 0.0)
    _measured(study, 6.2, 0.004)  # the same computation (the base model at int8, 2 threads)
    _measured(study, 2.0, 0.0, recipe=fp32)
    _measured(study, 9.0, 0.0, recipe=RECIPE | {"runtime": RECIPE["runtime"] | {"threads": 1}})  # another thread count
    rivals = feasible_rivals(study.get_trials(deepcopy=False), "here")
    assert shape_reading(rivals, shape_key(RECIPE)) == 6.2
    assert shape_reading(rivals, shape_key(fp32)) == 2.0
    assert shape_reading(rivals, shape_key(RECIPE | {"precision": "fp16"})) is None
