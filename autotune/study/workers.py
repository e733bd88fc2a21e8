"""Many workers on one study, and the budget between them: trials are taken while evaluated
and running ones do not fill the budget, a trial that finds it filled is not run, and a
running trial whose worker died is failed (and queued again once) by whoever is left."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from autotune.errors import CandidateFailed, SearchStopped
from autotune.storage import store
from autotune.storage.record import TrialRecord
from autotune.study.settings import Settings


def surplus(study: optuna.Study, number: int, budget: int) -> bool:
    """True if earlier trials (evaluated, or running on some worker) already fill the budget:
    two workers that both took "the last trial" leave exactly one to run it."""
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    trials = study.get_trials(deepcopy=False, states=live)

    def order(t: FrozenTrial) -> tuple[bool, bool, int]:
        # Finished first; then running and queued ones in the order the queue pops them
        # (``store.Study``: those queued first, then by number).
        return (not t.state.is_finished(), not store.queued_first(t), t.number)

    mine = next((order(t) for t in trials if t.number == number), (True, True, number))
    return sum(order(t) < mine and store.REPEAT_OF not in t.user_attrs for t in trials) >= budget


def search_until_budget(
    study: optuna.Study,
    run_trial: Callable[[optuna.Trial], list[float]],
    after_trial: Callable[..., None],
    budget: int,
    settings: Settings,
    stopped: Callable[[], str | None],
) -> None:
    """Run trials until the study holds ``budget`` evaluated ones and none is running. While
    other workers' running trials would fill the budget, wait: one may die, and its trial is
    then failed (stale heartbeat) and queued again for whoever is still here."""
    while not stopped():
        fail_zombies(study, settings)
        trials = study.get_trials(deepcopy=False)
        done, running = store.evaluated(trials), sum(t.state == TrialState.RUNNING for t in trials)
        if done >= budget and running == 0:
            return
        if done + running >= budget:
            time.sleep(settings.poll_s)
            continue
        try:
            study.optimize(run_trial, catch=(CandidateFailed,), callbacks=[after_trial], gc_after_trial=False)
        except (UpdateFinishedTrialError, ValueError) as e:
            # Another worker declared this one's running trial dead (its heartbeat lapsed) and
            # queued it again; this result is dropped, the retry stands.
            if isinstance(e, ValueError) and "Cannot tell a" not in str(e):
                raise


def fail_zombies(study: optuna.Study, settings: Settings) -> None:
    """Fail running trials whose worker is gone: those whose heartbeat is stale (they are
    queued again once), and those that never got a heartbeat because their process died
    between taking the trial and starting it (nothing of them ran)."""
    optuna.storages.fail_stale_trials(study)
    limit = dt.datetime.now() - dt.timedelta(seconds=settings.grace_s * 2)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if TrialRecord.from_trial(t).recipe_text is None and t.datetime_start is not None and t.datetime_start < limit:
            try:
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except UpdateFinishedTrialError:
                pass


def start_workers(name: str, storage_url: str, workers: int, allow_new_hardware: bool, trust_model_code: bool) -> None:
    """``workers`` processes of ``autotune worker`` on this study, each a fresh interpreter.
    The storage URL goes through the environment, not the command line, where any user of
    the machine could read its password."""
    procs = []
    for k in range(1, workers + 1):
        env = {**os.environ, "AUTOTUNE_STORAGE": storage_url, "AUTOTUNE_WORKER": str(k)}
        cmd = [sys.executable, "-m", "autotune", "worker", name]
        cmd += ["--allow-new-hardware"] if allow_new_hardware else []
        cmd += ["--trust-model-code"] if trust_model_code else []
        procs.append(subprocess.Popen(cmd, env=env))
    failed = [k for k, p in enumerate(procs, 1) if p.wait() != 0]
    if failed:
        raise SearchStopped(f"worker {', '.join(map(str, failed))} of {workers} exited with an error (see its lines above)")
