"""A run killed with SIGKILL at every stage of a trial (training, conversion, measurement,
the database write) loses nothing: each resume keeps every finished trial with its values,
fails the killed one (stale heartbeat) and runs it again, and the last one completes the
budget with no trial left running. Real processes, TensorFlow, LiteRT and SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from autotune.storage import store

pytestmark = pytest.mark.slow

SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques import Distill

def space(trial):
    width = trial.suggest_categorical("width", [0.25, 0.5])
    precision = trial.suggest_categorical("precision", ["fp32", "int8", "dynamic-int8"])
    threads = trial.suggest_int("threads", 1, 2)
    return Recipe(precision=precision, runtime=Runtime(engine="litert", threads=threads), steps=(Distill(width=width, epochs=1),))
"""
BUDGET = 10


def _autotune(*args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AUTOTUNE_FAULT"}
    if fault:
        env["AUTOTUNE_FAULT"] = fault
    # A session of its own: the fault kills the run's whole process group (parent and child).
    return subprocess.run(
        [sys.executable, "-m", "autotune", *args], capture_output=True, text=True, timeout=900, env=env, start_new_session=True
    )


def _finished(study: optuna.Study) -> dict[int, tuple]:
    return {t.number: (t.state, t.values) for t in study.get_trials() if t.state.is_finished()}


def test_sigkill_at_every_stage_then_resume_loses_nothing(workdir):
    (workdir / "kill_space.py").write_text(SPACE)
    storage = store.open_storage("sqlite:///studies/autotune.db")
    stages = [("train", ""), ("convert", ""), ("latency", "+0.5"), ("write", "")]
    killed: list[int] = []
    for i, (stage, delay) in enumerate(stages):
        if i == 0:
            args = ("run", "--space", "kill_space.py", "--budget", str(BUDGET))
            at = 2  # after the two reference trials
        else:
            args = ("resume", "demo")
            at = len(optuna.load_study(study_name="demo", storage=storage).get_trials())
        before = {} if i == 0 else _finished(optuna.load_study(study_name="demo", storage=storage))
        out = _autotune(*args, fault=f"{stage}@{at}{delay}")
        assert out.returncode == -signal.SIGKILL, (stage, out.returncode, out.stderr[-2000:])
        study = optuna.load_study(study_name="demo", storage=storage)
        after = _finished(study)
        for number, record in before.items():  # nothing finished before the kill changed
            assert after[number] == record, (stage, number)
        # The killed trial is left running; so may be an earlier one whose heartbeat is not
        # stale yet (the resume went on with other trials meanwhile). Nothing else runs.
        running = {t.number for t in study.get_trials() if t.state == TrialState.RUNNING}
        new = {n for n in running if n >= at}
        assert len(new) == 1 and running - new <= set(killed), (stage, running, killed)
        killed.extend(new)

    before = _finished(optuna.load_study(study_name="demo", storage=storage))
    out = _autotune("resume", "demo")
    assert out.returncode == 0, out.stderr[-3000:]
    study = optuna.load_study(study_name="demo", storage=storage)
    trials = study.get_trials()
    assert store.evaluated(trials) == BUDGET
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for number, record in before.items():
        assert _finished(study)[number] == record
    for number in killed:
        assert study.trials[number].state == TrialState.FAIL
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == number]
        if study.trials[number].system_attrs.get("failed_trial") is not None:
            assert not retries, number  # a retry that was killed too is not retried again
            continue
        assert len(retries) == 1, number
        assert retries[0].params == study.trials[number].params  # the same configuration, run again
        # It completed, unless a later kill hit the retry itself.
        assert retries[0].state == TrialState.COMPLETE or retries[0].number in killed, number
