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
(precision, engine, threads, XLA) that was measured on ``LOSER_AFTER`` trained models and was
the fastest way for none of them, or that on every model it was measured on was at least
``FAR_SLOWER`` times slower than that model's fastest way and no more accurate (the TensorFlow
runtime against LiteRT at batch 1, typically), is left out; on every ``LOSER_EVERY``-th new
model one of them is tried again, the one measured on the fewest models. Being more accurate
keeps a slow way only when it is within the accuracy limit.

A model whose first measurement is beyond the accuracy limit is deployed only at its other
precisions, one way each (its own engine and thread count where the space offers them): another
engine or thread count runs the same arithmetic, so it would be as far beyond the limit, and
the budget it would take buys nothing on the front.

The sampler chooses how a model is made, not how it is deployed: once the study has compared
ways of deploying on a model, a searched trial's deployment parameters are those of the way
that was fastest on the most models so far (``BestDeployment``), so no searched trial is spent
timing a new model on a way that has lost (the TensorFlow runtime at batch 1, typically), and
the sampler learns each model from it deployed at its likely best. Its other ways follow as
queued trials, as above.

A space takes part when it names its deployment parameters as the built-in spaces do
(``DEPLOY_PARAMS``); a deployment is queued only if replaying the space with it gives the
same steps, so a space that asks other questions for another precision (QAT at int8) is safe.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
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


def losers(trials: list[FrozenTrial]) -> set[str]:
    """Ways of deploying measured on at least ``LOSER_AFTER`` trained models and the fastest
    (of the feasible ones, else of all) on none of them, and ways that were ``FAR_SLOWER``
    than the fastest and no more accurate on every model they were measured on."""
    by_model: dict[str, list[TrialRecord]] = {}
    for _, r in _measured(trials):
        by_model.setdefault(made_key(r.recipe), []).append(r)
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
        won.add(deployment_kind(best.recipe))
        for r in group:
            # More accurate counts only within the limit: an infeasible way is no trade-off.
            more_accurate = r.metrics.feasible and r.metrics.quality_loss < best.metrics.quality_loss
            if r.metrics["latency_p50_ms"] < FAR_SLOWER * best.metrics["latency_p50_ms"] or more_accurate:
                close.add(deployment_kind(r.recipe))
    return {k for k, n in seen.items() if k not in won and (n >= LOSER_AFTER or k not in close)}


