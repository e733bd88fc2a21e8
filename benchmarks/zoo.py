"""The zoo of user model shapes (tests/zoo.py), each searched with `autotune run --budget N`.

For every shape, from one run: TFLite fp32 (the baseline), the seeds' full int8, and the
fastest front member within the accuracy limit, with its recipe and its speed-up over the
better of the two references (all p50s re-measured side by side at the end of the run);
what the capability probe left out; wall time per trial; and the probe's share of the run.

    python benchmarks/zoo.py                                   # every shape, 30 trials each
    python benchmarks/zoo.py --shapes lstm-rows-keras3 --budget 10 --keep /tmp/zoo-run
    python benchmarks/zoo.py --shapes nested-tf-keras --budget 40 --seed 0 1 2

With several seeds, each shape is trained once and searched once per seed, and the table has a
row per seed; below it, when each study first came within 2 % (the timing's spread) of its own
fastest feasible speed-up, and of the fastest any seed's study of that shape found; and the
same read on the studies' deployments timed again side by side (``side_by_side.py``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _build(shape: str, folder: Path) -> tuple[Path, Path, float]:
    t0 = time.perf_counter()
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from pathlib import Path; from tests import zoo; "
            f"m, d = zoo.SHAPES[{shape!r}](Path({str(folder)!r})); print(m); print(d)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    return Path(out[-2]), Path(out[-1]), time.perf_counter() - t0


def _one(shape: str, work: Path, budget: int, limit: float, seed: int, built: tuple[Path, Path, float]) -> dict:
    from autotune.results.front import fastest_feasible, front_rows
    from autotune.results.plot import found_at, speedup_curve
    from autotune.search.capabilities import Capabilities
    from autotune.storage import store

    model, data, train_s = built
    name = f"{shape}-{seed}" if seed else shape
    t0 = time.perf_counter()
    run = subprocess.run(
        ["autotune", "run", "--study", name, "--model", str(model), "--data", str(data), "--budget", str(budget),
         "--max-accuracy-drop", str(limit), "--seed", str(seed)],
        cwd=work, capture_output=True, text=True,
    )
    wall = time.perf_counter() - t0
    st = store.open_storage(f"sqlite:///{work}/studies/autotune.db")
    if not store.study_exists(st, name):
        return {"shape": shape, "error": (run.stdout + run.stderr).strip().splitlines()[-1:]}
    study = optuna.load_study(study_name=name, storage=st)
    trials = study.get_trials()
    rows = front_rows(study)
    refs = {r.reference: r for r in rows if r.reference}
    best = fastest_feasible([r for r in rows if r.on_front], limit)
    caps = Capabilities.from_dict(study.user_attrs.get(store.CAPABILITIES))
    speedups = speedup_curve(study)
    states = [t.state.name for t in trials]
    return {
        "shape": shape, "exit": run.returncode, "last_line": (run.stdout.strip().splitlines() or [""])[-1],
        "train_s": train_s, "wall_s": wall, "trials": len(trials), "evaluated": store.evaluated(trials),
        "failed": states.count("FAIL"), "gated": sum(store.GATED in t.user_attrs for t in trials),
        "fp32": refs.get("fp32-baseline"), "int8": refs.get("seeds-int8"), "best": best,
        "excluded": caps.excluded(), "probe_s": caps.seconds,
        # When the search first came within 2 % (the timing's spread) of its own fastest
        # feasible speed-up, in trials the budget counts.
        "found_at": found_at(speedups, speedups[-1], 0.02) if speedups and speedups[-1] else None, "counted": len(speedups),
        "seed": seed, "speedups": speedups,
    }


def main() -> None:
    from autotune.results.plot import found_at
    from tests import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01)
    parser.add_argument("--shapes", nargs="*", default=list(zoo.SHAPES))
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="the study seeds (autotune run --seed), one study each")
    parser.add_argument("--keep", type=Path, help="work in this new directory and keep it")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.keep:
            args.keep.mkdir(parents=True)
            work = args.keep.resolve()
        results, timed = [], {}
        for shape in args.shapes:
            built = _build(shape, work / "models" / shape)
            for seed in args.seed:
                r = _one(shape, work, args.budget, args.max_accuracy_drop, seed, built)
                results.append(r)
                print(f"{shape}, seed {seed}: done in {r.get('wall_s', 0):.0f} s", file=sys.stderr, flush=True)
            names = [f"{shape}-{seed}" if seed else shape for seed in args.seed]
            if len(args.seed) > 1 and all("error" not in r for r in results[-len(args.seed):]):
                # In a process of its own: it loads the model and TensorFlow.
                out = subprocess.run(
                    [sys.executable, str(ROOT / "benchmarks" / "side_by_side.py"), str(work), *names],
                    capture_output=True, text=True,
                )
                timed[shape] = out.stdout if out.returncode == 0 else f"side by side failed: {(out.stderr.strip().splitlines() or [''])[-1]}\n"

    seeds = " ".join(map(str, args.seed))
    print(f"autotune run --budget {args.budget} --seed {seeds} on each zoo shape, default space, accuracy limit {args.max_accuracy_drop:g}")
    print("| shape | fp32 p50 ms | seeds' int8 p50 ms (× fp32) | fastest within limit: p50 ms, accuracy drop | × better reference | recipe | left out by the probe | s / trial | probe share |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['shape']} | failed: {' '.join(r['error'])} | | | | | | | |")
            continue
        fp32, int8, best = r["fp32"], r["int8"], r["best"]
        ref = min((x for x in (fp32, int8) if x is not None), key=lambda x: x.latency_p50_ms)
        int8_cell = "—" if int8 is None else f"{int8.latency_p50_ms:.3f} (×{fp32.latency_p50_ms / int8.latency_p50_ms:.2f})"
        best_cell = "—" if best is None else f"{best.latency_p50_ms:.3f}, {best.quality_loss:+.4f}"
        gain = "—" if best is None else f"×{ref.latency_p50_ms / best.latency_p50_ms:.2f}"
        recipe = "—" if best is None else f"#{best.trial} {best.recipe}"
        left = "; ".join(f"{k}: {v[:70]}" for k, v in r["excluded"].items()) or "nothing"
        per = r["wall_s"] / max(1, r["trials"])
        shape = r["shape"] + (f", seed {r['seed']}" if len(args.seed) > 1 else "")
        print(f"| {shape} | {fp32.latency_p50_ms:.3f} | {int8_cell} | {best_cell} | {gain} | {recipe} | {left} | {per:.1f} | "
              f"{r['probe_s']:.1f} s ({r['probe_s'] / r['wall_s']:.0%}) |")
    print()
    top = {}
    for r in results:
        if "error" not in r and r["speedups"]:
            top[r["shape"]] = max(top.get(r["shape"], 0.0), r["speedups"][-1])
    for r in results:
        if "error" not in r:
            print(f"{r['shape']}, seed {r['seed']}: {r['evaluated']} evaluated of {r['trials']} trials, {r['failed']} failed, {r['gated']} gated; "
                  f"model trained in {r['train_s']:.0f} s; run {r['wall_s']:.0f} s, exit {r['exit']}: {r['last_line'][:100]}")
            found = "never (nothing feasible)" if r["found_at"] is None else f"at trial {r['found_at']} of {r['counted']}"
            print(f"  fastest feasible speed-up of the search (×{r['speedups'][-1] if r['speedups'] else 0:.2f}), within 2 %: first reached {found}")
            if len(args.seed) > 1 and top.get(r["shape"]):
                at = found_at(r["speedups"], top[r["shape"]], 0.02)
                print(f"  within 2 % of the fastest any seed found (×{top[r['shape']]:.2f}): "
                      + ("never" if at is None else f"at trial {at} of {r['counted']}"))
    for shape, text in timed.items():
        print(f"\n{shape}:" + text.rstrip())


if __name__ == "__main__":
    main()
