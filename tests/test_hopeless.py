"""What a study learns from the lineage of chains that ended past the accuracy limit. Steps
that break a model: which count as hopeless (from the trained accuracies in the trials'
lineage), and that the sampler of how models are made is asked again rather than proposing a
model that takes one. The model such a chain made on its way within the limit: queued once, as
the chain's first steps deployed the chain's way. No TensorFlow: the built-in space and
Optuna's in-memory storage."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from autotune.search.plugins import load_space
from autotune.storage import store
from autotune.study.best_deployment import BestDeployment
from autotune.study.deployments import Deployer
from autotune.study.ways import Replay
from autotune.study.hopeless import BROKE_AFTER, hopeless_steps
from autotune.study.trial import gate_loss

SPACE = load_space("default")
BASELINE = {"accuracy": 0.99, "latency_p50_ms": 0.1}
GATE = lambda q, baseline: gate_loss(0.01, 0.02, q, baseline)  # noqa: E731  (a drop of 0.03)
NONE = {"distill": False, "channel_prune": False, "prune": False}
DEPLOY = {"engine": "litert", "precision": "fp32", "threads": 2}
KEEP_25 = {"name": "channel-prune", "params": {"epochs": 2, "keep": 0.25, "learning_rate": 0.0005}}


def _study() -> optuna.Study:
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.set_user_attr(store.BASELINE, BASELINE)
    return study


def _trained(study, params, accuracies, p50=0.05):
    """A complete trial whose lineage says what each of its steps left (``accuracies``, one per
    step of the recipe, fewer if training stopped early); gated if the last is past the gate."""
    study.enqueue_trial(params)
    trial = study.ask()
    recipe = SPACE(trial).to_dict()
    lineage = [{"step": "base"}] + [{"step": s["name"], "accuracy_keras": a} for s, a in zip(recipe["steps"], accuracies)]
    trial.set_user_attr(store.RECIPE, recipe)
    trial.set_user_attr(store.LINEAGE, lineage)
    accuracy = accuracies[-1] if accuracies else BASELINE["accuracy"]
    gated = BASELINE["accuracy"] - accuracy > 0.03
    metrics = {"latency_p50_ms": 0.1 if gated else p50, "accuracy": accuracy, "accuracy_drop": 0.99 - accuracy, "feasible": not gated}
    trial.set_user_attr(store.METRICS, metrics | ({"gated": True} if gated else {}))
    if gated:
        trial.set_user_attr(store.GATED, f"accuracy {accuracy} after training")
    study.tell(trial, [metrics["latency_p50_ms"], accuracy])
    return study.trials[-1]


def test_a_step_that_broke_the_base_model_is_hopeless_at_once():
    study = _study()
    _trained(study, NONE | {"channel_prune": True, "keep": 0.25} | DEPLOY, [0.81])
    assert hopeless_steps(study.trials, BASELINE, GATE) == [KEEP_25]


def test_a_step_that_broke_a_student_is_hopeless_only_after_it_broke_another():
    study = _study()
    assert BROKE_AFTER == 2
    student = {"distill": True, "distill_width": 0.25, "temperature": 2.0, "alpha": 0.9, "channel_prune": True, "keep": 0.5, "prune": False}
    # The student was fine; channel-prune keep 0.5 took it past the gate (stopped after an epoch).
    _trained(study, student | DEPLOY, [0.985, 0.91])
    assert hopeless_steps(study.trials, BASELINE, GATE) == []
    _trained(study, student | {"distill_width": 0.5} | DEPLOY, [0.988, 0.93])
    assert [s["params"]["keep"] for s in hopeless_steps(study.trials, BASELINE, GATE)] == [0.5]
    # Once it left a model within the gate, it is no longer hopeless.
    _trained(study, NONE | {"channel_prune": True, "keep": 0.5} | DEPLOY, [0.98])
    assert hopeless_steps(study.trials, BASELINE, GATE) == []


def test_a_step_given_a_model_already_past_the_gate_is_not_blamed():
    study = _study()
    # keep 0.25 broke the base model; the prune after it only took what was left.
    _trained(study, NONE | {"channel_prune": True, "keep": 0.25, "prune": True, "structure": "2:4"} | DEPLOY, [0.81, 0.70])
    assert hopeless_steps(study.trials, BASELINE, GATE) == [KEEP_25]


def _takes_keep_25(recipe) -> bool:
    return KEEP_25 in recipe["steps"]


def _search(with_gate: bool) -> int:
    """How many of 25 TPE proposals take channel-prune keep 0.25 after it broke the base model."""
    study = _study()
    _trained(study, NONE | {"channel_prune": True, "keep": 0.25} | DEPLOY, [0.81])
    for keep in (0.5, 0.75):
        _trained(study, NONE | {"channel_prune": True, "keep": keep} | DEPLOY, [0.985], p50=0.04)
    for width in (0.25, 0.5, 0.75):
        _trained(study, NONE | {"distill": True, "distill_width": width, "temperature": 2.0, "alpha": 0.9} | DEPLOY, [0.985], p50=0.03)
    kwargs = {"space": SPACE, "gate": GATE} if with_gate else {}
    study.sampler = BestDeployment(store.tpe_sampler(0), seed=0, **kwargs)
    taken = 0
    for _ in range(25):
        trial = study.ask()
        recipe = SPACE(trial).to_dict()
        taken += _takes_keep_25(recipe)
        trial.set_user_attr(store.RECIPE, recipe)
        trial.set_user_attr(store.METRICS, {"latency_p50_ms": 0.1, "accuracy": 0.9, "accuracy_drop": 0.09, "feasible": False})
        study.tell(trial, [0.1, 0.9])
    return taken


def test_tpe_is_asked_again_rather_than_proposing_a_model_that_takes_a_hopeless_step():
    assert _search(with_gate=False) > 0  # TPE alone proposes it again
    assert _search(with_gate=True) == 0


WITHIN = lambda loss: loss["accuracy_drop"] <= 0.01  # noqa: E731  (the limit: a drop of 0.01)
STUDENT = {"distill": True, "distill_width": 0.25, "temperature": 2.0, "alpha": 0.9}


def _deploy(study, trial) -> list[str]:
    """Run the deployer after ``trial``; the models made on the way it queued (as users read
    them), each checked to be marked with the trial it came from. The queued trials are then
    taken and failed, so that the next one ``_trained`` asks for is its own."""
    before = len(study.trials)
    prefixes = []
    Deployer(SPACE, 50, "env", lambda n, k: None, within=WITHIN, on_prefix=lambda n, text: prefixes.append(text))(study, trial)
    queued = study.trials[before:]
    assert len(queued) >= len(prefixes)
    for t in queued[: len(prefixes)]:
        assert t.user_attrs[store.PREFIX_OF]["trial"] == trial.number
    for _ in queued:
        study.tell(study.ask(), state=TrialState.FAIL)
    return prefixes


def test_a_gated_chain_queues_the_longest_model_it_made_within_the_limit_once():
    study = _study()
    # The student (a drop of 0.005) and the channel-pruned student (0.008) were within the
    # limit; the prune after them broke it.
    chain = STUDENT | {"channel_prune": True, "keep": 0.75, "prune": True, "structure": "2:4"} | DEPLOY
    gated = _trained(study, chain, [0.985, 0.982, 0.90])
    assert _deploy(study, gated) == ["distill w0.25 T2 α0.9 → channel-prune keep 0.75 → fp32 · litert · 2 threads"]
    params = study.trials[-1].system_attrs["fixed_params"]  # as Optuna queued it
    recipe = SPACE(Replay(dict(params), study)).to_dict()
    assert [s["name"] for s in recipe["steps"]] == ["distill", "channel-prune"]
    assert {k: params[k] for k in ("engine", "precision", "threads")} == DEPLOY
    # Asked again (another worker's callback), nothing more: that model is queued already.
    assert _deploy(study, gated) == []


def test_a_chain_past_the_limit_after_its_first_step_or_within_it_queues_nothing():
    study = _study()
    # Measured beyond the limit, but its first step was already past it: nothing within to take.
    beyond = _trained(study, STUDENT | {"channel_prune": True, "keep": 0.5, "prune": False} | DEPLOY, [0.975, 0.97])
    assert _deploy(study, beyond) == []
    # Within the limit: the chain is on the front as it is.
    fine = _trained(study, STUDENT | {"distill_width": 0.5, "channel_prune": True, "keep": 0.75, "prune": False} | DEPLOY, [0.988, 0.986])
    assert _deploy(study, fine) == []
    # Past it after a student the study has measured already: nothing new on the way.
    _trained(study, STUDENT | {"channel_prune": False, "prune": False} | DEPLOY, [0.985])
    again = _trained(study, STUDENT | {"channel_prune": True, "keep": 0.25, "prune": False} | DEPLOY, [0.985, 0.81])
    assert _deploy(study, again) == []