def _one_per_precision(variants: list[tuple[dict[str, Any], dict[str, Any]]], own: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Of the (parameters, recipe) variants, one per precision other than ``own``'s: the one
    deployed as ``own`` is (engine, threads, XLA) where there is one, else the first."""
    r = own["runtime"]
    same = (r["engine"], r["threads"], bool(r.get("xla")))
    picked: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for params, d in variants:
        p = d["precision"]
        if p == own["precision"]:
            continue
        rt = d["runtime"]
        if p not in picked or (rt["engine"], rt["threads"], bool(rt.get("xla"))) == same:
            picked[p] = (params, d)
    return list(picked.values())


def _deployment_params(trial: FrozenTrial, recipe: dict[str, Any]) -> dict[str, Any]:
    """The deployment parameters a trial took; for a trial queued without parameters (the
    baseline and the references, which deploy the base model), those of the built-in spaces
    that deploy as its recipe says."""
    params = {n: v for n, v in trial.params.items() if n in DEPLOYED}
    if params or trial.params:
        return params
    r = recipe["runtime"]
    if r["engine"] == "tensorflow":
        return {"engine": "tensorflow", "xla": bool(r.get("xla"))}
    return {"engine": r["engine"], "precision": recipe["precision"], "threads": r["threads"]}


def winning_deployment(trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """The deployment parameters of the way that was the fastest (of the feasible ways, else of
    all) on the most trained models compared so far; the latest such model breaks a tie. None
    until some model was measured more than one way."""
    by_model: dict[str, list[tuple[FrozenTrial, TrialRecord]]] = {}
    for t, r in _measured(trials):
        by_model.setdefault(made_key(r.recipe), []).append((t, r))
    wins: dict[str, int] = {}
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for group in by_model.values():
        if len({deployment_kind(r.recipe) for _, r in group}) < 2:
            continue
        pool = [(t, r) for t, r in group if r.metrics.feasible] or group
        t, r = min(pool, key=lambda tr: tr[1].metrics["latency_p50_ms"])
        kind = deployment_kind(r.recipe)
        wins[kind] = wins.get(kind, 0) + 1
        params = _deployment_params(t, r.recipe)
        if kind not in latest or t.number > latest[kind][0]:
            latest[kind] = (t.number, params)
    if not wins:
        return None
    best = max(wins, key=lambda k: (wins[k], latest[k][0]))
    return latest[best][1]


def _offered(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False  # not a choice of this distribution


def _model_key(trial: FrozenTrial) -> str:
    """The model a trial makes: its chain of steps once recorded, else its parameters for
    making it (a running trial's recipe may not be written yet)."""
    recipe = TrialRecord.from_trial(trial).recipe
    if recipe is not None:
        return made_key(recipe)
    return json.dumps({n: v for n, v in trial.params.items() if n not in DEPLOYED}, sort_keys=True, default=str)


def _rank(trial: FrozenTrial) -> tuple[int, int, float]:
    """Which trial of a model stands for it: a complete one before a pruned or running one,
    then a feasible one, then the fastest."""
    metrics = TrialRecord.from_trial(trial).metrics
    if trial.state != TrialState.COMPLETE or metrics is None:
        return (1 if trial.state == TrialState.PRUNED else 2, 1, 0.0)
    return (0, 0 if metrics.feasible else 1, float(metrics.get("latency_p50_ms", float("inf"))))


def model_view(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials as the sampler of how models are made sees them: one per trained model, the
    one with its best figures (fastest feasible way of deploying it, else fastest), and
    without the deployment parameters. A model deployed ten ways, or proposed again (a repeat),
    is one observation, told at its best, not ten. Trials without parameters (the baseline and
    the references, queued empty) tell it nothing and are left out."""
    groups: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        if any(n not in DEPLOYED for n in t.params):
            groups.setdefault(_model_key(t), []).append(t)
    view = []
    for group in groups.values():
        best = copy.copy(min(group, key=lambda t: (_rank(t), t.number)))
        best.distributions = {n: d for n, d in best.distributions.items() if n not in DEPLOYED}
        best.params = {n: v for n, v in best.params.items() if n not in DEPLOYED}
        view.append(best)
    return sorted(view, key=lambda t: t.number)


# How often a proposal that makes a known model is drawn again (``BestDeployment``).
REDRAWS = 8
# The trials whose model counts as made: measured or gated, stopped early, or under way.
MADE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def _makes(sample: dict[str, Any], params: dict[str, Any]) -> bool:
    """Whether a proposal makes the model made with ``params``: it answers each of their
    questions the same way, so a space asking them in turn asks nothing else."""
    return bool(params) and all(n in sample and sample[n] == v for n, v in params.items())


class _ModelView:
    """The study, but its trials are ``model_view``'s: what ``BestDeployment`` hands its base
    sampler. Everything else (directions, storage, user attributes) is the study's."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Sequence[TrialState] | None = None, use_cache: bool = False) -> list[FrozenTrial]:
        return model_view(self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache))

    def get_trials(self, deepcopy: bool = True, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        return model_view(self._study.get_trials(deepcopy=deepcopy, states=states))

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class BestDeployment(store.Delegating):
    """``base`` for how a model is made, seeing one trial per model (``model_view``); the
    study's winning deployment (``winning_deployment``) for the deployment parameters of a
    searched trial, once there is one. A parameter the winning way did not ask (XLA, when
    LiteRT won), and every deployment parameter before any way won, is ``base``'s, which has
    seen none of them (so it draws them from their prior: at random). A trial that has not said
    how its model is made when it is asked how to deploy it (a space of deployments alone)
    takes ``base``'s deployment too."""

    def __init__(self, base: optuna.samplers.BaseSampler, seed: int | None = None) -> None:
        super().__init__(base)
        self._chosen: dict[int, dict[str, Any] | None] = {}
        self._random = optuna.samplers.RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self._random.reseed_rng()

    def _deployment(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        if trial.number not in self._chosen:
            self._chosen[trial.number] = winning_deployment(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return self._chosen[trial.number] or {}

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(_ModelView(study), trial)  # type: ignore[arg-type]

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """``base``'s proposal of how to make the model, unless it makes a model the study has
        made (or is making) already: then ``base`` is asked again, up to ``REDRAWS`` times, and
        then a random proposal that makes a new model, if one of ``REDRAWS`` draws does.

        TPE in a small discrete space proposes its best point again and again: one study on the
        demo proposed the same channel-pruned model at every other trial from its 30th on. A
        repeat costs no budget, but it teaches nothing, and the random proposal that follows it
        takes a random deployment (the TensorFlow runtime, half the time)."""
        made = {n: d for n, d in search_space.items() if n not in DEPLOYED}
        view = _ModelView(study)
        sample = self.base.sample_relative(view, trial, made)  # type: ignore[arg-type]
        if not sample:
            return sample  # start-up: every parameter is drawn on its own, at random
        known = [t.params for t in view.get_trials(deepcopy=False, states=MADE) if t.number != trial.number]
        for _ in range(REDRAWS):
            if not any(_makes(sample, p) for p in known):
                return sample
            sample = self.base.sample_relative(view, trial, made)  # type: ignore[arg-type]
        for _ in range(REDRAWS):
            if not any(_makes(sample, p) for p in known):
                return sample
            sample = {n: self._random.sample_independent(view, trial, n, d) for n, d in made.items()}  # type: ignore[arg-type]
        return sample

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        # Only a trial that has said how its model is made deploys at the winning way: in a
        # space of deployments alone (the quick space), or one that asks them first, the way
        # is what is searched, and the winner would repeat the references' trial of it.
        made = any(n not in DEPLOYED for n in trial.params)
        chosen = self._deployment(study, trial) if made else {}
        if param_name in chosen and _offered(param_distribution, chosen[param_name]):
            return chosen[param_name]
        return self.base.sample_independent(_ModelView(study), trial, param_name, param_distribution)  # type: ignore[arg-type]

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        super().after_trial(study, trial, state, values)
        self._chosen.pop(trial.number, None)


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
    if models % LOSER_EVERY == 0 and skip:
        # Now and then a loser is tried again: the one measured on the fewest models (the
        # longest left out), one per such model, so that checking costs one trial, not all.
        tried = _models_measured(done)
        skip = skip - {min(sorted(skip), key=lambda k: tried.get(k, 0))}
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
        if made_key(d) != key or text in measured or text in seen or deployment_kind(d) in skip:
            continue
        seen.add(text)
        variants.append((dict(replay.params) | ({"batch_size": trial.params["batch_size"]} if "batch_size" in trial.params else {}), d))
    if not record.metrics.feasible:
        # Beyond the accuracy limit: another engine or thread count computes the same numbers,
        # so it would be as infeasible; only another precision can land within the limit.
        variants = _one_per_precision(variants, recipe)
    queued = [params for params, _ in variants]
    return queued[:room]


class Deployer:
    """Called by Optuna after every trial (before the failure policy): queues the other
    deployments of a newly measured model, within what is left of the budget."""

    def __init__(self, space: Callable[[Any], Recipe], budget: int, env_id: str, on_queued: Callable[[int, int], None]) -> None:
        self.space, self.budget, self.env_id, self.on_queued = space, budget, env_id, on_queued

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        pending = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
        room = self.budget - store.evaluated(trials) - pending
        queued = plan(study, trial, self.space, self.env_id, room)
        if not queued:
            return
        made = made_key(TrialRecord.from_trial(trial).recipe or {})
        for params in queued:
            study.enqueue_trial(params, user_attrs=queued_attrs(deployment_of={"trial": trial.number, "made": made}), skip_if_exists=True)
        self.on_queued(trial.number, len(queued))
