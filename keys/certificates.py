"""The root of trust: key certificates, root endorsements and key revocation lists.

A deployment's root key (Ed25519, kid = truncated RFC 7638 thumbprint like a signing key)
signs nothing but these three kinds of compact JWS. Products embed only the root's public
key; every answer that carries a token also carries the certificate of the key that signed
it. See docs/token-format.md, "Root of trust".

- ``key+jwt`` (a key certificate): "the signing key ``sub`` with this public ``jwk`` may
  sign tokens issued between ``nbf`` and ``exp``".
- ``root+jwt`` (a root endorsement), signed by the previous root: "``sub`` with this ``jwk``
  is the next root".
- ``key-revocations+jwt`` (a revocation list): "the signing keys in ``revoked`` are
  withdrawn"; ``seq`` strictly increases so an old list cannot be replayed over a newer one.

Pure: no I/O, no database. Headers are exactly ``{"alg","kid","typ"}`` like every token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from keys.crypto import SigningKey

__all__ = [
    "KEY_CERTIFICATE_TYP",
    "KEY_REVOCATIONS_TYP",
    "ROOT_ENDORSEMENT_TYP",
    "issue_key_certificate",
    "issue_key_revocations",
    "issue_root_endorsement",
]

KEY_CERTIFICATE_TYP = "key+jwt"
ROOT_ENDORSEMENT_TYP = "root+jwt"
KEY_REVOCATIONS_TYP = "key-revocations+jwt"

_JWK_MEMBERS = frozenset({"kty", "crv", "x", "kid", "use", "alg"})


def _epoch(value: datetime, name: str) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return math.floor(value.timestamp())


def _public_jwk(jwk: Mapping[str, str], name: str) -> dict[str, str]:
    """A copy of a published Ed25519 JWK; refuses private members and other key types."""
    if set(jwk) - _JWK_MEMBERS:
        extra = sorted(set(jwk) - _JWK_MEMBERS)
        raise ValueError(f"{name} has members a public signing JWK never has: {extra}")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError(f"{name} must be an Ed25519 (OKP) public key")
    for member in ("x", "kid"):
        if not isinstance(jwk.get(member), str) or not jwk[member]:
            raise ValueError(f"{name} needs a non-empty {member!r}")
    return dict(jwk)


def issue_key_certificate(
    root: SigningKey,
    key_jwk: Mapping[str, str],
    *,
    issuer: str,
    now: datetime,
    not_before: datetime,
    expires_at: datetime,
) -> str:
    """A ``key+jwt`` signed by ``root`` certifying the signing key ``key_jwk`` (its JWK
    exactly as the JWKS publishes it) for tokens whose ``iat`` lies in
    ``[not_before, expires_at]``.

    Claims: ``iss``, ``sub`` (the certified kid), ``jwk``, ``iat``, ``nbf``, ``exp``.
    """
    jwk = _public_jwk(key_jwk, "key_jwk")
    nbf = _epoch(not_before, "not_before")
    exp = _epoch(expires_at, "expires_at")
    if exp <= nbf:
        raise ValueError("a certificate's window must end after it starts")
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": jwk["kid"],
        "jwk": jwk,
        "iat": _epoch(now, "now"),
        "nbf": nbf,
        "exp": exp,
    }
    return root.sign(KEY_CERTIFICATE_TYP, claims)


def issue_root_endorsement(
    previous_root: SigningKey, new_root_jwk: Mapping[str, str], *, issuer: str, now: datetime
) -> str:
    """A ``root+jwt`` signed by ``previous_root``: the root ``new_root_jwk`` follows it.

    Claims: ``iss``, ``sub`` (the new root's kid), ``jwk`` (its public JWK), ``iat``.
    """
    jwk = _public_jwk(new_root_jwk, "new_root_jwk")
    if jwk["kid"] == previous_root.kid:
        raise ValueError("a root cannot endorse itself")
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": jwk["kid"],
        "jwk": jwk,
        "iat": _epoch(now, "now"),
    }
    return previous_root.sign(ROOT_ENDORSEMENT_TYP, claims)


def issue_key_revocations(
    root: SigningKey, *, issuer: str, now: datetime, seq: int, revoked: Sequence[str]
) -> str:
    """A ``key-revocations+jwt`` signed by ``root``: every kid in ``revoked`` is withdrawn.

    The list is cumulative (the newest list alone is the whole truth) and ``seq`` is a
    positive integer greater than every earlier list's; a verifier keeps the list with the
    highest ``seq`` and ignores older ones. Claims: ``iss``, ``iat``, ``seq``, ``revoked``.
    """
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValueError("seq must be a positive integer")
    kids = list(revoked)
    if not all(isinstance(kid, str) and kid for kid in kids):
        raise ValueError("revoked must hold non-empty kid strings")
    if len(set(kids)) != len(kids):
        raise ValueError("revoked must not list a kid twice")
    claims: dict[str, Any] = {
        "iss": issuer,
        "iat": _epoch(now, "now"),
        "seq": seq,
        "revoked": kids,
    }
    return root.sign(KEY_REVOCATIONS_TYP, claims)
