"""How repeatable is one latency measurement? The same artifact measured N times.

Each repetition does what a trial does: load the artifact afresh (new interpreter), take the
host lock, pin, time its cold start, then time it interleaved with the fp32 baseline, with the protocol a search trial
uses (``search``: the screening fraction of the full one) and with the full protocol the
front's re-measurement uses (``final``). Prints each repetition and the coefficient of
variation (sd / mean) of the candidate's p50, of the baseline's p50 and of the speed-up ratio,
side by side. Target: CV of p50 ≤ 2 % on a quiet machine, for both.

    python benchmarks/fidelity.py                    # the demo's int8 and fp32 artifacts, 10 times
    python benchmarks/fidelity.py --repeats 20 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from autotune.build.cache import ContentCache
from autotune.build.candidate import Builder
from autotune.inputs.data import file_key, load_npz
from autotune.inputs.demo import ensure_demo
from autotune.measure.host import HostLock, host_peak
from autotune.measure.stats import usable_cores
from autotune.measure.timing import Timer
from autotune.search.recipe import Recipe, Runtime
from autotune.study.settings import Settings


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=usable_cores())
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="autotune-fidelity-") as tmp:
        model_path, data_path = ensure_demo(Path(tmp) / "studies")
        data = load_npz(data_path)
        builder = Builder(model_path, file_key(model_path), data, data.key, ContentCache(Path(tmp) / "cache"), 0)
        baseline = Recipe(precision="fp32", runtime=Runtime(threads=usable_cores()))
        settings = Settings()
        timer_args = (builder.build(baseline).path, baseline.runtime, host_peak(settings.host_dir, settings.lock, _env_id()), HostLock())
        print(f"{args.repeats} repetitions per artifact, candidate at {args.threads} thread(s), baseline fp32 at {usable_cores()}")
        summary = []
        for precision, final in (("int8", False), ("int8", True), ("fp32", False), ("fp32", True)):
            recipe = Recipe(precision=precision, runtime=Runtime(threads=args.threads))
            path = builder.build(recipe).path
            label = f"{precision} {'final' if final else 'search'}"
            p50s, base, ratios, widths = [], [], [], []
            for i in range(args.repeats):
                timer = Timer(*timer_args)  # a fresh baseline interpreter too, as in a new run
                t = timer.time(path, recipe, data.x_val, final=final)
                c = t.comparison
                p50s.append(c.candidate.p50_ms)
                base.append(c.baseline.p50_ms)
                ratios.append(c.speedup)
                widths.append(c.relative_width)
                print(
                    f"  {label:<12} #{i + 1:<2} p50 {c.candidate.p50_ms:.4f} ms  baseline {c.baseline.p50_ms:.4f} ms  "
                    f"×{c.speedup:.3f} [{c.speedup_low:.3f}–{c.speedup_high:.3f}]  {c.candidate.calls} calls"
                    + ("  noisy" if t.noisy else ""),
                    flush=True,
                )
                time.sleep(0.5)
            summary.append((label, p50s, base, ratios, widths))

    print(f"\n{'artifact':<13} {'mean p50 ms':>11} {'CV p50':>8} {'CV baseline p50':>16} {'CV speed-up':>12} {'median CI width':>16}")
    for precision, p50s, base, ratios, widths in summary:
        print(
            f"{precision:<13} {statistics.mean(p50s):>11.4f} {cv(p50s):>8.2%} {cv(base):>16.2%} {cv(ratios):>12.2%} "
            f"{statistics.median(widths):>16.2%}"
        )
    worst = max(cv(p) for _, p, *_ in summary)
    print(f"\ntarget CV of p50 ≤ 2 %: worst {worst:.2%} — {'met' if worst <= 0.02 else 'NOT met'}")


def _env_id() -> str:
    from autotune.measure.stats import environment

    return str(environment()["id"])


if __name__ == "__main__":
    main()
