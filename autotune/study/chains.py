"""After a trial, models the study has not made: the model a chain past the accuracy limit made
on its way within it (``prefix_plan``); the model a chain within it made before steps that
cannot make it faster and cost accuracy (``neutral_plan``); the study's fastest model taken
one step further (``extension_plan``), whose training is mostly cached; and the study's
fastest model trained again at its shape with its speed-neutral parameters changed
(``sibling_plan``). ``study.wider`` holds the models one value wider or thinner than the
front's. ``deployments.Deployer`` queues them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotune.search.recipe import Recipe
from autotune.techniques import TECHNIQUES
from autotune.storage import store
from autotune.storage.record import TrialRecord
from autotune.study.ways import DEPLOYED, TIE, choices, leaves_shape, made_key, measured_trials, model_shape, replayed, shape_key

# How many siblings of the study's fastest model are trained (``sibling_plan``), once the
# study has measured this many models (before, its fastest is only its first).
SIBLINGS = 3
SIBLINGS_AFTER = 3


def made_in_study(trials: list[FrozenTrial]) -> set[str]:
    """How every model of the study was made (``made_key``), measured or queued to be."""
    made = set()
    for t in trials:
        r = TrialRecord.from_trial(t)
        if r.recipe is not None:
            made.add(made_key(r.recipe))
        for queued_for in (r.deployment_of, r.prefix_of, r.extension_of, r.sibling_of, r.wider_of, r.narrower_of):
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
    A model made one value thinner is asked about as the sampler's are: on the Intel Xeon,
    ``distill w0.5 → prune 2:4`` made thinner was past the limit, the width-0.25 student it
    trained on its way within it, and the study first measured that student at trial 47.
    """
    record = TrialRecord.from_trial(trial)
    metrics, recipe, lineage = record.metrics, record.recipe, record.lineage
    baseline = study.user_attrs.get(store.BASELINE)
    if trial.state != TrialState.COMPLETE or not trial.params or recipe is None or not lineage or metrics is None or not baseline:
        return None
    if record.reference or record.deployment_of or record.prefix_of or record.extension_of or record.sibling_of:
        return None  # a model one value wider or thinner is a new chain: its own way in counts
    if record.repeat_of is not None or record.warm_start:
        return None
    if metrics.feasible and not metrics.gated:
        return None
    q = metrics.quality
    trained = [step for step in lineage if step.get("step") not in ("base", "convert")]
    steps = recipe["steps"][: len(trained)]
    if q.name not in baseline or [s["name"] for s in steps] != [s.get("step") for s in trained]:
        return None
    made = made_in_study(study.get_trials(deepcopy=False))
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


def neutral_plan(study: optuna.Study, trial: FrozenTrial, space: Callable[[Any], Recipe]) -> tuple[dict[str, Any], float] | None:
    """The parameters of a trial to queue for ``trial``'s model without the steps at the end of
    its chain that do not change its shape (``ways.leaves_shape``), when ``trial`` was within the
    accuracy limit and training showed those steps costing accuracy: the model before them,
    which the content cache holds, runs as fast deployed as ``trial`` was and was more
    accurate as trained. With the accuracy they cost as trained; None if there is no such
    model or the study made it already.

    On a seed of the demo's benchmark, ``distill w0.5 T2 α0.5 → prune 2:4`` was measured at
    the baseline's accuracy while the student before its pruning, measured by other seeds'
    studies, ran as fast one validation sample more accurate; that study never measured it and
    its hypervolume stayed at ×0.79 of random search's after 200 trials.
    """
    record = TrialRecord.from_trial(trial)
    metrics, recipe, lineage = record.metrics, record.recipe, record.lineage
    baseline = study.user_attrs.get(store.BASELINE)
    if not measured_trials([trial]) or not trial.params or not metrics.feasible or not lineage or not baseline:
        return None
    if record.reference or record.repeat_of is not None or record.warm_start:
        return None
    steps = recipe["steps"]
    n = len(steps)
    while n > 0 and leaves_shape(steps[n - 1]):
        n -= 1
    if n in (0, len(steps)):
        return None  # no neutral steps at the end, or nothing but: the model before is the baseline
    trained = [step for step in lineage if step.get("step") not in ("base", "convert")]
    q = metrics.quality
    if [s["name"] for s in steps] != [s.get("step") for s in trained]:
        return None
    before, after = trained[n - 1].get(f"{q.name}_keras"), trained[-1].get(f"{q.name}_keras")
    if before is None or after is None or q.sign * (after - before) <= 0:
        return None  # they cost no accuracy as trained
    wanted = {"steps": steps[:n], "runtime": {"batch_size": recipe["runtime"].get("batch_size", 1)}}
    if made_key(wanted) in made_in_study(study.get_trials(deepcopy=False)):
        return None
    params = _params_making(study, trial, space, steps[:n])
    if params is None:
        return None
    batch = {"batch_size": trial.params["batch_size"]} if "batch_size" in trial.params else {}
    return params | batch, q.sign * (after - before)


