"""The capability probe: what this study's model allows, found once before the search.

Each technique is asked whether it can apply to a copy of the model (``Technique.probe``:
the channel surgery at half width, TF-MOT's pruning and quantisation wrappers; no training),
each precision is converted and run on a few validation samples through LiteRT, and the
TensorFlow engine's SavedModel is written and run, with and without XLA. Conversions go
through the study's builder, so the cache keeps them and the trials that need them later pay
nothing. What fails is recorded with its one-line reason (``capabilities.Capabilities``); the
search then leaves it out.

The findings are the same every time for the same model, so they are kept in the host's
directory (``probe-<key>.json``) and a later study of that model reuses them (``probe_or_kept``).
The key holds everything they depend on: the base model and data, the environment, the
baseline's threads, each technique class probed (its qualified name and a hash of its source,
so that a technique file that changes is probed again) and autotune's version. Only a probe
that finished is kept: one whose process died never gets here. Deleting the file probes again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import time
from pathlib import Path
from typing import Any

from autotune import __version__
from autotune._files import write_text_atomically
from autotune.build.candidate import content_key
from autotune.errors import first_line
from autotune.measure.artifact import open_executor
from autotune.search.capabilities import Capabilities
from autotune.search.recipe import PRECISIONS, Recipe, Runtime, Technique

PROBE_SAMPLES = 4


def _technique_problem(cls: type[Technique], model: Any) -> str | None:
    try:
        technique = cls()
    except TypeError:  # a technique of the user's own without defaults: its trials will tell
        return None
    try:
        return technique.probe(model)
    except Exception as e:  # noqa: BLE001 - whatever stops the probe stops the technique on this model; the reason is kept
        return f"{type(e).__name__}: {first_line(e)}"


def _runs(ws: Any, recipe: Recipe) -> str | None:
    """Why ``recipe`` (no training steps) cannot be converted, loaded or run, or None."""
    try:
        with ws.lock.shared():
            candidate = ws.builder.build(recipe)
            executor, _ = open_executor(candidate.path, recipe.runtime)
            executor.predict(ws.data.x_val[:PROBE_SAMPLES])
    except Exception as e:  # noqa: BLE001 - a converter or runtime refusing this model is a fact about it; the reason is kept
        return first_line(e)
    finally:
        ws.cache.take_counts()  # the probe's cache use is not a trial's
    return None


def probe(ws: Any, techniques: list[type[Technique]]) -> Capabilities:
    """Probe ``techniques``, every precision and both engines on the workspace's model."""
    started = time.perf_counter()
    seconds: dict[str, float] = {}

    def timed(name: str, check: Any, *args: Any) -> str | None:
        t0 = time.perf_counter()
        try:
            return check(*args)
        finally:
            seconds[name] = round(time.perf_counter() - t0, 2)

    found = {cls.name: timed(cls.name, _technique_problem, cls, ws.builder.base_copy()) for cls in techniques}
    threads = ws.baseline.runtime.threads
    precisions = {p: timed(p, _runs, ws, Recipe(p, Runtime("litert", threads=threads))) for p in PRECISIONS}
    engines: dict[str, str | None] = {"litert": precisions["fp32"]}
    engines["tensorflow"] = timed("tensorflow", _runs, ws, Recipe("fp32", Runtime("tensorflow", threads=threads)))
    engines["xla"] = engines["tensorflow"] or timed("xla", _runs, ws, Recipe("fp32", Runtime("tensorflow", threads=threads, xla=True)))
    return Capabilities(techniques=found, precisions=precisions, engines=engines,
                        seconds=round(time.perf_counter() - started, 2), timings=seconds)


def findings_key(ws: Any, techniques: list[type[Technique]]) -> str | None:
    """The key the findings on the workspace's model are kept under; None if a technique's
    source cannot be read (then nothing tells whether it changed, and it is probed every time)."""
    classes = []
    for cls in techniques:
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            return None
        classes.append((f"{cls.__module__}.{cls.__qualname__}", hashlib.sha256(source.encode()).hexdigest()))
    return content_key("probe", ws.builder.base_key, str(ws.env["id"]), ws.baseline.runtime.threads, PROBE_SAMPLES, classes, __version__)


def probe_or_kept(ws: Any, techniques: list[type[Technique]], host_dir: Path) -> Capabilities:
    """The findings an earlier probe of this model kept on this host (``kept`` set), or a
    probe's, then kept for the next study."""
    key = findings_key(ws, techniques)
    path = host_dir / f"probe-{key}.json"
    if key is not None:
        try:
            return dataclasses.replace(Capabilities.from_dict(json.loads(path.read_text())), kept=True)
        except (OSError, ValueError):  # none kept yet (or unreadable): probe
            pass
    found = probe(ws, techniques)
    if key is not None:
        host_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(found.to_dict(), indent=2))
    return found
