"""The service's API refuses bad input with a 4xx and one line, and stores nothing when it does.

Requests go through FastAPI's test client to the real app over a real SQLite storage; the
submission checks run in the app's own spawned process, as in `autotune serve`.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from autotune.service.app import Service, create_app  # noqa: E402
from autotune.service.uploads import Folders  # noqa: E402
from autotune.storage import store  # noqa: E402


@pytest.fixture
def service(tmp_path: Path) -> Any:
    svc = Service(f"sqlite:///{tmp_path / 'db.sqlite'}", Folders(tmp_path / "data"), max_upload_bytes=1 << 20)
    yield svc
    svc.tasks.close()


@pytest.fixture
def client(service: Service) -> TestClient:
    return TestClient(create_app(service))


def stored(svc: Service) -> tuple[Any, ...]:
    """Everything a submission could leave behind: queue rows, studies, kept and staged files."""
    return (
        [j.as_dict() for j in svc.queue.jobs()],
        store.study_names(svc.storage()),
        sorted(p.name for p in svc.folders.uploads.iterdir()),
        sorted(p.name for p in svc.folders.staging.iterdir()),
    )


def npz(x_shape: tuple[int, ...], classes: int = 3) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(
        buf,
        x_train=rng.random((24, *x_shape), dtype=np.float32),
        y_train=rng.integers(0, classes, 24),
        x_val=rng.random((12, *x_shape), dtype=np.float32),
        y_val=rng.integers(0, classes, 12),
    )
    return buf.getvalue()


def one_line(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail
    return detail


@pytest.mark.parametrize(
    ("files", "form", "status", "says"),
    [
        ({"model": ("m.keras", b"x")}, {}, 422, "--model needs --data"),
        ({"data": ("d.npz", b"x")}, {}, 422, "--data needs --model"),
        ({"model": ("m.exe", b"x"), "data": ("d.npz", b"x")}, {}, 422, "the model upload must be a .keras, .h5, .zip file, got 'm.exe'"),
        ({"model": ("m.keras", b"x"), "data": ("d.csv", b"x")}, {}, 422, "the data upload must be a .npz, .zip file"),
        ({}, {"model_name": "../../etc/passwd", "data_name": "d.npz"}, 422, "must be a bare file name in the server's files folder, not a path"),
        ({}, {"model_name": "/etc/passwd", "data_name": "d.npz"}, 422, "not a path"),
        ({}, {"model_name": "absent.keras", "data_name": "d.npz"}, 422, "no model named 'absent.keras' in the server's files folder"),
        ({}, {"space": "/tmp/evil.py"}, 422, "search space must be one of default, mobile-int8, pruning, quick, not '/tmp/evil.py'"),
        ({}, {"objective": "../objectives/latency"}, 422, "objective must be one of"),
        ({}, {"study": "../x"}, 422, "study name '../x' must be 1-100 letters"),
        ({}, {"budget": "ten"}, 422, "budget: Input should be a valid integer"),
        ({}, {"budget": "0"}, 422, "budget: Input should be greater than or equal to 1"),
        ({}, {"max_accuracy_drop": "-1"}, 422, "max_accuracy_drop: Input should be greater than or equal to 0"),
    ],
)
def test_a_bad_submission_gets_one_line_and_stores_nothing(service: Service, client: TestClient, files: dict, form: dict, status: int, says: str) -> None:
    before = stored(service)
    assert says in one_line(client.post("/api/studies", files=files, data=form), status)
    assert stored(service) == before


def test_a_zip_that_reaches_outside_itself_is_refused(service: Service, client: TestClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../../escaped/saved_model.pb", b"x")
    before = stored(service)
    line = one_line(client.post("/api/studies", files={"model": ("m.zip", buf.getvalue()), "data": ("d.npz", npz((4,)))}), 422)
    assert line == "the model zip holds a path outside itself: '../../escaped/saved_model.pb'"
    assert stored(service) == before
    assert not (service.folders.root.parent / "escaped").exists()


def test_an_upload_over_the_limit_is_refused_while_it_streams(service: Service, client: TestClient) -> None:
    before = stored(service)
    big = b"\0" * (2 << 20)  # the fixture's limit is 1 MiB
    line = one_line(client.post("/api/studies", files={"model": ("m.keras", big), "data": ("d.npz", b"x")}), 413)
    assert line == "upload over the server's limit of 1 MiB"

    def chunks():  # no Content-Length: the count while it streams must stop it
        for _ in range(4):
            yield b"\0" * (512 << 10)

    r = client.post("/api/studies", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert one_line(r, 413) == "upload over the server's limit of 1 MiB"
    assert stored(service) == before


def test_off_loopback_every_request_needs_the_token(tmp_path: Path) -> None:
    svc = Service(f"sqlite:///{tmp_path / 'db.sqlite'}", Folders(tmp_path / "data"), require_token=True)
    client = TestClient(create_app(svc))
    token = svc.queue.new_token()
    before = stored(svc)
    for method, path in (("get", "/api/studies"), ("post", "/api/studies"), ("get", "/openapi.json"), ("get", "/api/studies/x/export")):
        r = getattr(client, method)(path)
        assert "needs its bearer token" in one_line(r, 401)
        r = getattr(client, method)(path, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
    assert client.get("/api/studies", headers={"Authorization": f"Bearer {token}"}).json() == []
    assert client.get("/").status_code == 200  # the page itself holds no data; it asks for the token
    assert stored(svc) == before
    # Only the token's hash is stored.
    with svc.queue.engine.connect() as conn:
        rows = conn.exec_driver_sql("select sha256 from autotune_tokens").fetchall()
    assert rows and token not in str(rows)


def test_the_storage_password_never_appears(tmp_path: Path, postgres_url: str) -> None:
    svc = Service(postgres_url, Folders(tmp_path / "data"))
    client = TestClient(create_app(svc))
    texts = [client.get(p).text for p in ("/", "/api/studies", "/api/options", "/openapi.json", "/api/studies/none")]
    texts.append(client.post("/api/studies", data={"space": "nope"}).text)
    assert not any("s3cret-pw" in t for t in texts)


def test_unknown_studies_are_404_and_cancel_or_resume_say_why(client: TestClient) -> None:
    assert one_line(client.get("/api/studies/none"), 404) == "no study named 'none'"
    assert one_line(client.get("/api/studies/none/front"), 404) == "no study named 'none'"
    assert one_line(client.post("/api/studies/none/cancel"), 422) == "no study named 'none' was submitted to this service"
    assert one_line(client.post("/api/studies/none/resume", json={"budget": 3}), 422) == "no study named 'none' was submitted to this service"


@pytest.mark.slow
def test_a_queued_study_can_be_cancelled_and_resumed_with_a_larger_budget(service: Service, client: TestClient) -> None:
    r = client.post("/api/studies", data={"study": "q", "space": "quick", "budget": "3"})
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "queued"
    assert one_line(client.post("/api/studies", data={"study": "q"}), 422) == "a study named 'q' exists already; resume it, or submit under another name"
    assert client.post("/api/studies/q/cancel").json()["state"] == "cancelled"
    assert one_line(client.post("/api/studies/q/resume", json={"budget": 2}), 422) == "the budget can only be raised: study 'q' has 3, not 2"
    resumed = client.post("/api/studies/q/resume", json={"budget": 5}).json()
    assert (resumed["state"], resumed["budget"]) == ("queued", 5)
    assert [s["name"] for s in client.get("/api/studies").json()] == ["q"]


@pytest.mark.slow
def test_a_corrupt_model_and_wrong_shape_data_get_the_command_lines_message(
    service: Service, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from autotune._keras import keras
    from autotune.cli import app

    k = keras()
    model = k.Sequential([k.layers.Input((8,)), k.layers.Dense(3)])
    model.save(tmp_path / "m.keras")
    (tmp_path / "wrong.npz").write_bytes(npz((5,)))
    before = stored(service)

    corrupt = one_line(client.post("/api/studies", files={"model": ("m.keras", b"not a model"), "data": ("d.npz", npz((8,)))}), 422)
    assert corrupt.startswith("cannot load model (the uploaded model 'm.keras'):")

    with (tmp_path / "m.keras").open("rb") as f:
        wrong = one_line(client.post("/api/studies", files={"model": ("m.keras", f), "data": ("wrong.npz", npz((5,)))}), 422)
    monkeypatch.chdir(tmp_path)
    cli = CliRunner().invoke(app, ["run", "--model", "m.keras", "--data", "wrong.npz", "--budget", "1"])
    assert cli.exit_code == 2
    cli_line = cli.output.strip().splitlines()[-1].removeprefix("autotune: error: ")
    # The same line as the command line's, with the uploads named instead of server paths.
    label_m, label_d = "(the uploaded model 'm.keras')", "(the uploaded data 'wrong.npz')"
    assert wrong == cli_line.replace(str(tmp_path / "wrong.npz"), label_d).replace(str(tmp_path / "m.keras"), label_m), (wrong, cli_line)
    assert stored(service) == before


@pytest.mark.slow
def test_a_model_with_code_is_refused_unless_the_server_trusts_model_code(service: Service, client: TestClient, tmp_path: Path) -> None:
    from autotune._keras import keras

    k = keras()
    model = k.Sequential([k.layers.Input((8,)), k.layers.Lambda(lambda x: x * 2.0), k.layers.Dense(3)])
    model.save(tmp_path / "lambda.keras")
    before = stored(service)
    with (tmp_path / "lambda.keras").open("rb") as f:
        line = one_line(client.post("/api/studies", files={"model": ("lambda.keras", f), "data": ("d.npz", npz((8,)))}), 422)
    assert "Lambda" in line and "start the server with --trust-model-code" in line, line
    assert stored(service) == before


def test_the_command_line_says_in_one_line_when_it_has_no_server_or_cannot_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from autotune.cli import app

    monkeypatch.delenv("AUTOTUNE_SERVER", raising=False)
    r = CliRunner().invoke(app, ["submit", "--space", "quick"])
    assert r.exit_code == 2 and r.output.strip() == "autotune: error: no server given: pass --server URL or set $AUTOTUNE_SERVER"
    r = CliRunner().invoke(app, ["submit", "m.keras", "--server", "http://127.0.0.1:9"])
    assert r.exit_code == 2 and "give both MODEL and DATA, or neither (the demo)" in r.output
    monkeypatch.setenv("AUTOTUNE_SERVER", "http://127.0.0.1:9")  # nothing listens on the discard port
    r = CliRunner().invoke(app, ["front", "demo"])
    assert r.exit_code == 2
    assert r.output.startswith("autotune: error: cannot reach the autotune server at http://127.0.0.1:9:") and r.output.count("\n") == 1
