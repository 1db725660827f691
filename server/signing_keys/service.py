"""Signing keys in the database: states, rotation, retirement, revocation and the JWKS;
and the root of trust above them: the root key, key certificates and revocation lists.

States: ``pending`` (published, not signing yet), ``active`` (the one that signs; the
database allows only one), ``retired`` (published, no longer signs), ``revoked`` (gone).

Root states: ``active`` (certifies; exactly one), ``superseded`` (replaced by a newer root,
still published as trusted), ``retired`` (no longer published). Every published signing key
has a certificate from the active root; revoking a key issues a new revocation list.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from keys.certificates import (
    issue_key_certificate,
    issue_key_revocations,
    issue_root_endorsement,
)
from keys.crypto import (
    KeyDecryptionError,
    SigningKey,
    compute_kid,
    decrypt_private_key,
    encrypt_private_key,
    generate_private_key,
    public_jwk,
    raw_private_key,
    raw_public_key,
)
from server.audit.service import Actor, record
from server.errors import Conflict, InvalidTransition, NotFound
from server.models import KeyCertificateRow, KeyRevocationListRow, RootKeyRow, SigningKeyRow
from server.settings import Settings
from server.signing_keys.schemas import SigningKeyRead
from server.validation import check_datetime

log = logging.getLogger("licentia.keys")

PUBLISHED_STATES = ("pending", "active", "retired")
TRUSTED_ROOT_STATES = ("active", "superseded")
_ROTATION_LOCK = 0x4C4B4559  # advisory lock id shared by every process that promotes keys
CLOCK_MARGIN = timedelta(minutes=5)
"""A certificate starts this long before its key was created, so that a token signed right
after a rotation by a host whose clock is a little behind the database's still falls inside
the window."""
RENEW_BEFORE = timedelta(days=90)
"""``ensure_active_key`` renews the certificate of a key that may still sign when it ends
sooner than this (and the root is online)."""


@dataclass(frozen=True)
class CertificatePolicy:
    """What goes into certificates besides keys: the issuer (``iss``, the same as tokens')
    and how many days a certificate lets its key sign."""

    issuer: str
    certificate_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CertificatePolicy:
        return cls(issuer=settings.issuer, certificate_days=settings.key_certificate_days)

    @classmethod
    def defaults(cls) -> CertificatePolicy:
        """The ``Settings`` defaults; for callers that have no settings (tests, scripts)."""
        fields = {f.name: f.default for f in msgspec.structs.fields(Settings)}
        return cls(issuer=fields["issuer"], certificate_days=fields["key_certificate_days"])


def root_offline(action: str) -> Conflict:
    return Conflict(
        f"The root key is offline; {action} needs it: run the command with --root-key FILE "
        "(see docs/operations.md, 'Offline root')",
        code="ROOT_OFFLINE",
    )


def _info(row: SigningKeyRow) -> SigningKeyRead:
    return SigningKeyRead(
        kid=row.kid,
        state=row.state,
        created_at=row.created_at,
        activates_at=row.activates_at,
        activated_at=row.activated_at,
        retired_at=row.retired_at,
        revoked_at=row.revoked_at,
    )


@dataclass(frozen=True)
class RootInfo:
    kid: str
    state: str
    online: bool
    """Whether the private key is in the database (else it was exported to a file)."""
    created_at: datetime
    endorsed_by: str | None
    exported_at: datetime | None
    superseded_at: datetime | None
    retired_at: datetime | None


def _root_info(row: RootKeyRow) -> RootInfo:
    return RootInfo(
        kid=row.kid,
        state=row.state,
        online=row.encrypted_private_key is not None,
        created_at=row.created_at,
        endorsed_by=row.endorsed_by,
        exported_at=row.exported_at,
        superseded_at=row.superseded_at,
        retired_at=row.retired_at,
    )


def _new_row(kek: bytes, *, state: str, activates_at: datetime | None) -> SigningKeyRow:
    private_key = generate_private_key()
    public_raw = raw_public_key(private_key)
    kid = compute_kid(public_raw)
    return SigningKeyRow(
        kid=kid,
        state=state,
        public_key=public_raw,
        encrypted_private_key=encrypt_private_key(kek, raw_private_key(private_key), kid),
        activates_at=activates_at,
        activated_at=datetime.now(UTC) if state == "active" else None,
    )


async def lock_rotation(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ROTATION_LOCK})


async def ensure_active_key(
    session: AsyncSession, kek: bytes, policy: CertificatePolicy | None = None
) -> str | None:
    """Create and activate a key when none is active; return its kid, else ``None``.

    Also creates the deployment's root key when there is none, and (while the root is
    online) certifies every published key that has no certificate from the active root,
    whose certificate names another issuer than ``policy``'s, or whose certificate ends
    within ``RENEW_BEFORE``. Run at every ``serve`` start."""
    policy = policy or CertificatePolicy.defaults()
    await lock_rotation(session)
    await promote_due_keys(session)
    await ensure_root(session, kek)
    active = await session.scalar(select(SigningKeyRow.kid).where(SigningKeyRow.state == "active"))
    created = None
    if not active:
        row = _new_row(kek, state="active", activates_at=None)
        session.add(row)
        await session.flush()
        await session.refresh(row)
        created = row.kid
    await _ensure_certificates(session, kek, policy)
    return created


async def rotate(
    session: AsyncSession,
    actor: Actor,
    kek: bytes,
    *,
    activate_at: datetime | None = None,
    root_key: SigningKey | None = None,
    policy: CertificatePolicy | None = None,
) -> SigningKeyRead:
    """Publish a new key now, certified by the root; it starts signing at ``activate_at``
    (default: now). With the root offline, ``root_key`` (the root's private key, from its
    file) is required: ``Conflict`` ``ROOT_OFFLINE`` without it."""
    if activate_at is not None:
        check_datetime(activate_at, "activate_at")
    policy = policy or CertificatePolicy.defaults()
    await lock_rotation(session)
    root, root_signer = await _root_signer(session, kek, root_key, "certifying a new key")
    pending = _new_row(kek, state="pending", activates_at=activate_at)
    if activate_at is None:
        pending.activates_at = func.clock_timestamp()  # the database's "now", not ours
    session.add(pending)
    await session.flush()
    await session.refresh(pending)
    _certify(session, root, root_signer, pending, policy)
    await session.flush()
    await promote_due_keys(session)
    await session.refresh(pending)
    await record(session, actor, "key.rotate", "signing_key", pending.kid)
    return _info(pending)


async def promote_due_keys(session: AsyncSession) -> bool:
    """Activate the newest pending key whose time has come; retire the previous one.

    Callers hold the rotation advisory lock."""
    due = await session.scalar(
        select(SigningKeyRow)
        .where(
            SigningKeyRow.state == "pending", SigningKeyRow.activates_at <= func.clock_timestamp()
        )
        .order_by(SigningKeyRow.activates_at.desc(), SigningKeyRow.created_at.desc())
        .limit(1)
    )
    if due is None:
        return False
    await session.execute(
        update(SigningKeyRow)
        .where(SigningKeyRow.state == "active")
        .values(state="retired", retired_at=func.clock_timestamp())
    )
    await session.execute(
        update(SigningKeyRow)
        .where(
            SigningKeyRow.state == "pending",
            SigningKeyRow.activates_at <= due.activates_at,
            SigningKeyRow.kid != due.kid,
        )
        .values(state="retired", retired_at=func.clock_timestamp())
    )
    due.state = "active"
    due.activated_at = datetime.now(UTC)
    await session.flush()
    return True


async def list_keys(session: AsyncSession) -> list[SigningKeyRead]:
    rows = await session.scalars(select(SigningKeyRow).order_by(SigningKeyRow.created_at))
    return [_info(row) for row in rows]


async def _get(session: AsyncSession, kid: str) -> SigningKeyRow:
    row = await session.get(SigningKeyRow, kid, with_for_update=True)
    if row is None:
        raise NotFound(f"No signing key {kid!r}", code="KEY_NOT_FOUND")
    return row


async def retire(session: AsyncSession, actor: Actor, kid: str) -> SigningKeyRead:
    row = await _get(session, kid)
    if row.state == "active":
        raise InvalidTransition(
            "The active key cannot be retired; rotate to a new key first", code="KEY_ACTIVE"
        )
    if row.state != "pending":
        raise InvalidTransition(f"A {row.state} key cannot be retired", code="KEY_STATE")
    row.state, row.retired_at = "retired", datetime.now(UTC)
    await session.flush()
    await record(session, actor, "key.retire", "signing_key", kid)
    return _info(row)


async def revoke(
    session: AsyncSession,
    actor: Actor,
    kid: str,
    kek: bytes,
    *,
    root_key: SigningKey | None = None,
    policy: CertificatePolicy | None = None,
) -> SigningKeyRead:
    """Unpublish a key and withdraw it with a new root-signed revocation list (``seq`` + 1,
    every kid of the previous list plus this one). Needs the root like ``rotate``."""
    policy = policy or CertificatePolicy.defaults()
    await lock_rotation(session)
    row = await _get(session, kid)
    if row.state == "active":
        raise InvalidTransition(
            "The active key cannot be revoked; rotate to a new key first", code="KEY_ACTIVE"
        )
    if row.state == "revoked":
        raise InvalidTransition("The key is already revoked", code="KEY_STATE")
    if await _active_root(session) is not None:
        root, root_signer = await _root_signer(session, kek, root_key, "revoking a key")
        previous = await _current_revocations(session)
        revoked = [*(previous.revoked if previous else []), kid]
        _issue_revocations(session, root, root_signer, revoked, previous, policy)
    row.state, row.revoked_at = "revoked", datetime.now(UTC)
    await session.flush()
    await record(session, actor, "key.revoke", "signing_key", kid)
    return _info(row)


async def jwks(connection: AsyncSession | AsyncConnection) -> dict[str, Any]:
    rows = await connection.execute(
        select(SigningKeyRow.kid, SigningKeyRow.public_key)
        .where(SigningKeyRow.state.in_(PUBLISHED_STATES))
        .order_by(SigningKeyRow.created_at)
    )
    return {"keys": [public_jwk(bytes(row.public_key), row.kid) for row in rows]}


# --- the root of trust ------------------------------------------------------------------


def _root_aad(kid: str) -> str:
    """Associated data for a root's encrypted private key: never interchangeable with a
    signing key's blob (which uses the bare kid)."""
    return f"root:{kid}"


