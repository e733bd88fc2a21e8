"""Fuzz the service's OpenAPI schema (schemathesis): whatever a client sends, no answer is a 500."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from autotune.service.app import Service, create_app  # noqa: E402
from autotune.service.uploads import Folders  # noqa: E402

pytestmark = pytest.mark.slow


def _app() -> object:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="autotune-fuzz-"))
    return create_app(Service(f"sqlite:///{root / 'db.sqlite'}", Folders(root / "data"), max_upload_bytes=1 << 20))


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())
STATUSES: list[tuple[str, int]] = []


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call()
    STATUSES.append((f"{case.method} {case.path}", response.status_code))
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        detail = response.json().get("detail")
        assert isinstance(detail, str) and "\n" not in detail, response.text


def test_the_fuzzing_reached_past_validation() -> None:
    """Not only refusals: some generated submissions were checked and queued (201)."""
    assert ("POST /api/studies", 201) in STATUSES, sorted(set(STATUSES))
