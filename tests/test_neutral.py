"""A model within the accuracy limit whose chain ends in steps that cannot make it faster
(magnitude pruning, QAT: its kernels stay dense) and that cost accuracy as trained: the model
before those steps, which the content cache holds, is queued, deployed as that trial was, once.
No TensorFlow: the built-in space and Optuna's in-memory storage."""

from __future__ import annotations

from autotune.storage import store
from autotune.study.chains import neutral_plan
from autotune.study.deployments import Deployer
from autotune.study.ways import Replay, shape_key
from tests.chain_study import DEPLOY, SPACE, STUDENT, WITHIN
from tests.chain_study import new_study as _study
from tests.test_siblings import _fail_waiting, _measured, _waiting

PRUNED = STUDENT | {"distill_width": 0.5, "prune": True, "structure": "2:4"}


def _deploy(study, trial):
    said = []
    Deployer(SPACE, 50, "env", lambda n, k: None, within=WITHIN, on_neutral=lambda n, text, cost: said.append((n, text, round(cost, 4))))(study, trial)
    return said


def test_the_student_before_its_pruning_is_measured_when_the_pruning_cost_accuracy():
    study = _study()
    pruned = _measured(study, PRUNED | DEPLOY, [0.988, 0.985], speedup=7.4)
    assert _deploy(study, pruned) == [(pruned.number, "distill w0.5 T2 α0.9 → int8 · litert · 2 threads", 0.003)]
    [queued] = _waiting(study, store.PREFIX_OF)
    assert queued.user_attrs[store.PREFIX_OF]["trial"] == pruned.number
    assert queued.user_attrs[store.PREFIX_OF]["neutral"] is True
    params = queued.system_attrs["fixed_params"]
    assert (params["prune"], params["distill_width"], params["temperature"], params["alpha"]) == (False, 0.5, 2.0, 0.9)
    assert {k: params[k] for k in ("engine", "precision", "threads")} == {"engine": "litert", "precision": "int8", "threads": 2}
    # It runs as fast: one shape.
    assert shape_key(SPACE(Replay(dict(params), study)).to_dict()) == shape_key(pruned.user_attrs[store.RECIPE])
    # Once: another deployment of the pruned model queues nothing more.
    again = _measured(study, PRUNED | DEPLOY | {"precision": "dynamic-int8"}, [0.988, 0.985], speedup=7.6)
    assert _deploy(study, again) == []


def test_pruning_and_qat_are_both_left_off():
    study = _study()
    chain = _measured(study, PRUNED | DEPLOY | {"qat": True, "qat_preserve_sparsity": False}, [0.988, 0.986, 0.984], speedup=7.4)
    [(_, text, cost)] = _deploy(study, chain)
    assert (text, cost) == ("distill w0.5 T2 α0.9 → int8 · litert · 2 threads", 0.004)


def test_nothing_is_queued_when_the_steps_cost_nothing_the_chain_is_past_the_limit_or_made_already():
    study = _study()
    free = _measured(study, PRUNED | DEPLOY, [0.988, 0.988], speedup=7.4)
    assert _deploy(study, free) == []
    # Past the limit: the model on its way within it is ``prefix_plan``'s, not this rule's.
    past = _measured(study, PRUNED | DEPLOY | {"alpha": 0.5}, [0.985, 0.975], speedup=7.4)
    assert neutral_plan(study, past, SPACE) is None
    # The chain ends in a step that thins the model: leaving it off would be slower.
    thin = _measured(study, STUDENT | {"channel_prune": True, "keep": 0.75} | DEPLOY, [0.988, 0.985], speedup=9.0)
    assert neutral_plan(study, thin, SPACE) is None
    # Pruning alone: the model before it is the baseline.
    alone = _measured(study, {"distill": False, "channel_prune": False, "prune": True, "structure": "2:4"} | DEPLOY, [0.987], speedup=3.0)
    assert neutral_plan(study, alone, SPACE) is None
    # The student alone measured already.
    _fail_waiting(study)
    _measured(study, STUDENT | {"distill_width": 0.5, "temperature": 4.0} | DEPLOY, [0.987], speedup=10.0)
    made = _measured(study, PRUNED | DEPLOY | {"temperature": 4.0}, [0.987, 0.985], speedup=10.0)
    assert neutral_plan(study, made, SPACE) is None


def test_a_step_that_leaves_the_shape_as_it_found_it_is_not_part_of_the_shape():
    recipe = {"steps": [{"name": "distill", "params": {"width": 0.5, "temperature": 2.0}}], "precision": "int8", "runtime": {"engine": "litert", "threads": 2}}
    pruned = {**recipe, "steps": [*recipe["steps"], {"name": "prune", "params": {"sparsity": 0.5, "structure": "2:4"}}, {"name": "qat", "params": {}}]}
    assert shape_key(pruned) == shape_key(recipe)
    assert shape_key(pruned) != shape_key({**pruned, "steps": [*pruned["steps"][:1], {"name": "channel-prune", "params": {"keep": 0.75}}]})