def speed_read(record: TrialRecord) -> float | None:
    """How fast a measurement was: its interleaved speed-up over the baseline (comparable
    across minutes of drift, unlike a p50), None where it has none."""
    speedup = record.metrics.get("speedup") if record.metrics is not None else None
    return float(speedup) if speedup else None


def shape_speeds(trials: list[FrozenTrial], env_id: str | None) -> tuple[list[tuple[FrozenTrial, TrialRecord]], dict[str, float]]:
    """The measured deployments within the accuracy limit on ``env_id`` (not references), and
    the best speed-up read of each shape (``shape_key``) among them."""
    here = [(t, r) for t, r in measured_trials(trials) if r.env_id == env_id and r.metrics.feasible and not r.reference and speed_read(r)]
    best: dict[str, float] = {}
    for _, r in here:
        shape = shape_key(r.recipe)
        best[shape] = max(best.get(shape, 0.0), speed_read(r) or 0.0)
    return here, best


def among_fastest(trial: FrozenTrial, record: TrialRecord, trials: list[FrozenTrial]) -> bool:
    """Whether ``trial`` deployed a model within ``TIE`` of the study's fastest speed-up within
    the accuracy limit (measured on its host), its speed read as the best of every measured
    deployment of its shape (``shape_key``): the search's short timings of tiny models spread
    widely (width-0.25 students of the demo that run alike, timed side by side, read ×7.0 to
    ×10.7 in the search), and siblings share one speed."""
    speed = speed_read(record)
    if speed is None or record.recipe is None:
        return False
    _, best = shape_speeds(trials, record.env_id)
    pooled = max(speed, best.get(shape_key(record.recipe), 0.0))
    return pooled * TIE >= max(best.values(), default=0.0)


def fastest_models(study: optuna.Study, env_id: str) -> list[FrozenTrial]:
    """The study's measured deployments within the accuracy limit on ``env_id`` that are among
    its fastest (as ``among_fastest`` judges, by the best reading of their shape), most
    accurate first: what ``extension_plan`` and ``sibling_plan`` are asked about after every
    trial, not only after one of these, since the evidence they need (a step's accuracy cost,
    enough models measured) may come from any trial."""
    here, best = shape_speeds(study.get_trials(deepcopy=False), env_id)
    top = max(best.values(), default=0.0)
    chosen = [(t, r) for t, r in here if best[shape_key(r.recipe)] * TIE >= top]
    return [t for t, _ in sorted(chosen, key=lambda tr: (tr[1].metrics.quality_loss, tr[0].number))]


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
    if not measured_trials([trial]) or not trial.params or not metrics.feasible or not baseline:
        return None
    q = metrics.quality
    if q.name not in baseline:
        return None
    trials = study.get_trials(deepcopy=False)
    if not among_fastest(trial, record, trials):
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
    made = made_in_study(trials)
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
            found = replayed(space, {**extra, **trial.params, switch: True}, study)
            if found is None:
                continue
            replay, variant = found
            longer = variant.to_dict()["steps"]
            step = json.dumps(longer[-1], sort_keys=True) if longer else ""
            if len(longer) != len(steps) + 1 or longer[:-1] != steps or step not in affordable:
                continue
            if made_key({"steps": longer, "runtime": recipe["runtime"]}) not in made:
                candidates.append((affordable[step], {n: replay.params[n] for n in replay.distributions} | batch))
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[0])[1]


