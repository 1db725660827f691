"""A NUL anywhere in a request string is a 4xx problem, never a 500 (PostgreSQL cannot store
NUL); and the database's own refusal of such text maps to 422 INVALID_CHARACTERS."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import factories
import psycopg
import pytest
from factories import API, PASSWORD, signup
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from support import bearer, run

from server.problems import unexpected_problem
from server.settings import Settings

NUL_VALUES = ["\x00", "\x00abc", "ab\x00c", "abc\x00"]


pytestmark = pytest.mark.usefixtures("cheap_argon2")


@pytest.fixture
def world(client: TestClient, admin_key: str, owner_db: psycopg.Connection) -> dict[str, Any]:
    body = signup(client, email="owner@example.com")
    user = body["headers"]
    project = client.post(f"{API}/projects", json={"name": "P"}, headers=user)
    assert project.status_code == 201, project.text
    factories.product(owner_db, "cli", {}, name="CLI")
    return {
        "user": user,
        "admin": bearer(admin_key),
        "org": body["organization"]["id"],
        "user_id": body["user"]["id"],
        "project": project.json()["id"],
    }


def _signup(value: str, field: str) -> dict[str, Any]:
    body = {
        "email": "new@example.com",
        "password": PASSWORD,
        "full_name": "New",
        "organization_name": "New Org",
    }
    body[field] = body[field] + value if field == "full_name" else value
    if field == "email":
        body["email"] = f"n{value}w@example.com"
    return body


# (method, path, json body or None, who) built from the NUL value and the world.
CASES = {
    "signup full_name": lambda v, w: ("POST", "/auth/signup", _signup(v, "full_name"), None),
    "signup email": lambda v, w: ("POST", "/auth/signup", _signup(v, "email"), None),
    "signup organization_name": lambda v, w: (
        "POST",
        "/auth/signup",
        _signup(v, "organization_name"),
        None,
    ),
    "login email": lambda v, w: (
        "POST",
        "/auth/login",
        {"email": f"owner{v}@example.com", "password": PASSWORD},
        None,
    ),
    "project name": lambda v, w: ("POST", "/projects", {"name": v}, "user"),
    "project description": lambda v, w: (
        "POST",
        "/projects",
        {"name": "ok", "description": v},
        "user",
    ),
    "project rename": lambda v, w: ("PATCH", f"/projects/{w['project']}", {"name": v}, "user"),
    "organization name": lambda v, w: ("POST", "/organizations", {"name": v}, "admin"),
    "organization rename": lambda v, w: (
        "PATCH",
        f"/organizations/{w['org']}",
        {"name": v},
        "user",
    ),
    "api key name": lambda v, w: ("POST", "/api-keys", {"name": v, "scopes": ["*"]}, "admin"),
    "user full_name": lambda v, w: (
        "POST",
        "/users",
        {"email": "u@example.com", "full_name": v, "password": PASSWORD},
        "user",
    ),
    "user email": lambda v, w: (
        "POST",
        "/users",
        {"email": f"u{v}@example.com", "full_name": "U", "password": PASSWORD},
        "user",
    ),
    "user rename": lambda v, w: ("PATCH", f"/users/{w['user_id']}", {"full_name": v}, "user"),
    "product name": lambda v, w: ("POST", "/products", {"code": "x", "name": v}, "admin"),
    "product path": lambda v, w: ("GET", f"/products/a{quote(v)}", None, "admin"),
    "tier path": lambda v, w: ("GET", f"/products/cli/tiers/a{quote(v)}", None, "admin"),
    "licenses ?product=": lambda v, w: ("GET", "/licenses", {"product": v}, "admin"),
    "audit ?action=": lambda v, w: ("GET", "/audit-events", {"action": v}, "admin"),
    "audit ?target_id=": lambda v, w: ("GET", "/audit-events", {"target_id": v}, "admin"),
}


@pytest.mark.parametrize("value", NUL_VALUES, ids=["only", "start", "middle", "end"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_nul_is_a_client_error(
    client: TestClient, world: dict[str, Any], case: str, value: str
) -> None:
    method, path, body, who = CASES[case](value, world)
    headers = world[who] if who else {}
    if method == "GET":
        response = client.get(API + path, params=body, headers=headers)
    else:
        response = client.request(method, API + path, json=body, headers=headers)
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")


def test_database_refusing_nul_is_a_422_problem(settings: Settings) -> None:
    async def database_error() -> Exception:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT CAST(:v AS text)"), {"v": "a\x00b"})
        except Exception as exc:
            return exc
        finally:
            await engine.dispose()
        raise AssertionError("PostgreSQL accepted a NUL")

    problem = unexpected_problem(run(database_error()))
    assert problem.status_code == 422
    assert problem.extra["code"] == "INVALID_CHARACTERS"


def test_database_refusing_a_nul_escape_in_jsonb_is_a_422_problem(settings: Settings) -> None:
    async def database_error() -> Exception:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT CAST(:v AS jsonb)"), {"v": '"a\\u0000"'})
        except Exception as exc:
            return exc
        finally:
            await engine.dispose()
        raise AssertionError("PostgreSQL accepted a NUL escape")

    problem = unexpected_problem(run(database_error()))
    assert problem.status_code == 422
    assert problem.extra["code"] == "INVALID_CHARACTERS"
