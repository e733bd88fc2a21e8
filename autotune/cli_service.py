"""The service's commands: ``serve``, ``submit``, and the queue worker (``worker --queue``);
``cli`` registers them, and sends ``front`` and ``export`` here when given ``--server``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from autotune import report
from autotune.cli_options import StorageOpt, TrustOpt, guarded
from autotune.errors import ConfigError
from autotune.inputs.config import storage_url

ServerOpt = Annotated[str | None, typer.Option("--server", help="An autotune service's URL [default: $AUTOTUNE_SERVER]; its token: $AUTOTUNE_TOKEN")]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="Where the service keeps uploads, exports, and its runs' caches")]
DEFAULT_DATA_DIR = Path("studies/service")


def register(app: typer.Typer) -> None:
    app.command()(guarded(serve))
    app.command()(guarded(submit))


def serve(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on; any but loopback needs the bearer token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="Queue workers to start beside the server (more can join: `autotune worker --queue`)")] = 1,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    max_upload_mb: Annotated[int, typer.Option(help="Largest upload accepted, MiB")] = 2048,
    new_token: Annotated[bool, typer.Option("--new-token", help="Make and show another bearer token (the others stay valid)")] = False,
    trust_model_code: TrustOpt = False,
) -> None:
    """Serve the search to a team: submit a model over HTTP (API at /docs, page at /), watch the
    front grow, download the export. Studies and the queue live in the storage."""
    from autotune.service.server import serve as run_server
    from autotune.storage import store

    url = storage_url(storage)
    report.console.print(f"storage {store.redact(url)}, files in {data_dir}")
    run_server(url, host, port, workers, data_dir, trust_model_code=trust_model_code, max_upload_mb=max_upload_mb, new_token=new_token,
               say=report.console.print)


def submit(
    model: Annotated[Path | None, typer.Argument(help=".keras, .h5 or a SavedModel folder [default: the demo]")] = None,
    data: Annotated[Path | None, typer.Argument(help=".npz (x_train, y_train, x_val, y_val) or an image folder")] = None,
    server: ServerOpt = None,
    study: Annotated[str | None, typer.Option(help="Study name [default: from the model's file name]")] = None,
    space: Annotated[str, typer.Option(help="A built-in search space of the server")] = "default",
    objective: Annotated[str, typer.Option(help="A built-in objective of the server")] = "latency",
    budget: Annotated[int, typer.Option(help="Evaluated trials to run")] = 50,
    max_accuracy_drop: Annotated[float, typer.Option(help="Largest allowed loss of quality from the fp32 baseline")] = 0.01,
    max_p99_ms: Annotated[float | None, typer.Option(help="Feasible only if the per-call p99 latency is at most this")] = None,
    max_size_kb: Annotated[float | None, typer.Option(help="Feasible only if the artifact is at most this many KiB")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler and of every trial")] = 0,
    wait: Annotated[bool, typer.Option(help="Wait until the study ends, then print its front")] = False,
) -> None:
    """Hand a model and its data to an autotune service; the study waits in its queue."""
    from autotune.service.client import Client, server_url

    url = _server(server_url(server))
    if (model is None) != (data is None):
        raise ConfigError("give both MODEL and DATA, or neither (the demo)")
    client = Client(url)
    fields: dict[str, Any] = {
        "study": study, "space": space, "objective": objective, "budget": budget, "max_accuracy_drop": max_accuracy_drop,
        "max_p99_ms": max_p99_ms, "max_size_kb": max_size_kb, "seed": seed,
    }
    s = client.submit(model and model.expanduser(), data and data.expanduser(), fields)
    report.console.print(f"queued study {s['name']} on {url} (budget {s['budget']}); watch it at {url.rstrip('/')}/")
    if not wait:
        return
    last: list[int] = [-1]

    def progress(st: dict[str, Any]) -> None:
        if st["evaluated"] != last[0]:
            last[0] = st["evaluated"]
            report.console.print(f"  {st['state']}: {st['evaluated']} of {st['budget']} trials")

    final = client.wait(s["name"], progress)
    if final["state"] != "done":
        raise ConfigError(f"study {s['name']} {final['state']}: {final.get('message') or 'no reason given'}")
    remote_front(client.base, s["name"], "table", None)


def _server(url: str | None) -> str:
    if not url:
        raise ConfigError("no server given: pass --server URL or set $AUTOTUNE_SERVER")
    return url


def remote_front(server: str, name: str, fmt: str, env: str | None) -> None:
    import sys

    from autotune.results.front import FrontRow
    from autotune.service.client import Client

    client = Client(server)
    if fmt == "json":
        sys.stdout.write(client.front_text(name, env))
        return
    detail = client.study(name)
    rows = [FrontRow(**r) for r in client.front(name, env)]
    report.front(rows, fmt, title=f"Pareto front of {name}", limit=detail.get("max_accuracy_drop") or 0.0, objectives=detail.get("objectives") or ())


def remote_export(server: str, name: str, out: Path, params: dict[str, Any], force: bool) -> None:
    from autotune.service.client import Client

    written = Client(server).export(name, out.expanduser(), params, force=force)
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    quality = {k: v for k, v in manifest.items() if k.startswith("verified_")}
    report.console.print(f"exported trial {manifest.get('trial')} ([bold]{manifest.get('recipe')}[/]) from {server}: {manifest.get('why')}")
    for p in written:
        report.console.print(f"  {p}")
    for k, v in quality.items():
        report.console.print(f"  {k.removeprefix('verified_')} {v:.4f} re-measured on the written file by the server (matches the record)")


def queue_worker(storage: str | None, data_dir: Path, trust_model_code: bool) -> None:
    import logging
    import os

    from autotune.service.tasks import work
    from autotune.service.uploads import Folders

    number = os.environ.get("AUTOTUNE_WORKER") or str(os.getpid())
    logging.basicConfig(level=logging.INFO, format=f"[worker {number}] %(message)s")
    url = storage_url(storage)
    work(url, Folders(data_dir.resolve()).make(), trust_model_code=trust_model_code)
