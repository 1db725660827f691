"""Named-user seats: the users assigned to a license of a ``user`` tier."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec


class LicenseUserAssign(msgspec.Struct, forbid_unknown_fields=True):
    user_id: uuid.UUID
    """A member of the license's organization."""


class LicenseUserRead(msgspec.Struct):
    user_id: uuid.UUID
    email: str
    full_name: str
    role: str
    assigned_at: datetime
    machines: int
    """The user's machines holding a live seat of this license."""


class LicenseUsersRead(msgspec.Struct):
    license_id: uuid.UUID
    seat_kind: str
    """``machine`` (no users are assigned) or ``user``."""
    max_users: int | None
    machines_per_user: int
    users: list[LicenseUserRead]
    """Oldest assignment first."""
