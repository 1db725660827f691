from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec


class AuditEventRead(msgspec.Struct):
    id: int
    organization_id: uuid.UUID | None
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    data: dict[str, Any]
    request_id: str | None
    ip: str | None
    at: datetime
