"""A model on the study's front made one value thinner: after a deployment on the study's
front within the accuracy limit, its chain with one parameter that thins the model (a
student's width, the channels channel pruning keeps) at the next lower value is queued once,
deployed as that trial was, unless the study made that model or its evidence puts it past the
limit. No TensorFlow: the built-in space and Optuna's in-memory storage."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from autotune.search.plugins import load_space
from autotune.storage import store
from autotune.study.chains import thinner_plan
from autotune.study.deployments import Deployer
from autotune.study.ways import Replay
from tests.test_siblings import DEPLOY, STUDENT, _measured, _study

SPACE = load_space("default")
WITHIN = lambda loss: loss["accuracy_drop"] <= 0.01  # noqa: E731  (the limit: a drop of 0.01)


def _deploy(study, trial) -> list[str]:
    """Run the deployer after ``trial``: the thinner models it queued (as users read them),
    each checked to name the trial and the parameter; every queued trial is then failed."""
    thinner = []
    Deployer(SPACE, 50, "env", lambda n, k: None, within=WITHIN, on_thinner=lambda n, text: thinner.append((n, text)))(study, trial)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    marked = [t for t in waiting if (t.user_attrs.get(store.EXTENSION_OF) or {}).get("thinner")]
    assert [(t.user_attrs[store.EXTENSION_OF]["trial"]) for t in marked] == [n for n, _ in thinner]
    for _ in waiting:
        study.tell(study.ask(), state=TrialState.FAIL)
    return [text for _, text in thinner]


def test_a_student_on_the_front_is_distilled_one_width_thinner_once_deployed_as_it_was():
    study = _study()
    student = _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, [0.988], speedup=5.0)
    assert _deploy(study, student) == ["distill w0.25 T2 α0.9 → int8 · litert · 2 threads"]
    (queued,) = [t for t in study.trials if (t.user_attrs.get(store.EXTENSION_OF) or {}).get("thinner")]
    assert queued.user_attrs[store.EXTENSION_OF]["thinner"] == "distill_width"
    params = queued.system_attrs["fixed_params"]
    assert {k: params[k] for k in ("engine", "precision", "threads")} == {"engine": "litert", "precision": "int8", "threads": 2}
    # Another deployment of that model: it was made thinner already.
    again = _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY | {"precision": "dynamic-int8"}, [0.988], speedup=4.9)
    assert _deploy(study, again) == []


def test_the_next_lower_value_only_and_the_earliest_step_first():
    study = _study()
    chain = STUDENT | {"distill_width": 0.75, "channel_prune": True, "keep": 0.75} | DEPLOY
    trial = _measured(study, chain, [0.989, 0.988], speedup=4.0)
    # The student at width 0.5 (not 0.25), its channel pruning as it was.
    assert _deploy(study, trial) == ["distill w0.5 T2 α0.9 → channel-prune keep 0.75 → int8 · litert · 2 threads"]


def test_a_thinner_model_the_study_made_is_not_queued_the_next_parameter_is():
    study = _study()
    _measured(study, STUDENT | {"channel_prune": True, "keep": 0.75} | DEPLOY | {"precision": "fp16"}, [0.986, 0.982], speedup=8.0)
    _measured(study, {"distill": False, "channel_prune": False, "prune": False} | DEPLOY, [], speedup=3.0)
    _measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.987], speedup=3.5)
    # Made at width 0.25 (deployed another way), so the channels it keeps go one value lower.
    trial = _measured(study, STUDENT | {"distill_width": 0.5, "channel_prune": True, "keep": 0.75} | DEPLOY, [0.989, 0.989], speedup=6.0)
    assert _deploy(study, trial) == ["distill w0.5 T2 α0.9 → channel-prune keep 0.5 → int8 · litert · 2 threads"]


def test_off_the_front_past_the_limit_or_past_it_by_the_evidence_nothing_is_queued():
    study = _study()
    _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, [0.987], speedup=6.0)
    # Slower than a model as accurate: off the front.
    slow = _measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.987], speedup=3.0)
    assert thinner_plan(study, slow, SPACE, WITHIN) is None
    past = _measured(study, STUDENT | {"distill_width": 0.75, "alpha": 0.5} | DEPLOY, [0.975], speedup=9.0)
    assert thinner_plan(study, past, SPACE, WITHIN) is None
    # The evidence: channel pruning the base model at keep 0.75 cost 0.002, at 0.5 0.012; a
    # width-0.25 student cost 0.012 where this one's width 0.5 cost 0.002. Either lower value
    # adds 0.010 to a drop of 0.004: past the limit.
    assert _thinner_with_evidence(keep_half=0.978) is None
    # Keep 0.5 at 0.006 adds 0.004: within, and the width is still past it.
    params, name = _thinner_with_evidence(keep_half=0.984)
    assert name == "keep" and params["keep"] == 0.5 and params["distill_width"] == 0.5


def _thinner_with_evidence(keep_half):
    study = _study()
    base = {"distill": False, "channel_prune": True, "prune": False} | DEPLOY | {"precision": "fp16"}
    _measured(study, base | {"keep": 0.75}, [0.988], speedup=1.5)
    _measured(study, base | {"keep": 0.5}, [keep_half], speedup=2.0)
    _measured(study, STUDENT | {"prune": True, "structure": "2:4"} | DEPLOY | {"precision": "fp16"}, [0.978, 0.977], speedup=7.0)
    trial = _measured(study, STUDENT | {"distill_width": 0.5, "channel_prune": True, "keep": 0.75} | DEPLOY, [0.988, 0.986], speedup=6.0)
    return thinner_plan(study, trial, SPACE, WITHIN)


def test_the_queued_parameters_make_the_thinner_model():
    study = _study()
    student = _measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.988], speedup=3.0)
    _deploy(study, student)
    (queued,) = [t for t in study.trials if (t.user_attrs.get(store.EXTENSION_OF) or {}).get("thinner")]
    recipe = SPACE(Replay(dict(queued.system_attrs["fixed_params"]), study)).to_dict()
    assert recipe["steps"] == [{"name": "distill", "params": {**recipe["steps"][0]["params"], "width": 0.5}}]
    assert recipe["steps"][0]["params"]["temperature"] == 2.0 and recipe["steps"][0]["params"]["alpha"] == 0.9