async def _active_root(session: AsyncSession) -> RootKeyRow | None:
    return await session.scalar(
        select(RootKeyRow).where(RootKeyRow.state == "active").with_for_update()
    )


def _new_root(kek: bytes, *, store_private: bool = True) -> tuple[RootKeyRow, bytes]:
    """A fresh active root row and its raw private key. With ``store_private`` false the
    row holds no private key (an offline root: the caller writes it to a file)."""
    private_key = generate_private_key()
    public_raw = raw_public_key(private_key)
    kid = compute_kid(public_raw)
    private_raw = raw_private_key(private_key)
    row = RootKeyRow(
        kid=kid,
        state="active",
        public_key=public_raw,
        encrypted_private_key=encrypt_private_key(kek, private_raw, _root_aad(kid))
        if store_private
        else None,
    )
    return row, private_raw


async def ensure_root(session: AsyncSession, kek: bytes) -> str | None:
    """Create the deployment's root key when there is none; return its kid, else ``None``.
    Callers hold the rotation lock (``ensure_active_key`` does)."""
    if await _active_root(session) is not None:
        return None
    row, _ = _new_root(kek)
    session.add(row)
    await session.flush()
    log.info("created root key %s", row.kid)
    return row.kid


async def _root_signer(
    session: AsyncSession, kek: bytes, root_key: SigningKey | None, action: str
) -> tuple[RootKeyRow, SigningKey]:
    """The active root and its private key: ``root_key`` when given (it must be the active
    root), else decrypted from the database (``ROOT_OFFLINE`` when it is not there).
    Creates the root when the deployment has none yet."""
    await ensure_root(session, kek)
    root = await _active_root(session)
    assert root is not None
    if root_key is not None:
        if root_key.kid != root.kid:
            raise Conflict(
                f"The key file holds {root_key.kid!r}, but the active root is {root.kid!r}",
                code="ROOT_MISMATCH",
            )
        return root, root_key
    if root.encrypted_private_key is None:
        raise root_offline(action)
    private_raw = decrypt_private_key(kek, bytes(root.encrypted_private_key), _root_aad(root.kid))
    return root, SigningKey.from_raw(root.kid, private_raw)


