"""Hostile bodies on every route that takes one: never a 500, always a problem with a `code`,
never a traceback in the log.

The routes come from the OpenAPI document (every POST, PATCH and PUT), so a new route is
fuzzed without being listed here. Each gets a fixed sweep of known-bad bodies, then
hypothesis mixes them: invalid encodings, deep nesting, huge numbers, odd Unicode (lone
surrogates, NUL, RTL marks, emoji) and wrong types, as nobody, an admin API key and a user.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

import factories
import psycopg
import pytest
from factories import PASSWORD, signup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from support import bearer

pytestmark = pytest.mark.usefixtures("cheap_argon2")

PROBLEM = "application/problem+json"
WRITE_METHODS = {"post", "patch", "put"}

ODD_STRINGS = [
    "\x00",
    "a\x00b",
    "\u202eevil\u202c",  # right-to-left override
    "\u200f\u200e\u061c",  # direction marks
    "\u200b\ufeff",  # zero width, BOM
    "😀👩‍💻🏳️‍🌈",
    "\uffff\ufffe",  # non-characters
    "e\u0301\u0308\u20dd",  # combining marks
    "\U0010ffff",
    "\ud800x",  # a lone surrogate: escaped, or (in raw UTF-8) invalid UTF-8
    "\udfff",
    "\r\n\t\x1b[31m",
    "x" * 300,
    "",
    " ",
]
# Raw JSON texts, spliced in as a field's value: numbers no float holds, escapes no string holds.
RAW_VALUES = [
    "1e400",
    "-1e400",
    "1" + "0" * 400,  # 10**400
    "-" + "9" * 5000,
    "1e-400",
    "0.0000000000000000000000000000001",
    "18446744073709551616",  # 2**64
    "-9223372036854775809",
    '"\\ud800"',  # lone high surrogate
    '"\\udfff"',  # lone low surrogate
    '"\\udc00\\ud800"',
    '"\\u0000"',
    '"a\\u0000"',
    '"\\u202e"',
    '"\\ud83d\\ude00"',  # a valid pair (emoji)
    "[" * 40 + "]" * 40,
    '{"a":' * 40 + "1" + "}" * 40,
    "true",
    "null",
    "[]",
    "{}",
]
# Whole bodies that cannot be decoded as this API's JSON.
FIXED_BODIES = [
    b'{"name": "\xc3\x28", "email": "\xff"}',  # invalid UTF-8 in strings
    b'{"name": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8
    '{"name": "x"}'.encode("utf-16"),
    b"[" * 1000 + b"]" * 1000,
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'{"name": 1e400, "max_activations": ' + b"1" + b"0" * 400 + b"}",
    b'{"name": "\\ud800", "email": "\\u0000"}',
    b'{"a": NaN}',
]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, properties of the JSON body) for every write route."""
    schemas = document["components"]["schemas"]
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in WRITE_METHODS:
                continue
            properties: dict[str, Any] = {}
            body = operation.get("requestBody")
            if body:
                schema = body["content"]["application/json"]["schema"]
                for ref in [schema, *schema.get("oneOf", [])]:
                    if "$ref" in ref:
                        properties = schemas[ref["$ref"].rsplit("/", 1)[-1]].get("properties", {})
            found.append((method, path, properties))
    return found


@pytest.fixture
def world(client: TestClient, admin_key: str, owner_db: psycopg.Connection) -> dict[str, Any]:
    """A product with a tier, an organization with a license, and a user who signed up: ids
    the fuzzed requests can name, so they reach the services and not only the decoder."""
    admin = bearer(admin_key)
    factories.product(owner_db, "cli", {"pro": factories.Tier(max_activations=3)}, name="CLI")
    org = factories.organization(owner_db)
    lic = factories.license(factories.AdminApi(client, admin), org, "cli", "pro").body
    person = signup(client, "Fuzzers", "fuzz@example.com", full_name="Fuzz")
    operations = _operations(client.get("/schema/openapi.json").json())
    assert len(operations) >= 25, "the routes were not found in the OpenAPI document"
    return {
        "operations": operations,
        "ids": {
            "license_id": lic["id"],
            "organization_id": str(org),
            "user_id": person["user"]["id"],
            "code": "cli",
            "tier_code": "pro",
        },
        "license_key": lic["key"],
        "headers": {
            "nobody": {},
            "admin": admin,
            "user": bearer(person["access_token"]),
        },
    }


