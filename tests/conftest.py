"""Fixtures. Fast tests import no TensorFlow; fixtures that need it import it lazily and are
used only by tests marked ``slow``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOTUNE_STORAGE", raising=False)
    monkeypatch.delenv("AUTOTUNE_DEBUG", raising=False)


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo model and data, trained once per test session (about 15 s)."""
    from autotune.inputs.demo import ensure_demo

    return ensure_demo(tmp_path_factory.mktemp("demo") / "studies")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_files: tuple[Path, Path]) -> Path:
    """A fresh working directory whose studies/ already holds the trained demo."""
    model, _ = demo_files
    shutil.copytree(model.parent, tmp_path / "studies" / model.parent.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def fresh_probes(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host directory that keeps no probe's findings, so that every study probes its model
    for real; the host's measured peak and its sentinel are copied in, so that they are not
    made again."""
    from autotune.measure.host import default_host_dir

    host = tmp_path_factory.mktemp("host")
    for kept in [*default_host_dir().glob("peak-*.json"), *default_host_dir().glob("sentinel-*.tflite")]:
        shutil.copy(kept, host)
    monkeypatch.setenv("AUTOTUNE_HOST_DIR", str(host))
    return host


@pytest.fixture
def empty_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _unavailable(reason: str) -> None:
    """Skip with the reason; in CI (which installs the server) fail instead, so a broken
    install cannot hide behind a skip."""
    import os

    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL server unavailable in CI: {reason}")
    pytest.skip(f"PostgreSQL server unavailable: {reason}")


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for this test session: initdb into a throwaway directory,
    listening on loopback only, stopped at the end. The URL carries a password (trust
    authentication ignores it) so that tests can check it is never shown."""
    import glob
    import os
    import socket
    import subprocess
    import tempfile

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        _unavailable("no initdb under /usr/lib/postgresql (run tests/install-system.sh)")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="autotune-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    # cwd: PostgreSQL's tools return to the starting directory, which the server's user may not enter.
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True, timeout=120, cwd=root)  # noqa: E731
    init = (bindir / "initdb", "-D", data, "-U", "autotune", "-A", "trust", "--no-sync")
    start = (bindir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-t", "60", "-o",
             f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", "start")
    create = (bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "autotune", "autotune")
    try:
        for cmd in (init, start, create):
            try:
                out = run(*cmd)
            except subprocess.TimeoutExpired:
                _unavailable(f"{Path(str(cmd[0])).name} timed out")
            if out.returncode != 0:
                _unavailable(f"{Path(str(cmd[0])).name} failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
        yield f"postgresql://autotune:s3cret-pw@127.0.0.1:{port}/autotune"
    finally:
        if (data / "postmaster.pid").exists():
            run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
