"""Wall time of `autotune run --budget N` on the demo, and where each trial's time went.

Runs in a fresh temporary working directory (the demo model is trained there first, and that
training is timed apart), then prints one table from that single run.

    python benchmarks/run_budget.py --budget 20
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
    parser.add_argument("--budget", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "from pathlib import Path; from autotune.demo import ensure_demo; ensure_demo(Path('studies'))"],
            cwd=work,
            check=True,
        )
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(
            ["autotune", "run", "--budget", str(args.budget)], cwd=work, check=True, stdout=subprocess.DEVNULL
        )
        run_s = time.perf_counter() - t0

        from autotune import store

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        st = store.open_storage(f"sqlite:///{work}/studies/autotune.db")
        trials = optuna.load_study(study_name="demo", storage=st).get_trials()
        rows = [t.user_attrs[store.TIMINGS] | {"wall": t.duration.total_seconds()} for t in trials if store.TIMINGS in t.user_attrs]
        hits = sum(len(t.user_attrs.get(store.CACHE, {}).get("hits", [])) for t in trials)
        misses = sum(len(t.user_attrs.get(store.CACHE, {}).get("misses", [])) for t in trials)

    print(f"autotune run --budget {args.budget} on the demo ({len(trials)} trials)")
    print(f"  demo training (once, cached)   {train_s:7.1f} s")
    print(f"  run, wall (incl. ~3 s TF import) {run_s:5.1f} s   target < 120 s for 20 trials")
    print("  per trial (s)          median     mean      max    total")
    for key, label in (("build_s", "build+convert"), ("accuracy_s", "accuracy"), ("latency_s", "latency"), ("wall", "whole trial")):
        vals = [r[key] for r in rows]
        print(f"    {label:<18} {statistics.median(vals):8.2f} {statistics.mean(vals):8.2f} {max(vals):8.2f} {sum(vals):8.1f}")
    print(f"  conversion cache: {hits} hits, {misses} misses")


if __name__ == "__main__":
    main()
