"""Offline verification of Licentia license, activation and usage tokens.

The hot path (``Verifier._verify``) is written for speed: public keys are loaded once at
construction, valid headers are cached by their exact encoded bytes, each segment is decoded
and parsed once, and the claim rules are one table (``_LICENSE_RULES``,
``_ACTIVATION_RULES``) checked by one function (``_claims_error``) that both decides and names
the rule a token breaks. The id claims are formatted as UUID text only when read. Everything
that can go wrong raises a ``LicenseError`` subclass.
"""

from __future__ import annotations

import binascii
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._errors import (
    ClockRollback,
    Expired,
    InvalidSignature,
    LicenseError,
    MalformedToken,
    NotYetValid,
    UnknownKey,
    WrongIssuer,
    WrongMachine,
    WrongProduct,
    WrongTokenType,
)

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping

    from ._state import HighWaterMark
    from ._trust import TrustStore

LICENSE_TYP = "license+jwt"
ACTIVATION_TYP = "activation+jwt"
USAGE_TYP = "usage+jwt"
_TOKEN_TYPES = (LICENSE_TYP, ACTIVATION_TYP, USAGE_TYP)
MAX_TOKEN_LENGTH = 16 * 1024
_ALGORITHMS = ("EdDSA", "Ed25519")
_HEADER_FIELDS = frozenset(("alg", "typ", "kid"))
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z
_TIME_LIMIT = _MAX_EPOCH + 1  # a time (with fractions) is before this
_MAX_HEADER_CACHE = 64

_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_URL_TO_STD = bytes.maketrans(b"-_", b"+/")
_STD_TO_URL = bytes.maketrans(b"+/", b"-_")
_PADDING = (b"", b"", b"==", b"=")
# The 6-bit value of each base64url character (0 for bytes outside the alphabet, which are
# rejected separately).
_SIXBIT = bytes(_B64URL_ALPHABET.index(c) if c in _B64URL_ALPHABET else 0 for c in range(256))
# In a canonical encoding the bits that the last character carries beyond the data are zero.
_UNUSED_BITS_MASK = (0, 0, 0b1111, 0b0011)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _b64url_decode_portable(segment: bytes, what: str) -> bytes:
    """Strict base64url: alphabet only, no padding, canonical trailing bits."""
    rest = len(segment) & 3
    if (
        rest == 1
        or segment.translate(None, _B64URL_ALPHABET)
        or (rest and _SIXBIT[segment[-1]] & _UNUSED_BITS_MASK[rest])
    ):
        raise MalformedToken(f"the {what} is not canonical unpadded base64url")
    try:
        return binascii.a2b_base64(segment.translate(_URL_TO_STD) + _PADDING[rest])
    except binascii.Error:  # pragma: no cover - excluded by the checks above
        raise MalformedToken(f"the {what} is not canonical unpadded base64url") from None


if sys.version_info >= (3, 11):
    # "+", "/" and "=" are not base64url: map them to a byte strict mode rejects.
    _URL_TO_STD_STRICT = bytes.maketrans(b"-_+/=", b"+/!!!")

    def _b64url_decode(segment: bytes, what: str) -> bytes:
        """Same contract, using binascii's strict mode (Python 3.11+): one pass fewer."""
        rest = len(segment) & 3
        if rest and (rest == 1 or _SIXBIT[segment[-1]] & _UNUSED_BITS_MASK[rest]):
            raise MalformedToken(f"the {what} is not canonical unpadded base64url")
        try:
            return binascii.a2b_base64(
                segment.translate(_URL_TO_STD_STRICT) + _PADDING[rest], strict_mode=True
            )
        except binascii.Error:
            raise MalformedToken(f"the {what} is not canonical unpadded base64url") from None

else:
    _b64url_decode = _b64url_decode_portable


def _uuid_text(claim: str) -> str:
    """The canonical UUID text (lowercase, hyphenated) of a validated id claim."""
    h = _b64url_decode(claim.encode("ascii"), "id").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _id_claim(text: str, name: str) -> str:
    """The id claim for canonical UUID text (hand-built licenses only)."""
    try:
        claim = b64url_encode(bytes.fromhex(text.replace("-", "")))
    except (AttributeError, TypeError, ValueError):
        claim = ""
    if len(claim) != 22 or _uuid_text(claim) != text:
        raise ValueError(f"{name} must be a UUID in canonical text form, got {text!r}")
    return claim


def b64url_encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_STD_TO_URL).rstrip(b"=").decode()


_json_scan: Any = None


def _json_scanner() -> Any:
    """A strict JSON scanner (no NaN/Infinity), built on first use so import stays cheap."""
    global _json_scan
    if _json_scan is None:
        import json

        def reject_constant(name: str) -> Any:
            raise ValueError(f"{name} is not valid JSON")

        # scan_once is the decoder's (C) scanner; typeshed does not declare it.
        _json_scan = json.JSONDecoder(parse_constant=reject_constant).scan_once  # type: ignore[attr-defined]
    return _json_scan


def _parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    scan = _json_scan or _json_scanner()
    try:
        text = data.decode("utf-8")
        value, end = scan(text, 0)
    except (ValueError, StopIteration, RecursionError):
        raise MalformedToken(f"the {what} is not a JSON object") from None
    if type(value) is not dict or (end != len(text) and text[end:].strip(" \t\r\n")):
        raise MalformedToken(f"the {what} is not a JSON object")
    return value


