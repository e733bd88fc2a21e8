"""Does autotune's sampler find better trade-offs than random search in the same space?

On the demo, for several seeds, one study searched by autotune's sampler (multi-objective
TPE, as `autotune run` uses) and one by Optuna's RandomSampler, both through the same runner,
space, measurement and references. After every k trials, Optuna's hypervolume of the
feasible trials in (latency relative to the baseline, accuracy), with the reference point at
(the baseline's latency, the accuracy limit): the area of trade-offs strictly better than
shipping the baseline. Latency enters as 1 / the interleaved speed-up, which is comparable
across studies run minutes apart.

Every study shares one content cache (the training seed is the same), so a student trained
for one study is reused by the next: both samplers pay equal costs and the benchmark runs in
about half an hour on 2 cores. Target: autotune after 50 trials reaches at least the
hypervolume random search reaches after 100.

    python benchmarks/search_efficiency.py                      # 3 seeds, 50 vs 100 trials
    python benchmarks/search_efficiency.py --seeds 1 --autotune-trials 20 --random-trials 40
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from autotune.measure.stats import LatencyProtocol
from autotune.measure.timing import TimingPolicy
from autotune.results.plot import hypervolume_curve
from autotune.storage import store
from autotune.study.run import run
from autotune.study.settings import Settings

CHECKPOINTS = (10, 20, 30, 40, 50, 75, 100)


def search(name: str, sampler: str, seed: int, budget: int, work: Path, shared_cache: Path, protocol: LatencyProtocol) -> list[float]:
    (work / "studies" / name).mkdir(parents=True)
    (work / "studies" / name / "cache").symlink_to(shared_cache)

    def make(config, trials_so_far):
        s = 1000 * (seed + 1) + trials_so_far
        return optuna.samplers.RandomSampler(seed=s) if sampler == "random" else store.tpe_sampler(s)

    settings = Settings(studies_dir=work / "studies", timing=TimingPolicy(protocol=protocol), remeasure_front=False, sampler=make)
    url = f"sqlite:///{work}/studies/autotune.db"
    t0 = time.perf_counter()
    run(name, {"budget": budget, "space": "default"}, url, settings=settings)
    study = store.load_study(store.open_storage(url), name)
    curve = hypervolume_curve(study, store.stored_config(study).max_accuracy_drop)
    print(f"  {name:<14} {budget} trials in {time.perf_counter() - t0:6.1f} s   hypervolume {curve[-1]:.5f}", flush=True)
    return curve


def at(curve: list[float], k: int) -> float | None:
    return curve[k - 1] if len(curve) >= k else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--autotune-trials", type=int, default=50)
    parser.add_argument("--random-trials", type=int, default=100)
    parser.add_argument("--min-seconds", type=float, default=0.3, help="timing per side per trial (the runner's default is 1.0)")
    parser.add_argument("--png", type=Path, default=Path("benchmarks/search_efficiency.png"))
    args = parser.parse_args()
    protocol = LatencyProtocol(min_seconds=args.min_seconds, min_calls=100, rounds=10)
    png = args.png.resolve()

    curves: dict[str, list[list[float]]] = {"autotune": [], "random": []}
    with tempfile.TemporaryDirectory(prefix="autotune-search-eff-") as tmp:
        work = Path(tmp)
        shared = work / "shared-cache"
        shared.mkdir()
        os.chdir(work)
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            print(f"seed {seed}", flush=True)
            curves["autotune"].append(search(f"tpe-{seed}", "tpe", seed, args.autotune_trials, work, shared, protocol))
            curves["random"].append(search(f"random-{seed}", "random", seed, args.random_trials, work, shared, protocol))
        wall = time.perf_counter() - t0

    print(f"\nhypervolume after k trials (mean ± sd over {args.seeds} seeds; higher is better); {wall / 60:.1f} min in all")
    print(f"{'k':>5}  {'autotune (TPE)':>18}  {'random':>18}  {'ratio':>6}")
    for k in CHECKPOINTS:
        cells, means = [], []
        for name in ("autotune", "random"):
            vals = [v for c in curves[name] if (v := at(c, k)) is not None]
            if vals:
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):.5f} ± {sd:.5f}")
                means.append(statistics.mean(vals))
            else:
                cells.append("—")
        ratio = f"{means[0] / means[1]:.2f}" if len(means) == 2 and means[1] > 0 else ""
        if any(at(c, k) is not None for cs in curves.values() for c in cs):
            print(f"{k:>5}  {cells[0]:>18}  {cells[1]:>18}  {ratio:>6}")

    a = statistics.mean(c[-1] for c in curves["autotune"])
    r = statistics.mean(c[-1] for c in curves["random"])
    verdict = "met" if a >= r else "NOT met"
    print(
        f"\ntarget: autotune at {args.autotune_trials} trials ≥ random at {args.random_trials}: "
        f"{a:.5f} vs {r:.5f} (×{a / r if r else float('inf'):.2f}) — {verdict}"
    )
    per_seed = sum(ca[-1] >= cr[-1] for ca, cr in zip(curves["autotune"], curves["random"]))
    print(f"per seed: autotune@{args.autotune_trials} ≥ random@{args.random_trials} in {per_seed} of {args.seeds}")
    plot(curves, png, args)


def plot(curves: dict[str, list[list[float]]], png: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, color in (("autotune", "tab:blue"), ("random", "tab:gray")):
        n = min(len(c) for c in curves[name])
        arr = np.array([c[:n] for c in curves[name]])
        x = np.arange(1, n + 1)
        label = "autotune (multi-objective TPE)" if name == "autotune" else "random search"
        ax.plot(x, arr.mean(axis=0), color=color, label=label, lw=2)
        ax.fill_between(x, arr.min(axis=0), arr.max(axis=0), color=color, alpha=0.2, lw=0)
    ax.set_xlabel("trials")
    ax.set_ylabel("hypervolume (feasible, vs baseline)")
    ax.set_title(f"Demo, default space: {args.seeds} seeds (line: mean, band: min–max)")
    ax.axvline(args.autotune_trials, color="tab:blue", ls=":", lw=1)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    print(f"figure: {png}")


if __name__ == "__main__":
    main()
