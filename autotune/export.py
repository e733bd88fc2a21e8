"""Export the chosen trial: rebuild (or fetch from the cache) its artifact, write it with a
manifest, and prove the written file reproduces the accuracy recorded for the trial."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from autotune import __version__, store
from autotune.artifact import open_executor
from autotune.cache import ContentCache
from autotune.candidate import Builder, copy_artifact
from autotune.data import file_key, load_npz
from autotune.errors import ConfigError, ExportMismatch
from autotune.front import fastest_feasible, front_rows, ranking_metric
from autotune.measure import accuracy, environment
from autotune.recipe import Recipe
from autotune.runner import Settings, resolve_inputs

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportResult:
    trial: int
    recipe: str
    artifact: Path
    manifest: Path
    accuracy: float
    why: str


def _check_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {out} is not empty; choose an empty directory or pass --force")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out} cannot be created: {e.strerror}") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out} is not writable")


def export(
    storage_url: str,
    name: str,
    out: Path,
    *,
    trial_number: int | None = None,
    max_accuracy_drop: float | None = None,
    force: bool = False,
    env: str | None = None,
    settings: Settings | None = None,
) -> ExportResult:
    settings = settings or Settings()
    storage = store.open_storage(storage_url)
    with store.database_errors(storage_url):
        study = store.load_study(storage, name)
        config = store.stored_config(study)
        limit = config.max_accuracy_drop if max_accuracy_drop is None else max_accuracy_drop
        if trial_number is None:
            by = ranking_metric(study)
            choice = fastest_feasible(front_rows(study, env=env), limit, by)
            if choice is None:
                raise ConfigError(
                    f"no front member of {name!r} is within an accuracy drop of {limit}; "
                    "raise --max-accuracy-drop or pick one with --trial N (see `autotune front`)"
                )
            trial_number = choice.trial
            best = "highest-throughput" if by == "throughput_sps" else "fastest"
            why = f"{best} Pareto-front member within an accuracy drop of {limit}"
        else:
            why = f"trial {trial_number} chosen with --trial"
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        trial = trials.get(trial_number)
        if trial is None or trial.state != TrialState.COMPLETE or store.METRICS not in trial.user_attrs:
            raise ConfigError(f"study {name!r} has no complete trial {trial_number}")
        if store.GATED in trial.user_attrs:
            raise ConfigError(f"trial {trial_number} was stopped by the accuracy gate and never timed: {trial.user_attrs[store.GATED]}")
        baseline = study.user_attrs.get(store.BASELINE, {})
        study_env = study.user_attrs.get(store.ENV, {})

    _check_out_dir(out, force)
    recipe = Recipe.from_dict(trial.user_attrs[store.RECIPE])
    model_path, data_path = resolve_inputs(config, settings.studies_dir)
    data = load_npz(data_path)
    cache = ContentCache(settings.studies_dir / config.study / "cache")
    builder = Builder(model_path, file_key(model_path), data, file_key(data_path), cache, config.seed)
    candidate = builder.build(recipe)
    artifact = copy_artifact(candidate, out)

    executor, _ = open_executor(artifact, recipe.runtime)
    measured = accuracy(executor.predict, data.x_val, data.y_val)
    recorded = trial.user_attrs[store.METRICS]["accuracy"]
    if abs(measured - recorded) > 1e-9:
        raise ExportMismatch(
            f"the exported {artifact.name} scores accuracy {measured:.4f} on the validation set, "
            f"but trial {trial_number} recorded {recorded:.4f}; the artifact was left in {out} for inspection"
        )

    manifest: dict[str, Any] = {
        "autotune_version": __version__,
        "study": name,
        "trial": trial_number,
        "why": why,
        "recipe": recipe.describe(),
        "recipe_spec": recipe.to_dict(),
        "params": dict(trial.params),
        "reference": trial.user_attrs.get(store.REFERENCE),
        "lineage": trial.user_attrs.get(store.LINEAGE, []),
        "artifact": artifact.name,
        "metrics": trial.user_attrs[store.METRICS],
        "final_metrics": store.finals(study).get(trial_number),
        "measurement": trial.user_attrs.get(store.MEASUREMENT),
        "verified_accuracy": measured,
        "baseline": baseline,
        "environment": study_env,
        "export_environment": environment(),
        "usage": _usage(recipe),
    }
    manifest_path = out / MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return ExportResult(trial_number, recipe.describe(), artifact, manifest_path, measured, why)


def _usage(recipe: Recipe) -> str:
    if recipe.artifact_format == "saved_model":
        xla = " (its serve function is compiled with XLA)" if recipe.runtime.xla else ""
        return f"tf.saved_model.load('saved_model').serve(x) with x float32 [batch, ...]{xla}"
    io = (
        "int8 input and output: quantise with the input's (scale, zero_point), dequantise the output"
        if recipe.precision == "int8"
        else "float32 input and output"
    )
    return f"ai_edge_litert Interpreter(model_path='model.tflite', num_threads={recipe.runtime.threads}); {io}"
