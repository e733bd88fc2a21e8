"""The HTTP service: a JSON API (documented at ``/docs``, schema at ``/openapi.json``) and one page
for people, over the study storage and the queue beside it.

Every error is ``{"detail": "one line"}`` with a 4xx status: the line ``autotune run`` would
print for the same input. A refused submission stores nothing: its uploads are staged, checked
in a spawned process exactly as the command line checks them, and only then kept (by content
hash) and queued.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import optuna
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from optuna.trial import TrialState
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autotune.errors import AutotuneError, ConfigError, StorageError
from autotune.inputs.config import check_study_name, study_name_for
from autotune.results.choose import PREFERENCES
from autotune.results.front import front_rows, summarize
from autotune.search.plugins import builtin_names, builtin_path
from autotune.service import tasks
from autotune.service.queue import Job, Queue
from autotune.service.uploads import DATA_KINDS, MODEL_KINDS, Folders, Staged, TooLarge, kind_of, named
from autotune.storage import store
from autotune.storage.record import TrialRecord, remeasurements

log = logging.getLogger("autotune.service")
CHUNK = 1 << 20


@dataclass
class Service:
    """What the app serves: the storage, the queue, the folders, and how it is guarded."""

    storage_url: str
    folders: Folders
    require_token: bool = False
    trust_model_code: bool = False
    max_upload_bytes: int = 2 << 30
    tasks: tasks.Tasks = field(default_factory=tasks.Tasks)
    queue: Queue = field(init=False)

    def __post_init__(self) -> None:
        self.folders.make()
        self.queue = Queue(self.storage_url)

    def storage(self) -> optuna.storages.RDBStorage:
        return store.open_storage(self.storage_url)


class _BodyLimit:
    """Refuses a request body over the limit while it streams in, before it is all received
    (a declared Content-Length over it is refused before any byte is read): HTTP 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"upload over the server's limit of {self.limit // 2**20} MiB"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await JSONResponse({"detail": too_large}, status_code=413)(scope, receive, send)
            return
        seen = 0
        over = replaced = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise TooLarge(too_large)
            return message

        async def refusal() -> None:
            nonlocal replaced
            if not replaced:
                replaced = True
                await JSONResponse({"detail": too_large}, status_code=413)(scope, receive, send)

        async def watched(message: Message) -> None:
            # Whatever the app answers a body cut short (a parser's 400, say), it is the 413.
            if over:
                await refusal()
            else:
                await send(message)

        try:
            await self.app(scope, counted, watched)
        except TooLarge:
            await refusal()


def _service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


Svc = Annotated[Service, Depends(_service)]


