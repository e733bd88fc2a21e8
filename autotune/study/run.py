"""The run: turn a stored study configuration into measured trials until the budget is met,
and the failure policy around it. One trial is ``autotune.study.trial``'s."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotune.errors import ConfigError, SearchStopped
from autotune.inputs.config import StudyConfig, check_trusted, make_config, merge_with_stored
from autotune.measure.stats import environment
from autotune.storage import store
from autotune.storage.record import TrialRecord, queued
from autotune.study.best_deployment import BestDeployment
from autotune.study.deployments import Deployer
from autotune.study.environment import check_environment
from autotune.study.evaluator import Evaluator, LocalEvaluator
from autotune.study.references import best_feasible_ms, ensure_baseline, ensure_probe, ensure_references, remeasure_front
from autotune.study.settings import Reporter, Settings, SilentReporter
from autotune.study.trial import gate_loss, run_trial
from autotune.study.warm_start import fitting, warm_start_params
from autotune.study.workers import search_until_budget, start_workers
from autotune.study.workspace import Plan, open_plan, open_workspace


@dataclass(frozen=True)
class RunResult:
    study: str
    evaluated: int
    budget: int
    trials_run: int
    wall_s: float
    exhausted: str | None = None  # why the run ended before its budget with nothing new to try


# Proposals in a row that repeat measured configurations (at least the budget) after which the
# space counts as exhausted: a sampler proposes a repeat now and then, it does not keep at it
# while anything new is left.
REPEATS_FOR_EXHAUSTED = 30


class FailurePolicy:
    """Called by Optuna after every trial: counts the trials this run ran, tells the reporter,
    and stops the study when ``max_in_row`` trials failed in a row (``stop_reason`` says
    why) or when evaluated and running trials fill the budget. A surplus trial (one that
    found the budget already filled) stops this worker and counts as neither. A repeat (a
    configuration measured before, not run again) neither counts as a failure nor breaks a
    run of them: it ran nothing, and many in a row mean the space is exhausted, not broken."""

    def __init__(self, budget: int, max_in_row: int, reporter: Reporter) -> None:
        self.budget, self.max_in_row, self.reporter = budget, max_in_row, reporter
        self.trials_run = 0
        self.failures_in_row = 0
        self.repeats_in_row = 0
        self.stop_reason: str | None = None
        self.exhausted: str | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        record = TrialRecord.from_trial(trial)
        surplus = record.surplus
        repeat = record.repeat_of is not None
        self.trials_run += not surplus and not repeat
        self.repeats_in_row = self.repeats_in_row + 1 if repeat else 0
        if self.repeats_in_row >= max(REPEATS_FOR_EXHAUSTED, self.budget):
            self.exhausted = (
                f"the space looks exhausted: the last {self.repeats_in_row} configurations the sampler proposed "
                "were all measured already"
            )
        if not surplus and not repeat:
            self.failures_in_row = self.failures_in_row + 1 if trial.state == TrialState.FAIL else 0
        trials = study.get_trials(deepcopy=False)
        n = store.evaluated(trials)
        self.reporter.trial_finished(trial, n, best_feasible_ms(study))
        reason = record.fail_reason or "unknown"
        if self.failures_in_row >= self.max_in_row:
            self.stop_reason = f"{self.failures_in_row} trials failed in a row; the last (trial {trial.number}): {reason}"
        if self.stop_reason or self.exhausted or surplus or n + sum(t.state == TrialState.RUNNING for t in trials) >= self.budget:
            study.stop()


def run(
    name: str,
    given: dict[str, Any],
    storage_url: str,
    *,
    must_exist: bool = False,
    settings: Settings | None = None,
    reporter: Reporter | None = None,
    warm_start: str | None = None,
    join: bool = False,
    workers: int = 1,
    allow_new_hardware: bool = False,
) -> RunResult:
    """Create or continue study ``name`` and run trials until it holds ``budget`` evaluated ones.

    ``given`` holds the flags the user set (None for unset); for an existing study they may
    repeat but not contradict the stored configuration. ``warm_start`` names an earlier study
    in the same storage whose front configurations a new study tries first. ``join``: a worker
    that helps an existing study (it needs the baseline measured, changes no configuration and
    leaves the front's re-measurement to the run that started the study). ``workers`` > 1
    starts that many worker processes after the baseline and waits for them.
    """
    settings = settings or Settings()
    reporter = reporter or SilentReporter()
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers > 1 and not storage_url.startswith(("postgresql", "mysql")):
        raise ConfigError(
            f"--workers {workers} needs a database server storage such as PostgreSQL "
            "(--storage postgresql://user@host/db): SQLite takes one writer at a time"
        )
    storage = store.open_storage(storage_url, heartbeat=(settings.heartbeat_s, settings.grace_s))
    env = environment()
    with store.database_errors(storage_url):
        exists = store.study_exists(storage, name)
        if (must_exist or join) and not exists:
            raise ConfigError(f"no study named {name!r} in {store.redact(storage_url)} (see `autotune studies`)")
        if exists:
            found = store.load_study(storage, name)
            check_environment(found, env, allow_new_hardware)
            if join and store.BASELINE not in found.user_attrs:
                raise ConfigError(f"study {name!r} has no measured baseline yet; start it with `autotune run` first")
            config = merge_with_stored(store.stored_config(found), given)
        else:
            config = make_config(study=name, **{k: v for k, v in given.items() if v is not None})
        seeds = warm_start_params(storage, storage_url, warm_start, name, exists)
    check_trusted(config)
    plan = open_plan(config)
    evaluator = make_evaluator(config, settings)
    try:
        return _run(name, config, plan, evaluator, storage, storage_url, exists, seeds, settings, reporter, join, workers, allow_new_hardware)
    finally:
        if evaluator is not None:
            evaluator.close()


def make_evaluator(config: StudyConfig, settings: Settings) -> Evaluator:
    """Where trials run: a child process (the default: a crash or a leak there costs one trial,
    not the study), or this process."""
    if settings.isolate:
        from autotune.study.child import ChildEvaluator

        return ChildEvaluator(config, settings)
    return LocalEvaluator(open_workspace(config, settings), settings)


def _run(
    name: str,
    config: StudyConfig,
    plan: Plan,
    evaluator: Evaluator,
    storage: optuna.storages.RDBStorage,
    storage_url: str,
    exists: bool,
    seeds: list[tuple[str, dict[str, Any]]],
    settings: Settings,
    reporter: Reporter,
    join: bool,
    workers: int,
    allow_new_hardware: bool,
) -> RunResult:

    with store.database_errors(storage_url):
        if exists:
            study = store.load_study(storage, name, config, settings.sampler)
            if not join:
                store.save_config(study, config)
        else:
            first = settings.sampler(config, 0) if settings.sampler else None
            study = store.create_study(storage, config, plan.objective, evaluator.env, first)
        if settings.deploy_variants:
            # The sampler makes models; the study's evidence deploys them. Not the random
            # proposal after a repeat, which keeps every deployment reachable (one the budget
            # left unqueued, or whose queued trial was killed).
            assert isinstance(study.sampler, store.AfterRepeats)
            study.sampler.base = BestDeployment(
                study.sampler.base,
                config.seed + len(study.get_trials(deepcopy=False)),
                space=plan.space,
                gate=functools.partial(gate_loss, config.max_accuracy_drop, settings.gate_margin),
            )
        if store.PEAK not in study.user_attrs:
            study.set_user_attr(store.PEAK, evaluator.peak)
        done = store.evaluated(study.get_trials(deepcopy=False))
    reporter.search_started(name, config.budget, done)
    started = time.perf_counter()
    trial_fn = functools.partial(run_trial, plan=plan, evaluator=evaluator, reporter=reporter)
    policy = FailurePolicy(config.budget, settings.max_failures_in_row, reporter)
    constraints = plan.objective.constraints
    deployer = Deployer(
        plan.space,
        config.budget,
        evaluator.env["id"],
        reporter.deployments_queued,
        within=lambda loss: all(c.violation(loss) <= 0 for c in constraints if c.name in loss),
        on_prefix=reporter.prefix_queued,
        on_extension=reporter.extension_queued,
        on_siblings=reporter.siblings_queued,
        on_neutral=reporter.neutral_queued,
        on_wider=reporter.wider_queued,
        on_narrower=reporter.narrower_queued,
        on_accurate=reporter.accurate_siblings_queued,
    )

    def requested() -> str | None:
        return settings.stop_requested() if settings.stop_requested is not None else None

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        if settings.deploy_variants:
            deployer(study, trial)  # before the policy, which may stop the study
        policy(study, trial)
        if requested():
            study.stop()

    with store.database_errors(storage_url):
        if not join:
            # The baseline first (optimize pops queued trials in order; nothing is queued ahead
            # of the queue before the search), then the references.
            ensure_baseline(study, trial_fn, policy, settings)
            ensure_probe(study, evaluator, reporter)
            ensure_references(study, plan)
            for source, params in fitting(seeds, plan.space, study.user_attrs.get(store.CAPABILITIES)):
                study.enqueue_trial(params, user_attrs=queued(warm_start=source), skip_if_exists=True)
        if workers > 1:
            evaluator.close()  # the workers evaluate; a child starts again for the re-measurement
            start_workers(name, storage_url, workers, allow_new_hardware, config.trust_model_code)
        else:
            search_until_budget(study, trial_fn, after_trial, config.budget, settings, lambda: policy.stop_reason or policy.exhausted or requested())
        done = store.evaluated(study.get_trials(deepcopy=False))
    if settings.remeasure_front and not join and (policy.trials_run or workers > 1) and not policy.stop_reason and not requested():
        with store.database_errors(storage_url):
            remeasure_front(study, evaluator, reporter)
    if policy.stop_reason:
        raise SearchStopped(f"study {name!r} stopped at {done}/{config.budget} trials: {policy.stop_reason}")
    return RunResult(
        study=name,
        evaluated=done,
        budget=config.budget,
        trials_run=policy.trials_run,
        wall_s=time.perf_counter() - started,
        exhausted=policy.exhausted,
    )