def _epoch_floor(value: datetime) -> datetime:
    return datetime.fromtimestamp(math.floor(value.timestamp()), UTC)


def _certify(
    session: AsyncSession,
    root: RootKeyRow,
    root_signer: SigningKey,
    key: SigningKeyRow,
    policy: CertificatePolicy,
) -> KeyCertificateRow:
    """A certificate for ``key``: nbf = its creation time - ``CLOCK_MARGIN``, exp = now +
    the policy's days. The row is added to the session (the caller flushes)."""
    now = _epoch_floor(datetime.now(UTC))
    not_before = _epoch_floor(key.created_at - CLOCK_MARGIN)
    expires_at = now + timedelta(days=policy.certificate_days)
    token = issue_key_certificate(
        root_signer,
        public_jwk(bytes(key.public_key), key.kid),
        issuer=policy.issuer,
        now=now,
        not_before=not_before,
        expires_at=expires_at,
    )
    certificate = KeyCertificateRow(
        kid=key.kid,
        root_kid=root.kid,
        token=token,
        not_before=not_before,
        expires_at=expires_at,
    )
    session.add(certificate)
    return certificate


async def _current_revocations(session: AsyncSession) -> KeyRevocationListRow | None:
    return await session.scalar(
        select(KeyRevocationListRow).order_by(KeyRevocationListRow.seq.desc()).limit(1)
    )


