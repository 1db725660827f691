from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from server.validation import SafeStr

ProjectName = Annotated[SafeStr, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[SafeStr, msgspec.Meta(max_length=2000)]


class ProjectCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: ProjectName
    description: Description = ""


class ProjectUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: ProjectName | None = None
    description: Description | None = None


class ProjectRead(msgspec.Struct):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
