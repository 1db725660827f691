"""The one exception family raised by the verifier."""

from __future__ import annotations

__all__ = [
    "ClockRollback",
    "Expired",
    "FingerprintUnavailable",
    "InvalidSignature",
    "LicenseError",
    "MalformedToken",
    "NotYetValid",
    "UnknownKey",
    "WrongIssuer",
    "WrongMachine",
    "WrongProduct",
    "WrongTokenType",
]


class LicenseError(Exception):
    """Base class of every error the verifier raises. Catch this to fail closed.

    ``str(error)`` is a short human-readable reason; ``error.code`` is the stable
    class name (``"Expired"``, ``"WrongMachine"``, ...), suitable for logs and support.
    """

    @property
    def code(self) -> str:
        return type(self).__name__


class MalformedToken(LicenseError):
    """Not a well-formed Licentia token: size, encoding, JSON, header or claim shape."""


class InvalidSignature(LicenseError):
    """The algorithm is not EdDSA/Ed25519, or the signature does not verify."""


class UnknownKey(LicenseError):
    """The token's ``kid`` is not in the verifier's local key set. With a root of trust: no
    accepted certificate for the ``kid``, none whose window holds the token's ``iat``, or
    the ``kid`` is revoked; for trust material: it is not signed by a trusted root."""


class WrongTokenType(LicenseError):
    """A license token where an activation token is required, or the reverse."""


class WrongIssuer(LicenseError):
    """The ``iss`` claim is not the issuer this verifier trusts."""


class WrongProduct(LicenseError):
    """The ``aud`` claim is not this verifier's product code."""


class WrongMachine(LicenseError):
    """The activation token was issued for another machine fingerprint."""


class Expired(LicenseError):
    """The token (its lease) or the license itself has expired."""


class NotYetValid(LicenseError):
    """The token's ``nbf`` is in the future (beyond the leeway)."""


class ClockRollback(LicenseError):
    """The local clock is earlier than a time this verifier knows has already passed."""


class FingerprintUnavailable(LicenseError):
    """``machine_fingerprint`` found no stable machine identifier on this system."""