def sibling_plan(study: optuna.Study, trial: FrozenTrial, space: Callable[[Any], Recipe], fastest: bool = True) -> list[dict[str, Any]]:
    """The parameters of up to ``SIBLINGS`` trials to queue for the model ``trial`` deployed
    trained other ways, when it is among the study's fastest within the accuracy limit
    (``among_fastest``): its chain with parameters that do not set the model's shape
    (``Technique.shape_params``: a distillation's temperature and weight, not its width)
    changed, fewest changes first, each a model the study has not made, deployed as ``trial``
    was. Once per shape of model (however deployed), once the study has measured ``SIBLINGS_AFTER`` models; [] if the
    trial is not among the fastest, or a sibling itself. With ``fastest`` False, for the front
    member whose accuracy counts most (``wider.accurate_siblings``): among the fastest or not,
    once per model (``made_key``) rather than per shape, since a model and the same student
    pruned share a shape but not an accuracy.

    A sibling runs as fast as the model it is a sibling of, so the search spends it on
    accuracy where speed is won already: the accuracy a sibling has to spare is what lets the
    fastest model be taken one step further (``extension_plan``). On three 50-trial studies of
    the demo, the fastest deployment within the limit any of them measured was a width-0.25
    student channel-pruned to keep 0.75, ×10.9 timed side by side against ×10.4-10.6 for the
    students alone; only one study made it, at its 42nd trial, from the one width-0.25 student
    of its six that was 1 validation sample more accurate than the others, which the sampler
    proposed at its 41st.
    """
    record = TrialRecord.from_trial(trial)
    metrics, recipe = record.metrics, record.recipe
    if not measured_trials([trial]) or not trial.params or not metrics.feasible or recipe is None:
        return []
    if record.reference or record.repeat_of is not None or record.warm_start or record.sibling_of:
        return []
    trials = study.get_trials(deepcopy=False)
    shape = shape_key(recipe)
    if fastest and any((TrialRecord.from_trial(t).sibling_of or {}).get("shape") == model_shape(recipe) for t in trials):
        return []  # this shape of model was trained other ways already, however deployed
    if not fastest and any((TrialRecord.from_trial(t).sibling_of or {}).get("from") == made_key(recipe) for t in trials):
        return []  # this model was trained other ways already
    if fastest and not among_fastest(trial, record, trials):
        return []
    made = made_in_study(trials)
    if len({made_key(r.recipe) for _, r in measured_trials(trials) if not r.reference}) < SIBLINGS_AFTER:
        return []
    batch = {"batch_size": trial.params["batch_size"]} if "batch_size" in trial.params else {}
    names = [n for n, v in trial.params.items() if n not in (*DEPLOYED, "batch_size") and not isinstance(v, bool) and n in trial.distributions]
    found: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()
    for values in itertools.product(*([trial.params[n], *[c for c in choices(trial.distributions[n]) if c != trial.params[n]]] for n in names)):
        changed = sum(v != trial.params[n] for n, v in zip(names, values))
        if not changed:
            continue
        found_now = replayed(space, {**trial.params, **dict(zip(names, values))}, study)
        if found_now is None:
            continue
        replay, variant = found_now
        d = variant.to_dict()
        d["runtime"]["batch_size"] = recipe["runtime"].get("batch_size", 1)
        key = made_key(d)
        if shape_key(d) != shape or key in made or key in seen:
            continue
        seen.add(key)
        found.append((changed, {n: replay.params[n] for n in replay.distributions} | batch))
    found.sort(key=lambda c: c[0])  # stable: fewest changes first, then the space's order
    return [params for _, params in found[:SIBLINGS]]


def _params_making(study: optuna.Study, trial: FrozenTrial, space: Callable[[Any], Recipe], steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``trial``'s parameters with the fewest of its switched-on techniques switched off that
    make a model with exactly ``steps``, deployed as ``trial`` was; None if none does."""
    on = [name for name, value in trial.params.items() if value is True]
    for k in range(1, len(on) + 1):
        for off in itertools.combinations(on, k):
            found = replayed(space, {**trial.params, **dict.fromkeys(off, False)}, study)
            if found is not None and found[1].to_dict()["steps"] == steps:
                return dict(found[0].params)
    return None
