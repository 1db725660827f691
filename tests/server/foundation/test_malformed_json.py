"""A body that is not UTF-8, or JSON nested too deeply, is a 400 MALFORMED_JSON on every JSON
route, authenticated or not, and is logged as one access line: no 500, no traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import pytest
from litestar.testing import TestClient
from support import bearer

from server import observability
from server.product_licensing.cli import _read_request
from server.product_licensing.schemas import ActivateRequest
from server.validation import MAX_JSON_DEPTH, json_nesting_exceeds

PROBLEM = "application/problem+json"

# Public routes (the license key or the password authenticates) and admin ones.
PUBLIC = [
    "/api/v1/licenses/validate",
    "/api/v1/licenses/activate",
    "/api/v1/licenses/check-in",
    "/api/v1/licenses/deactivate",
    "/api/v1/auth/login",
    "/api/v1/auth/signup",
    "/api/v1/auth/refresh",
]
ADMIN = ["/api/v1/api-keys", "/api/v1/licenses", "/api/v1/products", "/api/v1/keys/rotate"]


def _nested(depth: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * depth + close * depth


BODIES = {
    "invalid UTF-8 in a string": b'{"license_key": "\xff\xfe", "product": "x"}',
    "a lone UTF-8 surrogate": b'{"email": "\xed\xa0\x80@example.com"}',
    "invalid UTF-8 outside strings": b"\xff\xfe{}",
    "arrays 1,000 deep": _nested(1000),
    "objects 1,000 deep": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "just past the depth limit": b'{"metadata": ' + _nested(MAX_JSON_DEPTH) + b"}",
}


def _errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_undecodable_bodies_are_400_malformed_json(
    client: TestClient,
    admin_key: str,
    body: bytes,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Access lines through `logging` (where caplog sees them), not the batched JSON writer
    # that an earlier in-process `licentia` command may have installed for the process.
    monkeypatch.setattr(observability, "_access_lines", None)
    caplog.set_level(logging.INFO)
    for path in PUBLIC + ADMIN:
        headers = {"content-type": "application/json"}
        if path in ADMIN:
            headers.update(bearer(admin_key))
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["code"] == "MALFORMED_JSON", (path, response.text)
    assert _errors_logged(caplog) == []
    access = [r for r in caplog.records if r.name == "licentia.access"]
    assert len(access) == len(PUBLIC + ADMIN)


def test_nesting_up_to_the_limit_is_decoded(client: TestClient, admin_key: str) -> None:
    # Deep but allowed: it reaches the schema, which answers (422 here), not the decoder.
    body = b'{"name": ' + _nested(MAX_JSON_DEPTH - 1) + b"}"
    response = client.post(
        "/api/v1/api-keys",
        content=body,
        headers={**bearer(admin_key), "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_a_missing_body_is_a_422_saying_so(client: TestClient, admin_key: str) -> None:
    for path, headers in [("/api/v1/api-keys", bearer(admin_key)), (PUBLIC[0], {})]:
        response = client.post(path, content=b"", headers=headers)
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["code"] == "VALIDATION_ERROR"
        assert body["detail"] == "data: a JSON body is required"


def test_nesting_depth_is_counted_without_recursion() -> None:
    value: object = 1
    for _ in range(100_000):
        value = [value]
    assert json_nesting_exceeds(value)
    assert not json_nesting_exceeds({"a": [{"b": []}]}, limit=4)
    assert json_nesting_exceeds({"a": [{"b": []}]}, limit=3)
    assert not json_nesting_exceeds([[], {}, [[]]], limit=3)


def test_an_offline_request_file_that_is_not_utf8_is_a_cli_error(tmp_path: Path) -> None:
    path = tmp_path / "request.json"
    path.write_bytes(b'{"license_key": "\xff\xfe", "product": "cli", "fingerprint": "f"}')
    with pytest.raises(click.ClickException, match="is not a valid"):
        _read_request(path, ActivateRequest, "activation-request")