class Resume(BaseModel):
    budget: int | None = Field(default=None, ge=1, le=100_000, description="Raise the budget to this")


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="autotune",
        summary="Submit a Keras model and its data; watch the measured front grow; download the variant you choose.",
        version="1",
    )
    app.state.service = service

    @app.exception_handler(AutotuneError)
    async def _autotune_error(request: Request, e: AutotuneError) -> JSONResponse:
        status = 413 if isinstance(e, TooLarge) else 503 if isinstance(e, StorageError) else 422
        return JSONResponse({"detail": str(e).splitlines()[0] if str(e) else type(e).__name__}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return JSONResponse({"detail": f"{where or 'request'}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.middleware("http")
    async def _token(request: Request, call_next: Any) -> Response:
        # Off loopback every request needs the token, but the page itself (static, no data:
        # it asks for the token and sends it with each call it makes).
        if service.require_token and request.url.path != "/":
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token or not await asyncio.to_thread(service.queue.token_ok, token.strip()):
                return JSONResponse(
                    {"detail": "this server needs its bearer token: send 'Authorization: Bearer TOKEN' (set $AUTOTUNE_TOKEN for the command line)"},
                    status_code=401,
                )
        return await call_next(request)

    app.add_middleware(_BodyLimit, limit=service.max_upload_bytes)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("autotune.service").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/api/health", summary="The service is up")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/api/options", summary="What a submission may choose")
    def options() -> dict[str, Any]:
        return {
            "spaces": builtin_names("search_spaces"),
            "objectives": builtin_names("objectives"),
            "prefer": list(PREFERENCES),
            "model_kinds": list(MODEL_KINDS),
            "data_kinds": list(DATA_KINDS),
        }

    @app.get("/api/studies", summary="Every study: the queue's and any other in the storage")
    def studies(s: Svc) -> list[dict[str, Any]]:
        return [_summary(s, name, s.queue.get(name)) for name in _names(s)]

    @app.post("/api/studies", status_code=201, summary="Submit a model and data (uploads or files on the server) for a search")
    async def submit(
        s: Svc,
        model: Annotated[UploadFile | None, File(description=".keras, .h5, or a zipped SavedModel; none (and no model_name): the demo")] = None,
        data: Annotated[UploadFile | None, File(description=".npz (x_train, y_train, x_val, y_val) or a zipped image folder")] = None,
        model_name: Annotated[str | None, Form(description="A model already in the server's files folder (a bare name)")] = None,
        data_name: Annotated[str | None, Form(description="Data already in the server's files folder (a bare name)")] = None,
        study: Annotated[str | None, Form(description="Study name [default: from the model's name]")] = None,
        space: Annotated[str, Form()] = "default",
        objective: Annotated[str, Form()] = "latency",
        budget: Annotated[int, Form(ge=1, le=100_000)] = 50,
        max_accuracy_drop: Annotated[float, Form(ge=0.0, le=1e9)] = 0.01,
        max_p99_ms: Annotated[float | None, Form(gt=0.0, le=1e9)] = None,
        max_size_kb: Annotated[float | None, Form(gt=0.0, le=1e12)] = None,
        seed: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
    ) -> dict[str, Any]:
        staged: list[Staged] = []
        try:
            return await _submit(s, staged, locals())
        finally:
            for st in staged:
                st.discard()

    @app.get("/api/studies/{name}", summary="A study: its state, configuration, baseline, references and what its model allows")
    def study_detail(s: Svc, name: str) -> dict[str, Any]:
        return _detail(s, name)

    @app.get("/api/studies/{name}/trials", summary="Every trial: recipe, metrics, lineage, why it failed")
    def trials(s: Svc, name: str) -> list[dict[str, Any]]:
        study = _study(s, name)
        return [_trial(t) for t in study.get_trials(deepcopy=False)]

    @app.get("/api/studies/{name}/front", summary="The Pareto front, as `autotune front NAME --format json` prints it")
    def front(s: Svc, name: str, env: Annotated[str | None, Query(max_length=200)] = None) -> Response:
        study = _study(s, name)
        with store.database_errors(s.storage_url):
            rows = front_rows(study, env=env)
        return Response(json.dumps([r.as_dict() for r in rows], indent=2) + "\n", media_type="application/json")

    @app.post("/api/studies/{name}/cancel", summary="Cancel: a queued study leaves the queue, a running one stops after its trial")
    def cancel(s: Svc, name: str) -> dict[str, Any]:
        check_study_name(name)
        return _summary(s, name, s.queue.cancel(name))

    @app.post("/api/studies/{name}/resume", summary="Queue the study again, raising its budget if given")
    def resume(s: Svc, name: str, body: Resume) -> dict[str, Any]:
        check_study_name(name)
        return _summary(s, name, s.queue.resume(name, body.budget))

    @app.get(
        "/api/studies/{name}/export",
        summary="Export a trial (or the one a rule prefers) as a zip: artifact, manifest.json, MODEL_CARD.md, re-verified",
        response_class=FileResponse,
    )
    async def export(
        s: Svc,
        name: str,
        trial: Annotated[int | None, Query(ge=0)] = None,
        prefer: Annotated[str, Query(pattern="^(" + "|".join(PREFERENCES) + ")$")] = "latency",
        max_accuracy_drop: Annotated[float | None, Query(ge=0.0)] = None,
        max_latency_ms: Annotated[float | None, Query(ge=0.0)] = None,
        max_size_kb: Annotated[float | None, Query(ge=0.0)] = None,
        closest: bool = False,
    ) -> FileResponse:
        _study(s, name)
        options = {
            "trial_number": trial,
            "prefer": prefer,
            "max_accuracy_drop": max_accuracy_drop,
            "max_latency_ms": max_latency_ms,
            "max_size_kb": max_size_kb,
            "closest": closest,
        }
        status, value, number = await asyncio.to_thread(
            s.tasks.run, tasks.export_zip, s.storage_url, name, str(s.folders.exports), str(s.folders.studies), options, s.trust_model_code
        )
        if status != "ok":
            raise ConfigError(value)
        return FileResponse(value, media_type="application/zip", filename=Path(value).name)

    return app


async def _submit(s: Service, staged: list[Staged], form: dict[str, Any]) -> dict[str, Any]:
    # Built-ins only, by their own files: a client never names a path or a file of the server's.
    space_file, objective_file = builtin_path("search_spaces", form["space"]), builtin_path("objectives", form["objective"])
    model_up, data_up = form["model"], form["data"]
    if model_up is not None and form["model_name"]:
        raise ConfigError("give the model as an upload or as model_name, not both")
    if data_up is not None and form["data_name"]:
        raise ConfigError("give the data as an upload or as data_name, not both")
    has_model = model_up is not None or bool(form["model_name"])
    has_data = data_up is not None or bool(form["data_name"])
    if has_data and not has_model:
        raise ConfigError("--data needs --model (the demo brings its own data)")
    if has_model and not has_data:
        raise ConfigError("--model needs --data: an .npz or a zipped image folder")
    name = check_study_name(form["study"] or (study_name_for(model_up.filename) if model_up is not None else form["model_name"] and study_name_for(form["model_name"]) or "demo"))
    if s.queue.get(name) is not None or store.study_exists(s.storage(), name):
        raise ConfigError(f"a study named {name!r} exists already; resume it, or submit under another name")

    async def receive(up: UploadFile, kinds: tuple[str, ...], what: str) -> tuple[Staged, Path]:
        st = Staged(s.folders, kind_of(up.filename, kinds, what), s.max_upload_bytes)
        staged.append(st)
        while chunk := await up.read(CHUNK):
            st.write(chunk)
        return st, await asyncio.to_thread(st.unpacked, what)

    model_path = data_path = None
    model_st = data_st = None
    if model_up is not None:
        model_st, model_path = await receive(model_up, MODEL_KINDS, "model")
    elif form["model_name"]:
        model_path = named(s.folders, form["model_name"], MODEL_KINDS, "model")
    if data_up is not None:
        data_st, data_path = await receive(data_up, DATA_KINDS, "data")
    elif form["data_name"]:
        data_path = named(s.folders, form["data_name"], DATA_KINDS, "data")
    given: dict[str, Any] = {
        "model": str(model_path) if model_path else None,
        "data": str(data_path) if data_path else None,
        "space": str(space_file),
        "objective": str(objective_file),
        "budget": form["budget"],
        "max_accuracy_drop": form["max_accuracy_drop"],
        "max_p99_ms": form["max_p99_ms"],
        "max_size_kb": form["max_size_kb"],
        "seed": form["seed"],
    }
    fields = tasks.fields_for(given, name) | {"trust_model_code": s.trust_model_code}
    labels = {}
    for st, up, checked, what in ((model_st, model_up, model_path, "model"), (data_st, data_up, data_path, "data")):
        if st is not None:
            label = f"(the uploaded {what} {PurePosixPath(up.filename or '').name!r})"
            labels |= {str(checked): label, str(st.dir): label}
    problem = await asyncio.to_thread(s.tasks.run, tasks.check_submission, fields, str(s.folders.studies), labels)
    if problem is not None:
        raise ConfigError(problem)
    # Checked: keep the uploads by content hash and queue the study with their kept paths.
    if model_st is not None and model_path is not None:
        given["model"] = str(model_st.keep(model_path))
    if data_st is not None and data_path is not None:
        given["data"] = str(data_st.keep(data_path))
    job = s.queue.add(name, {k: v for k, v in given.items() if v is not None}, form["budget"])
    return _summary(s, name, job)


def _names(s: Service) -> list[str]:
    queued = [j.name for j in s.queue.jobs()]
    with store.database_errors(s.storage_url):
        others = [n for n in store.study_names(s.storage()) if n not in queued]
    return queued + others


def _study(s: Service, name: str) -> optuna.Study:
    check_study_name(name)
    with store.database_errors(s.storage_url):
        st = s.storage()
        if not store.study_exists(st, name):
            job = s.queue.get(name)
            if job is None:
                raise HTTPException(404, f"no study named {name!r}")
            raise HTTPException(409, f"study {name!r} is {job.state} and has no trials yet")
        return store.load_study(st, name)


def _summary(s: Service, name: str, job: Job | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "state": job.state if job else "stored", "budget": job.budget if job else None}
    out |= {"message": job.message if job else None, "cancel_requested": job.cancel if job else False, "submitted": job is not None}
    with store.database_errors(s.storage_url):
        st = s.storage()
        if store.study_exists(st, name):
            study = store.load_study(st, name)
            summary = summarize(study)
            out |= {
                "evaluated": store.evaluated(study.get_trials(deepcopy=False)),  # as the budget counts: no repeats
                "failed": summary.failed,
                "running": summary.running,
                "budget": out["budget"] or summary.budget,
                "best_feasible_ms": summary.best_feasible_ms,
                "best_recipe": summary.best_recipe,
            }
        else:
            out |= {"evaluated": 0, "failed": 0, "running": 0, "best_feasible_ms": None, "best_recipe": None}
    return out


def _detail(s: Service, name: str) -> dict[str, Any]:
    check_study_name(name)
    job = s.queue.get(name)
    out = _summary(s, name, job)
    with store.database_errors(s.storage_url):
        st = s.storage()
        if not store.study_exists(st, name):
            if job is None:
                raise HTTPException(404, f"no study named {name!r}")
            return out | {"config": _shown_config(job.given), "baseline": None, "capabilities": None, "references": [], "objectives": []}
        study = store.load_study(st, name)
        attrs = study.user_attrs
        config = attrs.get(store.CONFIG, {})
        references = []
        for t in study.get_trials(deepcopy=False):
            record = TrialRecord.from_trial(t)
            if record.reference and record.metrics is not None:
                references.append({"trial": t.number, "reference": record.reference, "recipe": record.recipe_text, "metrics": record.metrics.values})
        return out | {
            "config": _shown_config(config),
            "max_accuracy_drop": config.get("max_accuracy_drop"),
            "baseline": attrs.get(store.BASELINE),
            "capabilities": attrs.get(store.CAPABILITIES),
            "references": references,
            "objectives": list(study.metric_names or ()),
            "remeasured": sorted(remeasurements(study)),
        }


def _shown_config(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration without server paths: the model and data show as their stored names."""
    shown = dict(config)
    for key in ("model", "data", "val_data", "custom_objects"):
        if shown.get(key):
            shown[key] = Path(str(shown[key])).name
    for key in ("space", "objective"):
        if str(shown.get(key, "")).endswith(".py"):
            shown[key] = Path(str(shown[key])).stem
    return shown


def _trial(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    record = TrialRecord.from_trial(t)
    return {
        "number": t.number,
        "state": t.state.name.lower(),
        "recipe": record.recipe_text,
        "reference": record.reference,
        "params": t.params,
        "values": t.values if t.state == TrialState.COMPLETE else None,
        "metrics": record.metrics.values if record.metrics is not None else None,
        "fail_reason": record.fail_reason,
        "gated": record.gated,
        "lineage": list(record.lineage or ()),
        "repeat_of": record.repeat_of,
        "warm_start": record.warm_start,
        "timings": record.timings,
    }
