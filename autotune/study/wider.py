"""Models one value away from the study's front along the parameters that set how thin a model
is (``Technique.wider_with``: a student's width, channel pruning's keep): the model whose
accuracy counts most on the front made one value wider (``wider_plan``), and the study's
fastest model made one value thinner (``narrower_plan``); and the model whose accuracy counts
most trained other ways at its shape (``accurate_siblings``). ``deployments.Deployer`` queues
them; each is deployed as the model it came from was, a thinner or wider one then its other
ways like any new model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotune.search.recipe import Recipe
from autotune.storage.record import TrialRecord
from autotune.study.chains import SIBLINGS_AFTER, fastest_models, made_in_study, shape_speeds, sibling_plan, speed_read
from autotune.study.ways import DEPLOYED, choices, made_key, measured_trials, model_shape, replayed
from autotune.techniques import TECHNIQUES

# The least weight (``front_weights``: the share of the baseline's latency over which its
# accuracy counts) a front member is widened at (``wider_plan``); a tenth: one more validation
# sample of it would add a tenth of what it adds at the slow end.
WIDER_WEIGHT = 0.1


def front_weights(trials: list[FrozenTrial], env_id: str) -> list[tuple[FrozenTrial, TrialRecord, float]]:
    """The front within the accuracy limit on ``env_id`` of a study's ``trials`` (references
    included), by speed-up read interleaved and quality loss, each member with how much
    hypervolume one unit more accuracy of it would add, most first.

    With the reference point at (the baseline's latency, the limit) and the front sorted
    fastest first, a member's accuracy counts over the latencies from its own to the next
    slower member's (the baseline's, for the slowest): that span is its weight. On the demo,
    the most accurate member (a width-0.5 student at ×7.5) weighs 0.87 and the fastest 0.03.
    """
    here, _ = shape_speeds(trials, env_id)
    here += [(t, r) for t, r in measured_trials(trials) if r.reference and r.env_id == env_id and r.metrics.feasible and speed_read(r)]
    front: list[tuple[FrozenTrial, TrialRecord]] = []
    for t, r in sorted(here, key=lambda tr: (-(speed_read(tr[1]) or 0.0), tr[1].metrics.quality_loss, tr[0].number)):
        if not front or r.metrics.quality_loss < front[-1][1].metrics.quality_loss:
            front.append((t, r))
    latencies = [1 / (speed_read(r) or 1.0) for _, r in front] + [1.0]
    weighed = [(t, r, latencies[i + 1] - latencies[i]) for i, (t, r) in enumerate(front)]
    return sorted(weighed, key=lambda w: -w[2])


def wider_plan(study: optuna.Study, env_id: str, space: Callable[[Any], Recipe]) -> tuple[FrozenTrial, dict[str, Any]] | None:
    """The trial, and the parameters of a trial to queue, for the searched model whose accuracy
    counts most on the study's front (``front_weights``; of those weighing ``WIDER_WEIGHT`` or
    more) made one value wider (``_one_value``: the last step that thins it one choice
    wider by a parameter its technique widens the model with, ``Technique.wider_with``, such
    as a student's width or channel pruning's keep, or left off at its widest), deployed as
    it was. Once per model, once the study has measured
    ``SIBLINGS_AFTER`` models; None if no such model is left to make.

    The front's hypervolume is mostly its most accurate fast member's (on the demo, a
    width-0.5 student's at ×7.5 weighs 0.87 of every unit of accuracy and the fastest
    member's 0.03): a wider model is the one expected to be more accurate at the least cost in
    speed. On the demo, the students one validation sample more accurate than the baseline
    are of width 0.5, one model in six the space makes: a 50-trial study searches 6-17 models,
    and studies that measured none of them reached 0.55-0.65 of the hypervolume of the others.
    A member at the base model's accuracy or better is not widened: a wider model is more
    like the base model, not more accurate than it (on the Intel Xeon, four width-0.5
    students at the baseline's accuracy or one sample above it, widened to 0.75, lost two or
    three samples).
    A member that cannot be widened (the base model at int8, a reference) passes its turn:
    on the Intel Xeon the demo's base model at dynamic-range int8 lost no accuracy at ×2.7
    and weighed 0.62, a width-0.25 student at ×8.0 0.21.
    """
    trials = study.get_trials(deepcopy=False)
    if len({made_key(r.recipe) for _, r in measured_trials(trials) if not r.reference}) < SIBLINGS_AFTER:
        return None
    widened = {(TrialRecord.from_trial(t).wider_of or {}).get("from") for t in trials}
    made = made_in_study(trials)
    for t, r, weight in front_weights(trials, env_id):
        if weight < WIDER_WEIGHT:
            return None
        if r.reference or not t.params or r.repeat_of is not None or r.warm_start or r.recipe is None:
            continue
        if r.metrics.quality_loss <= 0:
            continue  # as accurate as the base model: wider, it is only more like it
        if made_key(r.recipe) in widened:
            continue
        thinning = _thinning_steps(r.recipe)
        found = _one_value(study, t, r.recipe, space, thinning[-1], +1) if thinning else []
        found = [(left_off, params, key) for left_off, params, key in found if key not in made]
        if found:
            return t, min(found, key=lambda f: f[0])[1]  # one value wider before left off
    return None


def accurate_siblings(study: optuna.Study, env_id: str, space: Callable[[Any], Recipe]) -> tuple[FrozenTrial, list[dict[str, Any]]] | None:
    """The trial, and the parameters of the trials to queue, for the searched model whose
    accuracy counts most on the study's front (``front_weights``; of those weighing
    ``WIDER_WEIGHT`` or more) trained other ways at its shape (``chains.sibling_plan``: its
    chain with the parameters that do not set the model's shape changed, a distillation's
    temperature and weight, fewest changes first, each deployed only as it was). Once per
    model, once the study has measured ``SIBLINGS_AFTER`` models; None if no such model is
    left to make.

    A sibling runs as fast as the model it is a sibling of, so on the front's heaviest member
    every validation sample a sibling gains adds the most hypervolume the study can add at
    the cost of one training and one timing. On the Intel Xeon, the search read the demo's
    width-0.5 students at int8 mostly at ×6.0-6.4 (single readings ×3.5-6.9): which of them,
    at the baseline's accuracy or one validation sample above it, a study measured set most of
    its hypervolume (0.0086 against 0.0110 on one seed, with the same fastest student). Once per model, not per shape: on one seed the study
    had trained ``distill w0.5 T4 α0.9 → prune 2:4`` other ways as its fastest, and its
    heaviest member, ``distill w0.5 T2 α0.9`` at the baseline's accuracy, shares that shape;
    the sibling one sample more accurate than the baseline, ``distill w0.5 T2 α0.5``, was not
    trained.
    """
    trials = study.get_trials(deepcopy=False)
    if len({made_key(r.recipe) for _, r in measured_trials(trials) if not r.reference}) < SIBLINGS_AFTER:
        return None
    for t, r, weight in front_weights(trials, env_id):
        if weight < WIDER_WEIGHT:
            return None
        if r.reference or not t.params or r.repeat_of is not None or r.warm_start or r.recipe is None:
            continue
        found = sibling_plan(study, t, space, fastest=False)
        if found:
            return t, found
    return None


def narrower_plan(study: optuna.Study, env_id: str, space: Callable[[Any], Recipe]) -> tuple[FrozenTrial, dict[str, Any]] | None:
    """The trial, and the parameters of a trial to queue, for the study's fastest model within
    the accuracy limit (``chains.fastest_models``, most accurate first) made one value
    thinner: a step of its chain that thins it (``Technique.wider_with``), the last first, one
    choice thinner by that parameter, the rest of the chain as it was, deployed as it was.
    Only to a model the study has not made, of a shape (``ways.model_shape``) the study has
    not measured within the limit nor this rule made (``_settled_shapes``), so a model is made
    thinner once at each of its steps that thin it, the last first, as it is asked again;
    from the study's first model on. None if no such model is left to make.

    The fastest deployment within the limit is the one a user exports, and it is the thinnest
    model the limit allows: where the fastest model is within the limit, the next thinner one
    is the search's best guess at a faster one. On the Intel Xeon, the demo's fastest within
    the limit, a width-0.25 student at int8 (×8.31 timed side by side; the search read the
    width-0.5 students mostly at ×6.0-6.4), was first trained at trials #4, #27 and #35 of
    three 50-trial studies: the sampler proposed students of width 0.75 and 0.5 within the limit first, and
    a study spent its trials on their deployments and siblings. A study whose fastest model
    was a width-0.75 student channel-pruned to keep 0.75 made it keep 0.5, past the limit: the
    width-0.5 student at keep 0.75 is then the next guess. A shape the sampler made past the
    limit with other training is tried again with the fastest model's: on the nested
    transfer-learning model (Intel Xeon, 8f7f362), two of three studies had trained a
    width-0.5 student past the limit (`T2 α0.9`, with pruning, or `T2 α0.5`), so their
    fastest, a width-0.75 student, was never made thinner; `w0.5 T2 α0.5` was 0.025-0.050
    more accurate than the base model in the other seeds and ran ×3.00 side by side, against
    ×2.23 for the width-0.75 student, and one study never measured it.
    """
    trials = study.get_trials(deepcopy=False)
    made = made_in_study(trials)
    shapes = _settled_shapes(trials)
    for t in fastest_models(study, env_id):
        r = TrialRecord.from_trial(t)
        if r.reference or not t.params or r.repeat_of is not None or r.warm_start or r.recipe is None:
            continue
        for index in reversed(_thinning_steps(r.recipe)):
            found = [params for _, params, key in _one_value(study, t, r.recipe, space, index, -1) if key not in made and _shape_of(key) not in shapes]
            if found:
                return t, found[0]
    return None


def _settled_shapes(trials: list[FrozenTrial]) -> set[str]:
    """The shapes of model (``ways.model_shape``) ``narrower_plan`` does not make: those the
    study measured within the accuracy limit, those of models the rules queued that are still
    waiting or running, and those the rule made already. A shape made only past the limit, by other training, is not settled: the
    fastest model's own training may land within it."""
    settled = {model_shape(r.recipe) for _, r in measured_trials(trials) if r.metrics.feasible}
    for t in trials:
        r = TrialRecord.from_trial(t)
        if r.narrower_of:
            settled.add(_shape_of(r.narrower_of["made"]))
        if t.state in (TrialState.WAITING, TrialState.RUNNING):
            settled |= {_shape_of(q["made"]) for q in (r.deployment_of, r.prefix_of, r.extension_of, r.sibling_of, r.wider_of) if q and "made" in q}
    return settled


