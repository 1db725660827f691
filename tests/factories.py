"""The one place tests make things: organizations, users, products with tiers, licenses,
activations and the users assigned to licenses (named-user seats).

Two ways in, one function per thing:

- **through the API**, where the test is about the API: ``signup`` and ``add_user`` (a
  customer and the people of their organization), ``license`` given an ``AdminApi`` (the
  admin service behind ``POST /licenses``, with its real rules);
- **as rows**, where a test only needs a thing to exist or is about the database itself
  (row-level security, the SQL copies of the license rules): ``organization``, ``user``,
  ``product``, ``license`` and ``activation`` given a psycopg connection as the schema owner
  (a superuser in the test database, so row-level security does not stand in the way).

Helpers only; the fixtures that wrap them (``owner_db``, ``make_license``, ``cheap_argon2``,
``catalog``, ``make_org``, ``issue``, ``add_activation``, ...) live in conftest.py files.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import psycopg
import pytest
from argon2 import PasswordHasher
from support import bearer

from keys.crypto import parse_kek
from server.auth import service as auth_service
from server.auth.principal import access_token_secret, issue_access_token
from server.license_admin.facts import new_license_key
from server.license_rules import hash_license_key
from server.settings import Settings

API = "/api/v1"
PASSWORD = "correct horse battery"
PRODUCT = "local_cli"
FEATURES = {"plugins": True, "max_projects": 50, "support": "email"}


class Poster(Protocol):
    """A Litestar ``TestClient`` or an ``httpx.Client`` (a live server)."""

    def post(self, url: str, **kwargs: Any) -> Any: ...


def use_cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cheapest argon2id parameters: the tests exercise the flows, not the hash."""
    monkeypatch.setattr(
        auth_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


# --- people, through the API ----------------------------------------------------------------


def new_email() -> str:
    return f"{uuid.uuid4().hex[:10]}@example.com"


def signup(
    client: Poster,
    org: str = "Acme",
    email: str | None = None,
    *,
    full_name: str = "Owner",
    password: str = PASSWORD,
) -> dict[str, Any]:
    """Sign up a new organization and its owner; the 201 body plus the owner's ``headers``."""
    response = client.post(
        f"{API}/auth/signup",
        json={
            "email": email or new_email(),
            "password": password,
            "full_name": full_name,
            "organization_name": org,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    body["headers"] = bearer(body["access_token"])
    return body


def login(client: Poster, email: str, password: str = PASSWORD) -> Any:
    """``POST /auth/login``; the response, whatever it is."""
    return client.post(f"{API}/auth/login", json={"email": email, "password": password})


def add_user(
    client: Poster, headers: dict[str, str], role: str = "member", *, email: str | None = None
) -> dict[str, Any]:
    """Add a user with ``role`` to the caller's organization and log them in; the user and its
    ``headers``."""
    email = email or new_email()
    response = client.post(
        f"{API}/users",
        headers=headers,
        json={"email": email, "full_name": role.title(), "role": role, "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    token = login(client, email)
    assert token.status_code == 200, token.text
    return {**response.json(), "headers": bearer(token.json()["access_token"])}


# --- rows, as the schema owner --------------------------------------------------------------


def organization(
    db: psycopg.Connection,
    name: str = "Acme",
    *,
    id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> uuid.UUID:
    id = id or uuid.uuid4()
    db.execute(
        "INSERT INTO organizations (id, name, created_at) VALUES (%s, %s, coalesce(%s, now()))",
        (id, name, created_at),
    )
    return id


def user(
    db: psycopg.Connection,
    organization_id: uuid.UUID,
    role: str = "member",
    *,
    email: str | None = None,
    id: uuid.UUID | None = None,
    full_name: str = "Test User",
    password_hash: str = "unused",
) -> uuid.UUID:
    """A user row (its password hash is no hash: it cannot log in; see ``access_headers``)."""
    id = id or uuid.uuid4()
    db.execute(
        "INSERT INTO users (id, organization_id, email, full_name, role, password_hash) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (id, organization_id, email or f"{id}@example.com", full_name, role, password_hash),
    )
    return id


def access_headers(
    settings: Settings, user_id: uuid.UUID, organization_id: uuid.UUID, role: str
) -> dict[str, str]:
    """Authorization headers carrying an access token for a user row, as a login would."""
    secret = access_token_secret(parse_kek(settings.key_encryption_key or ""))
    token = issue_access_token(
        secret,
        user_id=user_id,
        organization_id=organization_id,
        role=role,
        ttl=3600,
        issuer=settings.issuer,
    )
    return bearer(token)


@dataclass(frozen=True)
class Tier:
    max_activations: int = 5
    features: Mapping[str, Any] = field(default_factory=lambda: dict(FEATURES))
    duration_days: int | None = None
    offline_lease_days: int = 7
    lease_grace_days: int = 7
    max_deactivations_per_day: int = 50
    name: str | None = None
    expiry_behavior: str = "restrict"
    is_trial: bool = False
    self_serve_trials: bool = False
    meters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Usage meters, as the API takes them: ``{name: {"limit": n, "period": "month"}}``."""
    # named-user seats
    seat_kind: str = "machine"
    max_users: int | None = None
    machines_per_user: int = 3

    def stored_features(self) -> dict[str, Any]:
        """What ``tiers.features`` holds: the features, and each meter's limit by its name."""
        return {**self.features, **{n: m["limit"] for n, m in self.meters.items()}}

    def stored_meters(self) -> dict[str, Any]:
        """What ``tiers.meters`` holds: each meter's period (its limit is a feature)."""
        return {n: {"period": m.get("period")} for n, m in self.meters.items()}


@dataclass(frozen=True)
class Product:
    id: uuid.UUID
    code: str
    tiers: dict[str, uuid.UUID]


def product(
    db: psycopg.Connection,
    code: str = PRODUCT,
    tiers: Mapping[str, Tier] | None = None,
    *,
    name: str | None = None,
) -> Product:
    """A product and its tiers (default: one ``pro`` tier). Made again with the same codes, it
    is the same product, its tiers updated to the terms given."""
    product_id = _one(
        db.execute(
            "INSERT INTO products (code, name) VALUES (%s, %s) "
            "ON CONFLICT (code) DO UPDATE SET name = excluded.name RETURNING id",
            (code, name or code),
        ).fetchone()
    )
    made = {}
    for tier_code, terms in (tiers if tiers is not None else {"pro": Tier()}).items():
        made[tier_code] = _one(
            db.execute(
                """
            INSERT INTO tiers (product_id, code, name, features, max_activations, duration_days,
                offline_lease_days, lease_grace_days, max_deactivations_per_day,
                expiry_behavior, is_trial, self_serve_trials, meters)
            VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
            ON CONFLICT (product_id, code) DO UPDATE SET
                name = excluded.name,
                features = excluded.features,
                max_activations = excluded.max_activations,
                duration_days = excluded.duration_days,
                offline_lease_days = excluded.offline_lease_days,
                lease_grace_days = excluded.lease_grace_days,
                max_deactivations_per_day = excluded.max_deactivations_per_day,
                expiry_behavior = excluded.expiry_behavior,
                is_trial = excluded.is_trial,
                self_serve_trials = excluded.self_serve_trials,
                meters = excluded.meters
            RETURNING id
            """,
                (
                    product_id,
                    tier_code,
                    terms.name or tier_code.title(),
                    json.dumps(terms.stored_features()),
                    terms.max_activations,
                    terms.duration_days,
                    terms.offline_lease_days,
                    terms.lease_grace_days,
                    terms.max_deactivations_per_day,
                    terms.expiry_behavior,
                    terms.is_trial,
                    terms.self_serve_trials,
                    json.dumps(terms.stored_meters()),
                ),
            ).fetchone()
        )
        # named-user seats
        db.execute(
            "UPDATE tiers SET seat_kind = %s, max_users = %s, machines_per_user = %s WHERE id = %s",
            (terms.seat_kind, terms.max_users, terms.machines_per_user, made[tier_code]),
        )
    return Product(product_id, code, made)


# --- licenses: through the admin API, or as a row -------------------------------------------


@dataclass(frozen=True)
class AdminApi:
    """Issue through ``POST /licenses`` with these admin headers (an API key's bearer)."""

    client: Poster
    headers: dict[str, str]


@dataclass(frozen=True)
class License:
    key: str
    id: uuid.UUID
    organization_id: uuid.UUID
    product: str
    tier: str
    body: dict[str, Any] = field(default_factory=dict)  # the API's 201 body, when issued so


def license(
    to: psycopg.Connection | AdminApi,
    organization_id: uuid.UUID | str,
    product: str = PRODUCT,
    tier: str = "pro",
    *,
    key: str | None = None,
    id: uuid.UUID | None = None,
    status: str = "active",
    starts_at: datetime | str | None = None,
    expires_at: datetime | str | None = None,
    max_activations: int | None = None,
    features: Mapping[str, Any] | None = None,
    created_at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
    max_users: int | None = None,
    **body: Any,
) -> License:
    """A license of an existing product and tier for an organization.

    Given an ``AdminApi``, it is issued by the admin service over HTTP (the key, the derived
    expiry and the audit event are the service's; ``body`` adds any other request field, and
    ``status``, ``key`` and ``id`` cannot be chosen). Given a connection, it is written as a
    row with exactly the terms given (any status, a start in the future, a chosen key).
    """
    if isinstance(to, AdminApi):
        if status != "active" or key is not None or id is not None or created_at is not None:
            raise ValueError("the admin API chooses the status, the key, the id and the time")
        if metadata is not None:
            body = {**body, "metadata": dict(metadata)}
        fields = {
            "starts_at": starts_at,
            "expires_at": expires_at,
            "max_activations": max_activations,
            "features": features,
            "max_users": max_users,
        }
        request = {
            "organization_id": str(organization_id),
            "product": product,
            "tier": tier,
            **{name: _json(value) for name, value in fields.items() if value is not None},
            **{name: _json(value) for name, value in body.items()},
        }
        response = to.client.post(f"{API}/licenses", json=request, headers=to.headers)
        assert response.status_code == 201, response.text
        made: dict[str, Any] = response.json()
        return License(
            made["key"],
            uuid.UUID(made["id"]),
            uuid.UUID(made["organization_id"]),
            product,
            tier,
            made,
        )
    if body:
        raise TypeError(f"not a license column: {sorted(body)}")
    if key is None:
        key, prefix, key_hash = new_license_key()
    else:
        prefix, key_hash = key[:8], hash_license_key(key)
    id = id or uuid.uuid4()
    found = to.execute(
        """
        INSERT INTO licenses (id, organization_id, product_id, tier_id, key_hash, key_prefix,
            status, starts_at, expires_at, max_activations, features, created_at, metadata,
            max_users)
        SELECT %(id)s, %(org)s, p.id, t.id, %(hash)s, %(prefix)s,
               %(status)s, coalesce(%(starts)s, now()), %(expires)s, %(max)s, %(features)s::jsonb,
               coalesce(%(created)s, now()), %(metadata)s::jsonb, %(max_users)s
        FROM products p JOIN tiers t ON t.product_id = p.id
        WHERE p.code = %(product)s AND t.code = %(tier)s
        RETURNING id
        """,
        {
            "id": id,
            "org": organization_id,
            "hash": key_hash,
            "prefix": prefix,
            "status": status,
            "starts": starts_at,
            "expires": expires_at,
            "max": max_activations,
            "max_users": max_users,
            "features": json.dumps(dict(features or {})),
            "created": created_at,
            "metadata": json.dumps(dict(metadata or {})),
            "product": product,
            "tier": tier,
        },
    ).fetchone()
    assert found is not None, f"no tier {tier!r} of a product {product!r}: make them first"
    return License(key, id, uuid.UUID(str(organization_id)), product, tier)


def _one(row: tuple[Any, ...] | None) -> Any:
    assert row is not None
    return row[0]


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


# --- activations ----------------------------------------------------------------------------

_BY_STATE = object()


def activation(
    db: psycopg.Connection,
    license: License | Mapping[str, Any],
    *,
    organization_id: uuid.UUID | None = None,
    fingerprint_hash: str | None = None,
    lease_expires_at: datetime | None = None,
    deactivated_at: datetime | None = None,
    deactivation_reason: Any = _BY_STATE,
    name: str = "laptop",
    platform: str = "linux",
    user_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """An activation row of ``license`` (a ``License`` or an API body). The lease runs 7 days
    from now unless given; a deactivated one was freed by the user unless a reason is given;
    ``organization_id`` defaults to the license's (a different one makes a foreign row);
    ``user_id``: the named user the seat is bound to (a ``user`` license)."""
    if isinstance(license, License):
        license = {"id": license.id, "organization_id": license.organization_id}
    if deactivation_reason is _BY_STATE:
        deactivation_reason = "user" if deactivated_at else None
    return _one(
        db.execute(
            """INSERT INTO activations (organization_id, license_id, fingerprint_hash, name,
               platform, lease_expires_at, deactivated_at, deactivation_reason, user_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                organization_id or license["organization_id"],
                license["id"],
                fingerprint_hash or uuid.uuid4().hex,
                name,
                platform,
                lease_expires_at or datetime.now(UTC) + timedelta(days=7),
                deactivated_at,
                deactivation_reason,
                user_id,
            ),
        ).fetchone()
    )


# --- named-user seats -------------------------------------------------------------------------


def license_user(
    to: psycopg.Connection | AdminApi, license: License, user_id: uuid.UUID | str
) -> None:
    """Assign a user to a license of a ``user`` tier: through ``POST /licenses/{id}/users``
    given an ``AdminApi`` (the service's limit and audit), else as a row."""
    if isinstance(to, AdminApi):
        response = to.client.post(
            f"{API}/licenses/{license.id}/users", json={"user_id": str(user_id)}, headers=to.headers
        )
        assert response.status_code in (200, 201), response.text
        return
    to.execute(
        "INSERT INTO license_users (license_id, user_id, organization_id) VALUES (%s, %s, %s)",
        (license.id, user_id, license.organization_id),
    )