def _issue_revocations(
    session: AsyncSession,
    root: RootKeyRow,
    root_signer: SigningKey,
    revoked: list[str],
    previous: KeyRevocationListRow | None,
    policy: CertificatePolicy,
) -> KeyRevocationListRow:
    seq = (previous.seq if previous else 0) + 1
    token = issue_key_revocations(
        root_signer, issuer=policy.issuer, now=datetime.now(UTC), seq=seq, revoked=revoked
    )
    row = KeyRevocationListRow(seq=seq, root_kid=root.kid, revoked=revoked, token=token)
    session.add(row)
    return row


async def _keys_needing_certificates(
    session: AsyncSession, root: RootKeyRow, policy: CertificatePolicy
) -> list[SigningKeyRow]:
    """Published keys with no certificate from ``root``, keys whose newest certificate from
    it names another issuer (``LICENTIA_ISSUER`` changed since: tokens now carry the new
    ``iss``, and a product refuses a certificate of another issuer with ``WrongIssuer``),
    and keys that may still sign (pending, active) whose newest certificate from it ends
    within ``RENEW_BEFORE``."""
    newest = (
        select(func.max(KeyCertificateRow.id))
        .where(KeyCertificateRow.root_kid == root.kid)
        .group_by(KeyCertificateRow.kid)
        .scalar_subquery()
    )
    certificates = (
        select(KeyCertificateRow.kid, KeyCertificateRow.token, KeyCertificateRow.expires_at)
        .where(KeyCertificateRow.id.in_(newest))
        .subquery()
    )
    rows = (
        await session.execute(
            select(SigningKeyRow, certificates.c.token, certificates.c.expires_at)
            .outerjoin(certificates, certificates.c.kid == SigningKeyRow.kid)
            .where(SigningKeyRow.state.in_(PUBLISHED_STATES))
            .order_by(SigningKeyRow.created_at)
        )
    ).all()
    renew_by = datetime.now(UTC) + RENEW_BEFORE
    return [
        key
        for key, token, expires_at in rows
        if token is None
        or _certificate_issuer(token) != policy.issuer
        or (key.state != "retired" and expires_at < renew_by)
    ]


