from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from server.validation import SafeStr

OrganizationName = Annotated[SafeStr, msgspec.Meta(min_length=1, max_length=200)]


class OrganizationCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: OrganizationName


class OrganizationUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: OrganizationName | None = None


class OrganizationRead(msgspec.Struct):
    id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime
