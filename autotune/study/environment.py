"""Latency measured on one machine does not compare with another's: a study continued in a
new environment needs the user's word."""

from __future__ import annotations

from typing import Any

import optuna

from autotune.errors import ConfigError
from autotune.storage import store


def check_environment(study: optuna.Study, env: dict[str, Any], allow_new_hardware: bool) -> None:
    """Latency measured on another machine does not compare: adding trials from a new
    environment to a study needs the user's word."""
    created = study.user_attrs.get(store.ENV, {})
    if created.get("id") in (None, env["id"]) or allow_new_hardware:
        return
    raise ConfigError(
        f"study {study.study_name!r} was measured on environment {created.get('id')} ({created.get('cpu', '?')}, "
        f"{created.get('cores', '?')} cores); this one is {env['id']} ({env.get('cpu', '?')}, {env.get('cores', '?')} cores). "
        "Its latencies would not compare; pass --allow-new-hardware to add trials measured here "
        "(front and export then ask which environment to use)"
    )
