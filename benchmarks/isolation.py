"""What running trials in a child process costs: the child's start (spawn, TensorFlow's
import, the model and data loaded) and resident memory, and how that memory grows per
trial over a real search, against starting a fresh process for every trial.

    python benchmarks/isolation.py [--budget 20] [--starts 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autotune.inputs.config import make_config  # noqa: E402
from autotune.storage import store  # noqa: E402
from autotune.storage.store import PROCESS  # noqa: E402
from autotune.study.child import ChildEvaluator  # noqa: E402
from autotune.study.run import run  # noqa: E402
from autotune.study.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        settings = Settings(studies_dir=Path(tmp) / "studies")
        config = make_config(study="demo")
        ChildEvaluator(config, settings).close()  # trains the demo once, outside the timing
        starts, rss = [], []
        for _ in range(args.starts):
            t0 = time.perf_counter()
            child = ChildEvaluator(config, settings)
            starts.append(time.perf_counter() - t0)
            rss.append(child._rss_mb())
            child.close()
        t0 = time.perf_counter()
        run("demo", {"budget": args.budget}, f"sqlite:///{tmp}/studies/autotune.db", settings=settings)
        wall = time.perf_counter() - t0
        study = store.load_study(store.open_storage(f"sqlite:///{tmp}/studies/autotune.db"), "demo")
        series = [(t.number, t.user_attrs[PROCESS]["rss_mb"]) for t in study.get_trials() if "rss_mb" in t.user_attrs.get(PROCESS, {})]
    n, mb = np.array(series, dtype=float).T
    slope = float(np.polyfit(n, mb, 1)[0]) if len(n) > 2 else float("nan")
    start = float(np.median(starts))
    print(f"child start (spawn, import, load): median {start:.2f} s over {args.starts}; resident {np.median(rss):.0f} MB")
    print(f"search of {args.budget} trials (default space): {wall:.1f} s; child resident after each trial: "
          f"{mb[0]:.0f} MB at trial {int(n[0])} -> {mb[-1]:.0f} MB at trial {int(n[-1])}, growth {slope:.1f} MB per trial")
    print(f"a fresh process per trial would add ~{start * args.budget:.0f} s to this search "
          f"({start * args.budget / wall:.0%} of its wall time); one child adds {start:.1f} s once")
    print(f"at {slope:.1f} MB per trial the child stays under the default 6144 MB limit for "
          f"{(6144 - mb[-1]) / slope:.0f} more trials" if slope > 0 else "no growth measured")


if __name__ == "__main__":
    main()