def _strict_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Like ``_parse_json_object`` but also refuses duplicate member names (header path)."""
    import json

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(items)
        if len(result) != len(items):
            raise ValueError("duplicate member name")
        return result

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        value = json.loads(
            data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=reject_constant
        )
    except (ValueError, RecursionError):
        raise MalformedToken(f"the {what} is not a JSON object without duplicate names") from None
    if type(value) is not dict:
        raise MalformedToken(f"the {what} is not a JSON object")
    return value


def _fingerprint_hash(fingerprint: str) -> str:
    import hashlib

    return b64url_encode(hashlib.sha256(fingerprint.encode("utf-8")).digest())


def _epoch_seconds(now: Any) -> float:
    """``now`` as epoch seconds: a timezone-aware datetime, an int or a float, or None for the
    local clock. Anything else, and any time outside 1970-01-01 .. 9999-12-31 (the range of
    the token's times; NaN, infinities and milliseconds are outside it), is a LicenseError."""
    if now is None:
        seconds = time.time()
        if 0 <= seconds < _TIME_LIMIT:
            return seconds
        raise _clock_out_of_range(seconds)
    kind = type(now)
    if kind is int or kind is float:
        if 0 <= now < _TIME_LIMIT:
            return float(now)
    elif isinstance(now, datetime):
        try:
            if now.utcoffset() is None:
                raise LicenseError("now must be a timezone-aware datetime")
            seconds = (now - _EPOCH).total_seconds()
        except LicenseError:
            raise
        except Exception:  # a broken tzinfo or datetime subclass: the caller's object
            raise LicenseError("now is not a usable datetime") from None
        if type(seconds) is float and 0 <= seconds < _TIME_LIMIT:
            return seconds
    else:
        raise LicenseError("now must be a timezone-aware datetime or epoch seconds")
    # No repr of the value: a huge int cannot always be turned into text.
    raise LicenseError(
        f"now must be epoch seconds from 0 to {_MAX_EPOCH} (1970 to 9999); "
        "NaN, infinities and milliseconds are refused"
    )


def _clock_out_of_range(seconds: float) -> LicenseError:
    return LicenseError(f"the local clock is not between 1970 and 9999: {seconds!r}")


def _utc(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def _iso(seconds: int | float) -> str:
    try:
        return (_EPOCH + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError):  # pragma: no cover - caller clocks are sane
        return str(seconds)


# --- Compact JWS, shared by tokens and trust material ----------------------------------------
#
# One copy of the encoding rules (docs/token-format.md, "Encoding"): the size, the three
# segments, strict base64url, the header's exact members and algorithm, the signature.


def _compact_parts(token: Any, what: str = "token") -> tuple[bytes, bytes, bytes, bytes]:
    """Steps 1 and 2: ``(signing_input, header, payload, signature)`` segments of a compact
    JWS of at most 16 KiB of ASCII, or MalformedToken."""
    if type(token) is str:
        if len(token) > MAX_TOKEN_LENGTH:
            raise MalformedToken(f"the {what} is larger than 16 KiB")
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise MalformedToken(f"the {what} contains non-ASCII characters") from None
    elif isinstance(token, (bytes, bytearray)):
        if len(token) > MAX_TOKEN_LENGTH:
            raise MalformedToken(f"the {what} is larger than 16 KiB")
        raw = bytes(token)
    else:
        raise MalformedToken(f"the {what} must be a string")
    signing_input, _, signature_segment = raw.rpartition(b".")
    header_segment, dot, payload_segment = signing_input.partition(b".")
    if not dot or b"." in payload_segment:
        raise MalformedToken(f"a {what} is three base64url segments separated by dots")
    return signing_input, header_segment, payload_segment, signature_segment


def _parse_header(segment: bytes) -> dict[str, Any]:
    """Steps 3 and 4: a JSON object without duplicate names, no member but ``alg``, ``typ``
    and ``kid``, and ``alg`` EdDSA or Ed25519. ``typ`` and ``kid`` are the caller's."""
    header = _strict_json_object(_b64url_decode(segment, "header"), "header")
    extra = set(header) - _HEADER_FIELDS
    if extra:
        raise MalformedToken(f"header field(s) not allowed: {', '.join(sorted(extra))}")
    alg = header.get("alg")
    if alg not in _ALGORITHMS or type(alg) is not str:
        raise InvalidSignature(f"algorithm {alg!r} is not accepted; only EdDSA (Ed25519)")
    return header


def _check_signature(key: Ed25519PublicKey, segment: bytes, signing_input: bytes) -> None:
    """Step 8: a strict base64url, 64-byte Ed25519 signature over the signing input."""
    signature = _b64url_decode(segment, "signature")
    if len(signature) != 64:
        raise InvalidSignature("an Ed25519 signature is 64 bytes")
    try:
        key.verify(signature, signing_input)
    except _CryptoInvalidSignature:
        raise InvalidSignature("the signature does not verify") from None


# --- The claim rules, defined once ----------------------------------------------------------
#
# A rule is (claim, kind): the claim must be present (except a kind that says "when present")
# and its JSON value of that kind. ``_claims_error`` is the only code that checks claims: the
# verifier refuses a token exactly when it returns a message, and that message is the error,
# so a refusal always names a rule that failed. A kind is the phrase its message uses.

_STRING = "a string"
_TIME = f"integer seconds since the epoch, from 0 to {_MAX_EPOCH}"
_ID = "an id: a UUID's 16 bytes as 22 unpadded base64url characters"
_INTEGER = "an integer"
_TIME_OR_NULL = f"null or integer seconds since the epoch, from 0 to {_MAX_EPOCH}"
_FEATURES = "an object whose values are booleans, finite numbers or strings"
_OPTIONAL_STRING = "a string when present"
_OPTIONAL_TIME = f"integer seconds since the epoch, from 0 to {_MAX_EPOCH}, when present"
_OPTIONAL_TRUE = "true when present"
_OPTIONAL_ID = f"{_ID}, when present"

_COMMON_RULES = (
    ("iss", _STRING),
    ("sub", _ID),
    ("aud", _STRING),
    ("iat", _TIME),
    ("nbf", _TIME),
    ("exp", _TIME),
    ("jti", _STRING),
    ("org", _ID),
    ("tier", _STRING),
    ("features", _FEATURES),
    ("max_activations", _INTEGER),
    ("license_expires_at", _TIME_OR_NULL),
    ("nonce", _OPTIONAL_STRING),
    ("updates_until", _OPTIONAL_TIME),
    ("trial", _OPTIONAL_TRUE),
)
_LICENSE_RULES = _COMMON_RULES
_ACTIVATION_RULES = (*_COMMON_RULES, ("act", _ID), ("fp", _STRING), ("usr", _OPTIONAL_ID))
_ACTIVATION_ONLY = ("act", "usr")
"""Claims of activation tokens only: in a license token they are not the license's (the
verifier drops them, so ``activation_id`` and ``user_id`` stay ``None``)."""
_USAGE_RULES = (
    *_COMMON_RULES,
    ("meter", _STRING),
    ("used", _INTEGER),
    ("limit", _INTEGER),
    ("period_end", _TIME_OR_NULL),
)

_MISSING: Any = object()
# In a canonical 22-character id the last character carries 2 bits of the UUID and 4 unused
# bits that must be zero: it is one of these (docs/token-format.md, "Identifiers").
_ID_LAST = "AQgw"

# How ``_claims_error`` checks each kind. A kind checked by type alone: (type, what stands in
# for an absent claim: a value of the wrong type, unless absence is allowed). A time:
# whether null is allowed.
_BY_TYPE = {_STRING: (str, _MISSING), _INTEGER: (int, _MISSING), _OPTIONAL_STRING: (str, "")}
# A time: (null allowed, absence allowed).
_BY_RANGE = {_TIME: (False, False), _TIME_OR_NULL: (True, False), _OPTIONAL_TIME: (False, True)}
_Plan = tuple[
    tuple[tuple[str, type, Any, str], ...],  # by type: claim, type, stand-in, kind
    tuple[tuple[str, bool, bool, str], ...],  # times: claim, null allowed, absence allowed, kind
    tuple[tuple[str, bool], ...],  # ids: claim, absence allowed
    tuple[str, ...],  # features
    tuple[str, ...],  # true when present
]


def _plan(rules: tuple[tuple[str, str], ...]) -> _Plan:
    """The rules of a table arranged the way ``_claims_error`` walks them."""
    unknown = {kind for _, kind in rules} - {
        *_BY_TYPE,
        *_BY_RANGE,
        _ID,
        _OPTIONAL_ID,
        _FEATURES,
        _OPTIONAL_TRUE,
    }
    if unknown:  # a rule nothing would check: refuse to import rather than accept it
        raise ValueError(f"no check for the claim kind(s) {sorted(unknown)}")
    return (
        tuple((claim, *_BY_TYPE[kind], kind) for claim, kind in rules if kind in _BY_TYPE),
        tuple((claim, *_BY_RANGE[kind], kind) for claim, kind in rules if kind in _BY_RANGE),
        tuple(
            (claim, kind is _OPTIONAL_ID) for claim, kind in rules if kind in (_ID, _OPTIONAL_ID)
        ),
        tuple(claim for claim, kind in rules if kind is _FEATURES),
        tuple(claim for claim, kind in rules if kind is _OPTIONAL_TRUE),
    )


_LICENSE_PLAN = _plan(_LICENSE_RULES)
_ACTIVATION_PLAN = _plan(_ACTIVATION_RULES)
_USAGE_PLAN = _plan(_USAGE_RULES)
_PLANS = {LICENSE_TYP: _LICENSE_PLAN, ACTIVATION_TYP: _ACTIVATION_PLAN, USAGE_TYP: _USAGE_PLAN}


def _claims_error(claims: dict[str, Any], plan: _Plan) -> str | None:
    """The message of a rule that ``claims`` break (the first found), or None when they
    break none. ``plan`` is ``_LICENSE_PLAN`` or ``_ACTIVATION_PLAN``."""
    by_type, times, ids, features, flags = plan
    get = claims.get
    for claim, kind_type, absent, kind in by_type:
        if type(get(claim, absent)) is not kind_type:
            return _broken(claims, claim, kind)
    for claim, nullable, optional, kind in times:
        value = get(claim, _MISSING)
        if type(value) is not int or not 0 <= value <= _MAX_EPOCH:
            if (value is None and nullable) or (value is _MISSING and optional):
                continue
            return _broken(claims, claim, kind)
    for claim in flags:
        if get(claim, True) is not True:
            return _broken(claims, claim, _OPTIONAL_TRUE)
    text = ""
    for claim, optional in ids:
        value = get(claim, _MISSING)
        if value is _MISSING and optional:
            continue
        if type(value) is not str or len(value) != 22 or value[21] not in _ID_LAST:
            return _broken(claims, claim, _OPTIONAL_ID if optional else _ID)
        text += value
    # Every character in the base64url alphabet: all ids at once, then the culprit.
    if text.encode("ascii", "replace").translate(None, _B64URL_ALPHABET):
        for claim, optional in ids:
            if get(claim, "").encode("ascii", "replace").translate(None, _B64URL_ALPHABET):
                return _broken(claims, claim, _OPTIONAL_ID if optional else _ID)
    for claim in features:
        value = get(claim)
        if type(value) is not dict:
            return _broken(claims, claim, _FEATURES)
        for feature in value.values():
            kind_type = type(feature)
            if (
                kind_type is not bool
                and kind_type is not str
                and kind_type is not int
                and (kind_type is not float or feature - feature != 0.0)
            ):
                return _broken(claims, claim, _FEATURES)
    return None


def _broken(claims: dict[str, Any], claim: str, kind: str) -> str:
    if claim not in claims:
        return f"missing required claim {claim!r}"
    return f"claim {claim!r} must be {kind}"


class License:
    """A verified license, read-only. Built by the verifier from the token's claims.

    Attributes: ``license_id``, ``activation_id`` (``None`` for a license token) and
    ``organization_id`` (canonical UUID text, e.g. ``"5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11"``,
    decoded from the token's compact ids), ``product``, ``tier``, ``features`` (read-only mapping),
    ``max_activations``, ``issued_at``, ``expires_at`` (the token's expiry: for an
    activation token, the end of the offline lease), ``license_expires_at`` (``None`` for
    a perpetual license), ``token_id`` (the ``jti``), ``nonce`` (``None`` unless the
    request that produced the token supplied one), ``updates_until`` (perpetual fallback: the
    last release date the license covers; ``None`` when it covers every build),
    ``is_trial`` and ``user_id`` (named-user licenses: the user the activation is bound to,
    canonical UUID text; ``None`` otherwise and for a license token). Datetimes are
    timezone-aware UTC.
    """

    __slots__ = ("_claims",)
    _claims: dict[str, Any]

    def __init__(
        self,
        *,
        license_id: str,
        organization_id: str,
        product: str,
        tier: str,
        features: Mapping[str, bool | int | float | str],
        max_activations: int,
        issued_at: datetime,
        expires_at: datetime,
        license_expires_at: datetime | None,
        activation_id: str | None = None,
        token_id: str = "",
        nonce: str | None = None,
        updates_until: datetime | None = None,
        is_trial: bool = False,
        user_id: str | None = None,
    ) -> None:
        """Build a License by hand (for tests of code that consumes licenses).

        Ids are UUIDs in canonical text form, as the verifier returns them (else
        ``ValueError``).
        Datetimes must be timezone-aware; they are kept to whole seconds, as in a token.
        """
        claims: dict[str, Any] = {
            "sub": _id_claim(license_id, "license_id"),
            "aud": product,
            "iat": int(_epoch_seconds(issued_at)),
            "exp": int(_epoch_seconds(expires_at)),
            "jti": token_id,
            "org": _id_claim(organization_id, "organization_id"),
            "tier": tier,
            "features": dict(features),
            "max_activations": max_activations,
            "license_expires_at": (
                None if license_expires_at is None else int(_epoch_seconds(license_expires_at))
            ),
        }
        if activation_id is not None:
            claims["act"] = _id_claim(activation_id, "activation_id")
        if nonce is not None:
            claims["nonce"] = nonce
        if updates_until is not None:
            claims["updates_until"] = int(_epoch_seconds(updates_until))
        if is_trial:
            claims["trial"] = True
        if user_id is not None:
            claims["usr"] = _id_claim(user_id, "user_id")
        object.__setattr__(self, "_claims", claims)

    @classmethod
    def _from_claims(cls, claims: dict[str, Any]) -> License:
        self = _new_object(cls)
        _set_claims(self, claims)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("License is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("License is read-only")

    def __reduce__(self) -> tuple[Any, ...]:
        return (License._from_claims, (dict(self._claims),))

    @property
    def license_id(self) -> str:
        return _uuid_text(self._claims["sub"])

    @property
    def activation_id(self) -> str | None:
        act = self._claims.get("act")
        return None if act is None else _uuid_text(act)

    @property
    def organization_id(self) -> str:
        return _uuid_text(self._claims["org"])

    @property
    def product(self) -> str:
        product: str = self._claims["aud"]
        return product

    @property
    def tier(self) -> str:
        tier: str = self._claims["tier"]
        return tier

    @property
    def features(self) -> Mapping[str, bool | int | float | str]:
        return MappingProxyType(self._claims["features"])

    @property
    def max_activations(self) -> int:
        count: int = self._claims["max_activations"]
        return count

    @property
    def issued_at(self) -> datetime:
        return _utc(self._claims["iat"])

    @property
    def expires_at(self) -> datetime:
        return _utc(self._claims["exp"])

    @property
    def license_expires_at(self) -> datetime | None:
        value = self._claims["license_expires_at"]
        return None if value is None else _utc(value)

    @property
    def token_id(self) -> str:
        jti: str = self._claims["jti"]
        return jti

    @property
    def nonce(self) -> str | None:
        return self._claims.get("nonce")

    @property
    def updates_until(self) -> datetime | None:
        value = self._claims.get("updates_until")
        return None if value is None else _utc(value)

    @property
    def is_trial(self) -> bool:
        return self._claims.get("trial") is True

    @property
    def user_id(self) -> str | None:
        """The named user an activation of a ``user`` license is bound to (``usr``)."""
        usr = self._claims.get("usr")
        return None if usr is None else _uuid_text(usr)

    def allows_release(self, released_at: datetime | float) -> bool:
        """Whether a build released at ``released_at`` (a timezone-aware datetime or epoch
        seconds) is covered: always, unless the license has ``updates_until`` (perpetual
        fallback), then only builds released at or before it."""
        limit = self._claims.get("updates_until")
        return limit is None or _epoch_seconds(released_at) <= limit

    def has(self, feature: str) -> bool:
        """True when the feature is present and truthy (``true``, a non-zero number, a
        non-empty string); False when it is absent, ``false``, ``0`` or ``""``."""
        return bool(self._claims["features"].get(feature, False))

    def limit(self, name: str, default: int | float | None = None) -> int | float | None:
        """The numeric value of a feature (a quota such as ``seats``), or ``default`` when
        the feature is absent or not a number (booleans are not numbers here)."""
        value = self._claims["features"].get(name)
        kind = type(value)
        return value if kind is int or kind is float else default

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, License):
            return NotImplemented
        return self._claims == other._claims

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"License(license_id={self.license_id!r}, activation_id={self.activation_id!r}, "
            f"product={self.product!r}, tier={self.tier!r}, "
            f"expires_at={self.expires_at.isoformat()!r})"
        )


def _check_release(claims: dict[str, Any], released_at: datetime | float) -> None:
    limit = claims.get("updates_until")
    if limit is not None and _epoch_seconds(released_at) > limit:
        raise Expired(
            f"this build ({_iso(_epoch_seconds(released_at))}) was released after the "
            f"license's updates ended ({_iso(limit)})"
        )


# The hot path builds a License from verified claims without a call to _from_claims.
_new_object = object.__new__
_set_claims = License.__dict__["_claims"].__set__  # the slot's descriptor


def _load_jwks(jwks: Any, what: str = "key set", arg: str = "jwks") -> dict[str, Any]:
    import json

    if isinstance(jwks, dict):
        return jwks
    if isinstance(jwks, bytes):
        text = jwks.decode("utf-8")
    elif isinstance(jwks, str) and jwks.lstrip().startswith(("{", "[")):
        text = jwks
    elif isinstance(jwks, (str, os.PathLike)):
        with open(jwks, encoding="utf-8") as handle:
            text = handle.read()
    else:
        raise TypeError(f"{arg} must be a dict, JSON text, or a path to a JSON file")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
        raise ValueError(f"the {what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f'the {what} must be a JSON object with a "keys" array')
    return data


def _public_keys(jwks: dict[str, Any], what: str = "key set") -> dict[str, Ed25519PublicKey]:
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        raise ValueError(f'the {what} must be a JSON object with a "keys" array')
    found: dict[str, Ed25519PublicKey] = {}
    raw_by_kid: dict[str, bytes] = {}
    for entry in keys:
        # Only OKP/Ed25519 signature keys are used; anything else (RSA, EC, symmetric
        # "oct" keys, encryption keys) is ignored so it can never be confused for one.
        if not isinstance(entry, dict) or entry.get("kty") != "OKP":
            continue
        if entry.get("crv") != "Ed25519" or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", "EdDSA") not in _ALGORITHMS:
            continue
        if "d" in entry:
            raise ValueError(f"the {what} contains a private key; embed only public keys")
        kid, x = entry.get("kid"), entry.get("x")
        if not isinstance(kid, str) or not kid or not isinstance(x, str):
            raise ValueError(f"every Ed25519 key in the {what} needs a string kid and x")
        try:
            raw = _b64url_decode(x.encode("ascii"), "key")
        except (UnicodeEncodeError, MalformedToken):
            raise ValueError(f"key {kid!r}: x is not base64url") from None
        if len(raw) != 32:
            raise ValueError(f"key {kid!r}: an Ed25519 public key is 32 bytes")
        if kid in raw_by_kid:
            if raw_by_kid[kid] != raw:
                raise ValueError(f"two different keys share the kid {kid!r}")
            continue
        raw_by_kid[kid] = raw
        found[kid] = Ed25519PublicKey.from_public_bytes(raw)
    if not found:
        raise ValueError(f"the {what} contains no Ed25519 signature key")
    return found


# What the token path looks a kid up in, rebuilt whenever trust material changes and swapped
# in one assignment, so a verification in another thread sees either the old or the new
# state, never a mix: (kid -> (key, certificate windows, or None for a pinned key), the
# revoked kids, the header cache of this state).
_Windows = tuple[tuple[int, int], ...]
_Entry = tuple[str, Ed25519PublicKey, "_Windows | None", str]  # typ, key, windows, kid
_Ring = tuple[
    dict[str, tuple[Ed25519PublicKey, "_Windows | None"]], frozenset[str], dict[bytes, _Entry]
]


def _make_ring(pinned: Mapping[str, Ed25519PublicKey], trust: TrustStore | None) -> _Ring:
    lookup: dict[str, tuple[Ed25519PublicKey, _Windows | None]] = {
        kid: (key, None) for kid, key in pinned.items()
    }
    revoked: frozenset[str] = frozenset()
    if trust is not None:
        for kid, key, windows in trust.certified():
            lookup.setdefault(kid, (key, windows))  # a pinned key needs no window
        revoked = trust.revoked
    return lookup, revoked, {}


class Verifier:
    """Verifies license and activation tokens offline against a local key set.

    Build one at start-up and reuse it; it is safe to share between threads. Two ways to
    know the signing keys (docs/token-format.md, "Root of trust"):

    - ``Verifier.from_jwks(...)`` pins the key set the product ships with;
    - ``Verifier.from_root(...)`` embeds only the deployment's root public key and learns
      each signing key from a root-signed certificate (``add_key_certificate``, or
      ``add_trust_material`` with a licensing answer), so it follows key rotations without a
      product release. ``trust_material()`` exports what it accepted, to persist and feed
      back with ``add_trust_material`` in the next process.
    """

    __slots__ = (
        "_fp_cache",
        "_issuer",
        "_keys",
        "_leeway",
        "_product",
        "_ring",
        "_state",
        "_trust",
    )

    def __init__(
        self,
        keys: Mapping[str, Ed25519PublicKey],
        *,
        product: str,
        issuer: str,
        leeway: timedelta = timedelta(minutes=5),
        state_path: str | os.PathLike[str] | None = None,
        roots: Mapping[str, Ed25519PublicKey] | None = None,
    ) -> None:
        if not isinstance(product, str) or not product:
            raise ValueError("product must be a non-empty string")
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("issuer must be a non-empty string")
        seconds = leeway.total_seconds() if isinstance(leeway, timedelta) else None
        if seconds is None or seconds < 0:
            raise ValueError("leeway must be a non-negative timedelta")
        if not keys and not roots:
            raise ValueError("keys must map kid to Ed25519PublicKey and not be empty")
        for kind, mapping in (("keys", keys), ("roots", roots or {})):
            if not all(isinstance(k, Ed25519PublicKey) for k in mapping.values()):
                raise ValueError(f"{kind} must map kid to Ed25519PublicKey")
        self._keys = dict(keys)
        self._product = product
        self._issuer = issuer
        self._leeway = seconds
        self._fp_cache: tuple[str, str] = ("", "")
        self._trust: TrustStore | None = None
        if roots:
            from ._trust import TrustStore

            self._trust = TrustStore(roots, issuer=issuer, pinned=self._keys)
        self._ring: _Ring = _make_ring(self._keys, self._trust)
        self._state: HighWaterMark | None = None
        if state_path is not None:
            from ._state import HighWaterMark

            self._state = HighWaterMark(state_path)
        _json_scanner()

    @classmethod
    def from_jwks(
        cls,
        jwks: dict[str, Any] | str | bytes | os.PathLike[str],
        *,
        product: str,
        issuer: str,
        leeway: timedelta = timedelta(minutes=5),
        state_path: str | os.PathLike[str] | None = None,
    ) -> Verifier:
        """Build a verifier from a JWKS (RFC 7517): a dict, JSON text, or a file path.

        Only ``OKP``/``Ed25519`` signature keys are used; other entries are ignored.
        Raises ``ValueError`` for an unusable key set (no Ed25519 key, a private key,
        two different keys with one kid). ``state_path``, when given, is a small file
        where the verifier keeps the latest time it has seen, to detect clock rollback
        across restarts.
        """
        return cls(
            _public_keys(_load_jwks(jwks)),
            product=product,
            issuer=issuer,
            leeway=leeway,
            state_path=state_path,
        )

    @classmethod
    def from_root(
        cls,
        root: dict[str, Any] | str | bytes | os.PathLike[str],
        *,
        product: str,
        issuer: str,
        leeway: timedelta = timedelta(minutes=5),
        state_path: str | os.PathLike[str] | None = None,
        jwks: dict[str, Any] | str | bytes | os.PathLike[str] | None = None,
    ) -> Verifier:
        """Build a verifier that trusts the deployment's root: the root document
        (``licentia keys export-root``, ``{"keys": [...], "root_endorsements": [...]}``) as a
        dict, JSON text, or a file path.

        The root keys never verify a token: they only certify signing keys. A token is
        accepted when its ``kid`` has an accepted certificate whose window holds the token's
        ``iat`` and is not revoked. Feed trust material with ``add_trust_material`` (a
        licensing answer, the stored export) or the ``add_*`` methods. ``jwks`` optionally
        pins a key set as well (a key is then usable when either admits it; a revoked kid is
        refused either way). The document's endorsements are processed in order; one that
        does not verify (say, signed by a root since retired from the document) is skipped.
        Raises ``ValueError`` for an unusable document, like ``from_jwks``.
        """
        document = _load_jwks(root, "root document", "root")
        roots = _public_keys(document, "root document")
        endorsements = document.get("root_endorsements", [])
        if not isinstance(endorsements, list):
            raise ValueError('the root document\'s "root_endorsements" must be an array')
        pinned = {} if jwks is None else _public_keys(_load_jwks(jwks))
        overlap = set(roots) & set(pinned)
        if overlap:
            raise ValueError(f"a root key cannot also be pinned as a signing key: {overlap}")
        verifier = cls(
            pinned,
            product=product,
            issuer=issuer,
            leeway=leeway,
            state_path=state_path,
            roots=roots,
        )
        verifier.add_trust_material({"root_endorsements": endorsements})
        return verifier

    @property
    def product(self) -> str:
        return self._product

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The kids that may sign tokens now: pinned or certified, and not revoked."""
        lookup, revoked, _ = self._ring
        return tuple(kid for kid in lookup if kid not in revoked)

    @property
    def root_ids(self) -> tuple[str, ...]:
        """The trusted roots' kids: the embedded ones and those accepted by endorsement."""
        return () if self._trust is None else tuple(self._trust.roots)

    @property
    def revoked_key_ids(self) -> tuple[str, ...]:
        """The kids withdrawn by the newest accepted revocation list."""
        return tuple(sorted(self._ring[1]))

    def __repr__(self) -> str:
        roots = "" if self._trust is None else f", roots={list(self._trust.roots)!r}"
        return (
            f"Verifier(product={self._product!r}, issuer={self._issuer!r}, "
            f"keys={list(self.key_ids)!r}{roots})"
        )

    # -- trust material (docs/token-format.md, "Checking trust material") ------------------

    def _trust_store(self) -> TrustStore:
        trust = self._trust
        if trust is None:  # a pinning verifier trusts no root: every piece is UnknownKey
            from ._trust import TrustStore

            trust = self._trust = TrustStore({}, issuer=self._issuer, pinned=self._keys)
        return trust

    def add_root_endorsement(self, endorsement: str) -> str:
        """Accept a ``root+jwt`` signed by a trusted root: its ``sub`` becomes a trusted root
        too. Returns that kid. Raises ``MalformedToken``, ``InvalidSignature``,
        ``WrongTokenType``, ``UnknownKey`` (not signed by a trusted root) or ``WrongIssuer``;
        nothing is changed then."""
        trust = self._trust_store()
        with trust.lock:
            return trust.add_root_endorsement(endorsement)

    def add_key_certificate(self, certificate: str) -> str:
        """Accept a ``key+jwt`` signed by a trusted root: its key may sign tokens whose
        ``iat`` lies in the certificate's window. Returns the certified kid. Raises like
        ``add_root_endorsement`` (``MalformedToken`` also for a kid already known with
        another public key)."""
        trust = self._trust_store()
        with trust.lock:
            kid = trust.add_key_certificate(certificate)
            self._ring = _make_ring(self._keys, trust)
        return kid

    def add_key_revocations(self, revocations: str) -> bool:
        """Accept a ``key-revocations+jwt`` signed by a trusted root. Returns True when it
        replaced the stored list (its ``seq`` is greater), False when it was ignored as not
        newer (a replayed old list cannot undo a revocation). Tokens of a revoked kid are
        then refused with ``UnknownKey``, pinned or certified. Raises like
        ``add_root_endorsement``."""
        trust = self._trust_store()
        with trust.lock:
            replaced = trust.add_key_revocations(revocations)
            if replaced:
                self._ring = _make_ring(self._keys, trust)
        return replaced

    def add_trust_material(self, material: Mapping[str, Any]) -> list[LicenseError]:
        """Process the trust material of a licensing answer (``root_endorsements``,
        ``key_certificate``, ``key_revocations``), of ``/.well-known/key-certificates.json``
        (``certificates``) or of ``trust_material()`` (``key_certificates``), in the
        specified order: endorsements, certificates, then the revocation list.

        Never raises for a piece that fails: it is dropped, and its error is returned (an
        empty list when everything was accepted or ignored as older). Members that are
        absent or null are skipped.
        """
        from collections.abc import Mapping

        if not isinstance(material, Mapping):
            raise TypeError("material must be a mapping (a parsed JSON object)")
        errors: list[LicenseError] = []

        def pieces(*names: str) -> list[Any]:
            found: list[Any] = []
            for name in names:
                value = material.get(name)
                if value is None:
                    continue
                if isinstance(value, list):
                    found.extend(value)
                else:
                    found.append(value)
            return found

        for endorsement in pieces("root_endorsements"):
            try:
                self.add_root_endorsement(endorsement)
            except LicenseError as error:
                errors.append(error)
        for certificate in pieces("key_certificate", "key_certificates", "certificates"):
            try:
                self.add_key_certificate(certificate)
            except LicenseError as error:
                errors.append(error)
        for revocations in pieces("key_revocations"):
            try:
                self.add_key_revocations(revocations)
            except LicenseError as error:
                errors.append(error)
        return errors

    def trust_material(self) -> dict[str, Any]:
        """What this verifier accepted, as JSON-ready data: ``{"root_endorsements": [...],
        "key_certificates": [...], "key_revocations": "<jwt>" | None}``. Persist it and pass
        it to ``add_trust_material`` in a later process (each piece is verified again, so
        the stored copy need not be trusted)."""
        trust = self._trust
        if trust is None:
            return {"root_endorsements": [], "key_certificates": [], "key_revocations": None}
        with trust.lock:
            return trust.export()

    # -- tokens ----------------------------------------------------------------------------

    def verify_license(
        self,
        token: str,
        *,
        now: datetime | float | None = None,
        released_at: datetime | float | None = None,
    ) -> License:
        """Verify a ``license+jwt`` token. Raises a ``LicenseError`` subclass on failure.

        ``released_at``: this build's release date; ``Expired`` when the license does not
        cover it (``License.allows_release``)."""
        claims = self._verify(token, LICENSE_TYP, now)
        if released_at is not None:
            _check_release(claims, released_at)
        license = _new_object(License)
        _set_claims(license, claims)
        return license

    def verify_activation(
        self,
        token: str,
        *,
        fingerprint: str,
        now: datetime | float | None = None,
        released_at: datetime | float | None = None,
    ) -> License:
        """Verify an ``activation+jwt`` token for this machine's ``fingerprint`` (the same
        string the product sent when it activated, e.g. ``machine_fingerprint(salt)``).

        ``released_at``: this build's release date (a constant of the build); a license
        with perpetual fallback (``updates_until``) covers only builds released until
        then, and a later build raises ``Expired``."""
        claims = self._verify(token, ACTIVATION_TYP, now)
        if released_at is not None:
            _check_release(claims, released_at)
        cached = self._fp_cache
        if type(fingerprint) is str and fingerprint == cached[0] and fingerprint:
            expected = cached[1]
        else:
            if type(fingerprint) is not str or not fingerprint:
                raise WrongMachine("fingerprint must be a non-empty string")
            try:
                expected = _fingerprint_hash(fingerprint)
            except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form
                raise WrongMachine("fingerprint is not valid Unicode text") from None
            self._fp_cache = (fingerprint, expected)
        if claims["fp"] != expected:
            raise WrongMachine("the activation token belongs to another machine")
        license = _new_object(License)
        _set_claims(license, claims)
        return license

    def verify_usage(self, token: str, *, now: datetime | float | None = None) -> Usage:
        """Verify a ``usage+jwt`` (the answer to ``LicenseClient.consume``): one meter's count
        as the server saw it, for showing the remaining quota offline. Raises a
        ``LicenseError`` subclass on failure; the token expires at the period's end, when the
        count it shows starts again from zero."""
        claims = self._verify(token, USAGE_TYP, now)
        used, limit, meter = claims["used"], claims["limit"], claims["meter"]
        if used < 0 or limit < 0:
            raise MalformedToken("claims 'used' and 'limit' must be integers >= 0")
        period_end = claims["period_end"]
        license = _new_object(License)
        _set_claims(license, claims)
        return Usage(
            meter=meter,
            used=used,
            limit=limit,
            remaining=max(limit - used, 0),
            period_ends_at=None if period_end is None else _utc(period_end),
            license=license,
        )

    def _header(self, segment: bytes, ring: _Ring) -> _Entry:
        header = _parse_header(segment)
        typ = header.get("typ")
        if typ not in _TOKEN_TYPES or type(typ) is not str:
            raise WrongTokenType(f"typ {typ!r} is not a Licentia token type")
        kid = header.get("kid")
        if type(kid) is not str:
            raise MalformedToken("header kid is missing or not a string")
        lookup, revoked, cache = ring
        if kid in revoked:
            raise UnknownKey(f"kid {kid!r} is revoked by the root's revocation list")
        found = lookup.get(kid)
        if found is None:
            if self._trust is None or not self._trust.roots:
                raise UnknownKey(f"kid {kid!r} is not in the local key set")
            raise UnknownKey(
                f"kid {kid!r} is neither pinned nor certified by a trusted root (no accepted "
                "key certificate for it)"
            )
        entry = (typ, found[0], found[1], kid)
        if len(cache) < _MAX_HEADER_CACHE:
            cache[segment] = entry
        return entry

    def _verify(self, token: Any, typ: str, now: Any) -> dict[str, Any]:
        # 1. Size and shape, before any parsing.
        signing_input, header_segment, payload_segment, signature_segment = _compact_parts(token)

        # 2. Header: exactly alg/typ/kid, EdDSA, a Licentia typ, a known, unrevoked kid.
        ring = self._ring
        entry = ring[2].get(header_segment) or self._header(header_segment, ring)
        if entry[0] != typ:
            raise WrongTokenType(f"expected a {typ} token, got {entry[0]}")

        # 3. Signature, before the payload is parsed at all.
        _check_signature(entry[1], signature_segment, signing_input)

        # 4. Claims: every rule of the table for this token type holds.
        claims = _parse_json_object(_b64url_decode(payload_segment, "payload"), "payload")
        activation = typ == ACTIVATION_TYP
        problem = _claims_error(claims, _PLANS[typ])
        if problem is not None:
            raise MalformedToken(problem)
        if not activation:
            for claim in _ACTIVATION_ONLY:
                if claim in claims:  # not a license-token claim: the property stays None
                    del claims[claim]
        windows = entry[2]
        if windows is not None:  # a certified key: one certificate's window holds iat
            iat = claims["iat"]
            if not any(nbf <= iat <= exp for nbf, exp in windows):
                raise UnknownKey(
                    f"no accepted certificate of kid {entry[3]!r} covers the token's issue "
                    f"time ({_iso(iat)})"
                )

        # 5. Who it is for.
        iss = claims["iss"]
        if iss != self._issuer:
            raise WrongIssuer(f"issued by {iss!r}, this verifier trusts {self._issuer!r}")
        aud = claims["aud"]
        if aud != self._product:
            raise WrongProduct(f"issued for product {aud!r}, not {self._product!r}")

        # 6. When. ``now`` comes from the caller when given, else the local clock; only the
        # local clock moves the high-water mark.
        current = time.time() if now is None else _epoch_seconds(now)
        if not 0 <= current < _TIME_LIMIT:  # only the local clock can be out of range here
            raise _clock_out_of_range(current)
        leeway = self._leeway
        iat = claims["iat"]
        if current < iat - leeway:
            raise ClockRollback(
                f"the local clock ({_iso(current)}) is earlier than the token's issue time "
                f"({_iso(iat)})"
            )
        if self._state is not None:
            self._state.observe(current, leeway, advance=now is None)
        nbf = claims["nbf"]
        if current < nbf - leeway:
            raise NotYetValid(f"the token is not valid before {_iso(nbf)}")
        exp = claims["exp"]
        if current >= exp + leeway:
            raise Expired(f"the token expired at {_iso(exp)}")
        lexp = claims["license_expires_at"]
        if lexp is not None and current >= lexp + leeway:
            raise Expired(f"the license expired at {_iso(lexp)}")
        return claims


class Usage(NamedTuple):
    """A verified ``usage+jwt``: one meter's count when the server answered.

    ``period_ends_at`` is when the count starts again from zero (``None``: never), timezone-aware
    UTC; ``license`` is the license the count belongs to."""

    meter: str
    used: int
    limit: int
    remaining: int
    period_ends_at: datetime | None
    license: License
