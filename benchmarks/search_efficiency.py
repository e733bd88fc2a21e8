"""Does autotune's search find better trade-offs than random search in the same space, and
which sampler should it use?

On the demo, for several seeds: autotune as `autotune run` searches (every trained model
deployed its other ways, no repeats, early stops after the first epoch) with each sampler of
``--samplers`` (multi-objective TPE, as `autotune run` uses; NSGA-II; random; the GP sampler
if PyTorch is installed), and plain random search (Optuna's RandomSampler, one trial one
point of the space, nothing queued), all through the same runner, space, measurement and
references. After every k trials the budget counts, Optuna-style hypervolume of the feasible
trials in (latency relative to the baseline, accuracy), with the reference point at (the
baseline's latency, the accuracy limit): the area of trade-offs strictly better than
shipping the baseline. Latency enters as 1 / the interleaved speed-up, which is comparable
across studies run minutes apart.

Every study shares one content cache (the training seed is the same), so a student trained
for one study is reused by the next: all pay equal costs. Targets: autotune after 50 trials
reaches at least the hypervolume random search reaches after 200, on the mean and on every
seed; the sampler kept is the best at 50; and each autotune study has found the fastest
deployment within the accuracy limit by its 30th trial: within 2 % (the timing's spread) of
the fastest speed-up any study of the run found.

That last target is read twice. By the search's own timings (each a short screening), the
fastest any study found is the highest of a few hundred noisy readings, and a study of 200
trials takes four times the draws of one of 50. So every study's front is also re-measured at
the end, as `autotune run` does (its full protocol, interleaved with the baseline), and the
target is read again on those figures: the trial at which a study first measured a
deployment whose re-measured speed-up is within 2 % of the best re-measured one of the run.

Both readings compare timings taken minutes apart, and at the demo's 25-60 µs calls the same
artifact reads up to ×1.5 apart from one timing to the next. So the target is read a third
time, side by side (``side_by_side.py``): every candidate for the fastest of every study timed
again in one process, in shuffled rounds, pooled by shape.

    python benchmarks/search_efficiency.py                      # 3 seeds, 50 vs 200 trials
    python benchmarks/search_efficiency.py --seeds 1 --autotune-trials 20 --random-trials 40 --samplers tpe
    python benchmarks/search_efficiency.py --side-by-side KEPT_DIR   # only the side-by-side reading of a kept run
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from autotune.measure.timing import TimingPolicy
from autotune.results.front import front_rows
from autotune.results.pareto import hypervolume
from autotune.results.plot import found_at, hypervolume_curve, in_run_order, speedup_curve
from autotune.storage.record import TrialRecord
from autotune.storage import store
from autotune.study.run import run
from autotune.study.settings import Settings
from side_by_side import found_by_side_by_side, side_by_side

CHECKPOINTS = (10, 20, 30, 40, 50, 75, 100, 150, 200)
FOUND_BY = 30
WITHIN = 0.02
SAMPLERS = ("tpe", "nsga2", "random", "gp")


def _sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    if kind == "tpe":
        return store.tpe_sampler(seed)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=10)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10)
    return optuna.samplers.RandomSampler(seed=seed)


def search(name: str, sampler: str, seed: int, budget: int, work: Path, shared_cache: Path, policy: TimingPolicy, two_level: bool) -> tuple[list[float], list[float], list[tuple[int, float]]]:
    (work / "studies" / name).mkdir(parents=True)
    (work / "studies" / name / "cache").symlink_to(shared_cache)

    def make(config, trials_so_far):
        return _sampler(sampler, 1000 * (seed + 1) + trials_so_far)

    settings = Settings(
        studies_dir=work / "studies", timing=policy, remeasure_front=True, sampler=make, deploy_variants=two_level
    )
    url = f"sqlite:///{work}/studies/autotune.db"
    t0 = time.perf_counter()
    run(name, {"budget": budget, "space": "default"}, url, settings=settings)
    curve, speedups, final = read_study(store.load_study(store.open_storage(url), name))
    best = max((x for _, x in final), default=0.0)
    print(f"  {name:<16} {budget} trials in {time.perf_counter() - t0:6.1f} s   hypervolume {curve[-1]:.5f}   fastest feasible ×{speedups[-1]:.2f}"
          f" (re-measured ×{best:.2f})", flush=True)
    return curve, speedups, final


def read_study(study: optuna.Study) -> tuple[list[float], list[float], list[tuple[int, float]]]:
    """A study's hypervolume and fastest-speed-up curves over the trials its budget counts, and
    its front re-measured (``remeasured_front``)."""
    curve = hypervolume_curve(study, store.stored_config(study).max_accuracy_drop, budget_trials=True)
    return curve, speedup_curve(study), remeasured_front(study)


def read_kept(work: Path) -> None:
    """A kept run's figures read again from its studies, nothing searched or timed: the
    per-seed hypervolumes, the found-by targets on the search's timings and on the end-of-run
    re-measurement, and the re-measured hypervolumes."""
    storage = store.open_storage(f"sqlite:///{work}/studies/autotune.db")
    names = sorted(s.study_name for s in storage.get_all_studies() if not s.study_name.startswith("_"))
    curves: dict[str, list[list[float]]] = {}
    fastest: dict[str, list[list[float]]] = {}
    finals: dict[str, list[list[tuple[int, float]]]] = {}
    for n in names:
        kind = n.rpartition("-")[0]
        kind = "plain random" if kind == "plain-random" else kind
        curve, speedups, final = read_study(store.load_study(storage, n))
        curves.setdefault(kind, []).append(curve)
        fastest.setdefault(kind, []).append(speedups)
        finals.setdefault(kind, []).append(final)
    samplers = [k for k in curves if k != "plain random"]
    for kind, cs in curves.items():
        print(f"  {kind:<16} " + "  ".join(f"{c[-1]:.5f}" for c in cs) + f"   mean {statistics.mean(c[-1] for c in cs):.5f}")
    if not samplers:
        return
    label = "tpe" if "tpe" in samplers else samplers[0]
    pairs = [(n, f"plain-random-{n.rpartition('-')[2]}") for n in names if n.startswith(f"{label}-")]
    pairs = [(a, b) for a, b in pairs if b in names]
    if pairs:
        print_remeasured(remeasured_pairs(work, pairs))
    fastest.setdefault("plain random", [])
    finals.setdefault("plain random", [])
    seeds = len(curves[label])
    found_by(fastest, samplers, seeds)
    found_by_remeasured(finals, samplers, seeds)


def remeasured_front(study: optuna.Study) -> list[tuple[int, float]]:
    """The study's front members within the accuracy limit, re-measured at the end of the run:
    (the trial's place in the budget's count, as ``speedup_curve`` counts, its re-measured
    speed-up)."""
    place, k = {}, 0
    for t in in_run_order(study.get_trials(deepcopy=False)):
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) and TrialRecord.from_trial(t).repeat_of is None:
            k += 1
            place[t.number] = k
    limit = store.stored_config(study).max_accuracy_drop
    rows = front_rows(study, with_references=False)
    return [(place[r.trial], r.speedup) for r in rows if r.remeasured and r.feasible and r.quality_loss <= limit + 1e-12 and r.trial in place]


def remeasured_hypervolume(study: optuna.Study) -> tuple[float, int, int]:
    """The hypervolume of the study's front within the limit (references included) with each
    member's figures as the end of the run re-measured them (full protocol, interleaved with
    the baseline), and how many members there are and how many were re-measured.

    The search's hypervolume takes each point at its one screening timing, so it grows with
    the number of timings of the same shape: the best of many noisy readings is higher than
    the best of few, and a study of 200 trials takes four times the readings of one of 50.
    Re-measured, every member of either study is read once, the same way."""
    limit = store.stored_config(study).max_accuracy_drop
    rows = [r for r in front_rows(study) if (r.on_front or r.remeasured) and r.feasible and r.speedup]
    points = [(1.0 / r.speedup, r.quality_loss) for r in rows]
    return hypervolume(points, (1.0, limit)), len(rows), sum(r.remeasured for r in rows)


Remeasured = list[tuple[str, tuple[float, int, int], str, tuple[float, int, int]]]


def remeasured_pairs(work: Path, pairs: list[tuple[str, str]]) -> Remeasured:
    """Each seed's autotune and plain random study (by name), by ``remeasured_hypervolume``."""
    storage = store.open_storage(f"sqlite:///{work}/studies/autotune.db")
    hv = lambda name: remeasured_hypervolume(store.load_study(storage, name))  # noqa: E731
    return [(mine, hv(mine), theirs, hv(theirs)) for mine, theirs in pairs]


