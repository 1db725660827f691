"""What products call: validate, activate, check in, deactivate, features.

The hot path (idiom 8): one or two statements per call, no ORM objects; the functions named
here are migrations/versions/0003 (``SECURITY INVOKER``: row-level security applies to all they
read; they learn the tenant through the narrow ``licentia_license_org`` look-up and set it
transaction-locally). Every rule comes from ``server.license_rules``.

- validate: ``licentia_validate`` in autocommit, one round trip; no row means an unknown key,
  which counts against the caller's address.
- activate / check-in: ``licentia_license`` (read) and the rules judge the license in Python;
  then ``licentia_activate`` / ``licentia_check_in``, one autocommit statement (so one
  transaction), lock the license row (``FOR UPDATE`` for a seat decision, so every seat
  decision for one license is serialised by PostgreSQL across workers and replicas;
  ``FOR KEY SHARE`` for a check-in) and go ahead only if it is still the version judged.
  Activation releases stale seats, counts the live ones in a new statement after the lock
  (a fresh snapshot in READ COMMITTED: it sees every activation committed before the lock
  was granted), then renews or inserts, with audit events. The token is signed after the
  commit.
- deactivate: ``licentia_license(hash, 'update')`` then one statement (seat, daily limit,
  update, audit) in ``pooled_transaction``.

Usage metering (``server.metering``) is a product call on the same pool: it reads and judges
the license as activate does and signs its answer the same way, with ``Statement``,
``HotLicense``, ``trust_members`` and ``counted`` from here.
"""

from __future__ import annotations

import contextlib
import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from keys.crypto import SigningKey
from keys.tokens import fingerprint_hash, issue_activation_token, issue_license_token
from server import license_rules as rules
from server import metrics, ratelimit
from server.audit import service as audit
from server.auth.principal import Principal, bearer_credential, decode_access_token
from server.errors import (
    ActivationLimitReached,
    Conflict,
    DomainError,
    InvalidInput,
    NoSigningKey,
    NotFound,
    PermissionDenied,
    ProductMismatch,
    RateLimited,
    Unauthenticated,
)
from server.license_rules import LicenseTerms, hash_license_key, json_object
from server.license_rules import as_uuid as _uuid
from server.product_licensing.schemas import (
    ActivateRequest,
    ActivationResponse,
    CheckInRequest,
    CheckInResponse,
    DeactivateRequest,
    FeaturesResponse,
    LicenseSummary,
    ValidateRequest,
    ValidateResponse,
)
from server.settings import Settings
from server.signing_keys.keyring import Trust


class SignerSource(Protocol):
    async def signer_and_trust(self) -> tuple[SigningKey, Trust]:
        """The active key and its trust material from one snapshot (the keyring caches
        both: no database round trip while fresh)."""
        ...


@dataclass(frozen=True)
class Caller:
    """What the service needs besides its connection: settings, the signer, the abuse limiter."""

    settings: Settings
    keyring: SignerSource
    engine: AsyncEngine | None = None
    """For the unknown-key counter, written in its own transaction; ``None`` disables it."""
    client_ip: str | None = None
    access_token_secret: bytes | None = None
    """Checks a user's access token when a license of a ``user`` tier is activated."""


# --- SQL --------------------------------------------------------------------------------


class Statement:
    """A statement written with ``:named`` parameters, sent positionally through asyncpg.

    The hot path runs on a plain asyncpg connection inside the request's one transaction
    (``server.db.hot_pool.provide_connection``; the CLI uses the same ``pooled_transaction``): no
    SQLAlchemy work per request, and asyncpg prepares each statement once per connection.
    """

    __slots__ = ("names", "sql")

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.sql = re.sub(r"(?<!:):(\w+)", number, sql)
        self.names = tuple(names)

    def _args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]

    async def row(self, conn: asyncpg.Connection, **params: Any) -> asyncpg.Record | None:
        return await conn.fetchrow(self.sql, *self._args(params))

    async def value(self, conn: asyncpg.Connection, **params: Any) -> Any:
        return await conn.fetchval(self.sql, *self._args(params))


# Both look-ups set the transaction's tenant from the key hash and return the license row in
# one round trip (migrations/versions/0004: SECURITY INVOKER, so row-level security applies
# to every row they read; no row for an unknown key).
_LOCK = {"none": "none", "seats": "update", "check_in": "key_share"}
# Check-ins of one license run side by side ("key_share"), but never interleave with a seat
# decision ("update"): a check-in renewing a seat on the edge of its grace period must not let
# an activation running at the same moment see that seat as neither stale nor live.
_LICENSE = Statement("SELECT * FROM licentia_license(:hash, :lock)")

# Validation is one autocommit statement: the license, the seat count and this machine's seat
# (the live-seat rule is the frozen copy in the function; tests/server/test_license_rules.py).
_VALIDATE = Statement("SELECT * FROM licentia_validate(:hash, :fp, :now)")

# Activation and check-in: the seat change in one autocommit statement (one transaction) for a
# license read and judged just before; the function locks the license row and goes ahead only
# if it is still that version (migrations/versions/0004; the live-seat rule there is a frozen
# copy, checked by tests/server/test_license_rules.py).
_ACTIVATE = Statement(
    "SELECT * FROM licentia_activate(:hash, :license_id, :version, :fp, :now, :lease, :max, "
    ":new_id, :name, :platform, :expired, :created, :converted, :user_id, :user_org, "
    ":user_generation)"
)
_CHECK_IN = Statement(
    "SELECT * FROM licentia_check_in(:hash, :license_id, :version, :fp, :now, :lease)"
)

# Deactivation, under the license's lock: the machine's seat, whether the daily limit allows
# freeing it, and (when both hold) the update and its audit event, in one statement.
_DEACTIVATE = Statement(
    f"""
    WITH seat AS (
        SELECT a.id FROM activations a
        WHERE a.license_id = :license_id AND a.organization_id = :org
          AND a.fingerprint_hash = :fp AND a.deactivated_at IS NULL
    ), allowed AS (
        SELECT {rules.deactivation_allowed_sql(":limit", ":license_id", ":org", ":now")} AS ok
    ), freed AS (
        UPDATE activations
        SET deactivated_at = :now, deactivation_reason = '{rules.USER_DEACTIVATION}'
        WHERE id = (SELECT id FROM seat) AND organization_id = :org
          AND (SELECT ok FROM allowed)
        RETURNING id
    ), audited AS (
        {audit.insert_select_sql("freed", target_id="id::text")}
    )
    SELECT (SELECT id FROM seat) AS seat, (SELECT ok FROM allowed) AS allowed
    """
)

_TIER_FEATURES = Statement(
    """
    SELECT t.features FROM tiers t JOIN products p ON p.id = t.product_id
    WHERE p.code = :product AND t.code = :tier
    """
)

# --- small facts ----------------------------------------------------------------------------


def _refuse_other_product(lic: LicenseTerms, product: str) -> None:
    if lic.product != product:
        raise ProductMismatch(
            f"This license is for another product, not {product!r}", code="PRODUCT_MISMATCH"
        )


@dataclass(frozen=True, slots=True)
class HotLicense:
    """The license row read by the hot path: its terms and its tier's seat settings."""

    terms: LicenseTerms
    status: rules.Status
    offline_lease_days: int
    lease_grace_days: int
    max_deactivations_per_day: int
    version: str
    """The row's ``xmin``: a change is made only if the row is still this version."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any], now: datetime) -> HotLicense:
        terms = LicenseTerms.from_row(row)
        return cls(
            terms=terms,
            status=terms.status(now),
            offline_lease_days=row["offline_lease_days"],
            lease_grace_days=row["lease_grace_days"],
            max_deactivations_per_day=row["max_deactivations_per_day"],
            version=row["version"],
        )

    def summary(self, activations_count: int) -> LicenseSummary:
        terms = self.terms
        return LicenseSummary(
            id=terms.id,
            product=terms.product,
            tier=terms.tier,
            status=rules.shown_status(self.status),
            features=terms.features,
            max_activations=terms.max_activations,
            activations_count=activations_count,
            expires_at=rules.whole_second(terms.expires_at) if terms.expires_at else None,
            updates_until=terms.updates_until,
            is_trial=terms.is_trial,
        )

    def lease_end(self, now: datetime) -> datetime:
        return self.terms.lease_end(now, self.offline_lease_days)

    def refuse_unless_usable(self, product: str) -> None:
        """Raise the refusal shared by activate, check-in and features."""
        _refuse_other_product(self.terms, product)
        rules.refuse_unless_usable(self.status, self.terms.expiry_behavior)


async def _license(
    conn: asyncpg.Connection | asyncpg.Pool,
    caller: Caller,
    key: str,
    now: datetime,
    *,
    lock: Literal["none", "seats", "check_in"],
) -> HotLicense:
    """Set the transaction's tenant from the key and read (and lock) the license; count and
    refuse an unknown key."""
    row = await _LICENSE.row(conn, hash=hash_license_key(key), lock=_LOCK[lock])
    if row is None:
        await count_unknown_key(caller)
        raise NotFound("No license has this key", code="LICENSE_NOT_FOUND")
    return HotLicense.from_row(row, now)


async def count_unknown_key(caller: Caller) -> None:
    """Count a call with an unknown key against the caller's address; 429 over the limit.

    The counter lives in PostgreSQL (shared by every worker and replica) and is written in its
    own transaction, so the refused request's rollback does not erase it.
    """
    metrics.unknown_license_key()
    limit = caller.settings.unknown_key_attempts_per_minute
    if caller.engine is None or not caller.client_ip or limit <= 0:
        return
    retry_after = await ratelimit.hit(
        caller.engine, ratelimit.bucket("license-key", caller.client_ip), limit, 60
    )
    if retry_after is not None:
        metrics.throttled("unknown_license_key")
        raise RateLimited(
            "Too many calls with unknown license keys from this address; slow down",
            retry_after=retry_after,
        )


def trust_members(trust: Trust) -> dict[str, Any]:
    """What every answer carrying a token carries next to it (docs/token-format.md, "Where
    trust material comes from"): from the same keyring snapshot as the signer, so the
    certificate is always the one of the key that signed the token."""
    return {
        "key_certificate": trust.key_certificate,
        "key_revocations": trust.key_revocations,
        "root_endorsements": list(trust.root_endorsements),
    }


def _activation_token(
    signer: SigningKey,
    caller: Caller,
    lic: HotLicense,
    activation_id: uuid.UUID,
    fingerprint: str,
    now: datetime,
    user_id: Any = None,
) -> str:
    lease_end = lic.lease_end(now)
    return issue_activation_token(
        signer,
        lic.terms.subject(),
        issuer=caller.settings.issuer,
        activation_id=str(activation_id),
        fingerprint=fingerprint,
        now=now,
        lease=lease_end - now,
        user_id=None if user_id is None else _uuid(user_id),
    ).token


# --- named-user seats -------------------------------------------------------------------

NamedUser = Principal | Unauthenticated
"""The user an activation is for (a license of a ``user`` tier), or why there is none: the
reason is raised only when the license turns out to need a user, so a product of a
``machine`` license is never refused for a header it did not need to send."""


def named_user(caller: Caller, authorization: str | None) -> NamedUser:
    """The user of ``Authorization: Bearer <access token>`` (from ``/api/v1/auth/login``),
    checked by the auth domain's own token check (signature, type, audience, expiry); that
    the user still stands and is assigned is checked by ``licentia_activate`` under the
    license's lock."""
    if not authorization:
        return _user_token_required()
    try:
        credential = bearer_credential(authorization)
        if caller.access_token_secret is None:
            return Unauthenticated("Access tokens are not accepted here", code="INVALID_TOKEN")
        return decode_access_token(
            caller.access_token_secret, credential, issuer=caller.settings.issuer
        )
    except Unauthenticated as exc:
        return exc


def _refuse_user(outcome: str, user: NamedUser | None, seats: int) -> None:
    """The refusals of a ``user`` license's activation (``licentia_activate``'s outcomes)."""
    if outcome == "user_required":
        if isinstance(user, Unauthenticated):
            raise user
        raise _user_token_required()
    if outcome == "user_invalid":
        raise Unauthenticated(
            "This access token no longer stands (the user was removed or logged out "
            "everywhere); log in again",
            code="TOKEN_REVOKED",
        )
    if outcome == "user_not_assigned":
        raise PermissionDenied(
            "This user holds no seat of this license; an owner or admin of the organization "
            "assigns users to it",
            code="USER_NOT_ASSIGNED",
        )
    if outcome == "user_limit":
        raise ActivationLimitReached(
            f"This user already has {seats} machine(s) on this license, the most its tier "
            "allows per user; deactivate one first",
            code="USER_MACHINE_LIMIT",
        )
    if outcome == "seat_of_another_user":
        raise Conflict(
            "This machine holds a seat of this license for another user; deactivate it first",
            code="SEAT_OF_ANOTHER_USER",
        )


def _user_token_required() -> Unauthenticated:
    return Unauthenticated(
        "This license is for named users: send the user's access token "
        "('Authorization: Bearer <token>', from /api/v1/auth/login)",
        code="USER_TOKEN_REQUIRED",
    )


# --- the five operations ------------------------------------------------------------------

_P = ParamSpec("_P")
_R = TypeVar("_R")


def counted(
    operation: str, code_of: Callable[[Any], str]
) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Awaitable[_R]]]:
    """Count each call's outcome in the metrics (``licentia_licensing_outcomes``): the code
    of the answer (``code_of``) or of the refusal raised (``ACTIVATION_LIMIT``,
    ``LICENSE_EXPIRED``, ...); ``ERROR`` for anything unexpected. The service decides the
    outcome, so it is counted here, once, whoever calls (the routes, the command line)."""

    def decorate(function: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
        @functools.wraps(function)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                result = await function(*args, **kwargs)
            except DomainError as exc:
                metrics.licensing_outcome(operation, exc.code)
                raise
            except Exception:
                metrics.licensing_outcome(operation, "ERROR")
                raise
            metrics.licensing_outcome(operation, code_of(result))
            return result

        return wrapper

    return decorate


def _ok(_result: object) -> str:
    return "OK"


def _validate_code(answer: ValidateResponse) -> str:
    return answer.code


def _activate_code(activated: Activated) -> str:
    return "CREATED" if activated.created else "RENEWED"


@counted("validate", _validate_code)
async def validate(
    pool: asyncpg.Pool | asyncpg.Connection, caller: Caller, data: ValidateRequest
) -> ValidateResponse:
    """Every license outcome is an answer (``valid`` + ``code``); validation changes nothing.

    One statement in autocommit (its own transaction, read only): give it the pool."""
    now = rules.current_second()
    fp = fingerprint_hash(data.fingerprint) if data.fingerprint is not None else None
    row = await _VALIDATE.row(pool, hash=hash_license_key(data.license_key), fp=fp, now=now)
    if row is None:
        await count_unknown_key(caller)
        return ValidateResponse(False, "NOT_FOUND", "No license has this key", None, None)
    lic = HotLicense.from_row(row, now)
    summary = lic.summary(row["seats"])
    if lic.terms.product != data.product:
        detail = f"This license is for another product, not {data.product!r}"
        return ValidateResponse(False, "PRODUCT_MISMATCH", detail, summary, None)
    refused = rules.refusal(lic.status, lic.terms.expiry_behavior)
    if refused is not None:
        return ValidateResponse(False, refused.code, refused.detail, summary, None)  # type: ignore[arg-type]
    if fp is not None and row["seat"] is None:
        detail = "This machine holds no seat of this license; activate it first"
        return ValidateResponse(False, "NOT_ACTIVATED", detail, summary, None)
    signer, trust = await caller.keyring.signer_and_trust()
    issued = issue_license_token(
        signer,
        lic.terms.subject(),
        issuer=caller.settings.issuer,
        now=now,
        lifetime=timedelta(seconds=caller.settings.license_token_ttl_seconds),
        nonce=data.nonce,
    )
    return ValidateResponse(
        True, "VALID", "The license is valid", summary, issued.token, **trust_members(trust)
    )


@dataclass(frozen=True)
class Activated:
    response: ActivationResponse
    created: bool
    """``False`` when this machine already held a seat (idempotent repeat)."""


_CHANGE_ATTEMPTS = 3


_Signer = tuple[SigningKey, Trust]


async def _change(
    pool: asyncpg.Pool | asyncpg.Connection, caller: Caller, statement: Statement, **params: Any
) -> tuple[asyncpg.Record, _Signer | None]:
    """Run a seat change, with the signer (and its trust material) fetched first: a change is
    made only when its token can be signed. Without a signing key the change runs in a
    transaction that is rolled back, so that the caller still answers with the refusal (no
    seat, ...) when there is one."""
    try:
        signer: _Signer | None = await caller.keyring.signer_and_trust()
    except NoSigningKey:
        signer = None
    if signer is not None:
        row = await statement.row(pool, **params)
    else:
        async with contextlib.AsyncExitStack() as stack:
            conn = (
                await stack.enter_async_context(pool.acquire())
                if isinstance(pool, asyncpg.Pool)
                else pool
            )
            transaction = conn.transaction()  # a savepoint inside the CLI's transaction
            await transaction.start()
            try:
                row = await statement.row(conn, **params)
            finally:
                await transaction.rollback()
    assert row is not None
    return row, signer


async def _signer(signer: _Signer | None, caller: Caller) -> _Signer:
    return signer if signer is not None else await caller.keyring.signer_and_trust()  # raises


@counted("activate", _activate_code)
async def activate(
    pool: asyncpg.Pool | asyncpg.Connection,
    caller: Caller,
    data: ActivateRequest,
    *,
    user: NamedUser | None = None,
) -> Activated:
    """Take a seat for this machine, or renew the one it holds; never oversell.

    Two statements, each its own transaction when given the pool: read the license and judge
    it (the rules, in Python), then ``licentia_activate``, which locks the license row, goes
    ahead only if it is still the version judged, releases stale seats, counts the live ones
    and renews or inserts, audited, all in one transaction.

    ``user``: for a license of a ``user`` tier, the named user (``named_user``); the
    function checks they still stand and are assigned, and counts their machines against
    the tier's ``machines_per_user``. Ignored for a ``machine`` license."""
    fp = fingerprint_hash(data.fingerprint)
    principal = user if isinstance(user, Principal) else None
    for _ in range(_CHANGE_ATTEMPTS):
        now = rules.current_second()
        lic = await _license(pool, caller, data.license_key, now, lock="none")
        lic.refuse_unless_usable(data.product)
        terms = lic.terms
        lease_end = lic.lease_end(now)
        new_id = uuid.uuid4()
        row, signer = await _change(
            pool,
            caller,
            _ACTIVATE,
            hash=hash_license_key(data.license_key),
            license_id=terms.id,
            version=lic.version,
            fp=fp,
            now=now,
            lease=lease_end,
            max=terms.max_activations,
            new_id=new_id,
            name=data.name,
            platform=data.platform,
            expired=audit.event(
                None,
                "activation.expire",
                "activation",
                organization_id=terms.organization_id,
                data={"reason": rules.LEASE_EXPIRED},
            ),
            created=audit.event(
                ("license", str(terms.id)),
                "activation.create",
                "activation",
                organization_id=terms.organization_id,
                data={"license_id": str(terms.id), "name": data.name, "platform": data.platform},
            ),
            converted=audit.event(
                ("license", str(terms.id)),
                "trial.convert",
                "trial",
                organization_id=terms.organization_id,
            ),
            user_id=principal.id if principal is not None else None,
            user_org=principal.organization_id if principal is not None else None,
            user_generation=principal.token_generation if principal is not None else None,
        )
        outcome = row["outcome"]
        if outcome == "changed":  # suspended, revoked or edited since it was read: again
            continue
        _refuse_user(outcome, user, row["seats"])
        if outcome == "limit":
            raise ActivationLimitReached(
                f"All {terms.max_activations} seat(s) of this license are taken; deactivate a "
                "machine first",
                code="ACTIVATION_LIMIT",
            )
        if outcome == "conflict":  # cannot happen under the row lock; kept as a backstop
            raise ActivationLimitReached("Try again", code="ACTIVATION_CONFLICT")
        activation_id = _uuid(row["activation_id"])
        key, trust = await _signer(signer, caller)
        token = _activation_token(
            key, caller, lic, activation_id, data.fingerprint, now, row["user_id"]
        )
        response = ActivationResponse(
            activation_id=activation_id,
            token=token,
            lease_expires_at=lease_end,
            activations_count=row["seats"],
            max_activations=terms.max_activations,
            nonce=data.nonce,
            **trust_members(trust),
        )
        return Activated(response, outcome == "created")
    raise Conflict("The license changed during the call; try again", code="LICENSE_CHANGED")


@counted("check_in", _ok)
async def check_in(
    pool: asyncpg.Pool | asyncpg.Connection, caller: Caller, data: CheckInRequest
) -> CheckInResponse:
    """Renew the lease of a live seat with a fresh activation token (like ``activate``: read
    and judge, then ``licentia_check_in`` under the license's lock, if still as judged)."""
    fp = fingerprint_hash(data.fingerprint)
    for _ in range(_CHANGE_ATTEMPTS):
        now = rules.current_second()
        lic = await _license(pool, caller, data.license_key, now, lock="none")
        lic.refuse_unless_usable(data.product)
        lease_end = lic.lease_end(now)
        row, signer = await _change(
            pool,
            caller,
            _CHECK_IN,
            hash=hash_license_key(data.license_key),
            license_id=lic.terms.id,
            version=lic.version,
            fp=fp,
            now=now,
            lease=lease_end,
        )
        if row["outcome"] == "changed":
            continue
        if row["activation_id"] is None:
            raise NotFound(
                "This machine holds no seat of this license; activate it again",
                code="NOT_ACTIVATED",
            )
        key, trust = await _signer(signer, caller)
        token = _activation_token(
            key, caller, lic, _uuid(row["activation_id"]), data.fingerprint, now, row["user_id"]
        )
        return CheckInResponse(token=token, lease_expires_at=lease_end, **trust_members(trust))
    raise Conflict("The license changed during the call; try again", code="LICENSE_CHANGED")


@counted("deactivate", _ok)
async def deactivate(
    conn: asyncpg.Connection, caller: Caller, data: DeactivateRequest
) -> uuid.UUID:
    """Free this machine's seat at once; at most N per license in 24 hours (tier setting)."""
    now = rules.current_second()
    lic = await _license(conn, caller, data.license_key, now, lock="seats")
    terms = lic.terms
    _refuse_other_product(terms, data.product)
    event = audit.event(
        ("license", str(terms.id)),
        "activation.deactivate",
        "activation",
        organization_id=terms.organization_id,
        data={"license_id": str(terms.id), "reason": rules.USER_DEACTIVATION},
    )
    found = await _DEACTIVATE.row(
        conn,
        **audit.insert_select_params(event),
        license_id=terms.id,
        org=terms.organization_id,
        fp=fingerprint_hash(data.fingerprint),
        now=now,
        limit=lic.max_deactivations_per_day,
    )
    assert found is not None
    if found["seat"] is None:
        raise NotFound("This machine holds no seat of this license", code="NOT_ACTIVATED")
    if not found["allowed"]:  # nothing was changed
        raise rules.deactivation_limit_reached(lic.max_deactivations_per_day)
    return _uuid(found["seat"])


@counted("features", _ok)
async def features(
    conn: asyncpg.Connection | asyncpg.Pool,
    caller: Caller,
    *,
    product: str,
    tier: str | None = None,
    license_key: str | None = None,
) -> FeaturesResponse:
    """The features of a tier (the public catalogue), or those of one license."""
    if (tier is None) == (license_key is None):
        raise InvalidInput("Give either tier or license_key", code="VALIDATION_ERROR")
    if license_key is not None:
        lic = await _license(conn, caller, license_key, rules.current_second(), lock="none")
        lic.refuse_unless_usable(product)
        terms = lic.terms
        return FeaturesResponse(product=terms.product, tier=terms.tier, features=terms.features)
    found = await _TIER_FEATURES.row(conn, product=product, tier=tier)
    if found is None:
        raise NotFound(f"No tier {tier!r} of product {product!r}", code="TIER_NOT_FOUND")
    return FeaturesResponse(
        product=product, tier=tier or "", features=json_object(found["features"])
    )


# --- offline activation files -----------------------------------------------------------


def read_activation_request_file(body: bytes) -> ActivateRequest:
    """An offline activation request file (``LicenseClient.offline_request``), checked as the
    command line checks it: valid JSON of the request schema, ``type`` and ``version`` 1."""
    try:
        request = msgspec.json.decode(body, type=ActivateRequest)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"Not a valid activation request file: {exc}", code="INVALID_REQUEST_FILE"
        ) from None
    if request.type != "activation_request" or request.version != 1:
        raise InvalidInput(
            "Not an activation request file (expected type 'activation_request', version 1)",
            code="INVALID_REQUEST_FILE",
        )
    return request


def activation_response_file(activated: ActivationResponse) -> dict[str, Any]:
    """The answer file an air-gapped machine installs (``LicenseClient.install``)."""
    return {
        "type": "activation_response",
        "version": 1,
        "token": activated.token,
        "activation_id": str(activated.activation_id),
        "lease_expires_at": activated.lease_expires_at.isoformat().replace("+00:00", "Z"),
        "nonce": activated.nonce,
        "key_certificate": activated.key_certificate,
        "key_revocations": activated.key_revocations,
        "root_endorsements": activated.root_endorsements,
    }
