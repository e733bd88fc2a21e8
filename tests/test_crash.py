"""A trial whose process crashes (a segmentation fault in a converter) or grows too large
does not take the study down: trials run in a child process that is replaced."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from autotune.storage import store

pytestmark = pytest.mark.slow


def test_a_segfault_in_a_trial_fails_that_trial_and_the_search_goes_on(workdir):
    env = {**os.environ, "AUTOTUNE_CRASH": "convert@3"}
    out = subprocess.run(
        [sys.executable, "-m", "autotune", "run", "--space", "quick", "--budget", "6"], capture_output=True, text=True, timeout=900, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    study = optuna.load_study(study_name="demo", storage=store.open_storage("sqlite:///studies/autotune.db"))
    trials = study.get_trials()
    crashed = trials[3]
    assert crashed.state == TrialState.FAIL
    assert "killed by SIGSEGV (segmentation fault)" in crashed.user_attrs[store.FAIL_REASON]
    assert store.evaluated(trials) == 6
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # The trials after the crash ran in a new child process.
    pid = lambda t: t.user_attrs["autotune:process"]["pid"]  # noqa: E731
    assert pid(trials[2]) != pid(trials[4]) and trials[4].user_attrs["autotune:process"]["restarts"] == 1


def test_a_child_past_its_memory_limit_is_replaced_between_trials(workdir):
    from autotune.study.run import run
    from autotune.study.settings import Settings

    result = run("demo", {"space": "quick", "budget": 4}, "sqlite:///studies/autotune.db", settings=Settings(child_max_rss_mb=1))
    assert result.evaluated == 4
    study = optuna.load_study(study_name="demo", storage=store.open_storage("sqlite:///studies/autotune.db"))
    pids = {t.user_attrs["autotune:process"]["pid"] for t in study.get_trials()}
    assert len(pids) == 4  # a new child for every trial