def print_remeasured(found: Remeasured) -> None:
    print("\nhypervolume of each study's front as re-measured at the end of its run (members, of them re-measured)")
    met = 0
    for mine, (a, na, ra), theirs, (b, nb, rb) in found:
        met += a >= b
        print(f"  {mine:<10} {a:.5f} ({na}, {ra})   {theirs:<16} {b:.5f} ({nb}, {rb})   ×{a / b if b else float('inf'):.3f}")
    print(f"target, re-measured: autotune ≥ plain random per seed in {met} of {len(found)} — {'met' if met == len(found) else 'NOT met'}")


def at(curve: list[float], k: int) -> float | None:
    return curve[k - 1] if len(curve) >= k else None


def _row(label: str, curves: list[list[float]]) -> str:
    cells = []
    for k in CHECKPOINTS:
        vals = [v for c in curves if (v := at(c, k)) is not None]
        cells.append(f"{statistics.mean(vals):.5f}" if len(vals) == len(curves) else "—")
    return f"{label:<28}" + "".join(f"{c:>9}" for c in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--autotune-trials", type=int, default=50)
    parser.add_argument("--random-trials", type=int, default=200)
    parser.add_argument("--samplers", default="tpe,nsga2,random,gp", help=f"samplers autotune is run with, of {', '.join(SAMPLERS)}")
    parser.add_argument("--screening", type=float, default=TimingPolicy().screening, help="fraction of the full timing protocol a search trial takes (autotune run's default)")
    parser.add_argument("--png", type=Path, default=Path("benchmarks/search_efficiency.png"))
    parser.add_argument("--cache", type=Path, help="a content cache to share with other runs (a kept run's shared-cache folder): models trained before are not trained again")
    parser.add_argument("--keep", type=Path, help="an empty folder to run in and keep (the studies' SQLite file, for a look at their trials), not a temporary one")
    parser.add_argument("--side-by-side", type=Path, metavar="KEPT_DIR", help="search nothing: time a kept run's deployments side by side and read the found-by target on them")
    parser.add_argument("--read", type=Path, metavar="KEPT_DIR", help="search nothing: read a kept run's figures again from its studies")
    parser.add_argument("--remeasured", type=Path, metavar="KEPT_DIR", help="search nothing: a kept run's hypervolumes on its fronts as re-measured at the end")
    args = parser.parse_args()
    if args.read:
        read_kept(args.read.resolve())
        return
    if args.remeasured:
        work = args.remeasured.resolve()
        names = {s.study_name for s in store.open_storage(f"sqlite:///{work}/studies/autotune.db").get_all_studies()}
        pairs = sorted((n, f"plain-random-{n.rpartition('-')[2]}") for n in names if n.startswith("tpe-") and f"plain-random-{n.rpartition('-')[2]}" in names)
        print_remeasured(remeasured_pairs(work, pairs))
        return
    if args.side_by_side:
        work = args.side_by_side.resolve()
        names = sorted(store.open_storage(f"sqlite:///{work}/studies/autotune.db").get_all_studies(), key=lambda s: s.study_name)
        names = [s.study_name for s in names if not s.study_name.startswith("_")]
        kinds: dict[str, list[str]] = {}
        for n in names:
            kind, _, seed = n.rpartition("-")
            kinds.setdefault("plain random" if kind == "plain-random" else f"autotune, {kind}", []).append(n)
        found_by_side_by_side(side_by_side(work, names), kinds, max(len(v) for v in kinds.values()))
        return
    samplers = [k for k in args.samplers.split(",") if k]
    if "gp" in samplers:
        try:
            import torch  # noqa: F401  (the GP sampler's dependency, not autotune's)
        except ImportError:
            print("gp: left out, Optuna's GPSampler needs PyTorch, which is not installed")
            samplers.remove("gp")
    policy = TimingPolicy(screening=args.screening)
    png = args.png.resolve()

    curves: dict[str, list[list[float]]] = {k: [] for k in samplers} | {"plain random": []}
    walls: dict[str, list[float]] = {k: [] for k in curves}
    fastest: dict[str, list[list[float]]] = {k: [] for k in curves}
    finals: dict[str, list[list[tuple[int, float]]]] = {k: [] for k in curves}
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        if any(args.keep.iterdir()):
            parser.error(f"--keep {args.keep}: not empty")
    with contextlib.nullcontext(str(args.keep.resolve())) if args.keep else tempfile.TemporaryDirectory(prefix="autotune-search-eff-") as tmp:
        work = Path(tmp)
        shared = args.cache.resolve() if args.cache else work / "shared-cache"
        shared.mkdir(exist_ok=bool(args.cache))
        os.chdir(work)
        t0 = time.perf_counter()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            print(f"seed {seed}", flush=True)
            for kind in samplers:
                t1 = time.perf_counter()
                hv, sp, fin = search(f"{kind}-{seed}", kind, seed, args.autotune_trials, work, shared, policy, True)
                curves[kind].append(hv)
                fastest[kind].append(sp)
                finals[kind].append(fin)
                walls[kind].append(time.perf_counter() - t1)
            if args.random_trials:
                t1 = time.perf_counter()
                hv, sp, fin = search(f"plain-random-{seed}", "random", seed, args.random_trials, work, shared, policy, False)
                curves["plain random"].append(hv)
                fastest["plain random"].append(sp)
                finals["plain random"].append(fin)
                walls["plain random"].append(time.perf_counter() - t1)
        wall = time.perf_counter() - t0
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        kinds = {f"autotune, {k}": [f"{k}-{seed}" for seed in seeds] for k in samplers}
        if args.random_trials:
            kinds["plain random"] = [f"plain-random-{seed}" for seed in seeds]
        timed = side_by_side(work, [n for names in kinds.values() for n in names])
        label = "tpe" if "tpe" in samplers else (samplers[0] if samplers else "")
        remeasured = remeasured_pairs(work, [(f"{label}-{seed}", f"plain-random-{seed}") for seed in seeds]) if args.random_trials and samplers else []

    print(f"\nhypervolume after k trials, mean over {args.seeds} seeds (higher is better); {wall / 60:.1f} min in all")
    print(f"{'k':<28}" + "".join(f"{k:>9}" for k in CHECKPOINTS))
    for kind in samplers:
        print(_row(f"autotune, {kind}", curves[kind]))
    if not args.random_trials:
        for kind in samplers:
            print(f"  autotune, {kind:<8} " + "  ".join(f"{c[-1]:.5f}" for c in curves[kind]) + f"   {statistics.mean(walls[kind]):6.1f} s")
        # The found-by targets, against the fastest these studies found.
        found_by(fastest, samplers, args.seeds)
        found_by_remeasured(finals, samplers, args.seeds)
        found_by_side_by_side(timed, kinds, args.seeds)
        return
    print(_row("plain random search", curves["plain random"]))
    if not samplers:
        print("  plain random @" + f"{args.random_trials:<4} " + "  ".join(f"{c[-1]:.5f}" for c in curves["plain random"]))
        found_by(fastest, samplers, args.seeds)
        found_by_remeasured(finals, samplers, args.seeds)
        found_by_side_by_side(timed, kinds, args.seeds)
        return
    print(f"\nat {args.autotune_trials} trials, per seed (and wall per study, shared cache)")
    for kind in samplers:
        per = "  ".join(f"{c[-1]:.5f}" for c in curves[kind])
        print(f"  autotune, {kind:<8} {per}   mean {statistics.mean(c[-1] for c in curves[kind]):.5f}   {statistics.mean(walls[kind]):6.1f} s")
    per = "  ".join(f"{c[-1]:.5f}" for c in curves["plain random"])
    print(f"  plain random @{args.random_trials:<4} {per}   mean {statistics.mean(c[-1] for c in curves['plain random']):.5f}   {statistics.mean(walls['plain random']):6.1f} s")

    best = max(samplers, key=lambda k: statistics.mean(c[-1] for c in curves[k]))
    a = [c[-1] for c in curves["tpe" if "tpe" in samplers else best]]
    r = [c[-1] for c in curves["plain random"]]
    mean_ok = statistics.mean(a) >= statistics.mean(r)
    every = sum(x >= y for x, y in zip(a, r))
    label = "tpe" if "tpe" in samplers else best
    print(
        f"\ntarget: autotune ({label}) at {args.autotune_trials} ≥ plain random at {args.random_trials}: mean "
        f"{statistics.mean(a):.5f} vs {statistics.mean(r):.5f} (×{statistics.mean(a) / statistics.mean(r) if statistics.mean(r) else float('inf'):.2f}) "
        f"— {'met' if mean_ok else 'NOT met'}; per seed {every} of {args.seeds} — {'met' if every == args.seeds else 'NOT met'}"
    )
    print(f"best sampler at {args.autotune_trials} trials: {best}")
    print_remeasured(remeasured)
    found_by(fastest, samplers, args.seeds)
    found_by_remeasured(finals, samplers, args.seeds)
    found_by_side_by_side(timed, kinds, args.seeds)
    plot(curves, png, args)


def found_by(fastest: dict[str, list[list[float]]], samplers: list[str], seeds: int) -> None:
    """When each study first came within WITHIN of the fastest feasible speed-up of the run."""
    top = max(c[-1] for cs in fastest.values() for c in cs)
    print(f"\nfastest feasible speed-up any study found: ×{top:.2f}; trial (budget count) at which each study first came within {WITHIN:.0%} of it")
    for kind in [*samplers, "plain random"]:
        cells = []
        for c in fastest[kind]:
            k = found_at(c, top, WITHIN)
            cells.append(f"{k if k else '—':>4} (×{c[-1]:.2f})")
        print(f"  {('autotune, ' + kind) if kind != 'plain random' else 'plain random':<18} " + "  ".join(cells))
    for kind in samplers:
        hits = sum((found_at(c, top, WITHIN) or FOUND_BY + 1) <= FOUND_BY for c in fastest[kind])
        print(f"target: autotune ({kind}) within {WITHIN:.0%} of the fastest by trial {FOUND_BY} in {hits} of {seeds} seeds — {'met' if hits == seeds else 'NOT met'}")
        # The weaker reading: each study's own fastest (what its export would pick) reached by then.
        own = [found_at(c, c[-1], WITHIN) for c in fastest[kind]]
        print(f"  each study's own fastest feasible first reached (within {WITHIN:.0%}) at trial " + ", ".join(str(k) for k in own)
              + f": by trial {FOUND_BY} in {sum((k or FOUND_BY + 1) <= FOUND_BY for k in own)} of {seeds}")


def found_by_remeasured(finals: dict[str, list[list[tuple[int, float]]]], samplers: list[str], seeds: int) -> None:
    """``found_by`` on the end-of-run re-measurement of every study's front."""
    top = max((x for fs in finals.values() for f in fs for _, x in f), default=0.0)
    if not top:
        return
    print(f"\nre-measured at the end: the fastest front member within the limit of any study ×{top:.2f}; trial at which each study "
          f"first measured a deployment whose re-measured speed-up is within {WITHIN:.0%} of it (and its own best re-measured)")
    first = lambda f: min((k for k, x in f if x >= (1 - WITHIN) * top), default=None)  # noqa: E731
    for kind in [*samplers, "plain random"]:
        cells = [f"{first(f) or '—':>4} (×{max((x for _, x in f), default=0.0):.2f})" for f in finals[kind]]
        print(f"  {('autotune, ' + kind) if kind != 'plain random' else 'plain random':<18} " + "  ".join(cells))
    for kind in samplers:
        hits = sum((first(f) or FOUND_BY + 1) <= FOUND_BY for f in finals[kind])
        print(f"target, re-measured: autotune ({kind}) within {WITHIN:.0%} of the fastest by trial {FOUND_BY} in {hits} of {seeds} seeds — {'met' if hits == seeds else 'NOT met'}")


def plot(curves: dict[str, list[list[float]]], png: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    colors = {"tpe": "tab:blue", "nsga2": "tab:orange", "random": "tab:green", "gp": "tab:purple", "plain random": "tab:gray"}
    for name, cs in curves.items():
        n = min(len(c) for c in cs)
        arr = np.array([c[:n] for c in cs])
        x = np.arange(1, n + 1)
        label = "plain random search" if name == "plain random" else f"autotune, {name}"
        ax.plot(x, arr.mean(axis=0), color=colors[name], label=label, lw=2)
        ax.fill_between(x, arr.min(axis=0), arr.max(axis=0), color=colors[name], alpha=0.15, lw=0)
    ax.set_xlabel("trials")
    ax.set_ylabel("hypervolume (feasible, vs baseline)")
    ax.set_title(f"Demo, default space: {args.seeds} seeds (line: mean, band: min–max)", fontsize=10)
    ax.axvline(args.autotune_trials, color="tab:blue", ls=":", lw=1)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    print(f"figure: {png}")


if __name__ == "__main__":
    main()
