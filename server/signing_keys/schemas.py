"""Signing keys as the admin API shows them (never the private key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from server.validation import AwareDateTime, DatedRequest


class SigningKeyRead(msgspec.Struct):
    kid: str
    state: str
    created_at: datetime
    activates_at: datetime | None
    activated_at: datetime | None
    retired_at: datetime | None
    revoked_at: datetime | None


class RotateRequest(DatedRequest, forbid_unknown_fields=True):
    activate_at: AwareDateTime | None = None
    """When the new key starts signing (default: now); it is published in the JWKS at once."""


# The trust material every answer carrying a token carries next to it (docs/token-format.md,
# "Where trust material comes from").
KEY_CERTIFICATE_DOC = (
    "The newest `key+jwt` (signed by the root) for the key that signed `token`: a product "
    "that embeds only the root learns the signing key from it (docs/token-format.md, "
    '"Root of trust"). `null` when no token is carried, or in the rare case of a key never '
    "certified (made while the root was offline; `licentia keys certify --root-key FILE`)."
)
KEY_REVOCATIONS_DOC = (
    "The current root-signed `key-revocations+jwt`; `null` until a key is ever revoked (and "
    "when no token is carried)."
)
ROOT_ENDORSEMENTS_DOC = (
    "The `root+jwt` endorsement chain, oldest first; empty until the root is rotated (and "
    "when no token is carried)."
)

KeyCertificate = Annotated[str | None, msgspec.Meta(description=KEY_CERTIFICATE_DOC)]
KeyRevocations = Annotated[str | None, msgspec.Meta(description=KEY_REVOCATIONS_DOC)]
RootEndorsements = Annotated[list[str], msgspec.Meta(description=ROOT_ENDORSEMENTS_DOC)]
