"""Export the chosen trial: rebuild (or fetch from the cache) its artifact, write it with a
manifest, and prove the written file reproduces the accuracy recorded for the trial."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from autotune import __version__
from autotune._files import write_text_atomically
from autotune.build.cache import ContentCache
from autotune.build.candidate import Builder, copy_artifact
from autotune.errors import ConfigError, ExportMismatch, InvalidRecipe
from autotune.inputs import custom
from autotune.inputs.config import check_trusted
from autotune.inputs.data import file_key
from autotune.inputs.model import load_inputs
from autotune.measure.artifact import open_executor
from autotune.measure.stats import environment, quality
from autotune.results.choose import Limits, choose
from autotune.results.front import ranking_metric, timed_rows
from autotune.search.plugins import build_objective, load_space
from autotune.search.recipe import Recipe
from autotune.storage import store
from autotune.storage.record import Quality, TrialRecord, remeasurements

MANIFEST = "manifest.json"
MODEL_CARD = "MODEL_CARD.md"


@dataclass(frozen=True)
class ExportResult:
    trial: int
    recipe: str
    artifact: Path
    manifest: Path
    quality_name: str
    quality: float
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
    max_latency_ms: float | None = None,
    max_size_kb: float | None = None,
    prefer: str = "latency",
    closest: bool = False,
    force: bool = False,
    env: str | None = None,
    studies_dir: Path | None = None,
    trust_model_code: bool = False,
) -> ExportResult:
    studies_dir = studies_dir or Path.cwd() / "studies"
    storage = store.open_storage(storage_url)
    with store.database_errors(storage_url):
        study = store.load_study(storage, name)
        # The trust in the model's code is this command's, never the stored study's.
        config = store.stored_config(study).model_copy(update={"trust_model_code": trust_model_code})
        check_trusted(config)
        if trial_number is None:
            limits = Limits(
                config.max_accuracy_drop if max_accuracy_drop is None else max_accuracy_drop,
                max_latency_ms,
                config.max_size_kb if max_size_kb is None else max_size_kb,
                config.max_p99_ms,
                recorded=max_accuracy_drop is None,
            )
            choice = choose(timed_rows(study, env=env), limits, prefer=prefer, by=ranking_metric(study), closest=closest, study=name)
            trial_number, why, feasible = choice.row.trial, choice.why, choice.feasible
        else:
            why, feasible = f"trial {trial_number} chosen with --trial", None
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        trial = trials.get(trial_number)
        record = TrialRecord.from_trial(trial) if trial is not None else TrialRecord()
        if trial is None or trial.state != TrialState.COMPLETE or record.metrics is None:
            raise ConfigError(f"study {name!r} has no complete trial {trial_number}")
        if record.gated is not None:
            raise ConfigError(f"trial {trial_number} was stopped by the accuracy gate and never timed: {record.gated}")
        assert record.recipe is not None  # a timed trial's recipe is stored before it is built
        baseline = study.user_attrs.get(store.BASELINE, {})
        study_env = study.user_attrs.get(store.ENV, {})
        final = remeasurements(study).get(trial_number)

    _check_out_dir(out, force)
    recipe = _stored_recipe(record.recipe, config.space)
    objective = build_objective(config)
    model_path, model, data = load_inputs(config, studies_dir, objective.task)
    cache = ContentCache(studies_dir / config.study / "cache")
    builder = Builder(model_path, custom.model_key(file_key(model_path), config.custom_objects), data, data.key, cache, config.seed, model=model)
    candidate = builder.build(recipe)
    artifact = copy_artifact(candidate, out)

    executor, _ = open_executor(artifact, recipe.runtime)
    measured = quality(executor.predict, data.x_val, data.y_val, data.task)
    input_spec = executor.input_spec()  # read from the written file, not from the recipe
    recorded = record.metrics.values
    quality_name = Quality.for_task(data.task).name
    if abs(measured[quality_name] - recorded[quality_name]) > 1e-6:
        raise ExportMismatch(
            f"the exported {artifact.name} scores {quality_name} {measured[quality_name]:.4f} on the validation set, "
            f"but trial {trial_number} recorded {recorded[quality_name]:.4f}; the artifact was left in {out} for inspection"
        )

    manifest: dict[str, Any] = {
        "autotune_version": __version__,
        "study": name,
        "trial": trial_number,
        "why": why,
        "meets_limits": feasible,
        "recipe": recipe.describe(),
        "recipe_spec": recipe.to_dict(),
        "params": dict(trial.params),
        "reference": record.reference,
        "lineage": list(record.lineage or ()),
        "artifact": artifact.name,
        "input": input_spec,
        "task": data.task,
        "metrics": recorded,
        "final_metrics": final.values if final is not None else None,
        "measurement": record.measurement,
        f"verified_{quality_name}": measured[quality_name],
        "baseline": baseline,
        "source": {"model": str(model_path), "data": config.data or "demo (scikit-learn digits)", "val_data": config.val_data},
        "measured_on": record.env_id,
        "environment": study_env,
        "export_environment": environment(),
        "usage": _usage(recipe, input_spec),
    }
    manifest_path = out / MANIFEST
    write_text_atomically(manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
    write_text_atomically(out / MODEL_CARD, model_card(manifest))
    return ExportResult(trial_number, recipe.describe(), artifact, manifest_path, quality_name, measured[quality_name], why)


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def model_card(m: dict[str, Any]) -> str:
    """A short MODEL_CARD.md from the manifest: what was done, what was measured, where."""
    metrics = m["metrics"]
    shown = m["final_metrics"] if m["final_metrics"] and "failed" not in m["final_metrics"] else metrics
    base = m["baseline"]
    env = m["environment"]
    quality = Quality.for_task(m["task"])
    quality_name = quality.name
    verified = m[f"verified_{quality_name}"]
    steps = [s for s in m["lineage"] if s.get("step") not in ("base",)]
    lines = [
        f"# Model card: {m['study']}, trial {m['trial']}",
        "",
        f"Exported by autotune {m['autotune_version']}. Artifact: `{m['artifact']}`. Recipe: **{m['recipe']}**.",
        "",
        f"Chosen because: {m['why']}.",
        "",
        "## What was done to the model",
        "",
        f"Source model `{Path(m['source']['model']).name}`; data `{m['source']['data']}`"
        + (f" with validation data `{m['source']['val_data']}`." if m["source"].get("val_data") else "."),
        "",
    ]
    if steps:
        for i, step in enumerate(steps, 1):
            params = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in step.items()
                if k != "step" and not isinstance(v, (dict, list))
            )
            lines.append(f"{i}. **{step['step']}**: {params}")
    else:
        lines.append("Nothing but conversion: the weights are the source model's.")
    lines += ["", f"Run it: {m['usage']}.", "", "## Measured against the fp32 baseline", ""]
    q_label = "accuracy (validation)" if quality.higher_is_better else "MAE (validation)"
    ci = ""
    if shown.get("speedup_low") is not None and shown.get("speedup_high") is not None:
        ci = f" [{shown['speedup_low']:.2f}–{shown['speedup_high']:.2f}]"
    lines += [
        "| | this model | fp32 baseline |",
        "|---|---|---|",
        f"| p50 latency, one call at batch {metrics.get('batch_size', 1)} | {_fmt(shown.get('latency_p50_ms'), '.3f', ' ms')} | {_fmt(base.get('latency_p50_ms'), '.3f', ' ms')} |",
        f"| p99 latency | {_fmt(shown.get('latency_p99_ms'), '.3f', ' ms')} | {_fmt(base.get('latency_p99_ms'), '.3f', ' ms')} |",
        f"| speed-up (interleaved, ≥ 95 % interval) | ×{shown['speedup']:.2f}{ci} | ×1.00 |",
        f"| {q_label} | {verified:.4f} (re-measured on the exported file) | {_fmt(base.get(quality_name), '.4f')} |",
        f"| size on disk | {metrics['size_bytes'] / 1024:.0f} KiB | {_fmt(base.get('size_bytes') and base['size_bytes'] / 1024, '.0f', ' KiB')} |",
        f"| cold start (load and first call) | {_fmt(metrics.get('cold_start_ms'), '.1f', ' ms')} | {_fmt(base.get('cold_start_ms'), '.1f', ' ms')} |",
    ]
    if metrics.get("throughput_sps"):
        lines.append(f"| throughput | {shown.get('throughput_sps', metrics['throughput_sps']):,.0f} samples/s | — |")
    if m["meets_limits"] is False:
        lines += ["", "**This model does not meet the limits asked for**; it is the closest the study found."]
    runtimes = ", ".join(f"{k} {env[k]}" for k in ("tensorflow", "tf-keras", "ai-edge-litert", "tensorflow-model-optimization") if k in env)
    lines += [
        "",
        "## Where this was measured",
        "",
        f"{env.get('cpu', '?')}, {env.get('cores', '?')} usable cores, {env.get('system', '?')} {env.get('machine', '')}, "
        f"Python {env.get('python', '?')}; {runtimes}. Environment fingerprint `{env.get('id', '?')}`.",
        "",
        "Latency is a property of the machine: on other hardware, measure again (`autotune run` there).",
        *(
            ["", f"**Note**: this trial was timed on environment `{m['measured_on']}`, not the one above, where the study and its baseline were measured."]
            if m.get("measured_on") and m["measured_on"] != env.get("id")
            else []
        ),
        "",
    ]
    return "\n".join(lines)


def _shape_text(input_spec: dict[str, Any]) -> str:
    dims = ["batch" if i == 0 and d is None else "any" if d is None else str(d) for i, d in enumerate(input_spec["shape"])]
    return f"{input_spec['dtype']} [{', '.join(dims)}]"


def _batch_text(input_spec: dict[str, Any]) -> str:
    batch = input_spec["batch"]
    if batch is None:
        return "any batch size"
    return f"exactly batch {batch} (fixed when converted: feed {batch} sample{'s' if batch != 1 else ''} a call, pad the last call)"


def _usage(recipe: Recipe, input_spec: dict[str, Any]) -> str:
    shape, batch = _shape_text(input_spec), _batch_text(input_spec)
    if recipe.artifact_format == "saved_model":
        xla = " (its serve function is compiled with XLA)" if recipe.runtime.xla else ""
        return f"tf.saved_model.load('saved_model').serve(x) with x {shape}, {batch}{xla}"
    quantise = ": quantise with the input's (scale, zero_point)" if input_spec["dtype"] in ("int8", "uint8") else ""
    output = "int8 output: dequantise with its (scale, zero_point)" if recipe.precision == "int8" else "float32 output"
    reset = "; call reset_all_variables() before every invoke (the sequence op keeps its state otherwise)" if input_spec.get("reset_variables_each_call") else ""
    return (
        f"ai_edge_litert Interpreter(model_path='model.tflite', num_threads={recipe.runtime.threads}); "
        f"{batch}; input {shape}{quantise}; {output}{reset}"
    )


def _stored_recipe(data: dict[str, Any], space: str) -> Recipe:
    """The trial's recipe; a technique of the user's own is defined in the study's space file,
    which is imported (and so registers it) only when the recipe needs it."""
    try:
        return Recipe.from_dict(data)
    except InvalidRecipe:
        load_space(space)
        return Recipe.from_dict(data)