def _url(path: str, ids: dict[str, str], real_ids: bool) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return ids.get(name, str(uuid.uuid4())) if real_ids else str(uuid.uuid4())

    return re.sub(r"\{(\w+)\}", fill, path)


class Checker:
    """Sends one request and checks the answer and what the server logged for it."""

    def __init__(self, client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
        self.client = client
        self.caplog = caplog
        self.sent = 0

    def __call__(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.caplog.clear()
        response = self.client.request(
            method.upper(),
            url,
            content=body,
            headers={**headers, "content-type": "application/json"},
        )
        self.sent += 1
        where = f"{method.upper()} {url} {body[:120]!r}"
        assert response.status_code < 500, f"{where} -> {response.status_code} {response.text}"
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith(PROBLEM), where
            problem = response.json()
            assert problem.get("code") and problem["status"] == response.status_code, where
        logged = [
            f"{r.name} {r.levelname} {r.getMessage()}"
            for r in self.caplog.records
            if r.exc_info or r.levelno >= logging.ERROR
        ]
        assert not logged, f"{where} logged {logged}"


@pytest.fixture
def check(client: TestClient, caplog: pytest.LogCaptureFixture) -> Checker:
    caplog.set_level(logging.INFO)
    return Checker(client, caplog)


def _public(path: str) -> bool:
    """Routes that take no bearer credential (the body authenticates, or nothing does)."""
    return "/auth/" in path or path.rsplit("/", 1)[-1] in PRODUCT_ROUTES


PRODUCT_ROUTES = {"validate", "activate", "check-in", "deactivate"}


def test_known_bad_bodies_on_every_write_route(world: dict[str, Any], check: Checker) -> None:
    for method, path, _ in world["operations"]:
        for principal in ("nobody", "admin") if _public(path) else ("admin",):
            for body in FIXED_BODIES:
                url = _url(path, world["ids"], real_ids=False)
                check(method, url, body, world["headers"][principal])
    assert check.sent >= 25 * len(FIXED_BODIES)


# --- hypothesis: bodies built from each route's own fields ----------------------------------

DATES = [
    "2027-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "8999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2027-01-01T00:00:00",  # naive
    "2027-13-45T99:00:00Z",
]
EMAILS = ["fuzz@example.com", "ü@exämple.com", "a@b", "\u202e@example.com", "x@" + "y" * 300]
INTEGER_EDGES = [0, -1, 1, 2**31, 2**53 + 1, 2**63, -(2**63) - 1, 10**20]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
keys = st.one_of(st.text(min_size=1, max_size=10), st.sampled_from(ODD_STRINGS))


def _sized(text: str, shortest: int, longest: int) -> str:
    return (text + "x" * shortest)[: max(shortest, min(len(text), longest))]


def _string(name: str, schema: dict[str, Any], world: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Mostly strings the schema accepts (any Unicode its pattern allows), sometimes not."""
    shortest, longest = int(schema.get("minLength", 0)), int(schema.get("maxLength", 64))
    fmt, pattern = schema.get("format"), schema.get("pattern")
    if fmt == "date-time":
        return st.sampled_from(DATES)
    if fmt == "uuid":
        return st.sampled_from([*world["ids"].values(), str(uuid.uuid4()), "not-a-uuid"])
    conforming = (st.from_regex(pattern, fullmatch=True) if pattern else st.text()).map(
        lambda text: _sized(text, shortest, longest)
    )
    odd = st.one_of(
        st.sampled_from(ODD_STRINGS),
        st.sampled_from(["é" * longest, "😀" * longest, "x" * (longest + 1)]),
    )
    choices = [conforming, conforming, conforming, odd]
    if pattern and pattern.startswith("^[a-z]"):  # a code: the real ones reach the catalog
        choices.append(st.sampled_from(["cli", "pro"]))
    if "email" in name:
        choices += [st.sampled_from(EMAILS)] * 3
    if "password" in name:
        choices += [st.just(PASSWORD)] * 3
    if name == "license_key":
        choices += [st.just(world["license_key"])] * 3
    return st.one_of(*choices)


def _typed(name: str, schema: dict[str, Any], world: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the field's documented type (with odd content and edge sizes), or of any."""
    merged = [{**schema, **option} for option in schema.get("oneOf", [schema])]
    choices: list[st.SearchStrategy[Any]] = []
    if "enum" in schema:
        choices.append(st.sampled_from(schema["enum"]))
    for option in merged:
        kind = option.get("type")
        if kind == "string":
            choices.append(_string(name, option, world))
        elif kind == "integer":
            low, high = option.get("minimum"), option.get("maximum")
            bounded = st.integers(
                min_value=int(low) if low is not None else None,
                max_value=int(high) if high is not None else None,
            )
            choices.append(st.one_of(bounded, bounded, st.sampled_from(INTEGER_EDGES)))
        elif kind == "number":
            choices.append(st.sampled_from([1e308, -0.0, 5e-324, 0.1]))
        elif kind == "boolean":
            choices.append(st.booleans())
        elif kind == "object":
            choices.append(st.dictionaries(keys, json_values, max_size=4))
        elif kind == "array":
            item = _typed(name, option.get("items", {}), world)
            choices.append(st.lists(item, max_size=4))
    return st.one_of(*choices) if choices else json_values


@st.composite
def fuzzed_request(draw: st.DrawFn, world: dict[str, Any]) -> Any:
    method, path, properties = draw(st.sampled_from(world["operations"]))
    names = [*sorted(properties), "unknown_field"]
    fields = draw(st.lists(st.sampled_from(sorted(properties) or names), unique=True))
    if draw(st.integers(0, 2)) > 0:  # mostly complete, so that the services are reached
        fields = sorted(set(fields) | set(properties))
    if draw(st.integers(0, 5)) == 0:
        fields.append("unknown_field")
    obj = {name: draw(_typed(name, properties.get(name, {}), world)) for name in fields}
    if obj and draw(st.integers(0, 2)) == 0:  # a wrong type somewhere
        obj[draw(st.sampled_from(sorted(obj)))] = draw(json_values)
    kind = draw(st.sampled_from(["values"] * 5 + ["raw value", "encoding", "deep", "bytes"]))
    if kind == "values":
        body = json.dumps(obj, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    elif kind == "raw value":
        name = draw(st.sampled_from(names))
        rest = json.dumps({k: v for k, v in obj.items() if k != name})
        splice = f'"{name}": {draw(st.sampled_from(RAW_VALUES))}'
        body = ("{" + splice + (", " + rest[1:] if rest != "{}" else "}")).encode()
    elif kind == "encoding":
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]))
        obj["unknown_field"] = "é ü ß ñ"  # not ASCII, so not UTF-8 once encoded so
        body = json.dumps(obj, ensure_ascii=False).encode(encoding, "replace")
    elif kind == "deep":
        depth = draw(st.sampled_from([32, 33, 200, 999, 1000, 5000]) | st.integers(20, 1500))
        nested = "[" * depth + "]" * depth
        body = f'{{"{draw(st.sampled_from(names))}": {nested}}}'.encode()
    else:
        body = draw(st.binary(max_size=64))
    if _public(path):
        principal = draw(st.sampled_from(["nobody", "nobody", "user"]))
    else:
        principal = draw(st.sampled_from(["admin", "admin", "admin", "user", "nobody"]))
    # Real ids let a body reach its resource; routes without a body (revoke, suspend) only
    # get unknown ones, so that they never change the world the others rely on.
    return method, path, body, principal, bool(properties) and draw(st.booleans())


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_bodies_on_every_write_route(
    world: dict[str, Any], check: Checker, data: st.DataObject
) -> None:
    method, path, body, principal, real_ids = data.draw(fuzzed_request(world))
    check(method, _url(path, world["ids"], real_ids), body, world["headers"][principal])
