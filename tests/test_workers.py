"""Many workers on one study over a real PostgreSQL server (started by the tests' own
fixture), and what SQLite refuses. Real TensorFlow, LiteRT and worker processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from autotune.storage import store

pytestmark = pytest.mark.slow


def _autotune(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autotune", *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def test_two_workers_fill_a_postgres_study_exactly_with_unique_trials(workdir, postgres_url):
    # Nine of the quick space's ten configurations (two of them the references): a configuration
    # measured once is not run again, so the budget must fit in the space.
    out = _autotune("run", "--study", "pg", "--space", "quick", "--budget", "9", "--workers", "2", "--storage", postgres_url)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "s3cret-pw" not in text  # the password never shows, workers' lines included
    study = optuna.load_study(study_name="pg", storage=store.open_storage(postgres_url))
    trials = study.get_trials()
    # No trial was run twice or lost: what the workers say they ran, plus the baseline the run
    # measured before starting them, is every trial a process ran.
    ran = sum(int(n) for n in re.findall(r"\((\d+) run by this worker\)", text))
    assert ran + 1 == len([t for t in trials if t.user_attrs.get(store.WORKER)]), text[-3000:]
    assert store.evaluated(trials) == 9
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    workers = {t.user_attrs.get(store.WORKER) for t in trials if t.user_attrs.get(store.REFERENCE) is None}
    assert len(workers) >= 2, workers  # both worker processes ran trials
    assert "[worker 1]" in text and "[worker 2]" in text
    # A third worker arriving after the budget is spent runs nothing and leaves no trace.
    late = _autotune("worker", "pg", env={"AUTOTUNE_STORAGE": postgres_url})
    assert late.returncode == 0, late.stderr[-2000:]
    assert len(study.get_trials()) == len(trials)


def test_workers_on_sqlite_are_refused_with_a_pointer_to_postgres(workdir):
    out = _autotune("run", "--space", "quick", "--budget", "3", "--workers", "2")
    assert out.returncode == 2
    assert "PostgreSQL" in out.stderr and len(out.stderr.strip().splitlines()) == 1
