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
import shutil
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autotune.errors import AutotuneError, ConfigError, StorageError
from autotune.inputs.config import check_study_name
from autotune.results.choose import PREFERENCES
from autotune.results.front import front_rows
from autotune.search.plugins import builtin_names
from autotune.service import submission, tasks, views
from autotune.service.context import Service
from autotune.service.uploads import DATA_KINDS, MODEL_KINDS, Staged, TooLarge
from autotune.storage import store

log = logging.getLogger("autotune.service")


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
        return [views.summary(s, name, s.queue.get(name)) for name in views.names(s)]

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
            return await submission.submit(s, staged, locals())
        finally:
            for st in staged:
                st.discard()

    @app.get("/api/studies/{name}", summary="A study: its state, configuration, baseline, references and what its model allows")
    def study_detail(s: Svc, name: str) -> dict[str, Any]:
        return views.detail(s, name)

    @app.get("/api/studies/{name}/trials", summary="Every trial: recipe, metrics, lineage, why it failed")
    def trials(s: Svc, name: str) -> list[dict[str, Any]]:
        study = views.study_of(s, name)
        return [views.trial(t) for t in study.get_trials(deepcopy=False)]

    @app.get("/api/studies/{name}/front", summary="The Pareto front, as `autotune front NAME --format json` prints it")
    def front(s: Svc, name: str, env: Annotated[str | None, Query(max_length=200)] = None) -> Response:
        study = views.study_of(s, name)
        with store.database_errors(s.storage_url):
            rows = front_rows(study, env=env)
        return Response(json.dumps([r.as_dict() for r in rows], indent=2) + "\n", media_type="application/json")

    @app.post("/api/studies/{name}/cancel", summary="Cancel: a queued study leaves the queue, a running one stops after its trial")
    def cancel(s: Svc, name: str) -> dict[str, Any]:
        check_study_name(name)
        return views.summary(s, name, s.queue.cancel(name))

    @app.post("/api/studies/{name}/resume", summary="Queue the study again, raising its budget if given")
    def resume(s: Svc, name: str, body: Resume) -> dict[str, Any]:
        check_study_name(name)
        return views.summary(s, name, s.queue.resume(name, body.budget))

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
        views.study_of(s, name)
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
        # The zip's folder goes once it is sent: exports are made afresh for each download.
        return FileResponse(value, media_type="application/zip", filename=Path(value).name, background=BackgroundTask(shutil.rmtree, Path(value).parent, True))

    return app


