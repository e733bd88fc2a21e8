"""The study's fastest model within the accuracy limit made one value thinner: from the study's
first model on, after any trial, a step of its chain that thins it (a student's width, channel
pruning's keep), the last first, is set one choice thinner, to a shape of model the study has
not made, and queued, deployed as that model was. No TensorFlow: the built-in space and
Optuna's in-memory storage."""

from __future__ import annotations

from optuna.trial import TrialState

from autotune.report import trial_detail
from autotune.storage import store
from autotune.study.deployments import Deployer
from autotune.study.ways import Replay
from tests.chain_study import DEPLOY, SPACE, STUDENT, WITHIN, measured, new_study, queued_by


def _narrower(study, trial) -> list[tuple[int, str]]:
    return queued_by(study, trial, "on_narrower", store.NARROWER_OF)


def test_the_studys_first_model_within_the_limit_is_made_one_value_thinner_deployed_as_it_was():
    study = new_study()
    first = measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY | {"precision": "dynamic-int8"}, [0.985], speedup=3.9)
    assert _narrower(study, first) == [(first.number, "distill w0.5 T2 α0.9 → dynamic-int8 · litert · 2 threads")]
    (queued,) = [t for t in study.trials if store.NARROWER_OF in t.user_attrs]
    params = queued.system_attrs["fixed_params"]
    assert {k: params[k] for k in ("engine", "precision", "threads")} == {"engine": "litert", "precision": "dynamic-int8", "threads": 2}
    assert SPACE(Replay(dict(params), study)).to_dict()["steps"][0]["params"]["temperature"] == 2.0
    # Asked again, after a slower model: that thinner shape is made already.
    assert _narrower(study, measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY | {"precision": "fp16"}, [0.985], speedup=1.1)) == []
    # The thinner student, within the limit and now the fastest, is made thinner in turn.
    thinner = measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY | {"precision": "dynamic-int8"}, [0.986], speedup=5.9)
    assert _narrower(study, thinner) == [(thinner.number, "distill w0.25 T2 α0.9 → dynamic-int8 · litert · 2 threads")]
    # At the thinnest the space makes a student, nothing is left to make thinner.
    thinnest = measured(study, STUDENT | DEPLOY, [0.983], speedup=8.0)
    assert _narrower(study, thinnest) == []


def test_the_last_step_that_thins_goes_first_and_a_shape_made_within_the_limit_is_not_made_again():
    study = new_study()
    chained = STUDENT | {"distill_width": 0.5, "channel_prune": True, "keep": 0.75} | DEPLOY
    # The study channel-pruned the width-0.5 student to keep 0.5 (past the limit) already.
    measured(study, chained | {"keep": 0.5, "alpha": 0.5}, [0.987, 0.95], speedup=9.0)
    model = measured(study, chained, [0.987, 0.984], speedup=7.0)
    # Keep 0.5 was made past the limit by other training: the model's own is tried once, then
    # the student goes thinner.
    assert _narrower(study, model) == [(model.number, "distill w0.5 T2 α0.9 → channel-prune keep 0.5 → int8 · litert · 2 threads")]
    assert _narrower(study, model) == [(model.number, "distill w0.25 T2 α0.9 → channel-prune keep 0.75 → int8 · litert · 2 threads")]
    # A shape the study measured within the limit, however it trained it, is not made again.
    study = new_study()
    measured(study, chained | {"keep": 0.5, "alpha": 0.5}, [0.987, 0.985], speedup=3.0)  # read slow: not the fastest
    model = measured(study, chained, [0.987, 0.984], speedup=7.0)
    assert _narrower(study, model) == [(model.number, "distill w0.25 T2 α0.9 → channel-prune keep 0.75 → int8 · litert · 2 threads")]
    study = new_study()
    model = measured(study, chained, [0.987, 0.984], speedup=7.0)
    assert _narrower(study, model) == [(model.number, "distill w0.5 T2 α0.9 → channel-prune keep 0.5 → int8 · litert · 2 threads")]
    # Asked again, after any trial: its other step that thins it, then nothing.
    assert _narrower(study, model) == [(model.number, "distill w0.25 T2 α0.9 → channel-prune keep 0.75 → int8 · litert · 2 threads")]
    assert _narrower(study, model) == []


