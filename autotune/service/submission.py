"""A submission: staged uploads checked in the spawned process as ``autotune run`` checks them,
then kept by content hash and queued; refused, it leaves nothing behind."""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import UploadFile

from autotune.errors import ConfigError
from autotune.inputs.config import check_study_name, study_name_for
from autotune.search.plugins import builtin_path
from autotune.service import tasks
from autotune.service.context import Service
from autotune.service.uploads import DATA_KINDS, MODEL_KINDS, Staged, kind_of, named
from autotune.service.views import summary
from autotune.storage import store

CHUNK = 1 << 20


async def submit(s: Service, staged: list[Staged], form: dict[str, Any]) -> dict[str, Any]:
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
    # Named as `autotune run` names it: the flag, else the model file's name, else the demo.
    model_label = model_up.filename if model_up is not None else form["model_name"]
    name = check_study_name(form["study"] or study_name_for(model_label or None))
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
    return summary(s, name, job)


