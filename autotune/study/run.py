"""The trial loop: turn a stored study configuration into measured trials until the budget
is met, and the failure policy around it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from autotune.search import capabilities

from autotune.inputs import custom

from autotune.storage import store
from autotune.measure.artifact import open_executor
from autotune.build.cache import ContentCache
from autotune.build.candidate import Builder
from autotune.inputs.config import StudyConfig, check_trusted, make_config, merge_with_stored
from autotune.inputs.data import Dataset, check_compatible, file_key, load_data, load_model
from autotune.errors import CandidateFailed, ConfigError, InvalidRecipe, SearchStopped
from autotune.measure.host import HostLock, default_host_dir, load_peak, save_peak
from autotune.measure.stats import artifact_size, environment, quality, quality_loss, usable_cores
from autotune.search.objective import Constraint, Objective
from autotune.search.plugins import load_objective, load_space
from autotune.search.recipe import Recipe, reference_recipes
from autotune.measure.timing import Timer, TimingPolicy

BASELINE_REF = "fp32-baseline"
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


class Reporter(Protocol):
    """What the trial loop tells whoever watches it (report.py draws it; tests record it)."""

    def search_started(self, study: str, budget: int, evaluated: int) -> None: ...
    def trial_started(self, number: int, recipe: str) -> None: ...
    def stage(self, name: str) -> None: ...
    def trial_finished(self, trial: FrozenTrial, evaluated: int, best_feasible_ms: float | None) -> None: ...
    def front_remeasured(self, number: int, recipe: str, search: dict[str, Any], final: dict[str, Any]) -> None: ...
    def probe_started(self) -> None: ...
    def probed(self, found: dict[str, Any]) -> None: ...


class SilentReporter:
    def search_started(self, study: str, budget: int, evaluated: int) -> None:
        pass

    def trial_started(self, number: int, recipe: str) -> None:
        pass

    def stage(self, name: str) -> None:
        pass

    def trial_finished(self, trial: FrozenTrial, evaluated: int, best_feasible_ms: float | None) -> None:
        pass

    def front_remeasured(self, number: int, recipe: str, search: dict[str, Any], final: dict[str, Any]) -> None:
        pass

    def probe_started(self) -> None:
        pass

    def probed(self, found: dict[str, Any]) -> None:
        pass


@dataclass(frozen=True)
class Settings:
    studies_dir: Path = field(default_factory=lambda: Path.cwd() / "studies")
    timing: TimingPolicy = TimingPolicy()
    max_failures_in_row: int = 5
    # The accuracy gate stops a trained candidate whose drop exceeds
    # max(2 × limit, limit + gate_margin) before it is converted and timed.
    gate_margin: float = 0.02
    # Re-time the front at the end of a run that ran trials (both numbers are kept).
    remeasure_front: bool = True
    lock: HostLock = field(default_factory=HostLock)
    host_dir: Path = field(default_factory=default_host_dir)
    # Which sampler a new or resumed study uses (benchmarks compare others); None: store's TPE.
    sampler: Callable[[StudyConfig, int], optuna.samplers.BaseSampler] | None = None
    # How often a running trial's worker says it is alive, how long until silence means it
    # died (its trial is then failed and retried once), and how often a worker that waits for
    # others' trials looks again.
    heartbeat_s: int = 3
    grace_s: int = 15
    poll_s: float = 2.0
    # Trials run in a child process (spawned once, replaced when it dies or its resident
    # memory passes child_max_rss_mb); False: in this process (benchmarks that time the loop).
    isolate: bool = True
    child_max_rss_mb: int = 6144
    # A trial (or a re-measurement) still running after this long is stopped and failed.
    trial_timeout_s: float = 3600.0


@dataclass(frozen=True)
class RunResult:
    study: str
    evaluated: int
    budget: int
    trials_run: int
    wall_s: float


@dataclass
class _Workspace:
    """Everything a trial needs, loaded and checked once before any trial runs."""

    config: StudyConfig
    data: Dataset
    builder: Builder
    cache: ContentCache
    baseline: Recipe
    env: dict[str, Any]
    peak: dict[str, float]
    lock: HostLock
    policy: TimingPolicy
    _timer: Timer | None = None

    def _baseline_at(self, batch: int) -> Path:
        """The baseline recipe's artifact converted for ``batch`` (from the cache when built)."""
        runtime = dataclasses.replace(self.baseline.runtime, batch_size=batch)
        path = self.builder.build(dataclasses.replace(self.baseline, runtime=runtime)).path
        assert path is not None
        return path

    def timer(self) -> Timer:
        """The study's timer; its baseline artifact comes from the cache (the baseline trial
        built it first)."""
        if self._timer is None:
            path = self.builder.build(self.baseline).path
            assert path is not None
            baseline_at = self._baseline_at if self.builder.fixed_batch() else None
            self._timer = Timer(path, self.baseline.runtime, self.peak, self.lock, self.policy, baseline_at)
        return self._timer


