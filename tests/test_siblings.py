"""The study's fastest model trained other ways at its shape: once the study has measured a few
models, after any trial, for a deployment among the study's fastest within the accuracy limit, its chain with parameters that do not set the
model's shape changed (a distillation's temperature and weight, not its width) is queued,
fewest changes first, at most ``SIBLINGS``, once per shape, each deployed only as that trial
was; and a sibling that read slower in the search than its shape did is still judged at its
shape's speed. No TensorFlow: the built-in space and Optuna's in-memory storage."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from optuna.trial import TrialState

from autotune.storage import store
from autotune.study.chains import SIBLINGS
from autotune.study.deployments import Deployer, plan
from autotune.study.ways import Replay, deployment_kind, losers, shape_key
from autotune.techniques import Technique
from tests.chain_study import DEPLOY, SPACE, STUDENT, WITHIN, measured
from tests.chain_study import new_study as _study


def _measured(study, params, accuracies, speedup, queued=None):
    """A measured trial; its lineage says what each step left (``accuracies``, one per step)."""
    return measured(study, params, accuracies, speedup, queued)


def _deploy(study, trial):
    """Run the deployer after ``trial``: the siblings it queued (as users read them) and the
    extensions; the queued trials are left waiting (taken by ``_take``)."""
    siblings, longer = [], []
    Deployer(SPACE, 50, "env", lambda n, k: None, within=WITHIN, on_siblings=lambda n, texts: siblings.extend(texts), on_extension=lambda n, t: longer.append(t))(study, trial)
    return siblings, longer


def _waiting(study, attr):
    """The queued trials marked ``attr``, but the siblings of the front member whose accuracy
    counts most (``test_wider``)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) if attr in t.user_attrs and not t.user_attrs[attr].get("accurate")]


def _fail_waiting(study):
    for _ in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study.tell(study.ask(), state=TrialState.FAIL)


def _two_models(study):
    _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, [0.988], speedup=5.0)
    _measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.989], speedup=3.0)


def test_the_fastest_student_is_trained_again_at_its_width_with_other_temperatures_and_weights_once():
    study = _study()
    _two_models(study)
    fastest = _measured(study, STUDENT | DEPLOY, [0.985], speedup=7.4)
    siblings, _ = _deploy(study, fastest)
    # One change first (the temperature or the weight), then both.
    assert SIBLINGS == 3
    assert set(siblings[:2]) == {"distill w0.25 T4 α0.9 → int8 · litert · 2 threads", "distill w0.25 T2 α0.5 → int8 · litert · 2 threads"}
    assert siblings[2] == "distill w0.25 T4 α0.5 → int8 · litert · 2 threads"
    queued = _waiting(study, store.SIBLING_OF)
    assert len(queued) == len(siblings)
    for t in queued:
        assert t.user_attrs[store.SIBLING_OF]["trial"] == fastest.number
        params = t.system_attrs["fixed_params"]
        assert {k: params[k] for k in ("engine", "precision", "threads")} == {"engine": "litert", "precision": "int8", "threads": 2}
        assert shape_key(SPACE(Replay(dict(params), study)).to_dict()) == shape_key(fastest.user_attrs[store.RECIPE])
    _fail_waiting(study)
    # Another deployment of that shape, as fast: its shape was trained other ways already.
    again = _measured(study, STUDENT | DEPLOY | {"alpha": 0.5, "temperature": 4.0}, [0.985], speedup=7.3)
    assert _deploy(study, again)[0] == []


def test_a_sibling_is_deployed_no_other_way():
    study = _study()
    fastest = _measured(study, STUDENT | DEPLOY, [0.985], speedup=7.4)
    assert plan(study, fastest, SPACE, "env", 50)  # the model's other ways
    sibling = _measured(study, STUDENT | DEPLOY | {"alpha": 0.5}, [0.987], speedup=7.2, queued={store.SIBLING_OF: {"trial": fastest.number, "shape": "s", "made": "m"}})
    assert plan(study, sibling, SPACE, "env", 50) == []


