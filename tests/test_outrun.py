"""A model off the front however it is deployed is deployed no other way: when its float
weights are no more accurate than its first deployment and a model at least as accurate runs
faster than another way of deploying has ever gained in the study. No TensorFlow: the built-in
space and Optuna's in-memory storage."""

from __future__ import annotations

from autotune.study.deployments import plan
from autotune.study.ways import Replay, deployment_kind
from tests.test_siblings import DEPLOY, SPACE, STUDENT, _measured, _study


def _ways(study, trial) -> set[str]:
    return {deployment_kind(SPACE(Replay(p, study)).to_dict()) for p in plan(study, trial, SPACE, "env", 50)}


def _fast_student(study):
    """A width-0.25 student at a drop of 0.002, measured two ways: its first way was its
    fastest (×7.0 against ×6.0)."""
    _measured(study, STUDENT | DEPLOY, [0.988], speedup=7.0)
    _measured(study, STUDENT | DEPLOY | {"precision": "fp16"}, [0.988], speedup=6.0)


def test_a_slower_model_no_more_accurate_even_as_float_is_deployed_no_other_way():
    study = _study()
    _fast_student(study)
    wide = _measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.988], speedup=3.0)
    assert _ways(study, wide) == set()


def test_a_model_whose_float_weights_are_more_accurate_is_deployed_its_other_ways():
    study = _study()
    _fast_student(study)
    # As trained, 0.989; its int8 deployment 0.988: fp32 or fp16 may be as accurate as trained.
    wide = _measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.989], speedup=3.0, deployed=0.988)
    assert "fp16 · litert · 2t" in _ways(study, wide)


def test_a_more_accurate_model_or_one_within_what_a_way_has_gained_is_deployed_its_other_ways():
    study = _study()
    _fast_student(study)
    accurate = _measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.990], speedup=3.0)
    assert "fp16 · litert · 2t" in _ways(study, accurate)
    study = _study()
    _measured(study, STUDENT | DEPLOY | {"precision": "fp16"}, [0.988], speedup=3.5)
    _measured(study, STUDENT | DEPLOY, [0.988], speedup=7.0)  # a way gained ×2.0 on it
    close = _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY | {"precision": "fp16"}, [0.988], speedup=4.0)
    assert "int8 · litert · 2t" in _ways(study, close)