def resolve_inputs(config: StudyConfig, studies_dir: Path) -> tuple[Path, str]:
    """The model file and the data source (a path or a ``module:function`` loader)."""
    if config.is_demo:
        from autotune.inputs.demo import ensure_demo

        model_path, data_path = ensure_demo(studies_dir)
        return model_path, str(data_path)
    if config.data is None:
        raise ConfigError("--model needs --data: an .npz, an image directory or a module:function loader")
    return Path(config.model), config.data


def build_objective(config: StudyConfig) -> Objective:
    """The study's objective, with the study's own limits (p99, size) added as constraints."""
    make_objective = load_objective(config.objective)
    try:
        objective = make_objective(config.max_accuracy_drop)
    except Exception as e:  # noqa: BLE001 - the user's file may raise anything; say which and why
        raise ConfigError(f"objective {config.objective!r} raised {type(e).__name__}: {e}") from None
    if not isinstance(objective, Objective):
        raise ConfigError(f"objective {config.objective!r} returned {type(objective).__name__}, not an Objective")
    extra = []
    if config.max_p99_ms is not None:
        extra.append(Constraint("latency_p99_ms", config.max_p99_ms))
    if config.max_size_kb is not None:
        extra.append(Constraint("size_bytes", config.max_size_kb * 1024))
    return dataclasses.replace(objective, constraints=(*objective.constraints, *extra)) if extra else objective


def load_inputs(config: StudyConfig, settings: Settings, objective: Objective) -> tuple[Path, Any, Dataset]:
    """Model path, loaded model and checked data of a study."""
    model_path, data_source = resolve_inputs(config, settings.studies_dir)
    model = load_model(model_path, trust_code=config.trust_model_code, custom_objects=config.custom_objects)
    data = load_data(data_source, config.val_data, tuple(model.input_shape[1:]), objective.task)
    check_compatible(model, data, model_path, data_source)
    return model_path, model, data


def open_workspace(config: StudyConfig, settings: Settings) -> _Workspace:
    """Load and check model and data where trials run; raises ConfigError before any write.
    The space is imported here too: techniques of the user's own, defined in it, must exist
    in this process for the recipes sent to it."""
    load_space(config.space)
    objective = build_objective(config)
    model_path, model, data = load_inputs(config, settings, objective)
    cache = ContentCache(settings.studies_dir / config.study / "cache")
    builder = Builder(model_path, custom.model_key(file_key(model_path), config.custom_objects), data, data.key, cache, config.seed, model=model)
    env = environment()
    return _Workspace(
        config=config,
        data=data,
        builder=builder,
        cache=cache,
        baseline=reference_recipes(usable_cores())[BASELINE_REF],
        env=env,
        peak=host_peak(settings, str(env["id"])),
        lock=settings.lock,
        policy=settings.timing,
    )


def host_peak(settings: Settings, env_id: str) -> dict[str, float]:
    """The machine's compute peak, measured once per host and environment and kept."""
    peak = load_peak(settings.host_dir, env_id)
    if peak is None:
        from autotune.measure.compute import measure_peak

        peak = measure_peak(settings.lock)
        save_peak(settings.host_dir, env_id, peak)
    return peak


def gate_limit(max_accuracy_drop: float, margin: float) -> float:
    """The Keras-accuracy drop past which a trained candidate is not converted or timed: far
    enough past the limit that conversion (which rarely gains accuracy) cannot save it."""
    return max(2 * max_accuracy_drop, max_accuracy_drop + margin)