def test_a_slower_model_or_one_past_the_limit_gets_no_siblings():
    study = _study()
    _measured(study, STUDENT | DEPLOY, [0.985], speedup=7.4)
    slow = _measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.989], speedup=4.0)
    assert _deploy(study, slow)[0] == []
    past = _measured(study, STUDENT | {"distill_width": 0.5, "alpha": 0.5} | DEPLOY, [0.970], speedup=7.4)
    assert _deploy(study, past)[0] == []


def test_a_sibling_that_read_slow_is_judged_at_its_shapes_speed_and_taken_one_step_further():
    study = _study()
    # The study channel-pruned the base model at keep 0.75 for 0.004 of accuracy.
    _measured(study, {"distill": False, "channel_prune": True, "keep": 0.75, "prune": False} | DEPLOY, [0.986], speedup=1.5)
    fastest = _measured(study, STUDENT | DEPLOY, [0.984], speedup=7.4)  # 0.006 + 0.004: past
    _deploy(study, fastest)
    _fail_waiting(study)
    # One sibling is 0.003 more accurate; its search timing read ×5.2 (noise: it runs as its
    # sibling does). It is at its shape's ×7.4, so it has the room to be channel-pruned.
    sibling = _measured(study, STUDENT | DEPLOY | {"alpha": 0.5}, [0.987], speedup=5.2, queued={store.SIBLING_OF: {"trial": fastest.number, "shape": "s", "made": "m"}})
    _, longer = _deploy(study, sibling)
    assert longer == ["distill w0.25 T2 α0.5 → channel-prune keep 0.75 → int8 · litert · 2 threads"]
    # A model of another shape that read ×5.2 is not among the fastest.
    other = _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, [0.989], speedup=5.2)
    assert _deploy(study, other) == ([], [])


@dataclasses.dataclass(frozen=True)
class _Mine(Technique):
    name: ClassVar[str] = "test-siblings-own"
    order: ClassVar[int] = 9
    factor: float = 1.0

    def apply(self, model, context):
        return model


def test_a_technique_that_does_not_say_what_shapes_its_model_has_every_parameter_count():
    recipe = {"steps": [{"name": "distill", "params": {"width": 0.25, "temperature": 2.0}}], "precision": "int8", "runtime": {"engine": "litert", "threads": 2}}
    warmer = {**recipe, "steps": [{"name": "distill", "params": {"width": 0.25, "temperature": 4.0}}]}
    assert shape_key(recipe) == shape_key(warmer)
    assert shape_key(recipe) != shape_key({**recipe, "steps": [{"name": "distill", "params": {"width": 0.5, "temperature": 2.0}}]})
    assert shape_key(recipe) != shape_key({**recipe, "precision": "fp16"})
    mine = {**recipe, "steps": [{"name": _Mine.name, "params": {"factor": 1.0}}]}
    assert shape_key(mine) != shape_key({**mine, "steps": [{"name": _Mine.name, "params": {"factor": 2.0}}]})


def test_a_shape_is_trained_other_ways_once():
    study = _study()
    _two_models(study)
    pruned = STUDENT | {"prune": True, "structure": "unstructured", "sparsity": 0.3, "schedule": "constant"} | DEPLOY
    fastest = _measured(study, pruned, [0.988, 0.987], speedup=7.4)
    assert len(_deploy(study, fastest)[0]) == SIBLINGS  # of 23 ways to train that shape
    _fail_waiting(study)
    # Another model of that shape, measured as fast, trained a way no sibling was.
    again = _measured(study, pruned | {"sparsity": 0.6, "schedule": "polynomial", "alpha": 0.5}, [0.988, 0.986], speedup=7.5)
    assert _deploy(study, again)[0] == []
    _fail_waiting(study)
    # ... however it is deployed.
    other = _measured(study, pruned | {"sparsity": 0.6, "schedule": "polynomial", "temperature": 4.0, "precision": "dynamic-int8"}, [0.988, 0.986], speedup=7.6)
    assert _deploy(study, other)[0] == []


