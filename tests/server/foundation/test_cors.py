"""CORS for browser clients: allowed origins come from settings, none by default."""

from __future__ import annotations

import msgspec
from litestar.testing import TestClient

from server.app import create_app
from server.settings import Settings

ORIGIN = "https://ide.example.com"


def _preflight(client: TestClient, origin: str):
    return client.options(
        "/api/v1/licenses/validate",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_allowed_origin_gets_cors_headers(settings: Settings, signing_key: str) -> None:
    with TestClient(create_app(msgspec.structs.replace(settings, cors_origins=(ORIGIN,)))) as c:
        response = _preflight(c, ORIGIN)
        assert response.status_code in (200, 204)
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in response.headers["access-control-allow-methods"]
        other = _preflight(c, "https://evil.example.com")
        assert other.headers.get("access-control-allow-origin") != "https://evil.example.com"
        live = c.get("/health/live", headers={"Origin": ORIGIN})
        assert live.headers["access-control-allow-origin"] == ORIGIN
        assert "x-request-id" in live.headers["access-control-expose-headers"].lower()


def test_no_origin_is_allowed_by_default(client: TestClient) -> None:
    response = client.get("/health/live", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers
