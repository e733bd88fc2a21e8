"""Deployments of several studies of one model timed again side by side, in one process:
what ``search_efficiency.py`` and ``zoo.py`` read the found-by target on.

A study's search timings, and its front's re-measurement at the end of its run, are taken
minutes apart from another study's; at the demo's 25-60 µs calls on 2 threads, the same
artifact reads up to ×1.5 apart from one timing to the next (width-0.25 students read
×7.0-10.7 in the search). Here every deployment within the limit that any of the studies
measured at ``SIDE_FLOOR`` of their fastest search speed-up or more is timed again in
``SIDE_ROUNDS`` rounds of ``SIDE_BLOCK_S`` each, the order shuffled every round, the baseline
among them, and its speed-up is the baseline's median over the median of every reading of its
shape (the same chain of layer sizes and the same deployment, ``study.ways.shape_key``: the
same graph with other weights, which runs as fast; in one such timing of a kept run of the
demo, the deployments of one shape read within 0.4 % of each other, and within 2.1 % in
another). A study found the fastest at the first trial that measured a deployment within 2 %
of the fastest so timed.

    python benchmarks/side_by_side.py KEPT_DIR STUDY [STUDY ...]   # studies of one model
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

import optuna

from autotune.results.plot import in_run_order
from autotune.storage import store
from autotune.storage.record import TrialRecord
from autotune.study.settings import Settings
from autotune.study.ways import shape_key

SIDE_ROUNDS = 60
SIDE_BLOCK_S = 0.02
SIDE_FLOOR = 0.5  # of the studies' fastest search speed-up: which deployments are timed again
FOUND_BY = 30
WITHIN = 0.02


def _deployments(study: optuna.Study) -> list[tuple[int, str, dict, float]]:
    """The study's deployments within the accuracy limit (not references): (the trial's place
    in the budget's count, its recipe as users read it, its recipe, its search speed-up)."""
    limit = store.stored_config(study).max_accuracy_drop
    out, k = [], 0
    for t in in_run_order(study.get_trials(deepcopy=False)):
        r = TrialRecord.from_trial(t)
        if t.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) or r.repeat_of is not None:
            continue
        k += 1
        m = r.metrics
        if r.reference or m is None or not m.feasible or m.gated or not m.get("speedup") or m.quality_loss > limit + 1e-12 or r.recipe is None:
            continue
        out.append((k, r.recipe_text, r.recipe, float(m["speedup"])))
    return out


