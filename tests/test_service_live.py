"""`autotune serve` for real: uvicorn on loopback with a queue worker, driven by the command line
(`submit`, `front --server`, `export --server`) and by Debian's Chromium through Playwright."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass
class Live:
    url: str
    storage: str
    root: Path
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, storage: str, data_dir: Path, workers: int, name: str) -> Live:
    port = _free_port()
    log = root / f"{name}.log"
    cmd = [sys.executable, "-m", "autotune", "serve", "--storage", storage, "--port", str(port), "--workers", str(workers), "--data-dir", str(data_dir)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return Live(url, storage, root, data_dir, proc, log)
        except httpx.HTTPError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the server did not come up:\n{log.read_text()}")


def stop(live: Live) -> None:
    live.proc.terminate()
    try:
        live.proc.wait(60)
    except subprocess.TimeoutExpired:
        live.proc.kill()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, demo_files: tuple[Path, Path]) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("service")
    data_dir = root / "data"
    model, _ = demo_files
    shutil.copytree(model.parent, data_dir / "studies" / model.parent.name)  # the trained demo
    server = start(root, f"sqlite:///{root / 'autotune.db'}", data_dir, workers=1, name="server")
    yield server
    stop(server)


def cli(live: Live, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"AUTOTUNE_SERVER": live.url}
    return subprocess.run([sys.executable, "-m", "autotune", *args], cwd=live.root, env=env, capture_output=True, text=True, timeout=timeout)


def test_submit_watch_front_and_export_from_the_command_line(live: Live) -> None:
    done = cli(live, "submit", "--study", "demo", "--space", "quick", "--budget", "3", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr + live.log.read_text()
    assert "queued study demo on" in done.stdout and "Pareto front of demo" in done.stdout

    remote = cli(live, "front", "demo", "--format", "json")
    local = cli(live, "front", "demo", "--format", "json", "--storage", live.storage)
    assert remote.returncode == 0 and local.returncode == 0, remote.stderr + local.stderr
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    assert len(json.loads(remote.stdout)) >= 1

    out = live.root / "deploy"
    exported = cli(live, "export", "demo", "--out", str(out), "--prefer", "knee")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "manifest.json", "model.tflite"]
    manifest = json.loads((out / "manifest.json").read_text())
    # The server re-verified the written artifact: its accuracy is the trial's recorded one.
    assert manifest["verified_accuracy"] == pytest.approx(manifest["metrics"]["accuracy"], abs=1e-6)
    trials = httpx.get(f"{live.url}/api/studies/demo/trials").json()
    assert trials[manifest["trial"]]["metrics"]["accuracy"] == manifest["metrics"]["accuracy"]

    assert list((live.data_dir / "exports").iterdir()) == []  # the server keeps no copy once it is sent
    again = cli(live, "export", "demo", "--out", str(out))
    assert again.returncode == 2 and "is not empty" in again.stderr + again.stdout
    refused = cli(live, "submit", "--study", "demo", "--space", "quick")
    assert refused.returncode == 2
    assert "refused (422): a study named 'demo' exists already" in refused.stdout + refused.stderr


def test_a_restarted_server_keeps_its_queue_and_studies(live: Live) -> None:
    storage, data_dir = f"sqlite:///{live.root / 'restart.db'}", live.root / "restart"  # no worker looks here
    quiet = start(live.root, storage, data_dir, workers=0, name="quiet")
    try:
        r = httpx.post(f"{quiet.url}/api/studies", data={"study": "later", "space": "quick", "budget": "3"}, timeout=120)
        assert r.status_code == 201, r.text
    finally:
        stop(quiet)
    again = start(live.root, storage, data_dir, workers=0, name="again")
    try:
        (later,) = httpx.get(f"{again.url}/api/studies").json()
        assert (later["name"], later["state"], later["budget"]) == ("later", "queued", 3)
        assert httpx.post(f"{again.url}/api/studies/later/cancel").json()["state"] == "cancelled"
    finally:
        stop(again)


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["terminated", "killed"])
def test_the_workers_of_a_stopped_server_leave_with_it(live: Live, how: str) -> None:
    storage, data_dir = f"sqlite:///{live.root / f'{how}.db'}", live.root / how
    server = start(live.root, storage, data_dir, workers=1, name=how)
    (worker,) = _children(server.proc.pid)
    try:
        time.sleep(3)  # the worker is up and polling its queue
        assert _alive(worker)
        if how == "terminated":  # as a service manager stops it: the server stops its workers
            server.proc.terminate()
            assert server.proc.wait(60) == 128 + 15
            assert not _alive(worker), "the server ended before its worker"
        else:  # no chance to stop its workers: they notice it is gone
            server.proc.kill()
            server.proc.wait(30)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _alive(worker):
                time.sleep(0.5)
            assert not _alive(worker), "the worker outlived the server that started it"
    finally:
        if _alive(worker):
            os.kill(worker, 9)


def test_a_queue_worker_killed_mid_trial_leaves_the_study_to_the_next(live: Live, demo_files: tuple[Path, Path]) -> None:
    import signal

    storage, data_dir = f"sqlite:///{live.root / 'kill.db'}", live.root / "kill"
    model, _ = demo_files
    shutil.copytree(model.parent, data_dir / "studies" / model.parent.name)
    api = start(live.root, storage, data_dir, workers=0, name="kill")  # the API only: the workers are ours
    worker = [sys.executable, "-m", "autotune", "worker", "--queue", "--storage", storage, "--data-dir", str(data_dir)]
    env = os.environ | {"AUTOTUNE_QUEUE_STALE_S": "4"}
    try:
        assert httpx.post(f"{api.url}/api/studies", data={"study": "killed", "space": "quick", "budget": "5"}, timeout=120).status_code == 201
        first = subprocess.Popen(worker, cwd=live.root, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, victim = time.monotonic() + 300, None
        while time.monotonic() < deadline and victim is None:
            r = httpx.get(f"{api.url}/api/studies/killed/trials")
            trials = r.json() if r.status_code == 200 else []
            running = [t for t in trials if t["state"] == "running" and t["recipe"]]
            if sum(t["state"] == "complete" for t in trials) >= 2 and running:
                victim = running[0]["number"]
                os.killpg(first.pid, signal.SIGKILL)  # the worker and its trial's process, mid-trial
            time.sleep(0.2)
        assert victim is not None, "no trial was caught running"
        first.wait(30)
        second = subprocess.Popen(worker, cwd=live.root, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and httpx.get(f"{api.url}/api/studies/killed").json()["state"] != "done":
                time.sleep(1)
            study = httpx.get(f"{api.url}/api/studies/killed").json()
            assert (study["state"], study["evaluated"]) == ("done", 5), study
            trials = httpx.get(f"{api.url}/api/studies/killed/trials").json()
            assert trials[victim]["state"] == "fail"  # its heartbeat went silent: failed, then run again
            assert any(t["params"] == trials[victim]["params"] and t["state"] == "complete" for t in trials[victim + 1 :])
        finally:
            os.killpg(second.pid, signal.SIGKILL)
    finally:
        stop(api)


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="Chromium not installed (tests/install-system.sh)")
def test_a_person_submits_watches_and_downloads_in_a_real_browser(live: Live, demo_files: tuple[Path, Path], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    model, data = demo_files
    seen: list[tuple[str, int]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True, viewport={"width": 1280, "height": 1100})
            page.goto(live.url + "/")
            page.wait_for_selector("#space option[value=quick], #space option:text('quick')", state="attached")
            page.set_input_files("#model", str(model))
            page.set_input_files("#data", str(data))
            page.fill("#study", "browser")
            page.select_option("#space", "quick")
            page.fill("#budget", "3")
            page.click("#send")
            page.wait_for_selector("#study-state")
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                state = page.text_content("#study-state") or ""
                seen.append((state, page.locator("#trials-table tbody tr").count()))
                if state in ("done", "failed", "cancelled"):
                    break
                time.sleep(0.5)
            assert seen[-1][0] == "done", (seen[-5:], page.text_content("#study-head"))
            # The page updated while the study ran: trials showed before it was done.
            assert any(state in ("queued", "running") for state, _ in seen)
            assert any(state == "running" and rows >= 1 for state, rows in seen), seen
            page.wait_for_selector("#front-line", state="attached")
            assert page.locator(".front-dot").count() >= 1
            assert page.locator("#trials-table tbody tr").count() >= 3
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            with page.expect_download(timeout=300_000) as download:
                page.click("#export")
            saved = tmp_path / download.value.suggested_filename
            download.value.save_as(saved)
            page.screenshot(path=str(tmp_path / "exported.png"), full_page=True)
        finally:
            browser.close()
    print(f"screenshots: {tmp_path / 'page.png'} {tmp_path / 'exported.png'}")
    assert saved.name.startswith("browser-trial") and saved.suffix == ".zip"
    with zipfile.ZipFile(saved) as z:
        assert sorted(z.namelist()) == ["MODEL_CARD.md", "manifest.json", "model.tflite"]
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["study"] == "browser"
    assert manifest["verified_accuracy"] == pytest.approx(manifest["metrics"]["accuracy"], abs=1e-6)
    shots = os.environ.get("AUTOTUNE_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        for name in ("page.png", "exported.png"):
            shutil.copy(tmp_path / name, Path(shots) / name)
