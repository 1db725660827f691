"""Offline verifier for Licentia license, activation and usage tokens.

    from licentia_verifier import Verifier, LicenseError, machine_fingerprint

    verifier = Verifier.from_jwks("jwks.json", product="acme-ide", issuer="https://lic.acme.test")
    license = verifier.verify_activation(token, fingerprint=machine_fingerprint("acme-ide"))

``Verifier.from_root("root.json", ...)`` embeds the deployment's root instead and learns the
signing keys from root-signed certificates (``add_key_certificate``, ``add_trust_material``),
so it survives key rotations without a release.

Every failure raises a subclass of ``LicenseError``. See docs/embedding.md and
docs/token-format.md in the Licentia repository.
"""

from __future__ import annotations

from typing import Any

from ._errors import (
    ClockRollback,
    Expired,
    FingerprintUnavailable,
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
from ._fingerprint import machine_fingerprint
from ._verifier import License, Usage, Verifier

__version__ = "0.1.0"

__all__ = [
    "ActivationRefused",
    "ClockRollback",
    "Expired",
    "FingerprintUnavailable",
    "InvalidSignature",
    "License",
    "LicenseClient",
    "LicenseError",
    "MalformedToken",
    "NotActivated",
    "NotYetValid",
    "ServerUnavailable",
    "UnknownKey",
    "Usage",
    "Verifier",
    "WrongIssuer",
    "WrongMachine",
    "WrongProduct",
    "WrongTokenType",
    "machine_fingerprint",
]

# Names that live in submodules which are imported only when first used, so that
# ``import licentia_verifier`` stays as cheap as importing the Ed25519 primitive itself.
_LAZY: dict[str, str] = {
    name: ".client"
    for name in ("LicenseClient", "ActivationRefused", "NotActivated", "ServerUnavailable")
}


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
