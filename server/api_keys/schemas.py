from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from server.validation import SafeStr

Name = Annotated[SafeStr, msgspec.Meta(min_length=1, max_length=200)]
Scope = Annotated[SafeStr, msgspec.Meta(min_length=1, max_length=64)]


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=16)] = msgspec.field(
        default_factory=lambda: ["*"]
    )


class ApiKeyRead(msgspec.Struct):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str
    """Shown only in this response; store it now."""
