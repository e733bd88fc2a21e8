"""The command line: thin commands that assemble a configuration and call the library.

Space and objective files are Python that you choose to run: autotune imports them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from autotune import report
from autotune.cli_options import (
    PLUGIN_NOTE,
    AllowOpt,
    EnvOpt,
    Format,
    OneLineErrors,
    Prefer,
    StorageOpt,
    TrustOpt,
    as_data,
    as_path,
    as_plugin,
    guarded,
)
from autotune import cli_service
from autotune.cli_service import DEFAULT_DATA_DIR, DataDirOpt, ServerOpt
from autotune.errors import ConfigError
from autotune.inputs.config import check_study_name, storage_url, study_name_for


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Find the fastest deployable variant of a Keras model on this machine, by measurement.",
)
cli_service.register(app)

@app.command()
@guarded
def run(
    study_file: Annotated[
        Path | None, typer.Argument(help="A study file (studies/NAME.toml); flags given here override its values")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Study name [default: the study file's, demo, or the model file's name]")] = None,
    budget: Annotated[int | None, typer.Option(help="Total evaluated trials the study should hold [default: 50]")] = None,
    model: Annotated[str | None, typer.Option(help="tf_keras or Keras 3 .keras, .h5, or a Keras SavedModel directory [default: the demo]")] = None,
    data: Annotated[
        str | None,
        typer.Option(help=".npz (x_train, y_train, x_val, y_val), an image directory (a folder per class), or module:function returning arrays or tf.data datasets (Python autotune runs)"),
    ] = None,
    val_data: Annotated[str | None, typer.Option(help="Separate validation .npz (x_val, y_val or x, y) or image directory")] = None,
    custom_objects: Annotated[
        str | None,
        typer.Option(help="A .py file defining the model's custom layers (Python autotune runs; needs --trust-model-code)"),
    ] = None,
    space: Annotated[str | None, typer.Option(help="Search space: " + PLUGIN_NOTE.format("search_spaces"))] = None,
    objective: Annotated[str | None, typer.Option(help="Objective: " + PLUGIN_NOTE.format("objectives"))] = None,
    storage: StorageOpt = None,
    max_accuracy_drop: Annotated[
        float | None, typer.Option(help="Largest allowed loss of quality from the fp32 baseline: accuracy points, or MAE for regression [default: 0.01]")
    ] = None,
    max_p99_ms: Annotated[float | None, typer.Option(help="Feasible only if the per-call p99 latency is at most this")] = None,
    max_size_kb: Annotated[float | None, typer.Option(help="Feasible only if the artifact is at most this many KiB")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sampler and of every trial [default: 0]")] = None,
    warm_start: Annotated[
        str | None, typer.Option(help="Seed a new study with the front configurations of this earlier study (same storage)")
    ] = None,
    workers: Annotated[int, typer.Option(help="Run this many worker processes on the study (needs PostgreSQL storage)")] = 1,
    allow_new_hardware: AllowOpt = False,
    trust_model_code: TrustOpt = False,
) -> None:
    """Create a study, or continue one, and search until it holds BUDGET evaluated trials.

    Settings come from the command line, then the study file, then the defaults.
    """
    from autotune.inputs.config import layered, read_study_file
    from autotune.study.run import run as run_study

    file_values = read_study_file(study_file.expanduser()) if study_file is not None else {}
    flags = {
        "study": study,
        "budget": budget,
        "model": as_path(model),
        "data": as_data(data),
        "val_data": as_data(val_data),
        "custom_objects": as_path(custom_objects),
        "space": as_plugin(space),
        "objective": as_plugin(objective),
        "max_accuracy_drop": max_accuracy_drop,
        "max_p99_ms": max_p99_ms,
        "max_size_kb": max_size_kb,
        "seed": seed,
        "trust_model_code": trust_model_code or None,
    }
    given = layered(flags, file_values)
    file_storage = given.pop("storage", None)
    if given.get("data") is not None and given.get("model") is None:
        raise ConfigError("--data needs --model (the demo brings its own data)")
    if given.get("model") is not None and given.get("data") is None:
        raise ConfigError("--model needs --data: an .npz, an image directory or a module:function loader")
    if given.get("val_data") is not None and given.get("data") is None:
        raise ConfigError("--val-data needs --data (the training data)")
    if given.get("custom_objects") is not None:
        # Refused here, before the file is imported or anything is stored.
        if given.get("model") is None:
            raise ConfigError("--custom-objects needs --model (the demo has no custom layers)")
        if not given.get("trust_model_code"):
            raise ConfigError(
                f"--custom-objects {given['custom_objects']} is Python that runs when the model loads; "
                "if you trust it, pass --trust-model-code"
            )
    name = check_study_name(given.pop("study", None) or study_name_for(given.get("model")))
    _search(
        name, given, storage or file_storage, run_study, must_exist=False, warm_start=warm_start, workers=workers,
        allow_new_hardware=allow_new_hardware,
    )


@app.command()
@guarded
def resume(
    name: Annotated[str, typer.Argument(help="Study to continue, with its stored configuration")],
    budget: Annotated[int | None, typer.Option(help="Raise the study's total budget to this")] = None,
    storage: StorageOpt = None,
    allow_new_hardware: AllowOpt = False,
    trust_model_code: TrustOpt = False,
) -> None:
    """Continue a study until it holds its budget (or the new --budget) of evaluated trials.

    Trials left running by a run that died are failed once their heartbeat is stale, and run
    again once."""
    from autotune.study.run import run as run_study

    given = {"budget": budget, "trust_model_code": trust_model_code or None}
    _search(name, given, storage, run_study, must_exist=True, allow_new_hardware=allow_new_hardware)


@app.command()
@guarded
def worker(
    name: Annotated[str | None, typer.Argument(help="Study to join (created and started by `autotune run`)")] = None,
    storage: StorageOpt = None,
    queue: Annotated[bool, typer.Option("--queue", help="Take studies submitted to the service, one after another, until stopped")] = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    allow_new_hardware: AllowOpt = False,
    trust_model_code: TrustOpt = False,
) -> None:
    """Join a study and run its trials until its budget is spent; start as many as you like,
    on this machine or others sharing a PostgreSQL storage. With --queue: work for the service."""
    from autotune.study.run import run as run_study

    if queue:
        if name is not None:
            raise ConfigError("give a study NAME or --queue, not both")
        cli_service.queue_worker(storage, data_dir, trust_model_code)
        return
    if name is None:
        raise ConfigError("give the study NAME to join, or --queue to work for the service")

    url = storage_url(storage)
    number = os.environ.get("AUTOTUNE_WORKER")
    prefix = f"[worker {number}] " if number else f"[worker {os.getpid()}] "
    with report.RunProgress(prefix=prefix) as progress:
        given = {"trust_model_code": trust_model_code or None}
        result = run_study(name, given, url, join=True, reporter=progress, allow_new_hardware=allow_new_hardware)
    report.console.print(report.escape(prefix) + f"study {name}: {result.evaluated} of {result.budget} trials ({result.trials_run} run by this worker)")



def _search(
    name: str,
    given: dict[str, Any],
    storage: str | None,
    run_study: Callable[..., Any],
    *,
    must_exist: bool,
    warm_start: str | None = None,
    workers: int = 1,
    allow_new_hardware: bool = False,
) -> None:
    from autotune.measure.stats import environment
    from autotune.results.front import environments, front_rows
    from autotune.search.capabilities import Capabilities
    from autotune.storage import store

    if given.get("budget") is not None and given["budget"] < 1:
        raise ConfigError(f"--budget must be at least 1, got {given['budget']}")
    url = storage_url(storage)
    with report.RunProgress() as progress:
        result = run_study(
            name, given, url, must_exist=must_exist, reporter=progress, warm_start=warm_start, workers=workers,
            allow_new_hardware=allow_new_hardware,
        )
    report.run_done(result.study, result.evaluated, result.budget, result.trials_run, result.wall_s, result.exhausted)
    study = store.load_study(store.open_storage(url), name)
    found = study.user_attrs.get(store.CAPABILITIES)
    if found and (found.get("failed") or Capabilities.from_dict(found).excluded()):
        report.capabilities(found)  # what the search left out, and why, under its last line
    config = store.stored_config(study)
    # The trials just run are this machine's: show its front even if others measured too.
    here = str(environment()["id"])
    env = here if here in environments(study.get_trials(deepcopy=False)) else None
    report.front(
        front_rows(study, env=env), "table", title=f"Pareto front of {name}", limit=config.max_accuracy_drop, objectives=study.metric_names or ()
    )


@app.command()
@guarded
def studies(storage: StorageOpt = None) -> None:
    """List the studies in the storage."""
    from autotune.results.front import summarize
    from autotune.storage import store

    url = storage_url(storage)
    st = store.open_storage(url)
    with store.database_errors(url):
        summaries = [summarize(store.load_study(st, n)) for n in store.study_names(st)]
    report.studies(summaries)


@app.command()
@guarded
def front(
    name: Annotated[str, typer.Argument(help="Study name")],
    format: Annotated[Format, typer.Option("--format", help="How to print the front")] = Format.table,
    env: EnvOpt = None,
    storage: StorageOpt = None,
    server: ServerOpt = None,
) -> None:
    """Show the Pareto front: latency against accuracy of the deployed artifacts."""
    from autotune.results.front import front_rows
    from autotune.service.client import server_url
    from autotune.storage import store

    if server_url(server) and storage is None:
        cli_service.remote_front(server_url(server), name, format.value, env)  # type: ignore[arg-type]
        return

    url = storage_url(storage)
    with store.database_errors(url):
        study = store.load_study(store.open_storage(url), name)
        config = store.stored_config(study)
        rows = front_rows(study, env=env)
    report.front(rows, format.value, title=f"Pareto front of {name}", limit=config.max_accuracy_drop, objectives=study.metric_names or ())


@app.command()
@guarded
def export(
    name: Annotated[str, typer.Argument(help="Study name")],
    out: Annotated[Path, typer.Option(help="Directory to write the artifact, manifest.json and MODEL_CARD.md into")],
    trial: Annotated[int | None, typer.Option(help="Export this trial instead of choosing one")] = None,
    prefer: Annotated[Prefer, typer.Option(help="Among trials within the limits: latency (fastest), accuracy, size, or knee")] = Prefer.latency,
    max_accuracy_drop: Annotated[float | None, typer.Option(help="Quality limit for choosing [default: the study's]")] = None,
    max_latency_ms: Annotated[float | None, typer.Option(help="Choose only among trials with p50 at most this")] = None,
    max_size_kb: Annotated[float | None, typer.Option(help="Choose only among artifacts of at most this many KiB")] = None,
    closest: Annotated[bool, typer.Option(help="If no trial meets the limits, export the closest one (and say so)")] = False,
    force: Annotated[bool, typer.Option(help="Write into a non-empty --out")] = False,
    env: EnvOpt = None,
    storage: StorageOpt = None,
    trust_model_code: TrustOpt = False,
    server: ServerOpt = None,
) -> None:
    """Write the chosen trial's artifact, verify it reproduces its recorded quality, and describe it."""
    from autotune.results.export import export as do_export
    from autotune.service.client import server_url

    for flag, value in (("--max-latency-ms", max_latency_ms), ("--max-size-kb", max_size_kb), ("--max-accuracy-drop", max_accuracy_drop)):
        if value is not None and value < 0:
            raise ConfigError(f"{flag} must not be negative, got {value}")
    if server_url(server) and storage is None:
        params = {
            "trial": trial, "prefer": prefer.value, "max_accuracy_drop": max_accuracy_drop, "max_latency_ms": max_latency_ms,
            "max_size_kb": max_size_kb, "closest": closest or None,
        }
        cli_service.remote_export(server_url(server), name, out, params, force)  # type: ignore[arg-type]
        return
    r = do_export(
        storage_url(storage),
        name,
        out,
        trial_number=trial,
        max_accuracy_drop=max_accuracy_drop,
        max_latency_ms=max_latency_ms,
        max_size_kb=max_size_kb,
        prefer=prefer.value,
        closest=closest,
        force=force,
        env=env,
        trust_model_code=trust_model_code,
    )
    report.exported(r.trial, r.recipe, str(r.artifact), str(r.manifest), f"{r.quality_name} {r.quality:.4f}", r.why)