def test_the_first_models_get_no_siblings_until_the_study_has_measured_a_few_then_the_fastest_does():
    study = _study()
    fastest = _measured(study, STUDENT | DEPLOY, [0.985], speedup=7.4)
    assert _deploy(study, fastest)[0] == []  # the study's only model is its fastest
    _fail_waiting(study)
    slow = _measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.989], speedup=4.0)
    assert _deploy(study, slow)[0] == []
    _fail_waiting(study)
    # The third model is slow, but now the study's fastest has siblings.
    third = _measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, [0.988], speedup=5.0)
    assert len(_deploy(study, third)[0]) == SIBLINGS
    assert {t.user_attrs[store.SIBLING_OF]["trial"] for t in _waiting(study, store.SIBLING_OF)} == {fastest.number}


def test_the_fastest_model_is_taken_further_once_the_evidence_comes_from_another_trial():
    study = _study()
    _two_models(study)
    student = _measured(study, STUDENT | DEPLOY, [0.987], speedup=7.4)
    assert _deploy(study, student)[1] == []  # the study has not channel-pruned at 0.75 yet
    _fail_waiting(study)
    # Channel pruning the base model at keep 0.75 costs 0.002: now the student can take it.
    thin = _measured(study, {"distill": False, "channel_prune": True, "keep": 0.75, "prune": False} | DEPLOY, [0.988], speedup=1.5)
    assert _deploy(study, thin)[1] == ["distill w0.25 T2 α0.9 → channel-prune keep 0.75 → int8 · litert · 2 threads"]


def test_a_model_among_the_fastest_is_deployed_at_a_precision_that_lost_on_wider_models():
    study = _study()
    for width, speedup in ((0.75, 3.0), (0.5, 5.0)):
        _measured(study, STUDENT | {"distill_width": width} | DEPLOY, [0.988], speedup=speedup)
        _measured(study, STUDENT | {"distill_width": width} | DEPLOY | {"precision": "dynamic-int8"}, [0.988], speedup=speedup * 0.8)
    assert "dynamic-int8 · litert · 2t" in losers(study.trials)
    # Two models more, deployed one way, so that neither model below is one that now and then
    # tries a loser again (every LOSER_EVERY-th).
    for width in (0.5, 0.75):
        _measured(study, STUDENT | {"distill_width": width, "temperature": 4.0} | DEPLOY, [0.988], speedup=4.0)
    fastest = _measured(study, STUDENT | DEPLOY, [0.986], speedup=7.4)
    ways = {deployment_kind(r) for r in (SPACE(Replay(p, study)).to_dict() for p in plan(study, fastest, SPACE, "env", 50))}
    assert "dynamic-int8 · litert · 2t" in ways
    slower = _measured(study, {"distill": False, "channel_prune": True, "keep": 0.75, "prune": False} | DEPLOY, [0.987], speedup=2.0)
    ways = {deployment_kind(r) for r in (SPACE(Replay(p, study)).to_dict() for p in plan(study, slower, SPACE, "env", 50))}
    assert "dynamic-int8 · litert · 2t" not in ways


def test_the_other_ways_of_a_model_among_the_fastest_run_ahead_of_its_siblings_and_earlier_queues():
    study = _study()
    _two_models(study)
    _fail_waiting(study)
    slower = _measured(study, STUDENT | {"distill_width": 0.75, "temperature": 4.0} | DEPLOY, [0.989], speedup=3.0)
    fastest = _measured(study, STUDENT | DEPLOY | {"precision": "dynamic-int8"}, [0.985], speedup=7.4)
    # Queued before the fastest model's deployer ran: a slower model's other ways.
    Deployer(SPACE, 50, "env", lambda n, k: None, within=WITHIN)(study, slower)
    _deploy(study, fastest)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    mine = [t.number for t in waiting if (t.user_attrs.get(store.DEPLOYMENT_OF) or {}).get("trial") == fastest.number]
    others = [t.number for t in waiting if t.number not in mine]
    assert mine and others and min(others) < min(mine)
    # Its other ways first, in the order queued; then the rest (siblings, the slower model's).
    assert [study.ask().number for _ in mine] == mine
    assert study.ask().number == min(others)
