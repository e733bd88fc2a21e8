"""The study's fastest model taken one step further: after a deployment among the study's
fastest within the accuracy limit, its chain with one more step appended (a step the study saw
thin a model, at the cost in accuracy it had there) is queued once, when that cost leaves it
within the limit. No TensorFlow: the built-in space and Optuna's in-memory storage."""

from __future__ import annotations

from optuna.trial import TrialState

from autotune.storage import store
from autotune.study.deployments import Deployer
from autotune.study.ways import Replay
from tests.chain_study import DEPLOY, SPACE, WITHIN, measured
from tests.chain_study import new_study as _study

NONE = {"distill": False, "channel_prune": False, "prune": False}
STUDENT = {"distill": True, "distill_width": 0.25, "temperature": 4.0, "alpha": 0.5}
# How the trials that channel-pruned the base model were deployed: not how the extension is.
DONOR = {"engine": "litert", "precision": "fp16", "threads": 1}


def _trained(study, params, accuracies, speedup, thins=True):
    """A measured trial within the limit (on no host named); its lineage says what each step
    left (``accuracies``, one per step) and, with ``thins``, that the thinning steps left fewer
    parameters."""
    return measured(study, params, accuracies, speedup, thins=thins, feasible=True, env=None)


def _deploy(study, trial) -> list[str]:
    """Run the deployer after ``trial``; the models one step further it queued (as users read
    them), each checked to be marked with the trial it came from. The queued trials are then
    taken and failed, so that the next one ``_trained`` asks for is its own."""
    before = len(study.trials)
    longer = []
    Deployer(SPACE, 50, "env", lambda n, k: None, within=WITHIN, on_extension=lambda n, text: longer.append(text))(study, trial)
    queued = study.trials[before:]
    for t in queued[: len(longer)]:
        assert t.user_attrs[store.EXTENSION_OF]["trial"] == trial.number
    for _ in queued:
        study.tell(study.ask(), state=TrialState.FAIL)
    return longer


def _known_steps(study):
    """The study has trained channel pruning on the base model at keep 0.75 (a drop of 0.004),
    0.5 (0.006) and 0.25 (0.19), and magnitude pruning at 0.3 (0.001, but it leaves the kernels
    dense)."""
    _trained(study, NONE | {"channel_prune": True, "keep": 0.75} | DONOR, [0.986], speedup=1.5)
    _trained(study, NONE | {"channel_prune": True, "keep": 0.5} | DONOR, [0.984], speedup=2.0)
    _trained(study, NONE | {"channel_prune": True, "keep": 0.25} | DONOR, [0.80], speedup=3.0)
    _trained(study, NONE | {"prune": True, "structure": "unstructured", "sparsity": 0.3, "schedule": "constant"} | DONOR, [0.989], speedup=1.0, thins=False)


def test_the_fastest_student_with_room_in_the_limit_is_channel_pruned_at_the_cheapest_keep_once():
    study = _study()
    _known_steps(study)
    # A drop of 0.003: keep 0.75 and 0.5 both leave it within the limit; 0.75 costs less.
    student = _trained(study, STUDENT | {"channel_prune": False, "prune": False} | DEPLOY, [0.987], speedup=7.4)
    assert _deploy(study, student) == ["distill w0.25 T4 α0.5 → channel-prune keep 0.75 → int8 · litert · 2 threads"]
    (queued,) = [t for t in study.trials if store.EXTENSION_OF in t.user_attrs]
    params = queued.system_attrs["fixed_params"]  # as Optuna queued it
    recipe = SPACE(Replay(dict(params), study)).to_dict()
    assert [s["name"] for s in recipe["steps"]] == ["distill", "channel-prune"]
    assert {k: params[k] for k in ("engine", "precision", "threads")} == {"engine": "litert", "precision": "int8", "threads": 2}
    # Another of its deployments, as fast: that model was taken a step further already (not
    # at keep 0.5 now).
    again = _trained(study, STUDENT | {"channel_prune": False, "prune": False} | DEPLOY | {"precision": "dynamic-int8"}, [0.987], speedup=7.3)
    assert _deploy(study, again) == []


def test_a_model_slower_than_the_fastest_or_without_room_in_the_limit_is_not_taken_further():
    study = _study()
    _known_steps(study)
    _trained(study, STUDENT | {"distill_width": 0.5, "channel_prune": False, "prune": False} | DEPLOY, [0.987], speedup=7.0)
    # Slower than the study's fastest beyond the timing's resolution.
    slow = _trained(study, STUDENT | {"distill_width": 0.75, "channel_prune": False, "prune": False} | DEPLOY, [0.988], speedup=5.0)
    assert _deploy(study, slow) == []
    # The fastest, but its drop of 0.007 and keep 0.75's 0.004 (the cheapest) are past the limit.
    tight = _trained(study, STUDENT | {"channel_prune": False, "prune": False} | DEPLOY, [0.983], speedup=7.4)
    assert _deploy(study, tight) == []


def test_a_step_never_seen_to_thin_a_model_is_not_appended():
    study = _study()
    _trained(study, NONE | {"channel_prune": True, "keep": 0.75} | DEPLOY, [0.986], speedup=1.5, thins=False)
    student = _trained(study, STUDENT | {"channel_prune": False, "prune": False} | DEPLOY, [0.987], speedup=7.4)
    assert _deploy(study, student) == []


def test_a_step_is_appended_only_at_the_end_of_the_chain():
    study = _study()
    _known_steps(study)
    _trained(study, STUDENT | {"channel_prune": False, "prune": False} | DONOR, [0.988], speedup=5.0)
    # The fastest is the base model channel-pruned: a student comes before that step in the
    # space, so a chain with one is another model, trained from the start.
    fastest = _trained(study, NONE | {"channel_prune": True, "keep": 0.75} | DEPLOY, [0.986], speedup=7.4)
    assert _deploy(study, fastest) == []


def test_a_steps_cost_counts_each_model_it_was_given_once():
    study = _study()
    # keep 0.75 cost the base model 0.002, read by three deployments of it, and a width-0.5
    # student 0.008: 0.005 a model (0.0035 a trial).
    for precision in ("fp16", "fp32", "dynamic-int8"):
        _trained(study, NONE | {"channel_prune": True, "keep": 0.75} | DONOR | {"precision": precision}, [0.988], speedup=1.5)
    _trained(study, STUDENT | {"distill_width": 0.5, "channel_prune": True, "keep": 0.75, "prune": False} | DONOR, [0.988, 0.980], speedup=4.0)
    # A drop of 0.006: within with 0.0035, past the limit with 0.005.
    student = _trained(study, STUDENT | {"channel_prune": False, "prune": False} | DEPLOY, [0.984], speedup=7.4)
    assert _deploy(study, student) == []