def test_only_the_studys_fastest_model_within_the_limit_is_made_thinner():
    study = new_study()
    fastest = measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, [0.985], speedup=6.0)
    _narrower(study, fastest)
    # Slower than the fastest (beyond the ties of its timing), or past the limit: not its turn.
    slower = measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.988], speedup=3.0)
    assert _narrower(study, slower) == []
    study = new_study()
    past = measured(study, STUDENT | {"distill_width": 0.75} | DEPLOY, [0.975], speedup=4.0)
    assert _narrower(study, past) == []
    # The base model at int8, as the references measure it, has nothing that thins it.
    base = measured(study, {}, [], speedup=3.0, user_attrs={store.REFERENCE: "int8-baseline"})
    assert _narrower(study, base) == []
    # Channel pruning of the base model, the fastest within the limit: one keep thinner.
    pruned = measured(study, STUDENT | {"distill": False, "channel_prune": True, "keep": 0.75} | DEPLOY, [0.986], speedup=3.5)
    assert _narrower(study, pruned) == [(pruned.number, "channel-prune keep 0.5 → int8 · litert · 2 threads")]


def test_a_thinner_model_runs_ahead_of_the_trials_queued_before_it_and_show_says_so(tmp_path, capsys):
    # In the SQLite storage `autotune run` uses by default.
    study = new_study(store.open_storage(f"sqlite:///{tmp_path}/autotune.db"))
    first = measured(study, STUDENT | {"distill_width": 0.5} | DEPLOY, [0.985], speedup=6.0)
    # Queued before it: another model's deployment.
    study.enqueue_trial(STUDENT | {"distill_width": 0.75} | DEPLOY, user_attrs={store.DEPLOYMENT_OF: {"trial": 99, "made": "m"}})
    Deployer(SPACE, 50, "env", lambda n, k: None, within=WITHIN)(study, first)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    (queued,) = [t for t in waiting if store.NARROWER_OF in t.user_attrs]
    assert min(t.number for t in waiting) < queued.number  # first in, it would run later
    trial = study.ask()
    assert trial.number == queued.number
    study.tell(trial, state=TrialState.FAIL)
    # Then the model's own other ways (it is the study's fastest), then the rest, each in the
    # order queued.
    rest = [t.number for t in waiting if t.number != queued.number]
    ahead = [t.number for t in waiting if (t.user_attrs.get(store.DEPLOYMENT_OF) or {}).get("trial") == first.number]
    assert ahead and [study.ask().number for _ in rest] == ahead + [n for n in rest if n not in ahead]
    trial_detail(study.trials[queued.number], None)
    assert f"#{first.number}'s model one value thinner, run ahead of the queue" in capsys.readouterr().out


def test_a_thinner_model_past_the_limit_has_the_model_it_made_on_its_way_within_it_measured():
    study = new_study()
    pruned = STUDENT | {"distill_width": 0.5, "prune": True, "structure": "2:4"} | DEPLOY
    first = measured(study, pruned, [0.988, 0.986], speedup=6.0)
    assert _narrower(study, first) == [(first.number, "distill w0.25 T2 α0.9 → prune 2:4 → int8 · litert · 2 threads")]
    # Measured: the width-0.25 student was within the limit as trained, and its pruning took
    # it past (a drop of 0.014).
    (queued,) = [t for t in study.trials if store.NARROWER_OF in t.user_attrs]
    thinner = measured(study, dict(queued.system_attrs["fixed_params"]), [0.985, 0.976], speedup=7.0, user_attrs=queued.user_attrs)
    study.enqueue_trial(STUDENT | {"distill_width": 0.75} | DEPLOY)
    prefixes: list[tuple[int, str]] = []
    Deployer(SPACE, 50, "env", lambda n, k: None, within=WITHIN, on_prefix=lambda n, text: prefixes.append((n, text)))(study, thinner)
    assert prefixes == [(thinner.number, "distill w0.25 T2 α0.9 → int8 · litert · 2 threads")]
    # It may be the study's new fastest: it runs ahead of what was queued before it.
    (way_in,) = [t for t in study.get_trials(states=(TrialState.WAITING,)) if t.user_attrs.get(store.PREFIX_OF)]
    assert study.ask().number == way_in.number
