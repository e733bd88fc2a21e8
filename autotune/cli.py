"""The command line: thin commands that assemble a configuration and call the library.

Space and objective files are Python that you choose to run: autotune imports them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from autotune import report
from autotune.config import check_study_name, storage_url, study_name_for
from autotune.errors import AutotuneError, ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Find the fastest deployable variant of a Keras model on this machine, by measurement.",
)

F = TypeVar("F", bound=Callable[..., Any])

StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", help="Optuna RDB URL [default: $AUTOTUNE_STORAGE or sqlite:///studies/autotune.db]"),
]

EnvOpt = Annotated[
    str | None,
    typer.Option("--env", help="Environment fingerprint whose trials to use when a study was measured on several, or 'all'"),
]


def _guarded(fn: F) -> F:
    """One place that turns autotune's errors into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AutotuneError as e:
            if os.environ.get("AUTOTUNE_DEBUG"):
                raise
            report.error(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            report.error("interrupted; finished trials are stored (continue with `autotune resume NAME`)")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _as_path(value: str | None) -> str | None:
    return None if value is None else str(Path(value).expanduser().resolve())


def _as_plugin(value: str | None) -> str | None:
    """A name stays a name; a path becomes absolute so a resume from elsewhere finds it."""
    if value is None or not (value.endswith(".py") or "/" in value):
        return value
    return _as_path(value)


@app.command()
@_guarded
def run(
    study: Annotated[str | None, typer.Option(help="Study name [default: demo, or the model file's name]")] = None,
    budget: Annotated[int | None, typer.Option(help="Total evaluated trials the study should hold [default: 50]")] = None,
    model: Annotated[str | None, typer.Option(help="tf_keras .keras/.h5 file or SavedModel directory [default: the demo]")] = None,
    data: Annotated[str | None, typer.Option(help=".npz with x_train, y_train, x_val, y_val")] = None,
    space: Annotated[str | None, typer.Option(help="Search space: built-in name or a .py file (it is imported and run)")] = None,
    objective: Annotated[str | None, typer.Option(help="Objective: built-in name or a .py file (it is imported and run)")] = None,
    storage: StorageOpt = None,
    max_accuracy_drop: Annotated[float | None, typer.Option(help="Largest allowed accuracy drop from the fp32 baseline [default: 0.01]")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sampler and of every trial [default: 0]")] = None,
) -> None:
    """Create a study, or continue one, and search until it holds BUDGET evaluated trials."""
    from autotune.runner import run as run_study

    if data is not None and model is None:
        raise ConfigError("--data needs --model (the demo brings its own data)")
    if model is not None and data is None:
        raise ConfigError("--model needs --data: an .npz with x_train, y_train, x_val, y_val")
    name = check_study_name(study or study_name_for(model))
    given = {
        "budget": budget,
        "model": _as_path(model),
        "data": _as_path(data),
        "space": _as_plugin(space),
        "objective": _as_plugin(objective),
        "max_accuracy_drop": max_accuracy_drop,
        "seed": seed,
    }
    _search(name, given, storage, run_study, must_exist=False)


@app.command()
@_guarded
def resume(
    name: Annotated[str, typer.Argument(help="Study to continue, with its stored configuration")],
    budget: Annotated[int | None, typer.Option(help="Raise the study's total budget to this")] = None,
    storage: StorageOpt = None,
) -> None:
    """Continue a study until it holds its budget (or the new --budget) of evaluated trials."""
    from autotune.runner import run as run_study

    _search(name, {"budget": budget}, storage, run_study, must_exist=True)


def _search(name: str, given: dict[str, Any], storage: str | None, run_study: Callable[..., Any], *, must_exist: bool) -> None:
    from autotune import store
    from autotune.front import environments, front_rows
    from autotune.measure import environment

    if given.get("budget") is not None and given["budget"] < 1:
        raise ConfigError(f"--budget must be at least 1, got {given['budget']}")
    url = storage_url(storage)
    with report.RunProgress() as progress:
        result = run_study(name, given, url, must_exist=must_exist, reporter=progress)
    report.run_done(result.study, result.evaluated, result.budget, result.trials_run, result.wall_s)
    study = store.load_study(store.open_storage(url), name)
    config = store.stored_config(study)
    # The trials just run are this machine's: show its front even if others measured too.
    here = str(environment()["id"])
    env = here if here in environments(study.get_trials(deepcopy=False)) else None
    report.front(
        front_rows(study, env=env), "table", title=f"Pareto front of {name}", limit=config.max_accuracy_drop, objectives=study.metric_names or ()
    )


@app.command()
@_guarded
def studies(storage: StorageOpt = None) -> None:
    """List the studies in the storage."""
    from autotune import store
    from autotune.front import summarize

    url = storage_url(storage)
    st = store.open_storage(url)
    with store.database_errors(url):
        summaries = [summarize(store.load_study(st, n)) for n in store.study_names(st)]
    report.studies(summaries)


@app.command()
@_guarded
def front(
    name: Annotated[str, typer.Argument(help="Study name")],
    format: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
    env: EnvOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Show the Pareto front: latency against accuracy of the deployed artifacts."""
    from autotune import store
    from autotune.front import front_rows

    if format not in ("table", "json", "csv"):
        raise ConfigError(f"--format must be table, json or csv, not {format!r}")
    url = storage_url(storage)
    with store.database_errors(url):
        study = store.load_study(store.open_storage(url), name)
        config = store.stored_config(study)
        rows = front_rows(study, env=env)
    report.front(rows, format, title=f"Pareto front of {name}", limit=config.max_accuracy_drop, objectives=study.metric_names or ())


@app.command()
@_guarded
def export(
    name: Annotated[str, typer.Argument(help="Study name")],
    out: Annotated[Path, typer.Option(help="Directory to write the artifact and manifest.json into")],
    trial: Annotated[int | None, typer.Option(help="Export this trial instead of the fastest feasible one")] = None,
    max_accuracy_drop: Annotated[float | None, typer.Option(help="Accuracy limit for choosing [default: the study's]")] = None,
    force: Annotated[bool, typer.Option(help="Write into a non-empty --out")] = False,
    env: EnvOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Write the fastest front member within the accuracy limit (or --trial) and verify it."""
    from autotune.export import export as do_export

    r = do_export(storage_url(storage), name, out, trial_number=trial, max_accuracy_drop=max_accuracy_drop, force=force, env=env)
    report.exported(r.trial, r.recipe, str(r.artifact), str(r.manifest), r.accuracy, r.why)


def main() -> None:
    app()