def _shape_of(made: str) -> str:
    """``ways.model_shape`` of a model known by its ``made_key`` (the key itself where it is not
    one)."""
    try:
        d = json.loads(made)
        return model_shape({"steps": d["steps"], "runtime": {"batch_size": d.get("batch", 1)}})
    except (ValueError, KeyError, TypeError):
        return made


def _thinning_steps(recipe: dict[str, Any]) -> list[int]:
    """Where the chain's steps are that thin the model by a parameter (``wider_with``)."""
    return [i for i, step in enumerate(recipe["steps"]) if getattr(TECHNIQUES.get(step["name"]), "wider_with", ())]


def _one_value(study: optuna.Study, trial: FrozenTrial, recipe: dict[str, Any], space: Callable[[Any], Recipe], index: int, by: int) -> list[tuple[bool, dict[str, Any], str]]:
    """``trial``'s parameters with step ``index`` of its chain made one value wider (``by`` +1)
    or thinner (-1): a parameter its technique widens the model with (``wider_with``) one
    choice larger or smaller and the rest of the chain as it was; wider, where it is at its
    largest, that step left off (switched off, the rest as it was), which never leaves the
    base model (the references measure it). Each as (left off, the parameters, the new
    model's ``made_key``), in the space's order.

    On the demo, a width-0.5 student channel-pruned to keep 0.75 made wider becomes the
    student alone (which the content cache holds: measuring it trains nothing), and a
    width-0.25 student a width-0.5 one."""
    steps = recipe["steps"]
    widens = getattr(TECHNIQUES.get(steps[index]["name"]), "wider_with", ())
    batch = {"batch_size": trial.params["batch_size"]} if "batch_size" in trial.params else {}
    found: list[tuple[bool, dict[str, Any], str]] = []
    for name, value in trial.params.items():
        if name in (*DEPLOYED, "batch_size") or name not in trial.distributions:
            continue
        if value is True and by > 0:
            moved_to: Any = False
        elif isinstance(value, bool):
            continue
        else:
            options = choices(trial.distributions[name])
            # A stepped float's choices are computed (0.1 + 2 × 0.1 is not 0.3): the nearest.
            at = [i for i, o in enumerate(options) if o == value or (_number(o) and _number(value) and abs(o - value) <= 1e-9 * max(1.0, abs(value)))]
            if not at or not 0 <= at[0] + by < len(options):
                continue
            moved_to = options[at[0] + by]
        replay_variant = replayed(space, {**trial.params, name: moved_to}, study)
        if replay_variant is None:
            continue
        replay, variant = replay_variant
        new_steps = variant.to_dict()["steps"]
        if value is True:
            ok = bool(new_steps) and new_steps == steps[:index] + steps[index + 1 :]
        else:
            old_p, new_p = steps[index].get("params", {}), new_steps[index].get("params", {}) if len(new_steps) == len(steps) else {}
            moved = [k for k in set(old_p) | set(new_p) if old_p.get(k) != new_p.get(k)]
            ok = (
                len(new_steps) == len(steps)
                and all(a == b for i, (a, b) in enumerate(zip(steps, new_steps)) if i != index)
                and new_steps[index]["name"] == steps[index]["name"]
                and len(moved) == 1
                and moved[0] in widens
                and (new_p[moved[0]] - old_p[moved[0]]) * by > 0
            )
        if ok:
            key = made_key({"steps": new_steps, "runtime": recipe["runtime"]})
            found.append((value is True, {n: replay.params[n] for n in replay.distributions} | batch, key))
    return found


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