def fault_point(stage: str, trial_number: int) -> None:
    """Fault injection for the reliability tests; unset, nothing happens.

    ``AUTOTUNE_FAULT=STAGE@N[+S]`` kills the whole run (this process group) with SIGKILL when
    a trial numbered N or later reaches STAGE (train, convert, accuracy, latency, write),
    after S more seconds if given, so mid-stage. ``AUTOTUNE_CRASH=STAGE@N`` makes the process
    running trial N die of SIGSEGV there, as a crashing converter would."""
    import signal
    import threading

    crash = os.environ.get("AUTOTUNE_CRASH")
    if crash and crash == f"{stage}@{trial_number}":
        os.kill(os.getpid(), signal.SIGSEGV)
    spec = os.environ.get("AUTOTUNE_FAULT")
    if not spec:
        return
    where, _, rest = spec.partition("@")
    number, _, delay = rest.partition("+")
    if where != stage or trial_number < int(number):
        return
    kill = lambda: os.killpg(os.getpgrp(), signal.SIGKILL)  # noqa: E731
    if delay:
        threading.Timer(float(delay), kill).start()
    else:
        kill()


class Attrs:
    """What a trial records while it is evaluated (in this process or a child), applied to
    the Optuna trial by the process that holds it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.user_attrs: dict[str, Any] = {}

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


@dataclass
class Outcome:
    metrics: dict[str, Any] | None
    attrs: dict[str, Any]
    failed: str | None = None


class LocalEvaluator:
    """Evaluates trials in this process, with the workspace loaded here."""

    def __init__(self, ws: _Workspace, settings: Settings) -> None:
        self.ws, self.settings = ws, settings
        self.env, self.peak = ws.env, ws.peak
        self.pid = os.getpid()

    def evaluate(self, number: int, recipe: Recipe, baseline: dict[str, Any] | None, on_stage: Callable[[str], None]) -> Outcome:
        attrs = Attrs(number)
        try:
            metrics = _evaluate(self.ws, attrs, recipe, self.settings, on_stage, baseline)
        except CandidateFailed as e:
            return Outcome(None, attrs.user_attrs, str(e))
        return Outcome(metrics, attrs.user_attrs)

    def remeasure(self, recipe_dict: dict[str, Any]) -> dict[str, Any]:
        recipe = Recipe.from_dict(recipe_dict)
        with self.ws.lock.shared():
            candidate = self.ws.builder.build(recipe)
        self.ws.cache.take_counts()
        assert candidate.path is not None
        try:
            timed = self.ws.timer().time(candidate.path, recipe, self.ws.data.x_val)
        except CandidateFailed as e:  # it ran in the search; if it fails now, say so
            return {"failed": str(e)}
        return timed.metrics() | {"env_id": self.env["id"], "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}

    def probe(self) -> dict[str, Any]:
        """What the model allows (capabilities.Capabilities as a dict), found once per study."""
        from autotune.study.probe import probe
        from autotune.techniques import TECHNIQUES

        return probe(self.ws, list(TECHNIQUES.values())).to_dict()

    def close(self) -> None:
        pass


def _evaluate(
    ws: _Workspace, trial: Attrs, recipe: Recipe, settings: Settings, stage: Callable[[str], None], baseline: dict[str, Any] | None
) -> dict[str, Any]:
    """Train (or take from the cache), gate, convert, then measure accuracy and latency of the
    deployed artifact; return all metrics."""
    timings: dict[str, float] = {}
    try:
        with ws.lock.shared() as waited:
            timings["work_lock_wait_s"] = waited
            t0 = time.perf_counter()
            stage("train" if recipe.steps else "build")
            fault_point("train", trial.number)
            try:
                built = ws.builder.build_model(recipe)
            finally:
                timings["train_s"] = time.perf_counter() - t0
            trial.set_user_attr(store.LINEAGE, list(built.lineage))
            if baseline is not None and recipe.steps:
                gated = _gate(ws, trial, built.facts, baseline, settings)
                if gated is not None:
                    return gated

            t0 = time.perf_counter()
            stage("convert")
            fault_point("convert", trial.number)
            try:
                candidate = ws.builder.convert(built, recipe)
            finally:
                timings["convert_s"] = time.perf_counter() - t0
            trial.set_user_attr(store.LINEAGE, list(candidate.lineage))
            assert candidate.path is not None

            t0 = time.perf_counter()
            stage("accuracy")
            fault_point("accuracy", trial.number)
            executor, _ = open_executor(candidate.path, recipe.runtime)
            scores = quality(executor.predict, ws.data.x_val, ws.data.y_val, ws.data.task)
            del executor
            timings["accuracy_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        stage("latency")
        fault_point("latency", trial.number)
        timed = ws.timer().time(candidate.path, recipe, ws.data.x_val)
        timings["latency_s"] = time.perf_counter() - t0
        timings["measure_lock_wait_s"] = timed.lock_wait_s
        trial.set_user_attr(store.MEASUREMENT, timed.record())
    finally:
        counts = ws.cache.take_counts()
        trial.set_user_attr(store.CACHE, counts.as_dict())
        trial.set_user_attr(store.TIMINGS, timings)

    size, gz = artifact_size(candidate.path)
    return {**scores, "size_bytes": size, "gzip_bytes": gz, **timed.metrics()}


def _gate(
    ws: _Workspace, trial: Attrs, facts: dict[str, Any], baseline: dict[str, Any], settings: Settings
) -> dict[str, Any] | None:
    """Metrics of a trial stopped by the accuracy gate, or None if it may go on.

    A gated trial is complete, so the sampler learns from it: its accuracy (or MAE) is the
    trained model's, its constraint is violated by that much, and its latency and size are the
    baseline's (not measured: the sampler sees no gain there). It never shows on the front.
    """
    name = "mae" if ws.data.task == "regression" else "accuracy"
    value = facts.get(f"{name}_keras")
    if value is None:
        return None
    loss = quality_loss(ws.data.task, {name: value}, baseline)["quality_loss"]
    # The margin is in accuracy points; for a regressor, the same share of its baseline MAE.
    margin = settings.gate_margin * (baseline[name] if name == "mae" else 1.0)
    limit = gate_limit(ws.config.max_accuracy_drop, margin)
    if loss <= limit:
        return None
    worse = "an MAE increase" if name == "mae" else "a drop"
    reason = f"{name} {value:.4f} after training, {worse} of {loss:.4f}, is past the gate at {limit:.4f}: not converted or timed"
    trial.set_user_attr(store.GATED, reason)
    keep = {k: v for k, v in baseline.items() if k != "trial"}
    return {**keep, name: value, "gated": True}


@dataclass
class Plan:
    """The side of a study that samples and scores trials: no model, no data, no TensorFlow."""

    config: StudyConfig
    space: Callable[[optuna.Trial], Recipe]
    objective: Objective
    references: dict[str, Recipe]


def open_plan(config: StudyConfig) -> Plan:
    return Plan(config, load_space(config.space), build_objective(config), reference_recipes(usable_cores()))


def _objective_fn(plan: Plan, evaluator: Any, reporter: Reporter) -> Callable[[optuna.Trial], list[float]]:
    def run_trial(trial: optuna.Trial) -> list[float]:
        reference = trial.user_attrs.get(store.REFERENCE)
        if reference != BASELINE_REF and _surplus(trial.study, trial.number, plan.config.budget):
            trial.set_user_attr(store.SURPLUS, True)
            trial.set_user_attr(store.FAIL_REASON, "not run: other workers' trials already fill the budget")
            raise CandidateFailed("not run: the budget is already taken by earlier trials")
        recipe = plan.references[reference] if reference else plan.space(trial)
        if not isinstance(recipe, Recipe):
            raise ConfigError(f"space {plan.config.space!r} returned {type(recipe).__name__}, not a Recipe")
        blocked = None if reference == BASELINE_REF else capabilities.of_study(trial.study).blocking(recipe)
        if blocked is not None:
            # A space that does not ask the probe proposed what this model cannot take.
            trial.set_user_attr(store.RECIPE_TEXT, recipe.describe())
            trial.set_user_attr(store.FAIL_REASON, f"{blocked[0]} does not apply to this model: {blocked[1]}")
            raise optuna.TrialPruned(f"{blocked[0]} excluded by the capability probe")
        if plan.objective.batch_sizes and not reference:
            # Throughput objectives search the batch: it belongs to the runtime, not to the space.
            batch = trial.suggest_categorical("batch_size", list(plan.objective.batch_sizes))
            recipe = dataclasses.replace(recipe, runtime=dataclasses.replace(recipe.runtime, batch_size=batch))
        trial.set_user_attr(store.RECIPE_TEXT, recipe.describe())
        reporter.trial_started(trial.number, recipe.describe())
        try:
            recipe.validate()
        except InvalidRecipe as e:
            trial.set_user_attr(store.FAIL_REASON, f"invalid recipe: {e}")
            raise optuna.TrialPruned(str(e)) from None
        trial.set_user_attr(store.RECIPE, recipe.to_dict())
        trial.set_user_attr(store.ENV_ID, evaluator.env["id"])
        known_baseline = None if reference == BASELINE_REF else trial.study.user_attrs[store.BASELINE]
        outcome = evaluator.evaluate(trial.number, recipe, known_baseline, reporter.stage)
        for key, value in outcome.attrs.items():
            trial.set_user_attr(key, value)
        process = outcome.attrs.get(store.PROCESS, {}).get("pid", os.getpid())
        trial.set_user_attr(store.WORKER, f"{WORKER_ID}/{process}")
        if outcome.failed is not None:
            trial.set_user_attr(store.FAIL_REASON, outcome.failed)
            raise CandidateFailed(outcome.failed)
        metrics = outcome.metrics
        assert metrics is not None

        if known_baseline is None:
            baseline = {"trial": trial.number, **metrics}
            trial.study.set_user_attr(store.BASELINE, baseline)
        else:
            baseline = known_baseline
        # The speed-up is the interleaved ratio the measurement took (for the baseline trial,
        # the baseline against itself: how close to 1 the method gets).
        metrics |= quality_loss(plan.objective.task, metrics, baseline)
        metrics["feasible"] = plan.objective.feasible(metrics)
        trial.set_user_attr(store.METRICS, metrics)
        fault_point("write", trial.number)
        for c in plan.objective.constraints:
            trial.set_constraint(c.name, c.violation(metrics))
        return plan.objective.values(metrics)

    return run_trial


def _ensure_references(study: optuna.Study, plan: Plan) -> None:
    """Queue the reference recipes (other than the baseline) that no trial holds yet."""
    have = {
        t.user_attrs.get(store.REFERENCE)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING))
    }
    caps = capabilities.of_study(study)
    for name in plan.references:
        if name != BASELINE_REF and name not in have and caps.blocking(plan.references[name]) is None:
            study.enqueue_trial({}, user_attrs={store.REFERENCE: name}, skip_if_exists=False)


def _surplus(study: optuna.Study, number: int, budget: int) -> bool:
    """True if earlier trials (evaluated, or running on some worker) already fill the budget:
    two workers that both took "the last trial" leave exactly one to run it."""
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return sum(t.number < number for t in study.get_trials(deepcopy=False, states=live)) >= budget


def _running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _wait_for_baseline_trial(study: optuna.Study, settings: Settings) -> None:
    """Another worker (or a killed run) holds a running baseline trial: wait until it ends or
    its heartbeat goes stale (then it is failed and queued again)."""
    while not study.user_attrs.get(store.BASELINE) and any(
        t.user_attrs.get(store.REFERENCE) == BASELINE_REF for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ):
        time.sleep(settings.poll_s)
        fail_zombies(study, settings)


def _ensure_baseline(
    study: optuna.Study, run_trial: Callable[[optuna.Trial], list[float]], after_trial: Callable[..., None], settings: Settings
) -> None:
    """Measure the fp32 baseline as a trial of its own before any other, unless the study has
    one: every speed-up and accuracy drop is relative to it. It runs through ``optimize``
    like every trial, so a heartbeat watches it too."""
    fail_zombies(study, settings)
    _wait_for_baseline_trial(study, settings)
    if store.BASELINE in study.user_attrs:
        return
    queued = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if not any(t.user_attrs.get(store.REFERENCE) == BASELINE_REF for t in queued):
        study.enqueue_trial({}, user_attrs={store.REFERENCE: BASELINE_REF})
    study.optimize(run_trial, n_trials=1, catch=(CandidateFailed,), callbacks=[after_trial], gc_after_trial=False)
    if store.BASELINE not in study.user_attrs:
        last = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(store.REFERENCE) == BASELINE_REF][-1]
        reason = last.user_attrs.get(store.FAIL_REASON, "unknown")
        raise SearchStopped(f"the fp32 baseline (trial {last.number}) failed, so nothing can be compared: {reason}")


def _ensure_probe(study: optuna.Study, evaluator: Any, reporter: Reporter) -> None:
    """Find once, before the search, which techniques, precisions and engines this study's
    model allows, and keep it on the study: spaces read it, `show` and `run` tell it."""
    if store.CAPABILITIES in study.user_attrs:
        return
    if any(t.params for t in study.get_trials(deepcopy=False)):
        # A study searched before probes existed: its spaces' choices are fixed by its first
        # trials (Optuna refuses a categorical whose choices change), so it keeps them all.
        study.set_user_attr(store.CAPABILITIES, capabilities.Capabilities().to_dict() | {"failed": "the study was searched before any probe"})
        return
    reporter.probe_started()
    try:
        found = evaluator.probe()
    except CandidateFailed as e:  # the probe's process died: allow everything, trials will tell
        found = capabilities.Capabilities().to_dict() | {"failed": str(e)}
    study.set_user_attr(store.CAPABILITIES, found)
    reporter.probed(found)


def _best_feasible_ms(study: optuna.Study) -> float | None:
    best = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        m = t.user_attrs.get(store.METRICS)
        if m and m["feasible"] and (best is None or m["latency_p50_ms"] < best):
            best = m["latency_p50_ms"]
    return best


def remeasure_front(study: optuna.Study, evaluator: Any, reporter: Reporter) -> int:
    """Time every row of the front table again (members and references), against the baseline
    as in a trial, and keep the result beside the search's figures. Returns the rows timed."""
    from autotune.results.front import environments, front_rows

    env = str(evaluator.env["id"])
    if env not in environments(study.get_trials(deepcopy=False)):
        return 0
    rows = front_rows(study, env=env)
    for r in rows:
        t = study.trials[r.trial]
        reporter.trial_started(r.trial, f"re-measuring {r.recipe}")
        reporter.stage("latency")
        try:
            final = evaluator.remeasure(t.user_attrs[store.RECIPE])
        except CandidateFailed as e:
            final = {"failed": str(e)}
        study.set_user_attr(store.final_key(r.trial), final)
        reporter.front_remeasured(r.trial, r.recipe, t.user_attrs[store.METRICS], final)
    return len(rows)


