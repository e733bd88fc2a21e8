"""Warm starts: a new study tries the searched front of an earlier one first, the
configurations its own space accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from autotune.errors import ConfigError, InvalidRecipe
from autotune.results.front import pareto_trials, timed
from autotune.search.recipe import Recipe
from autotune.storage import store
from autotune.storage.record import TrialRecord


def warm_start_params(
    storage: optuna.storages.BaseStorage, url: str, other: str | None, name: str, exists: bool
) -> list[tuple[str, dict[str, Any]]]:
    """The parameters of the searched front of ``other``: its non-dominated trials among those
    the space sampled (the reference recipes run in every study anyway), to enqueue first."""
    if other is None:
        return []
    if exists:
        raise ConfigError(f"--warm-start seeds a new study, and {name!r} already exists; give a new --study name")
    if not store.study_exists(storage, other):
        raise ConfigError(f"--warm-start: no study named {other!r} in {store.redact(url)} (see `autotune studies`)")
    source = store.load_study(storage, other)
    searched = [t for t in source.get_trials(deepcopy=False) if timed(t) and TrialRecord.from_trial(t).reference is None and t.params]
    front = pareto_trials(searched, [d.name.lower() for d in source.directions])
    if not front:
        raise ConfigError(f"--warm-start: study {other!r} has no searched trial to start from")
    return [(f"{other}#{t.number}", dict(t.params)) for t in sorted(front, key=lambda t: t.number)]


def fitting(
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
