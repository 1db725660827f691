"""The trust store of a verifier that embeds a root (docs/token-format.md, "Root of trust").

Three kinds of trust material, all compact JWS signed by a root, checked by one function
(``TrustStore._open``, "Checking trust material" steps 1 to 5) that shares the token's
encoding rules (``_compact_parts``, ``_parse_header``, ``_check_signature``):

- ``root+jwt`` (a root endorsement): the root ``sub`` with this ``jwk`` follows the signer;
- ``key+jwt`` (a key certificate): the signing key ``sub`` may sign tokens whose ``iat`` lies
  in ``[nbf, exp]``;
- ``key-revocations+jwt`` (a revocation list): the kids in ``revoked`` are withdrawn; only a
  list with a greater ``seq`` replaces the stored one.

Imported only by a verifier that uses a root, so ``import licentia_verifier`` stays cheap.
The caller (``Verifier``) holds ``lock`` around every change; the containers read without
the lock (``roots``, ``revoked``) are replaced, never changed in place.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._errors import MalformedToken, UnknownKey, WrongIssuer, WrongTokenType
from ._verifier import (
    _ALGORITHMS,
    _MAX_EPOCH,
    _b64url_decode,
    _check_signature,
    _compact_parts,
    _parse_header,
    _strict_json_object,
)

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator, Mapping

__all__ = ["KEY_CERTIFICATE_TYP", "KEY_REVOCATIONS_TYP", "ROOT_ENDORSEMENT_TYP", "TrustStore"]

KEY_CERTIFICATE_TYP = "key+jwt"
ROOT_ENDORSEMENT_TYP = "root+jwt"
KEY_REVOCATIONS_TYP = "key-revocations+jwt"
_WHAT = {
    KEY_CERTIFICATE_TYP: "key certificate",
    ROOT_ENDORSEMENT_TYP: "root endorsement",
    KEY_REVOCATIONS_TYP: "revocation list",
}


def _raw(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _is_time(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _MAX_EPOCH


def _public_jwk(jwk: Any, sub: str) -> tuple[bytes, Ed25519PublicKey]:
    """The key of a certificate's or endorsement's ``jwk`` claim: an OKP/Ed25519 public JWK
    whose ``kid`` is ``sub``; else MalformedToken."""
    if type(jwk) is not dict:
        raise MalformedToken("claim 'jwk' must be a JSON object (an Ed25519 public JWK)")
    if "d" in jwk:
        raise MalformedToken("claim 'jwk' carries a private key")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise MalformedToken("claim 'jwk' must be an OKP/Ed25519 key")
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", "EdDSA") not in _ALGORITHMS:
        raise MalformedToken("claim 'jwk' must be a signature key for EdDSA")
    if jwk.get("kid") != sub or type(jwk.get("kid")) is not str:
        raise MalformedToken("claim 'jwk' must have the kid named by 'sub'")
    x = jwk.get("x")
    try:
        raw = _b64url_decode(x.encode("ascii"), "jwk x") if type(x) is str else b""
    except UnicodeEncodeError:
        raw = b""
    if len(raw) != 32:
        raise MalformedToken("claim 'jwk' must carry a 32-byte public key as base64url 'x'")
    try:
        return raw, Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:  # pragma: no cover - any 32 bytes load
        raise MalformedToken("claim 'jwk' is not a usable Ed25519 public key") from None


class TrustStore:
    """The roots a verifier trusts, the signing keys they certified (with their windows),
    the newest revocation list, and the material that was accepted (to export)."""

    __slots__ = (
        "_certified",
        "_pinned",
        "_root_raw",
        "certificates",
        "endorsements",
        "issuer",
        "lock",
        "revocations",
        "revoked",
        "roots",
        "seq",
    )

    def __init__(
        self,
        roots: Mapping[str, Ed25519PublicKey],
        *,
        issuer: str,
        pinned: Mapping[str, Ed25519PublicKey],
    ) -> None:
        self.issuer = issuer
        self.lock = threading.RLock()
        self.roots: dict[str, Ed25519PublicKey] = dict(roots)
        self._root_raw = {kid: _raw(key) for kid, key in roots.items()}
        self._pinned = {kid: _raw(key) for kid, key in pinned.items()}
        if set(self._root_raw.values()) & set(self._pinned.values()):
            raise ValueError("a root key cannot also be pinned as a signing key")
        self._certified: dict[str, tuple[bytes, Ed25519PublicKey, tuple[tuple[int, int], ...]]]
        self._certified = {}
        self.seq = 0
        self.revoked: frozenset[str] = frozenset()
        self.revocations: str | None = None
        self.endorsements: list[str] = []
        self.certificates: list[str] = []

    # -- checking (steps 1 to 7) -----------------------------------------------------------

    def _open(self, token: Any, typ: str) -> dict[str, Any]:
        """Steps 1 to 5 and the common claims of step 6: the claims of a well-formed piece of
        trust material of kind ``typ``, signed by a trusted root."""
        what = _WHAT[typ]
        signing_input, header_segment, payload_segment, signature_segment = _compact_parts(
            token, what
        )
        header = _parse_header(header_segment)
        got = header.get("typ")
        if got != typ or type(got) is not str:
            raise WrongTokenType(f"expected a {what} (typ {typ}), got typ {got!r}")
        kid = header.get("kid")
        if type(kid) is not str:
            raise MalformedToken("header kid is missing or not a string")
        root = self.roots.get(kid)
        if root is None:
            raise UnknownKey(f"the {what} is signed by {kid!r}, which is not a trusted root")
        _check_signature(root, signature_segment, signing_input)
        claims = _strict_json_object(_b64url_decode(payload_segment, "payload"), "payload")
        if type(claims.get("iss")) is not str:
            raise MalformedToken("claim 'iss' must be a string")
        if not _is_time(claims.get("iat")):
            raise MalformedToken(f"claim 'iat' must be integer seconds from 0 to {_MAX_EPOCH}")
        return claims

    def _subject(self, claims: dict[str, Any]) -> tuple[str, bytes, Ed25519PublicKey]:
        sub = claims.get("sub")
        if type(sub) is not str or not sub:
            raise MalformedToken("claim 'sub' must be a non-empty string (a kid)")
        raw, key = _public_jwk(claims.get("jwk"), sub)
        return sub, raw, key

    def _check_issuer(self, claims: dict[str, Any]) -> None:
        if claims["iss"] != self.issuer:
            raise WrongIssuer(f"issued by {claims['iss']!r}, this verifier trusts {self.issuer!r}")

    # -- accepting (steps 8 and 9) ---------------------------------------------------------

    def add_root_endorsement(self, token: Any) -> str:
        claims = self._open(token, ROOT_ENDORSEMENT_TYP)
        sub, raw, key = self._subject(claims)
        self._check_issuer(claims)
        known = self._root_raw.get(sub)
        if known is not None and known != raw:
            raise MalformedToken(f"the root {sub!r} is already trusted with another public key")
        signing = set(self._pinned.values()) | {entry[0] for entry in self._certified.values()}
        if raw in signing:
            raise MalformedToken(f"{sub!r} is a signing key; a root is never one")
        if known is None:
            self._root_raw = {**self._root_raw, sub: raw}
            self.roots = {**self.roots, sub: key}
            self.endorsements = [*self.endorsements, token]
        return sub

    def add_key_certificate(self, token: Any) -> str:
        claims = self._open(token, KEY_CERTIFICATE_TYP)
        sub, raw, key = self._subject(claims)
        nbf: int = claims.get("nbf", -1)  # checked just below
        exp: int = claims.get("exp", -1)
        if not (_is_time(nbf) and _is_time(exp)):
            raise MalformedToken(
                f"claims 'nbf' and 'exp' must be integer seconds up to {_MAX_EPOCH}"
            )
        if nbf > exp:
            raise MalformedToken("the certificate's window ends before it starts (nbf > exp)")
        self._check_issuer(claims)
        known = self._certified.get(sub)
        pinned = self._pinned.get(sub)
        if (known is not None and known[0] != raw) or (pinned is not None and pinned != raw):
            raise MalformedToken(f"the kid {sub!r} is already known with another public key")
        if raw in self._root_raw.values():
            raise MalformedToken(f"{sub!r} is a root key; a root never signs tokens")
        windows = () if known is None else known[2]
        if (nbf, exp) not in windows:
            self._certified = {**self._certified, sub: (raw, key, (*windows, (nbf, exp)))}
            self.certificates = [*self.certificates, token]
        return sub

    def add_key_revocations(self, token: Any) -> bool:
        claims = self._open(token, KEY_REVOCATIONS_TYP)
        seq, revoked = claims.get("seq"), claims.get("revoked")
        if type(seq) is not int or seq < 1:
            raise MalformedToken("claim 'seq' must be an integer >= 1")
        if type(revoked) is not list or not all(type(kid) is str for kid in revoked):
            raise MalformedToken("claim 'revoked' must be an array of kid strings")
        self._check_issuer(claims)
        if seq <= self.seq:
            return False  # a replayed or older list: ignored, never an undo
        self.seq, self.revoked, self.revocations = seq, frozenset(revoked), token
        return True

    # -- reading ---------------------------------------------------------------------------

    def certified(self) -> Iterator[tuple[str, Ed25519PublicKey, tuple[tuple[int, int], ...]]]:
        for kid, (_, key, windows) in self._certified.items():
            yield kid, key, windows

    def export(self) -> dict[str, Any]:
        return {
            "root_endorsements": list(self.endorsements),
            "key_certificates": list(self.certificates),
            "key_revocations": self.revocations,
        }
