from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import msgspec

if TYPE_CHECKING:
    from server.models import Organization

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


def organization_read(row: Organization) -> OrganizationRead:
    return OrganizationRead(**{f: getattr(row, f) for f in OrganizationRead.__struct_fields__})