def _certificate_issuer(token: str) -> Any:
    """The ``iss`` of a certificate this server issued (read back, not verified)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("iss")


async def _ensure_certificates(
    session: AsyncSession, kek: bytes, policy: CertificatePolicy
) -> list[str]:
    """Certify the published keys that need it; with the root offline, log a warning
    naming them instead. Returns the kids certified."""
    root = await _active_root(session)
    if root is None:
        return []
    due = await _keys_needing_certificates(session, root, policy)
    if not due:
        return []
    if root.encrypted_private_key is None:
        log.warning(
            "the root key is offline: signing keys %s need a (new) certificate; run "
            "`licentia keys certify --root-key FILE`",
            ", ".join(key.kid for key in due),
        )
        return []
    try:
        _, root_signer = await _root_signer(session, kek, None, "certifying keys")
    except KeyDecryptionError:
        # The start-up check refuses a wrong KEK with its own message; certify nothing here.
        log.error("the root key cannot be decrypted with LICENTIA_KEY_ENCRYPTION_KEY")
        return []
    for key in due:
        _certify(session, root, root_signer, key, policy)
    await session.flush()
    return [key.kid for key in due]


async def certify(
    session: AsyncSession,
    actor: Actor,
    kek: bytes,
    *,
    root_key: SigningKey | None = None,
    policy: CertificatePolicy | None = None,
) -> list[str]:
    """Certify now what ``ensure_active_key`` would (published keys without a certificate
    from the active root, with one for another issuer, or whose certificate ends within
    ``RENEW_BEFORE``). With the root
    offline, ``root_key`` is required. Returns the kids certified."""
    policy = policy or CertificatePolicy.defaults()
    await lock_rotation(session)
    root, root_signer = await _root_signer(session, kek, root_key, "certifying keys")
    due = await _keys_needing_certificates(session, root, policy)
    for key in due:
        _certify(session, root, root_signer, key, policy)
    await session.flush()
    kids = [key.kid for key in due]
    if kids:
        await record(session, actor, "key.certify", "root_key", root.kid, data={"kids": kids})
    return kids


@dataclass(frozen=True)
class RootRotation:
    root: RootInfo
    private_key: bytes | None
    """The new root's raw private key when it was made offline (the caller writes it to a
    file and forgets it); ``None`` when it is stored in the database."""


async def rotate_root(
    session: AsyncSession,
    actor: Actor,
    kek: bytes,
    *,
    root_key: SigningKey | None = None,
    offline: bool = False,
    policy: CertificatePolicy | None = None,
) -> RootRotation:
    """Replace the root: a new root, endorsed by a ``root+jwt`` signed with the current one;
    every published signing key is certified again by the new root, and the revocation
    list (if any) is issued again by it (``seq`` + 1). The previous root stays published
    as trusted (``superseded``) until ``retire_root``; its private key is deleted, as it
    signs nothing any more.

    ``offline``: the new root's private key is returned instead of stored. A root kept
    offline is replaced only by an offline one (``ROOT_OFFLINE`` otherwise)."""
    policy = policy or CertificatePolicy.defaults()
    await lock_rotation(session)
    current, current_signer = await _root_signer(session, kek, root_key, "rotating the root")
    if current.encrypted_private_key is None and not offline:
        raise Conflict(
            "The root is kept offline, so the new root must be too: give --output FILE for "
            "its private key",
            code="ROOT_OFFLINE",
        )
    new_root, private_raw = _new_root(kek, store_private=not offline)
    new_signer = SigningKey.from_raw(new_root.kid, private_raw)
    now = datetime.now(UTC)
    new_root.endorsement = issue_root_endorsement(
        current_signer, new_signer.public_jwk(), issuer=policy.issuer, now=now
    )
    new_root.endorsed_by = current.kid
    current.state, current.superseded_at = "superseded", now
    current.encrypted_private_key = None
    await session.flush()  # the one-active-root index sees the old root leave first
    session.add(new_root)
    await session.flush()
    await session.refresh(new_root)
    published = await session.scalars(
        select(SigningKeyRow)
        .where(SigningKeyRow.state.in_(PUBLISHED_STATES))
        .order_by(SigningKeyRow.created_at)
    )
    for key in published:
        _certify(session, new_root, new_signer, key, policy)
    previous = await _current_revocations(session)
    if previous is not None:
        _issue_revocations(session, new_root, new_signer, list(previous.revoked), previous, policy)
    await session.flush()
    await record(
        session, actor, "key.root_rotate", "root_key", new_root.kid, data={"previous": current.kid}
    )
    return RootRotation(_root_info(new_root), private_raw if offline else None)


async def export_root_private(session: AsyncSession, actor: Actor, kek: bytes) -> tuple[str, bytes]:
    """Take the active root's private key out of the database: returns ``(kid, raw
    private key)`` and leaves only the public key behind. The caller must have stored the
    key safely before the transaction commits."""
    await lock_rotation(session)
    await ensure_root(session, kek)
    root = await _active_root(session)
    assert root is not None
    if root.encrypted_private_key is None:
        raise Conflict("The root key is already offline", code="ROOT_OFFLINE")
    private_raw = decrypt_private_key(kek, bytes(root.encrypted_private_key), _root_aad(root.kid))
    root.encrypted_private_key = None
    root.exported_at = datetime.now(UTC)
    await session.flush()
    await record(session, actor, "key.root_export", "root_key", root.kid)
    return root.kid, private_raw


async def import_root_private(
    session: AsyncSession, actor: Actor, kek: bytes, private_raw: bytes
) -> RootInfo:
    """Bring an offline root back online: store its private key (it must be the active
    root's) encrypted under the KEK again."""
    await lock_rotation(session)
    root = await _active_root(session)
    if root is None:
        raise NotFound("This deployment has no root key yet", code="ROOT_NOT_FOUND")
    signer = SigningKey.from_raw(root.kid, private_raw)
    if signer.public_raw != bytes(root.public_key):
        raise Conflict("The key file does not hold the active root", code="ROOT_MISMATCH")
    if root.encrypted_private_key is not None:
        raise Conflict("The root key is already online", code="ROOT_ONLINE")
    root.encrypted_private_key = encrypt_private_key(kek, private_raw, _root_aad(root.kid))
    root.exported_at = None
    await session.flush()
    await record(session, actor, "key.root_import", "root_key", root.kid)
    return _root_info(root)


async def retire_root(session: AsyncSession, actor: Actor, kid: str) -> RootInfo:
    """Stop publishing a superseded root as trusted (its endorsement of the next root stays
    in the chain, so products that embed it can still follow)."""
    root = await session.get(RootKeyRow, kid, with_for_update=True)
    if root is None:
        raise NotFound(f"No root key {kid!r}", code="ROOT_NOT_FOUND")
    if root.state == "active":
        raise InvalidTransition(
            "The active root cannot be retired; rotate the root first", code="ROOT_ACTIVE"
        )
    if root.state == "retired":
        raise InvalidTransition("The root is already retired", code="ROOT_STATE")
    root.state, root.retired_at = "retired", datetime.now(UTC)
    await session.flush()
    await record(session, actor, "key.root_retire", "root_key", kid)
    return _root_info(root)


async def list_roots(session: AsyncSession) -> list[RootInfo]:
    rows = await session.scalars(select(RootKeyRow).order_by(RootKeyRow.created_at))
    return [_root_info(row) for row in rows]


async def _endorsements(connection: AsyncSession | AsyncConnection) -> list[str]:
    rows = await connection.execute(
        select(RootKeyRow.endorsement)
        .where(RootKeyRow.endorsement.is_not(None))
        .order_by(RootKeyRow.created_at)
    )
    return [row.endorsement for row in rows]


async def root_document(connection: AsyncSession | AsyncConnection) -> dict[str, Any]:
    """What products embed at build time (``/.well-known/licentia-root.json``): the trusted
    roots as a JWK Set, and the endorsement chain (oldest first) that lets a product that
    embeds an older root accept the newer ones."""
    rows = await connection.execute(
        select(RootKeyRow.kid, RootKeyRow.public_key)
        .where(RootKeyRow.state.in_(TRUSTED_ROOT_STATES))
        .order_by(RootKeyRow.created_at)
    )
    return {
        "keys": [public_jwk(bytes(row.public_key), row.kid) for row in rows],
        "root_endorsements": await _endorsements(connection),
    }


async def certificates_document(connection: AsyncSession | AsyncConnection) -> dict[str, Any]:
    """``/.well-known/key-certificates.json``: the newest certificate of every published
    signing key, the current revocation list (``null`` when nothing was ever revoked), and
    the endorsement chain."""
    newest = select(func.max(KeyCertificateRow.id)).group_by(KeyCertificateRow.kid)
    certificates = await connection.execute(
        select(KeyCertificateRow.token)
        .join(SigningKeyRow, SigningKeyRow.kid == KeyCertificateRow.kid)
        .where(
            KeyCertificateRow.id.in_(newest),
            SigningKeyRow.state.in_(PUBLISHED_STATES),
        )
        .order_by(SigningKeyRow.created_at)
    )
    revocations = await connection.scalar(
        select(KeyRevocationListRow.token).order_by(KeyRevocationListRow.seq.desc()).limit(1)
    )
    return {
        "certificates": [row.token for row in certificates],
        "key_revocations": revocations,
        "root_endorsements": await _endorsements(connection),
    }