@app.command()
@guarded
def show(
    name: Annotated[str, typer.Argument(help="Study name")],
    trial: Annotated[int | None, typer.Argument(help="Trial number (without it: the study, and what its model allows)")] = None,
    storage: StorageOpt = None,
) -> None:
    """One trial in full (lineage, metrics, stage timings, cache use, why it failed), or the
    study: its configuration, baseline, and the techniques its model cannot take, with why."""
    from autotune.storage import store
    from autotune.storage.record import remeasurements

    url = storage_url(storage)
    with store.database_errors(url):
        study = store.load_study(store.open_storage(url), name)
        trials = study.get_trials(deepcopy=False)
        if trial is None:
            counts: dict[str, int] = {}
            for t in trials:
                counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
            attrs = study.user_attrs
            report.study_detail(name, attrs.get(store.CONFIG, {}), attrs.get(store.CAPABILITIES), counts, attrs.get(store.BASELINE))
            return
        if not 0 <= trial < len(trials):
            raise ConfigError(f"study {name!r} has no trial {trial} (it has 0..{len(trials) - 1})")
        report.trial_detail(trials[trial], remeasurements(study).get(trial))


@app.command()
@guarded
def plot(
    name: Annotated[str, typer.Argument(help="Study name")],
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("front.png"),
    env: EnvOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Draw every trial, the front with its recipes, the references and the limit, and the hypervolume over trials."""
    from autotune.results.plot import plot_study
    from autotune.storage import store

    url = storage_url(storage)
    with store.database_errors(url):
        study = store.load_study(store.open_storage(url), name)
        path = plot_study(study, out.expanduser(), limit=store.stored_config(study).max_accuracy_drop, env=env)
    report.console.print(f"wrote {path}")


@app.command()
@guarded
def dashboard(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
) -> None:
    """Open optuna-dashboard on the same storage (studies show with named objectives)."""
    from autotune.storage import store

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise ConfigError("optuna-dashboard is not installed; pip install optuna-dashboard") from None
    url = storage_url(storage)
    st = store.open_storage(url)
    report.console.print(f"optuna-dashboard on http://{host}:{port}/ for {store.redact(url)} (Ctrl-C stops it)")
    try:
        run_server(st, host=host, port=port)
    except OSError as e:
        raise ConfigError(f"dashboard cannot listen on {host}:{port}: {e.strerror or e}") from None


def main() -> None:
    app()
