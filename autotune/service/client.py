"""The command line's side of the service: ``autotune submit``, and ``front`` and ``export``
with ``--server`` (or ``$AUTOTUNE_SERVER``). Every refusal is the server's one line."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from autotune.errors import ConfigError

TERMINAL = ("done", "failed", "cancelled")


def server_url(flag: str | None) -> str | None:
    return flag or os.environ.get("AUTOTUNE_SERVER") or None


class Client:
    def __init__(self, server: str, token: str | None = None) -> None:
        self.base = server.rstrip("/")
        token = token or os.environ.get("AUTOTUNE_TOKEN")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            r = httpx.request(method, self.base + path, headers=self.headers, timeout=kwargs.pop("timeout", 60.0), **kwargs)
        except httpx.HTTPError as e:
            raise ConfigError(f"cannot reach the autotune server at {self.base}: {e}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = None
            raise ConfigError(f"server {self.base} refused ({r.status_code}): {detail or r.reason_phrase}")
        return r

    def submit(self, model: Path | None, data: Path | None, fields: dict[str, Any]) -> dict[str, Any]:
        """Upload the model and data (a folder goes zipped) and queue the study."""
        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for key, path in (("model", model), ("data", data)):
                if path is None:
                    continue
                if not path.exists():
                    raise ConfigError(f"{key} {path} does not exist")
                if path.is_dir():
                    path = Path(shutil.make_archive(str(Path(tmp) / path.name), "zip", root_dir=path))
                files[key] = (path.name, path.open("rb"))
            try:
                form = {k: str(v) for k, v in fields.items() if v is not None}
                return self._call("POST", "/api/studies", data=form, files=files, timeout=None).json()
            finally:
                for _, f in files.values():
                    f.close()

    def study(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/api/studies/{name}").json()

    def front(self, name: str, env: str | None = None) -> list[dict[str, Any]]:
        return json.loads(self.front_text(name, env))

    def front_text(self, name: str, env: str | None = None) -> str:
        return self._call("GET", f"/api/studies/{name}/front", params={"env": env} if env else None).text

    def wait(self, name: str, on_progress: Any = None, poll_s: float = 2.0) -> dict[str, Any]:
        while True:
            s = self.study(name)
            if on_progress is not None:
                on_progress(s)
            if s["state"] in TERMINAL:
                return s
            time.sleep(poll_s)

    def export(self, name: str, out: Path, params: dict[str, Any], force: bool = False) -> list[Path]:
        """Download the export and unpack it into ``out`` (empty, unless ``force``)."""
        if out.exists() and any(out.iterdir()) and not force:
            raise ConfigError(f"--out {out} is not empty (pass --force to write into it)")
        r = self._call("GET", f"/api/studies/{name}/export", params={k: v for k, v in params.items() if v is not None}, timeout=None)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            for m in z.infolist():
                p = PurePosixPath(m.filename)
                if p.is_absolute() or ".." in p.parts:
                    raise ConfigError(f"the server's export holds a path outside itself: {m.filename!r}")
            z.extractall(out)
            written = [out / m.filename for m in z.infolist() if not m.is_dir()]
        return written
