"""What the API shows of studies and trials: the same facts as ``studies``, ``show`` and
``front``, as JSON, with server paths reduced to names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from fastapi import HTTPException
from optuna.trial import TrialState

from autotune.inputs.config import check_study_name
from autotune.results.front import summarize
from autotune.service.context import Service
from autotune.service.queue import Job
from autotune.storage import store
from autotune.storage.record import TrialRecord, remeasurements


def names(s: Service) -> list[str]:
    queued = [j.name for j in s.queue.jobs()]
    with store.database_errors(s.storage_url):
        others = [n for n in store.study_names(s.storage()) if n not in queued]
    return queued + others


def study_of(s: Service, name: str) -> optuna.Study:
    check_study_name(name)
    with store.database_errors(s.storage_url):
        st = s.storage()
        if not store.study_exists(st, name):
            job = s.queue.get(name)
            if job is None:
                raise HTTPException(404, f"no study named {name!r}")
            raise HTTPException(409, f"study {name!r} is {job.state} and has no trials yet")
        return store.load_study(st, name)


def summary(s: Service, name: str, job: Job | None) -> dict[str, Any]:
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


def detail(s: Service, name: str) -> dict[str, Any]:
    check_study_name(name)
    job = s.queue.get(name)
    out = summary(s, name, job)
    with store.database_errors(s.storage_url):
        st = s.storage()
        if not store.study_exists(st, name):
            if job is None:
                raise HTTPException(404, f"no study named {name!r}")
            return out | {"config": shown_config(job.given), "baseline": None, "capabilities": None, "references": [], "objectives": []}
        study = store.load_study(st, name)
        attrs = study.user_attrs
        config = attrs.get(store.CONFIG, {})
        references = []
        for t in study.get_trials(deepcopy=False):
            record = TrialRecord.from_trial(t)
            if record.reference and record.metrics is not None:
                references.append({"trial": t.number, "reference": record.reference, "recipe": record.recipe_text, "metrics": record.metrics.values})
        return out | {
            "config": shown_config(config),
            "max_accuracy_drop": config.get("max_accuracy_drop"),
            "baseline": attrs.get(store.BASELINE),
            "capabilities": attrs.get(store.CAPABILITIES),
            "references": references,
            "objectives": list(study.metric_names or ()),
            "remeasured": sorted(remeasurements(study)),
        }


def shown_config(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration without server paths: the model and data show as their stored names."""
    shown = dict(config)
    for key in ("model", "data", "val_data", "custom_objects"):
        if shown.get(key):
            shown[key] = Path(str(shown[key])).name
    for key in ("space", "objective"):
        if str(shown.get(key, "")).endswith(".py"):
            shown[key] = Path(str(shown[key])).stem
    return shown


def trial(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
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