def _warm_start_params(
    storage: optuna.storages.BaseStorage, url: str, other: str | None, name: str, exists: bool
) -> list[tuple[str, dict[str, Any]]]:
    """The parameters of the searched front of ``other``: its non-dominated trials among those
    the space sampled (the reference recipes run in every study anyway), to enqueue first."""
    from autotune.results.front import pareto_trials, timed

    if other is None:
        return []
    if exists:
        raise ConfigError(f"--warm-start seeds a new study, and {name!r} already exists; give a new --study name")
    if not store.study_exists(storage, other):
        raise ConfigError(f"--warm-start: no study named {other!r} in {store.redact(url)} (see `autotune studies`)")
    source = store.load_study(storage, other)
    searched = [t for t in source.get_trials(deepcopy=False) if timed(t) and store.REFERENCE not in t.user_attrs and t.params]
    front = pareto_trials(searched, [d.name.lower() for d in source.directions])
    if not front:
        raise ConfigError(f"--warm-start: study {other!r} has no searched trial to start from")
    return [(f"{other}#{t.number}", dict(t.params)) for t in sorted(front, key=lambda t: t.number)]


def _fitting(
    seeds: list[tuple[str, dict[str, Any]]], space: Callable[[optuna.Trial], Recipe], found: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The seeds this study's space accepts, for what this study's model allows (``found``):
    each is tried on a throwaway in-memory trial (a value outside the space's choices raises
    there instead of in the search)."""
    scratch = optuna.create_study(directions=["minimize"])
    if found is not None:
        scratch.set_user_attr(store.CAPABILITIES, found)
    kept = []
    for source, params in seeds:
        scratch.enqueue_trial(params)
        trial = scratch.ask()
        try:
            recipe = space(trial)
            fits = isinstance(recipe, Recipe) and {k: trial.params.get(k) for k in params if k in trial.params} == {
                k: v for k, v in params.items() if k in trial.params
            }
        except (ValueError, InvalidRecipe):
            fits = False
        scratch.tell(trial, 0.0)
        if fits:
            kept.append((source, params))
    if seeds and not kept:
        raise ConfigError("--warm-start: none of the earlier study's front configurations fits this study's space")
    return kept


def _check_environment(study: optuna.Study, env: dict[str, Any], allow_new_hardware: bool) -> None:
    """Latency measured on another machine does not compare: adding trials from a new
    environment to a study needs the user's word."""
    created = study.user_attrs.get(store.ENV, {})
    if created.get("id") in (None, env["id"]) or allow_new_hardware:
        return
    raise ConfigError(
        f"study {study.study_name!r} was measured on environment {created.get('id')} ({created.get('cpu', '?')}, "
        f"{created.get('cores', '?')} cores); this one is {env['id']} ({env.get('cpu', '?')}, {env.get('cores', '?')} cores). "
        "Its latencies would not compare; pass --allow-new-hardware to add trials measured here "
        "(front and export then ask which environment to use)"
    )


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
            _check_environment(found, env, allow_new_hardware)
            if join and store.BASELINE not in found.user_attrs:
                raise ConfigError(f"study {name!r} has no measured baseline yet; start it with `autotune run` first")
            config = merge_with_stored(store.stored_config(found), given)
        else:
            config = make_config(study=name, **{k: v for k, v in given.items() if v is not None})
        seeds = _warm_start_params(storage, storage_url, warm_start, name, exists)
    check_trusted(config)
    plan = open_plan(config)
    evaluator = make_evaluator(config, settings)
    try:
        return _run(name, config, plan, evaluator, storage, storage_url, exists, seeds, settings, reporter, join, workers, allow_new_hardware)
    finally:
        if evaluator is not None:
            evaluator.close()


def make_evaluator(config: StudyConfig, settings: Settings) -> Any:
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
    evaluator: Any,
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
        if store.PEAK not in study.user_attrs:
            study.set_user_attr(store.PEAK, evaluator.peak)
        done = store.evaluated(study.get_trials(deepcopy=False))
    reporter.search_started(name, config.budget, done)
    started = time.perf_counter()
    run_trial = _objective_fn(plan, evaluator, reporter)
    trials_run = 0
    failures_in_row = 0
    stop_reason: str | None = None

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        nonlocal trials_run, failures_in_row, stop_reason
        surplus = trial.user_attrs.get(store.SURPLUS, False)
        trials_run += not surplus
        if not surplus:
            failures_in_row = failures_in_row + 1 if trial.state == TrialState.FAIL else 0
        trials = study.get_trials(deepcopy=False)
        n = store.evaluated(trials)
        reporter.trial_finished(trial, n, _best_feasible_ms(study))
        reason = trial.user_attrs.get(store.FAIL_REASON, "unknown")
        if failures_in_row >= settings.max_failures_in_row:
            stop_reason = f"{failures_in_row} trials failed in a row; the last (trial {trial.number}): {reason}"
        if stop_reason or surplus or n + sum(t.state == TrialState.RUNNING for t in trials) >= config.budget:
            study.stop()

    with store.database_errors(storage_url):
        if not join:
            # The baseline first (optimize pops queued trials in order), then the references.
            _ensure_baseline(study, run_trial, after_trial, settings)
            _ensure_probe(study, evaluator, reporter)
            _ensure_references(study, plan)
            for source, params in _fitting(seeds, plan.space, study.user_attrs.get(store.CAPABILITIES)):
                study.enqueue_trial(params, user_attrs={store.WARM_START: source}, skip_if_exists=True)
        if workers > 1:
            evaluator.close()  # the workers evaluate; a child starts again for the re-measurement
            _start_workers(name, storage_url, workers, allow_new_hardware, config.trust_model_code)
        else:
            _search_until_budget(study, run_trial, after_trial, config.budget, settings, lambda: stop_reason)
        done = store.evaluated(study.get_trials(deepcopy=False))
    if settings.remeasure_front and not join and (trials_run or workers > 1) and not stop_reason:
        with store.database_errors(storage_url):
            remeasure_front(study, evaluator, reporter)
    if stop_reason:
        raise SearchStopped(f"study {name!r} stopped at {done}/{config.budget} trials: {stop_reason}")
    return RunResult(study=name, evaluated=done, budget=config.budget, trials_run=trials_run, wall_s=time.perf_counter() - started)


def _search_until_budget(
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
        if store.RECIPE_TEXT not in t.user_attrs and t.datetime_start is not None and t.datetime_start < limit:
            try:
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except UpdateFinishedTrialError:
                pass


def _start_workers(name: str, storage_url: str, workers: int, allow_new_hardware: bool, trust_model_code: bool) -> None:
    """``workers`` processes of ``autotune worker`` on this study, each a fresh interpreter.
    The storage URL goes through the environment, not the command line, where any user of
    the machine could read its password."""
    import os
    import subprocess
    import sys

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
