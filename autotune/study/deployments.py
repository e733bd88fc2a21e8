"""Making a model is expensive, deploying it is cheap: every trained model is deployed its
other ways that can win, each as its own trial.

When a searched trial completes with a model made by a new chain of steps (a student, a
pruned model, or the base model itself), the ways of deploying it that the space offers
(its choices of ``precision``, ``threads`` and ``engine``, plus ``xla`` for TensorFlow) are
queued as trials of their own, with the same parameters for how the model is made. Each
trains nothing (the model comes from the content cache), converts and measures once, and is
recorded with its own figures, so the front and ``export`` see it and the sampler learns how
fast that model is at its best, not from one deployment of it. The queued trials fill the
budget like any other; they are never more than what is left of it.

What the study has already shown never wins is left out most of the time: a way of deploying
(precision, engine, threads, XLA) that was measured on ``LOSER_AFTER`` trained models and won
on none of them, or that on every model it was measured on was at least
``FAR_SLOWER`` times slower than that model's fastest way and no more accurate (the TensorFlow
runtime against LiteRT at batch 1, typically), is left out; on every ``LOSER_EVERY``-th new
model one of them is tried again, the one measured on the fewest models. A way wins on a
model when it is the fastest there (of the ways within the accuracy limit, if any), within
``TIE`` of the fastest (a difference the search's timing does not resolve), or on the model's
own front: within the limit, more accurate than every faster way and not ``FAR_SLOWER``. On a
Zen 4 study of the demo, dynamic-int8 read ×3.78 on its first model against int8's ×5.78 (a
reading that studies of the same student put at ×6.7) and ×7.08 against ×7.45 on the second,
and was left out from then on, although on the other seeds' fronts it was the most accurate
fast student. Being more accurate keeps a slow way only when it is within the accuracy limit. A thread count that was slower than
another for the same model, precision and engine in ``LOSER_AFTER`` such comparisons and never
the fastest of one is left out with every way of that engine and batch using it (the first
model deployed every way compares thread counts once per precision).

A model whose first measurement is beyond the accuracy limit is deployed only at its other
precisions, one way each (its own engine and thread count where the space offers them): another
engine or thread count runs the same arithmetic, so it would be as far beyond the limit, and
the budget it would take buys nothing on the front. If the trained model itself (its float
weights, as training evaluated them) was no more accurate than that deployment, it is deployed
no other way.

How a searched trial is deployed, and what the sampler of how models are made sees, is
``best_deployment``'s.

A space takes part when it names its deployment parameters as the built-in spaces do
(``DEPLOY_PARAMS``); a deployment is queued only if replaying the space with it gives the
same steps, so a space that asks other questions for another precision (QAT at int8) is safe.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FixedTrial, FrozenTrial, TrialState

from autotune.errors import AutotuneError
from autotune.search.recipe import Recipe
from autotune.storage import store
from autotune.storage.record import TrialRecord
from autotune.storage.record import queued as queued_attrs

# The parameters by which the built-in spaces say how a model is deployed.
DEPLOY_PARAMS = ("engine", "precision", "threads")
# ... and those asked only for one engine (XLA for TensorFlow).
ENGINE_PARAMS = ("xla",)
DEPLOYED = (*DEPLOY_PARAMS, *ENGINE_PARAMS)
LOSER_AFTER = 2
LOSER_EVERY = 4
FAR_SLOWER = 2.0
# Speeds within this ratio are one speed to the search (its timings are trusted to about
# ``TimingPolicy.noise_limit``).
TIE = 1.10


class _Replay(FixedTrial):
    """The space asked again with fixed parameters, seeing the study (its probe's findings).

    A question the trial never answered (whether to add QAT, asked only at int8) takes its
    first choice or lowest value, "off" in the built-in spaces; a value the space does not
    offer is refused. The caller keeps the replay only if it makes the same model.
    """

    def __init__(self, params: dict[str, Any], study: optuna.Study) -> None:
        super().__init__(params)
        self.study = study

    def _suggest(self, name: str, distribution: BaseDistribution) -> Any:
        if name not in self._params:
            choices = _choices(distribution)
            self._params[name] = choices[0] if choices else getattr(distribution, "low")
        internal = distribution.to_internal_repr(self._params[name])  # ValueError: not a choice
        if not distribution._contains(internal):
            raise ValueError(f"{name}={self._params[name]!r} is not offered by the space")
        return super()._suggest(name, distribution)


def made_key(recipe: dict[str, Any]) -> str:
    """What identifies how a model was made: its chain of steps (and the batch it takes)."""
    return json.dumps({"steps": recipe["steps"], "batch": recipe["runtime"].get("batch_size", 1)}, sort_keys=True)


def deployment_kind(recipe: dict[str, Any]) -> str:
    r = recipe["runtime"]
    xla = " · XLA" if r.get("xla") else ""
    return f"{recipe['precision']} · {r['engine']} · {r['threads']}t{xla}"


def _choices(dist: Any) -> list[Any]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    return []


def _measured(trials: list[FrozenTrial]) -> list[tuple[FrozenTrial, TrialRecord]]:
    """Complete trials that measured an artifact (not gated, not repeats), with their records."""
    out = []
    for t in trials:
        r = TrialRecord.from_trial(t)
        if t.state == TrialState.COMPLETE and r.timed and r.metrics and not r.metrics.gated and r.repeat_of is None and r.recipe is not None:
            out.append((t, r))
    return out


def _by_model(trials: list[FrozenTrial]) -> dict[str, list[TrialRecord]]:
    """The measured trials' records, by the model they deploy (``made_key``)."""
    by_model: dict[str, list[TrialRecord]] = {}
    for _, r in _measured(trials):
        by_model.setdefault(made_key(r.recipe), []).append(r)
    return by_model


def losers(trials: list[FrozenTrial]) -> set[str]:
    """Ways of deploying measured on at least ``LOSER_AFTER`` trained models and the fastest
    (of the feasible ones, else of all) on none of them, and ways that were ``FAR_SLOWER``
    than the fastest and no more accurate on every model they were measured on."""
    by_model = _by_model(trials)
    seen: dict[str, int] = {}
    won: set[str] = set()
    close: set[str] = set()  # within FAR_SLOWER of the fastest, or more accurate, on some model
    for group in by_model.values():
        kinds = {deployment_kind(r.recipe) for r in group}
        if len(kinds) < 2:
            continue  # one way only: nothing was compared on this model
        for k in kinds:
            seen[k] = seen.get(k, 0) + 1
        pool = [r for r in group if r.metrics.feasible] or group
        best = min(pool, key=lambda r: r.metrics["latency_p50_ms"])
        won |= _wins(pool, best)
        for r in group:
            # More accurate counts only within the limit: an infeasible way is no trade-off.
            more_accurate = r.metrics.feasible and r.metrics.quality_loss < best.metrics.quality_loss
            if r.metrics["latency_p50_ms"] < FAR_SLOWER * best.metrics["latency_p50_ms"] or more_accurate:
                close.add(deployment_kind(r.recipe))
    slow = slower_thread_counts(trials)
    ways = {deployment_kind(r.recipe): thread_way(r.recipe) for group in by_model.values() for r in group}
    return {k for k, n in seen.items() if k not in won and (n >= LOSER_AFTER or k not in close)} | {
        k for k, w in ways.items() if k not in won and w in slow
    }


def _wins(pool: list[TrialRecord], best: TrialRecord) -> set[str]:
    """The ways that won on one model, of its ``pool`` of deployments (those within the
    limit, if any) whose fastest is ``best``: it, those within ``TIE`` of it, and those
    within the limit more accurate than every faster one, unless ``FAR_SLOWER``."""
    fastest = best.metrics["latency_p50_ms"]
    won = {deployment_kind(r.recipe) for r in pool if r.metrics["latency_p50_ms"] <= TIE * fastest}
    least_loss = float("inf")
    for r in sorted(pool, key=lambda r: r.metrics["latency_p50_ms"]):
        if r.metrics.feasible and r.metrics.quality_loss < least_loss:
            least_loss = r.metrics.quality_loss
            if r.metrics["latency_p50_ms"] < FAR_SLOWER * fastest:
                won.add(deployment_kind(r.recipe))
    return won


def thread_way(recipe: dict[str, Any]) -> tuple[str, int, int]:
    """(engine, batch, threads): what a thread count is judged by."""
    r = recipe["runtime"]
    return (r["engine"], r.get("batch_size", 1), r["threads"])


def slower_thread_counts(trials: list[FrozenTrial]) -> set[tuple[str, int, int]]:
    """Thread counts, as ``thread_way``s (by engine and batch), that were slower than another
    thread count for the same model, precision and engine in at least ``LOSER_AFTER`` such
    comparisons, and never the fastest of one.

    Each comparison is another artifact (another precision's kernels, another model), so the
    first model deployed every way already compares the thread counts once per precision: on a
    2-core machine at batch 1, one thread lost on every one of them, and deploying the next
    models at one thread as well spent a trial per precision on what was already shown.
    """
    lost: dict[tuple[str, int, int], int] = {}
    fastest_once: set[tuple[str, int, int]] = set()
    for group in _by_model(trials).values():
        by_way: dict[tuple[Any, ...], list[TrialRecord]] = {}
        for r in group:
            rt = r.recipe["runtime"]
            by_way.setdefault((r.recipe["precision"], rt["engine"], bool(rt.get("xla"))), []).append(r)
        for same in by_way.values():
            if len({r.recipe["runtime"]["threads"] for r in same}) < 2:
                continue
            fastest = min(r.metrics["latency_p50_ms"] for r in same)
            for r in same:
                t = thread_way(r.recipe)
                if r.metrics["latency_p50_ms"] > fastest:
                    lost[t] = lost.get(t, 0) + 1
                else:
                    fastest_once.add(t)
    return {t for t, n in lost.items() if n >= LOSER_AFTER and t not in fastest_once}


def _one_per_precision(variants: list[tuple[dict[str, Any], dict[str, Any]]], own: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Of the (parameters, recipe) variants, one per precision other than ``own``'s: the one
    deployed as ``own`` is (engine, threads, XLA) where there is one, else the first."""
    def way(recipe: dict[str, Any]) -> tuple[Any, ...]:
        r = recipe["runtime"]
        return (r["engine"], r["threads"], bool(r.get("xla")))

    picked: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for params, d in variants:
        p = d["precision"]
        if p != own["precision"] and (p not in picked or way(d) == way(own)):
            picked[p] = (params, d)
    return list(picked.values())


def _float_no_better(record: TrialRecord) -> bool:
    """Whether the trained (float) model, as the last step that made it evaluated it, was no
    better than this deployment of it measured."""
    q = record.metrics.quality
    trained = [step[f"{q.name}_keras"] for step in record.lineage or () if f"{q.name}_keras" in step]
    return bool(trained) and q.sign * (trained[-1] - record.metrics.quality_value) >= 0


def _models_measured(done: list[tuple[FrozenTrial, TrialRecord]]) -> dict[str, int]:
    """On how many trained models each way of deploying was measured."""
    seen: dict[str, set[str]] = {}
    for _, r in done:
        seen.setdefault(deployment_kind(r.recipe), set()).add(made_key(r.recipe))
    return {k: len(v) for k, v in seen.items()}


def _variants(study: optuna.Study, trial: FrozenTrial, space: Callable[[Any], Recipe]) -> Iterator[dict[str, Any]]:
    """Overrides of the trial's deployment parameters over the choices its space offers: those
    it asked, and those it asks only for another engine (XLA for TensorFlow; precision and
    threads for LiteRT), found by asking the space again with that engine."""
    dists = {n: d for n, d in trial.distributions.items() if n in DEPLOY_PARAMS}
    for engine in _choices(dists["engine"]) if "engine" in dists else []:
        replay = _Replay({**trial.params, "engine": engine}, study)
        try:
            space(replay)
        except (AutotuneError, ValueError, KeyError, TypeError):
            continue
        for n, d in replay.distributions.items():
            if n in (*DEPLOY_PARAMS, "xla") and n not in dists:
                dists[n] = d
    names = list(dists)
    for values in itertools.product(*(_choices(dists[n]) for n in names)):
        yield dict(zip(names, values))


def plan(study: optuna.Study, trial: FrozenTrial, space: Callable[[Any], Recipe], env_id: str, room: int) -> list[dict[str, Any]]:
    """The parameters of each trial to queue so that ``trial``'s model is deployed its other
    ways (at most ``room``), or [] when it was not the first measured trial of its model."""
    record = TrialRecord.from_trial(trial)
    recipe = record.recipe
    if room <= 0 or recipe is None or not _measured([trial]) or not trial.params or record.deployment_of is not None:
        return []
    key = made_key(recipe)
    trials = study.get_trials(deepcopy=False)
    if any((TrialRecord.from_trial(t).deployment_of or {}).get("made") == key for t in trials):
        return []  # this model's deployments were queued already
    done = _measured(trials)
    measured = {json.dumps(r.recipe, sort_keys=True) for _, r in done if r.env_id == env_id}
    models = len({made_key(r.recipe) for _, r in done})
    skip = losers(trials)
    # ... and the ways using them not measured yet (a measured one is ``losers``' to judge).
    slow = slower_thread_counts(trials)
    measured_kinds = {deployment_kind(r.recipe) for _, r in done}
    retry = None
    if models % LOSER_EVERY == 0 and skip:
        # Now and then a loser is tried again: the one measured on the fewest models (the
        # longest left out), one per such model, so that checking costs one trial, not all.
        tried = _models_measured(done)
        retry = min(sorted(skip), key=lambda k: tried.get(k, 0))
        skip = skip - {retry}
    seen: set[str] = set()
    variants: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for overrides in _variants(study, trial, space):
        params = {**trial.params, **overrides}
        replay = _Replay(params, study)
        try:
            variant = space(replay)
        except (AutotuneError, ValueError, KeyError, TypeError):
            continue  # the space does not take this combination
        if not isinstance(variant, Recipe):
            continue
        d = variant.to_dict()
        d["runtime"]["batch_size"] = recipe["runtime"].get("batch_size", 1)
        text = json.dumps(d, sort_keys=True)
        kind = deployment_kind(d)
        unmeasured_slow = thread_way(d) in slow and kind not in measured_kinds and kind != retry
        if made_key(d) != key or text in measured or text in seen or kind in skip or unmeasured_slow:
            continue
        seen.add(text)
        variants.append((dict(replay.params) | ({"batch_size": trial.params["batch_size"]} if "batch_size" in trial.params else {}), d))
    if not record.metrics.feasible:
        if _float_no_better(record):
            # The trained model itself is as far beyond the limit as this deployment of it:
            # no precision computes it more accurately than its float weights do.
            return []
        # Beyond the accuracy limit: another engine or thread count computes the same numbers,
        # so it would be as infeasible; only another precision can land within the limit.
        variants = _one_per_precision(variants, recipe)
    queued = [params for params, _ in variants]
    return queued[:room]


def _made_in_study(trials: list[FrozenTrial]) -> set[str]:
    """How every model of the study was made (``made_key``), measured or queued to be."""
    made = set()
    for t in trials:
        r = TrialRecord.from_trial(t)
        if r.recipe is not None:
            made.add(made_key(r.recipe))
        for queued_for in (r.deployment_of, r.prefix_of, r.extension_of):
            if queued_for:
                made.add(queued_for["made"])
    return made


def prefix_plan(study: optuna.Study, trial: FrozenTrial, space: Callable[[Any], Recipe], within: Callable[[dict[str, float]], bool]) -> dict[str, Any] | None:
    """The parameters of a trial to queue for the model ``trial``'s chain made on its way, when
    that chain ended past the accuracy limit (gated, or measured beyond it): its longest chain
    of first steps that, as training evaluated it, was ``within`` the limit (the objective's
    constraints on the quality loss) and that the study has not made. None if there is none.

    Each step of a chain is trained on the model the step before it left, and the content
    cache keeps that model, so measuring it trains nothing. On a seed of the demo's benchmark,
    ``distill w0.25 → channel-prune keep 0.75 → QAT`` was gated at the third trial while its
    first step, the student that later made the study's fastest deployment within the limit,
    had been trained within it; the sampler first proposed that student alone at trial 40.
    """
    record = TrialRecord.from_trial(trial)
    metrics, recipe, lineage = record.metrics, record.recipe, record.lineage
    baseline = study.user_attrs.get(store.BASELINE)
    if trial.state != TrialState.COMPLETE or not trial.params or recipe is None or not lineage or metrics is None or not baseline:
        return None
    if record.reference or record.deployment_of or record.prefix_of or record.extension_of or record.repeat_of is not None or record.warm_start:
        return None
    if metrics.feasible and not metrics.gated:
        return None
    q = metrics.quality
    trained = [step for step in lineage if step.get("step") not in ("base", "convert")]
    steps = recipe["steps"][: len(trained)]
    if q.name not in baseline or [s["name"] for s in steps] != [s.get("step") for s in trained]:
        return None
    made = _made_in_study(study.get_trials(deepcopy=False))
    batch = {"batch_size": trial.params["batch_size"]} if "batch_size" in trial.params else {}
    for n in range(min(len(trained), len(recipe["steps"])) - 1, 0, -1):
        after = trained[n - 1].get(f"{q.name}_keras")
        if after is None or not within(q.loss({q.name: after}, baseline)):
            continue
        wanted = {"steps": steps[:n], "runtime": {"batch_size": recipe["runtime"].get("batch_size", 1)}}
        if made_key(wanted) in made:
            return None  # the study has that model already (and any longer one within is past it)
        params = _params_making(study, trial, space, steps[:n])
        if params is not None:
            return params | batch
    return None


def _speed(record: TrialRecord) -> float | None:
    """How fast a measurement was: its interleaved speed-up over the baseline (comparable
    across minutes of drift, unlike a p50), None where it has none."""
    speedup = record.metrics.get("speedup") if record.metrics is not None else None
    return float(speedup) if speedup else None


def _step_evidence(trials: list[FrozenTrial], baseline: dict[str, Any], quality: Any) -> dict[str, tuple[float, bool]]:
    """For every step the study trained (its name and parameters, as JSON): the accuracy it
    cost, as training evaluated the model it was given and the one it left, the mean over the
    models it was given (each once, however many trials deployed or extended it); and whether
    it ever left fewer parameters than it was given (a step that thins: distillation, channel
    pruning; not magnitude pruning or QAT, whose kernels stay dense). A fine-tuning stopped
    after its first epoch tells no cost: it did not train to the end."""
    name = f"{quality.name}_keras"
    costs: dict[str, dict[str, float]] = {}
    thins: set[str] = set()
    for t in trials:
        r = TrialRecord.from_trial(t)
        if r.lineage is None or r.recipe is None or r.repeat_of is not None:
            continue
        before: float | None = baseline.get(quality.name)
        trained = [e for e in r.lineage if e.get("step") not in ("base", "convert")]
        for i, (step, e) in enumerate(zip(r.recipe["steps"], trained)):
            after = e.get(name)
            if step["name"] != e.get("step") or after is None or before is None or "stopped_after_epoch" in e:
                break
            key = json.dumps(step, sort_keys=True)
            costs.setdefault(key, {})[json.dumps(r.recipe["steps"][:i], sort_keys=True)] = quality.sign * (after - before)
            if "params" in e and e["params"] < e.get("params_before", 0):
                thins.add(key)
            before = after
    return {k: (sum(by_model.values()) / len(by_model), k in thins) for k, by_model in costs.items()}


def extension_plan(study: optuna.Study, trial: FrozenTrial, space: Callable[[Any], Recipe], within: Callable[[dict[str, float]], bool]) -> dict[str, Any] | None:
    """The parameters of a trial to queue for the study's fastest model taken one step further,
    when ``trial`` deployed a model within ``TIE`` of the study's fastest speed-up within the
    accuracy limit (measured here): its chain with one more step appended that the study has
    trained and seen thin a model, whose accuracy cost (``_step_evidence``), added to
    ``trial``'s loss, is ``within`` the limit; of those, the cheapest in accuracy, with the
    parameters a trial of the study took that step with. Deployed as ``trial`` was. Once per
    model; None if there is none, or if the study made that model already.

    The content cache holds ``trial``'s model, so the new model costs only its last step's
    training (and its deployments, as any new model's). On the demo, the fastest model within
    the limit in most studies was a width-0.25 student with a third of the limit to spare, and
    the fastest any study found was that student channel-pruned to keep 0.75 (×7.71 against
    ×7.45): a model TPE proposed in none of three 50-trial studies, because it proposes a
    chain as a whole.
    """
    record = TrialRecord.from_trial(trial)
    metrics, recipe = record.metrics, record.recipe
    baseline = study.user_attrs.get(store.BASELINE)
    speed = _speed(record)
    if not _measured([trial]) or not trial.params or not metrics.feasible or not baseline or speed is None:
        return None
    q = metrics.quality
    if q.name not in baseline:
        return None
    trials = study.get_trials(deepcopy=False)
    here = [r for _, r in _measured(trials) if r.env_id == record.env_id and r.metrics.feasible and not r.reference]
    if speed * TIE < max((_speed(r) or 0.0 for r in here), default=0.0):
        return None
    key = made_key(recipe)
    if any((TrialRecord.from_trial(t).extension_of or {}).get("from") == key for t in trials):
        return None  # this model was taken a step further already
    affordable = {
        step: cost
        for step, (cost, thins) in _step_evidence(trials, baseline, q).items()
        if thins and within(q.loss({q.name: metrics.quality_value + q.sign * cost}, baseline))
    }
    if not affordable:
        return None
    made = _made_in_study(trials)
    batch = {"batch_size": trial.params["batch_size"]} if "batch_size" in trial.params else {}
    steps = recipe["steps"]
    candidates: list[tuple[float, dict[str, Any]]] = []
    # A technique the trial left off, switched on with the parameters a trial of the study
    # took it with (each distinct set of them once).
    for switch in [n for n, v in trial.params.items() if v is False]:
        tried: set[str] = set()
        for donor in trials:
            if donor.params.get(switch) is not True:
                continue
            extra = {n: v for n, v in donor.params.items() if n not in trial.params}
            text = json.dumps(extra, sort_keys=True, default=str)
            if text in tried:
                continue
            tried.add(text)
            replay = _Replay({**extra, **trial.params, switch: True}, study)
            try:
                variant = space(replay)
            except (AutotuneError, ValueError, KeyError, TypeError):
                continue
            if not isinstance(variant, Recipe):
                continue
            longer = variant.to_dict()["steps"]
            step = json.dumps(longer[-1], sort_keys=True) if longer else ""
            if len(longer) != len(steps) + 1 or longer[:-1] != steps or step not in affordable:
                continue
            if made_key({"steps": longer, "runtime": recipe["runtime"]}) not in made:
                candidates.append((affordable[step], {n: replay.params[n] for n in replay.distributions} | batch))
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[0])[1]


def _params_making(study: optuna.Study, trial: FrozenTrial, space: Callable[[Any], Recipe], steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``trial``'s parameters with the fewest of its switched-on techniques switched off that
    make a model with exactly ``steps``, deployed as ``trial`` was; None if none does."""
    on = [name for name, value in trial.params.items() if value is True]
    for k in range(1, len(on) + 1):
        for off in itertools.combinations(on, k):
            replay = _Replay({**trial.params, **dict.fromkeys(off, False)}, study)
            try:
                variant = space(replay)
            except (AutotuneError, ValueError, KeyError, TypeError):
                continue
            if isinstance(variant, Recipe) and variant.to_dict()["steps"] == steps:
                return dict(replay.params)
    return None


class Deployer:
    """Called by Optuna after every trial (before the failure policy): queues the other
    deployments of a newly measured model; after a chain past the accuracy limit, the model it
    made on its way within it (``prefix_plan``); after a deployment among the study's fastest,
    its model taken one step further (``extension_plan``); all within what is left of the
    budget."""

    def __init__(
        self,
        space: Callable[[Any], Recipe],
        budget: int,
        env_id: str,
        on_queued: Callable[[int, int], None],
        within: Callable[[dict[str, float]], bool] | None = None,
        on_prefix: Callable[[int, str], None] | None = None,
        on_extension: Callable[[int, str], None] | None = None,
    ) -> None:
        self.space, self.budget, self.env_id, self.on_queued = space, budget, env_id, on_queued
        self.within, self.on_prefix, self.on_extension = within, on_prefix, on_extension

    def _enqueue(self, study: optuna.Study, params: dict[str, Any], attrs: dict[str, Any]) -> str:
        """Queue ``params`` marked with ``attrs`` (plus how its model is made); its recipe as
        users read it."""
        variant = self.space(_Replay(dict(params), study))
        made = made_key({"steps": variant.to_dict()["steps"], "runtime": {"batch_size": params.get("batch_size", 1)}})
        study.enqueue_trial(params, user_attrs=queued_attrs(**{k: v | {"made": made} for k, v in attrs.items()}), skip_if_exists=True)
        return variant.describe()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        pending = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
        room = self.budget - store.evaluated(trials) - pending
        if room > 0 and self.within is not None:
            prefix = prefix_plan(study, trial, self.space, self.within)
            if prefix is not None:
                text = self._enqueue(study, prefix, {"prefix_of": {"trial": trial.number}})
                room -= 1
                if self.on_prefix is not None:
                    self.on_prefix(trial.number, text)
        if room > 0 and self.within is not None:
            longer = extension_plan(study, trial, self.space, self.within)
            if longer is not None:
                recipe = TrialRecord.from_trial(trial).recipe or {}
                text = self._enqueue(study, longer, {"extension_of": {"trial": trial.number, "from": made_key(recipe)}})
                room -= 1
                if self.on_extension is not None:
                    self.on_extension(trial.number, text)
        queued = plan(study, trial, self.space, self.env_id, room)
        if not queued:
            return
        made = made_key(TrialRecord.from_trial(trial).recipe or {})
        for params in queued:
            study.enqueue_trial(params, user_attrs=queued_attrs(deployment_of={"trial": trial.number, "made": made}), skip_if_exists=True)
        self.on_queued(trial.number, len(queued))
