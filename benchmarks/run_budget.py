"""What `autotune run --budget N` on the demo costs and buys, from one run.

Runs in a fresh temporary working directory (the demo model is trained there first, and that
training is timed apart), then prints from that single run, side by side: the reference
recipes (fp32 TFLite, the seeds' full-int8 recipe) and the fastest Pareto-front member
within the accuracy limit, with its recipe and speed-ups; where each trial's time went; and
how much fine-tuning the content cache served.

    python benchmarks/run_budget.py                      # default space, 50 trials
    python benchmarks/run_budget.py --space quick --budget 20
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--space", default="default")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01)
    parser.add_argument("--keep", type=Path, help="run in this new directory and keep it (for `autotune front demo` there)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.keep:
            args.keep.mkdir(parents=True)
            work = args.keep.resolve()
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "from pathlib import Path; from autotune.inputs.demo import ensure_demo; ensure_demo(Path('studies'))"],
            cwd=work,
            check=True,
        )
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        command = ["autotune", "run", "--budget", str(args.budget), "--space", args.space]
        command += ["--max-accuracy-drop", str(args.max_accuracy_drop)]
        subprocess.run(command, cwd=work, check=True, stdout=subprocess.DEVNULL)
        run_s = time.perf_counter() - t0

        from autotune.results.front import fastest_feasible, front_rows
        from autotune.storage import store

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        st = store.open_storage(f"sqlite:///{work}/studies/autotune.db")
        study = optuna.load_study(study_name="demo", storage=st)
        trials = study.get_trials()
        rows = front_rows(study)

    refs = {r.reference: r for r in rows if r.reference}
    best = fastest_feasible([r for r in rows if r.on_front], args.max_accuracy_drop)
    seeds = refs["seeds-int8"]
    print(f"autotune run --budget {args.budget} --space {args.space} on the demo ({len(trials)} trials)")
    print(f"  run, wall (incl. ~3 s TF import)   {run_s:7.1f} s")
    print(f"  demo training (once, cached)       {train_s:7.1f} s")
    print()
    print(f"  {'':<26}{'p50 ms':>8}{'accuracy':>10}{'drop':>9}{'size KB':>9}{'× fp32':>8}{'× seeds int8':>14}  recipe")
    shown = [("fp32 TFLite (baseline)", refs["fp32-baseline"]), ("seeds' full int8", seeds)]
    if best is not None:
        shown.append((f"fastest within {args.max_accuracy_drop:g} drop", best))
    for label, r in shown:
        print(
            f"  {label:<26}{r.latency_p50_ms:8.3f}{r.accuracy:10.4f}{r.accuracy_drop:+9.4f}{r.size_bytes / 1024:9.0f}"
            f"{r.speedup:8.2f}{seeds.latency_p50_ms / r.latency_p50_ms:14.2f}  #{r.trial} {r.recipe}"
        )
    if best is None:
        print(f"  no front member is within an accuracy drop of {args.max_accuracy_drop}")
    print()

    timed = [t for t in trials if store.TIMINGS in t.user_attrs and t.state.name == "COMPLETE"]
    print("  per trial (s)        median     mean      max    total")
    for key in ("train_s", "convert_s", "accuracy_s", "latency_s", "wall"):
        vals = [t.duration.total_seconds() if key == "wall" else t.user_attrs[store.TIMINGS].get(key, 0.0) for t in timed]
        print(f"    {key.removesuffix('_s'):<16} {statistics.median(vals):8.2f} {statistics.mean(vals):8.2f} {max(vals):8.2f} {sum(vals):8.1f}")
    gated = sum(store.GATED in t.user_attrs for t in trials)
    failed = sum(t.state.name == "FAIL" for t in trials)
    print(f"  gated by accuracy before conversion: {gated}; failed: {failed}")

    cache = [t.user_attrs.get(store.CACHE, {}) for t in trials]
    converts = [label for c in cache for label in c.get("hits", []) if label.startswith("convert")]
    convert_misses = [label for c in cache for label in c.get("misses", []) if label.startswith("convert")]
    steps_hit = sum(1 for c in cache for label in c.get("hits", []) if not label.startswith("convert"))
    steps_missed = sum(1 for c in cache for label in c.get("misses", []) if not label.startswith("convert"))
    reused = sum(c.get("epochs_reused", 0) for c in cache)
    trained = sum(c.get("epochs_trained", 0) for c in cache)
    if steps_hit + steps_missed:
        print(
            f"  fine-tuning from the cache: {steps_hit} of {steps_hit + steps_missed} technique steps "
            f"({steps_hit / (steps_hit + steps_missed):.0%}), {reused} of {reused + trained} epochs "
            f"({reused / max(1, reused + trained):.0%})"
        )
    print(f"  conversions from the cache: {len(converts)} of {len(converts) + len(convert_misses)}")


if __name__ == "__main__":
    main()