def side_by_side(work: Path, names: list[str]) -> dict[str, list[tuple[int, float]]]:
    """Every deployment within the limit that any of the studies ``names`` measured at
    ``SIDE_FLOOR`` of the fastest search speed-up or more, timed again side by side (see the
    module's docstring). By study: (place in the budget's count, side-by-side speed-up) of each
    of its deployments so timed."""
    from autotune.measure.artifact import open_executor
    from autotune.measure.host import cores_for, pinning
    from autotune.measure.stats import median_call_ms
    from autotune.measure.timing import batch_of
    from autotune.search.recipe import Recipe
    from autotune.study.workspace import open_workspace

    url = f"sqlite:///{work}/studies/autotune.db"
    storage = store.open_storage(url)
    found = {n: _deployments(store.load_study(storage, n)) for n in names}
    top = max((x for ds in found.values() for *_, x in ds), default=0.0)
    recipes = {text: recipe for ds in found.values() for _, text, recipe, x in ds if x >= SIDE_FLOOR * top}
    if not recipes:
        return {}
    # Each deployment is built (from the cache) by a study that measured it: studies of
    # another seed train with another seed.
    spaces: dict[str, Any] = {}
    by = {text: n for n in reversed(names) for _, text, _, _ in found[n]}
    calls = {}
    for text, recipe in [("", None), *recipes.items()]:
        n = by.get(text, names[0])
        if n not in spaces:
            spaces[n] = open_workspace(store.stored_config(store.load_study(storage, n)), Settings(studies_dir=work / "studies"))
        ws = spaces[n]
        r = Recipe.from_dict(recipe) if recipe is not None else ws.baseline
        executor, _ = open_executor(ws.builder.build(r).path, r.runtime)
        calls[text] = (executor.timed_call(batch_of(ws.data.x_val, r.runtime.batch_size)), cores_for(r.runtime.threads))
    ws = spaces[names[0]]
    ms: dict[str, list[float]] = {text: [] for text in calls}
    order = list(calls)
    rng = random.Random(0)
    t0 = time.perf_counter()
    with ws.lock.exclusive(), pinning() as pin:
        for _ in range(SIDE_ROUNDS):
            rng.shuffle(order)
            for text in order:
                call, cores = calls[text]
                pin(cores)
                ms[text].append(median_call_ms(call, SIDE_BLOCK_S))
    base = statistics.median(ms[""])
    shapes: dict[str, list[str]] = {}
    for text, recipe in recipes.items():
        shapes.setdefault(shape_key(recipe), []).append(text)
    speed = {}
    for texts in shapes.values():
        pooled = base / statistics.median([m for text in texts for m in ms[text]])
        speed |= dict.fromkeys(texts, pooled)
    print(f"\nside by side: {len(speed)} deployments of {len(shapes)} shapes and the baseline ({base * 1e3:.1f} µs), {SIDE_ROUNDS} rounds of "
          f"{SIDE_BLOCK_S} s each, in {time.perf_counter() - t0:.0f} s; the fastest shapes (each deployment's own reading in brackets):")
    for texts in sorted(shapes.values(), key=lambda ts: -speed[ts[0]])[:6]:
        own = ", ".join(f"×{base / statistics.median(ms[t]):.2f}" for t in texts)
        print(f"  ×{speed[texts[0]]:6.2f}  {texts[0]}" + (f"  (and {len(texts) - 1} more of its shape)" if len(texts) > 1 else "") + f"  [{own}]")
    return {n: [(k, speed[text]) for k, text, _, _ in ds if text in speed] for n, ds in found.items()}


def found_by_side_by_side(timed: dict[str, list[tuple[int, float]]], kinds: dict[str, list[str]], seeds: int) -> None:
    """``found_by`` on the side-by-side timing: ``kinds`` names each kind's studies, by seed."""
    top = max((x for ds in timed.values() for _, x in ds), default=0.0)
    if not top:
        return
    first = lambda ds, bar: min((k for k, x in ds if x >= (1 - WITHIN) * bar), default=None)  # noqa: E731
    print(f"\nside by side: the fastest deployment within the limit any study measured ×{top:.2f}; trial at which each study first measured "
          f"one within {WITHIN:.0%} of it (and of its own fastest, so timed)")
    for kind, names in kinds.items():
        cells = []
        for n in names:
            own = max((x for _, x in timed.get(n, [])), default=0.0)
            cells.append(f"{first(timed.get(n, []), top) or '—':>4} ({first(timed.get(n, []), own) or '—'}, ×{own:.2f})")
        print(f"  {kind:<18} " + "  ".join(cells))
    for kind, names in kinds.items():
        if kind == "plain random":
            continue
        hits = sum((first(timed.get(n, []), top) or FOUND_BY + 1) <= FOUND_BY for n in names)
        own = sum((first(timed.get(n, []), max((x for _, x in timed.get(n, [])), default=0.0)) or FOUND_BY + 1) <= FOUND_BY for n in names)
        print(f"target, side by side: {kind} within {WITHIN:.0%} of the fastest by trial {FOUND_BY} in {hits} of {seeds} seeds — "
              f"{'met' if hits == seeds else 'NOT met'} (its own fastest by then: {own} of {seeds})")




def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the folder whose studies/autotune.db holds the studies")
    parser.add_argument("studies", nargs="+")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    found_by_side_by_side(side_by_side(args.work.resolve(), args.studies), {"autotune": args.studies}, len(args.studies))


if __name__ == "__main__":
    main()
