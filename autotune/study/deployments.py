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

What the study has already shown never wins is left out most of the time (``ways.losers``),
except from a model among the study's fastest within the accuracy limit, which is deployed at
every precision its engine and thread count run: a way that lost on wider models can win on
the thinnest (on the demo, dynamic-range int8 lost to full int8 on every wider model, and
timed side by side ran a width-0.25 student channel-pruned to keep 0.75 at ×10.81 against
full int8's ×10.30).

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
from optuna.trial import FrozenTrial, TrialState

from autotune.search.recipe import Recipe
from autotune.storage import store
from autotune.storage.record import TrialRecord
from autotune.storage.record import queued as queued_attrs
from autotune.study.chains import among_fastest, extension_plan, fastest_models, neutral_plan, prefix_plan, sibling_plan
from autotune.study.wider import accurate_siblings, narrower_plan, wider_plan
from autotune.study.ways import (
    DEPLOY_PARAMS,
    LOSER_EVERY,
    Replay,
    choices,
    deployment_kind,
    losers,
    made_key,
    measured_trials,
    model_shape,
    models_measured,
    replayed,
    slower_thread_counts,
    thread_way,
)

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


def _run_as(recipe: dict[str, Any]) -> tuple[Any, ...]:
    """How a deployment runs, its precision aside: engine, threads, XLA."""
    r = recipe["runtime"]
    return (r["engine"], r["threads"], bool(r.get("xla")))


def _float_no_better(record: TrialRecord) -> bool:
    """Whether the trained (float) model, as the last step that made it evaluated it, was no
    better than this deployment of it measured."""
    q = record.metrics.quality
    trained = [step[f"{q.name}_keras"] for step in record.lineage or () if f"{q.name}_keras" in step]
    return bool(trained) and q.sign * (trained[-1] - record.metrics.quality_value) >= 0

def _variants(study: optuna.Study, trial: FrozenTrial, space: Callable[[Any], Recipe]) -> Iterator[dict[str, Any]]:
    """Overrides of the trial's deployment parameters over the choices its space offers: those
    it asked, and those it asks only for another engine (XLA for TensorFlow; precision and
    threads for LiteRT), found by asking the space again with that engine."""
    dists = {n: d for n, d in trial.distributions.items() if n in DEPLOY_PARAMS}
    for engine in choices(dists["engine"]) if "engine" in dists else []:
        found = replayed(space, {**trial.params, "engine": engine}, study)
        if found is None:
            continue
        for n, d in found[0].distributions.items():
            if n in (*DEPLOY_PARAMS, "xla") and n not in dists:
                dists[n] = d
    names = list(dists)
    for values in itertools.product(*(choices(dists[n]) for n in names)):
        yield dict(zip(names, values))


def plan(study: optuna.Study, trial: FrozenTrial, space: Callable[[Any], Recipe], env_id: str, room: int) -> list[dict[str, Any]]:
    """The parameters of each trial to queue so that ``trial``'s model is deployed its other
    ways (at most ``room``), or [] when it was not the first measured trial of its model."""
    record = TrialRecord.from_trial(trial)
    recipe = record.recipe
    if room <= 0 or recipe is None or not measured_trials([trial]) or not trial.params or record.deployment_of is not None:
        return []
    if record.sibling_of is not None:
        return []  # it runs as its sibling does, whose model was deployed the ways that can win
    key = made_key(recipe)
    trials = study.get_trials(deepcopy=False)
    if any((TrialRecord.from_trial(t).deployment_of or {}).get("made") == key for t in trials):
        return []  # this model's deployments were queued already
    done = measured_trials(trials)
    measured = {json.dumps(r.recipe, sort_keys=True) for _, r in done if r.env_id == env_id}
    models = len({made_key(r.recipe) for _, r in done})
    skip = losers(trials)
    # ... and the ways using them not measured yet (a measured one is ``losers``' to judge).
    slow = slower_thread_counts(trials)
    measured_kinds = {deployment_kind(r.recipe) for _, r in done}
    # Among the study's fastest: a loser is deployed anyway, one per precision, run as it was.
    fast = bool(record.metrics.feasible) and among_fastest(trial, record, trials)
    own = _run_as(recipe)
    rescued: set[str] = set()
    retry = None
    if models % LOSER_EVERY == 0 and skip:
        # Now and then a loser is tried again: the one measured on the fewest models (the
        # longest left out), one per such model, so that checking costs one trial, not all.
        tried = models_measured(done)
        retry = min(sorted(skip), key=lambda k: tried.get(k, 0))
        skip = skip - {retry}
    seen: set[str] = set()
    variants: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for overrides in _variants(study, trial, space):
        params = {**trial.params, **overrides}
        found = replayed(space, params, study)
        if found is None:
            continue  # the space does not take this combination
        replay, variant = found
        d = variant.to_dict()
        d["runtime"]["batch_size"] = recipe["runtime"].get("batch_size", 1)
        text = json.dumps(d, sort_keys=True)
        kind = deployment_kind(d)
        unmeasured_slow = thread_way(d) in slow and kind not in measured_kinds and kind != retry
        rescue = fast and kind in skip and _run_as(d) == own and d["precision"] not in rescued
        if made_key(d) != key or text in measured or text in seen or (kind in skip and not rescue) or unmeasured_slow:
            continue
        if rescue:
            rescued.add(d["precision"])
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

class Deployer:
    """Called by Optuna after every trial (before the failure policy): queues the other
    deployments of a newly measured model; after a chain past the accuracy limit, the model it
    made on its way within it (``prefix_plan``); after a chain within it that ends in steps that
    cannot make it faster and cost accuracy, the model before them (``neutral_plan``); after a deployment among the study's fastest,
    the study's fastest model made one value thinner (``narrower_plan``); its model taken one
    step further (``extension_plan``) and trained other ways at its shape
    (``sibling_plan``, each deployed as that trial was, no other way); the model whose accuracy
    counts most on the front made one value wider (``wider_plan``) and trained other ways at its
    shape (``accurate_siblings``); all within what is left of the budget."""

    def __init__(
        self,
        space: Callable[[Any], Recipe],
        budget: int,
        env_id: str,
        on_queued: Callable[[int, int], None],
        within: Callable[[dict[str, float]], bool] | None = None,
        on_prefix: Callable[[int, str], None] | None = None,
        on_extension: Callable[[int, str], None] | None = None,
        on_siblings: Callable[[int, list[str]], None] | None = None,
        on_neutral: Callable[[int, str, float], None] | None = None,
        on_wider: Callable[[int, str], None] | None = None,
        on_narrower: Callable[[int, str], None] | None = None,
        on_accurate: Callable[[int, list[str]], None] | None = None,
    ) -> None:
        self.space, self.budget, self.env_id, self.on_queued = space, budget, env_id, on_queued
        self.within, self.on_prefix, self.on_extension, self.on_siblings = within, on_prefix, on_extension, on_siblings
        self.on_neutral, self.on_wider, self.on_narrower, self.on_accurate = on_neutral, on_wider, on_narrower, on_accurate

    def _enqueue(self, study: optuna.Study, params: dict[str, Any], attrs: dict[str, Any]) -> str:
        """Queue ``params`` marked with ``attrs`` (plus how its model is made); its recipe as
        users read it."""
        variant = self.space(Replay(dict(params), study))
        made = made_key({"steps": variant.to_dict()["steps"], "runtime": {"batch_size": params.get("batch_size", 1)}})
        study.enqueue_trial(params, user_attrs=queued_attrs(**{k: v | {"made": made} for k, v in attrs.items()}), skip_if_exists=True)
        return variant.describe()

    def _one_value(
        self,
        study: optuna.Study,
        plan_of: Callable[[optuna.Study, str, Callable[[Any], Recipe]], tuple[FrozenTrial, dict[str, Any]] | None],
        attr: str,
        on_queued: Callable[[int, str], None] | None,
        first: bool = False,
    ) -> int:
        """Queue the model ``plan_of`` (``narrower_plan``, ``wider_plan``) makes one value
        thinner or wider, marked ``attr``; how many trials that queued (0 or 1)."""
        found = plan_of(study, self.env_id, self.space)
        if found is None:
            return 0
        t, params = found
        origin = {"trial": t.number, "from": made_key(TrialRecord.from_trial(t).recipe or {})} | ({store.FIRST: True} if first else {})
        text = self._enqueue(study, params, {attr: origin})
        if on_queued is not None:
            on_queued(t.number, text)
        return 1

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        pending = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
        room = self.budget - store.evaluated(trials) - pending
        if room > 0 and self.within is not None:
            prefix = prefix_plan(study, trial, self.space, self.within)
            if prefix is not None:
                # The way in of a model made thinner than the study's fastest runs first, as
                # that model did.
                first = {store.FIRST: True} if TrialRecord.from_trial(trial).narrower_of is not None else {}
                text = self._enqueue(study, prefix, {"prefix_of": {"trial": trial.number, **first}})
                room -= 1
                if self.on_prefix is not None:
                    self.on_prefix(trial.number, text)
        if room > 0 and self.within is not None:
            neutral = neutral_plan(study, trial, self.space)
            if neutral is not None:
                params, cost = neutral
                text = self._enqueue(study, params, {"prefix_of": {"trial": trial.number, "neutral": True}})
                room -= 1
                if self.on_neutral is not None:
                    self.on_neutral(trial.number, text, cost)
        if room > 0 and self.within is not None:
            # Thinner than the study's fastest: it may be the new fastest, so it runs first.
            room -= self._one_value(study, narrower_plan, "narrower_of", self.on_narrower, first=True)
        # The trial's model, or else the study's fastest (most accurate first): the evidence
        # these need may come from any trial.
        fastest = [trial, *(t for t in fastest_models(study, self.env_id) if t.number != trial.number)] if room > 0 and self.within is not None else []
        for t in fastest:
            longer = extension_plan(study, t, self.space, self.within)
            if longer is not None:
                recipe = TrialRecord.from_trial(t).recipe or {}
                text = self._enqueue(study, longer, {"extension_of": {"trial": t.number, "from": made_key(recipe)}})
                room -= 1
                if self.on_extension is not None:
                    self.on_extension(t.number, text)
                break
        for t in fastest if room > 0 else []:
            siblings = sibling_plan(study, t, self.space)[:room]
            if siblings:
                shape = model_shape(TrialRecord.from_trial(t).recipe or {})
                texts = [self._enqueue(study, params, {"sibling_of": {"trial": t.number, "shape": shape}}) for params in siblings]
                room -= len(siblings)
                if self.on_siblings is not None:
                    self.on_siblings(t.number, texts)
                break
        if room > 0 and self.within is not None:
            room -= self._one_value(study, wider_plan, "wider_of", self.on_wider)
        accurate = accurate_siblings(study, self.env_id, self.space) if room > 0 and self.within is not None else None
        if accurate is not None:
            t, found = accurate[0], accurate[1][:room]
            shape = model_shape(TrialRecord.from_trial(t).recipe or {})
            origin = {"trial": t.number, "shape": shape, "accurate": True, "from": made_key(TrialRecord.from_trial(t).recipe or {})}
            texts = [self._enqueue(study, params, {"sibling_of": origin}) for params in found]
            room -= len(found)
            if self.on_accurate is not None:
                self.on_accurate(t.number, texts)
        queued = plan(study, trial, self.space, self.env_id, room)
        if not queued:
            return
        record = TrialRecord.from_trial(trial)
        made = made_key(record.recipe or {})
        # The other ways of a model among the study's fastest within the limit are the likeliest
        # to give its fastest deployment: they run ahead of the queue, as a thinner model does.
        first = {store.FIRST: True} if record.metrics is not None and record.metrics.feasible and among_fastest(trial, record, trials) else {}
        for params in queued:
            study.enqueue_trial(params, user_attrs=queued_attrs(deployment_of={"trial": trial.number, "made": made, **first}), skip_if_exists=True)
        self.on_queued(trial.number, len(queued))
