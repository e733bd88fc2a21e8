"""What each way of running a model costs, side by side in one process, for any model.

Rows: Keras `model.predict` on one sample (what most notebooks time), a direct `model(x)`
call, TFLite fp32, the seeds' full-int8 recipe (post-training int8 with a representative
set), and, given a study, autotune's fastest front member within the accuracy limit. Every row
is timed with the same protocol, pinned, under the host lock; accuracy is measured on the
whole validation set through the same way of running. Ratios are over `model.predict` and
over TFLite fp32.

    python benchmarks/recipes.py                                   # the demo model and data
    python benchmarks/recipes.py --model m.keras --data d.npz --study m --storage sqlite:///studies/autotune.db
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from autotune.build.cache import ContentCache
from autotune.build.candidate import Builder
from autotune.inputs.config import storage_url
from autotune.inputs.data import file_key, load_npz
from autotune.inputs.model import load_model
from autotune.measure.artifact import open_executor
from autotune.measure.host import HostLock, cores_for, pinning
from autotune.measure.stats import LatencyProtocol, accuracy, measure_latency, usable_cores
from autotune.search.recipe import Recipe, reference_recipes


def timed(call: Callable[[], object], threads: int, protocol: LatencyProtocol) -> float:
    call()
    with HostLock().exclusive(), pinning() as pin:
        pin(cores_for(threads))
        return measure_latency(call, protocol).p50_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--study", help="take autotune's fastest feasible front member from this study")
    parser.add_argument("--storage", help="the study's storage URL [default: as autotune]")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01)
    args = parser.parse_args()
    if (args.model is None) != (args.data is None):
        parser.error("--model and --data go together (neither: the demo)")

    protocol = LatencyProtocol()
    cores = usable_cores()
    study = _study(args) if args.study else None
    with tempfile.TemporaryDirectory(prefix="autotune-recipes-") as tmp:
        cache, seed = ContentCache(Path(tmp) / "cache"), 0
        if study is not None:
            # The study's own model, data, seed and cache: its pick is not retrained.
            from autotune.inputs.model import resolve_inputs
            from autotune.storage import store

            config = store.stored_config(study)
            args.model, args.data = resolve_inputs(config, Path.cwd() / "studies")
            cache, seed = ContentCache(Path.cwd() / "studies" / config.study / "cache"), config.seed
        elif args.model is None:
            from autotune.inputs.demo import ensure_demo

            args.model, args.data = ensure_demo(Path(tmp) / "studies")
        data = load_npz(args.data)
        model = load_model(args.model)
        one = data.x_val[:1]
        rows: list[tuple[str, float, float]] = []

        from autotune._keras import tf

        probs = model.predict(data.x_val, batch_size=64, verbose=0)
        keras_acc = float(np.mean(np.argmax(probs, axis=1) == data.y_val))
        rows.append(("Keras model.predict(x[:1])", timed(lambda: model.predict(one, verbose=0), cores, protocol), keras_acc))
        x1 = tf().constant(one)
        rows.append(("Keras model(x[:1])", timed(lambda: model(x1, training=False), cores, protocol), keras_acc))

        builder = Builder(args.model, file_key(args.model), data, data.key, cache, seed, model=model)
        recipes: list[tuple[str, Recipe]] = [
            ("TFLite fp32", reference_recipes(cores)["fp32-baseline"]),
            ("seeds' full int8", reference_recipes(cores)["seeds-int8"]),
        ]
        if study is not None:
            recipes.append(_autotune_pick(study, args.max_accuracy_drop))
        for label, recipe in recipes:
            path = builder.build(recipe).path
            assert path is not None
            executor, _ = open_executor(path, recipe.runtime)
            acc = accuracy(executor.predict, data.x_val, data.y_val)
            rows.append((label, timed(executor.timed_call(one), recipe.runtime.threads, protocol), acc))

    predict_ms, fp32_ms = rows[0][1], rows[2][1]
    print(f"model {args.model.name}, {len(data.y_val)} validation samples, {cores} cores; p50 of one call at batch 1")
    print(f"{'':<48} {'p50 ms':>9} {'accuracy':>9} {'× predict':>10} {'× TFLite fp32':>14}")
    for label, p50, acc in rows:
        print(f"{label:<48} {p50:>9.3f} {acc:>9.4f} {predict_ms / p50:>10.1f} {fp32_ms / p50:>14.2f}")


def _study(args: argparse.Namespace) -> Any:
    from autotune.storage import store

    return store.load_study(store.open_storage(storage_url(args.storage)), args.study)


def _autotune_pick(study: Any, limit: float) -> tuple[str, Recipe]:
    from autotune.results.front import fastest_feasible, front_rows
    from autotune.storage import store

    pick = fastest_feasible(front_rows(study), limit)
    if pick is None:
        raise SystemExit(f"study {study.study_name!r} has no front member within {limit}")
    recipe = Recipe.from_dict(study.trials[pick.trial].user_attrs[store.RECIPE])
    return f"autotune #{pick.trial}: {recipe.describe()}", recipe


if __name__ == "__main__":
    main()
