"""``autotune serve``: the app on uvicorn, with its queue workers as child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from autotune.errors import ConfigError
from autotune.service.app import Service, create_app
from autotune.service.tasks import SERVER_PID
from autotune.service.uploads import Folders

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def start_workers(count: int, storage_url: str, data_dir: Path, trust_model_code: bool) -> list[subprocess.Popen[bytes]]:
    """``count`` processes of ``autotune worker --queue`` on the same storage and folders; each
    leaves once this process is gone (``tasks.work``)."""
    procs = []
    for i in range(count):
        cmd = [sys.executable, "-m", "autotune", "worker", "--queue", "--storage", storage_url, "--data-dir", str(data_dir)]
        if trust_model_code:
            cmd.append("--trust-model-code")
        procs.append(subprocess.Popen(cmd, env=os.environ | {"AUTOTUNE_WORKER": f"q{i + 1}", SERVER_PID: str(os.getpid())}))
    return procs


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(
    storage_url: str,
    host: str,
    port: int,
    workers: int,
    data_dir: Path,
    *,
    trust_model_code: bool,
    max_upload_mb: int,
    new_token: bool = False,
    say: Callable[[str], None],
) -> None:
    if workers < 0:
        raise ConfigError(f"--workers must be 0 or more, got {workers}")
    if max_upload_mb < 1:
        raise ConfigError(f"--max-upload-mb must be at least 1, got {max_upload_mb}")
    import uvicorn

    loopback = host in LOOPBACK
    service = Service(storage_url, Folders(data_dir.resolve()), require_token=not loopback, trust_model_code=trust_model_code, max_upload_bytes=max_upload_mb << 20)
    if not loopback:
        if new_token or not service.queue.has_tokens():
            token = service.queue.new_token()
            say("bearer token, shown this once (only its hash is stored); clients send it as 'Authorization: Bearer TOKEN' or $AUTOTUNE_TOKEN:")
            say(token)
        else:
            say("requests need the bearer token made at the first start (only its hash is stored; --new-token makes another)")
    procs = start_workers(workers, storage_url, service.folders.root, trust_model_code)
    say(f"autotune service on http://{host}:{port}/ ({workers} worker{'s' if workers != 1 else ''}; Ctrl-C stops it)")
    # uvicorn shuts down on SIGTERM and then raises it again with the handler it found: this
    # one, so that the workers are stopped below rather than the process ending at once.
    signal.signal(signal.SIGTERM, _exit)
    try:
        uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        service.tasks.close()
