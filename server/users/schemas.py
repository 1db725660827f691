from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

if TYPE_CHECKING:
    from server.models import User

from server.validation import Line, SafeStr

Email = Annotated[Line, msgspec.Meta(min_length=3, max_length=320, description="An e-mail address")]
Password = Annotated[
    str,
    msgspec.Meta(
        min_length=12,
        max_length=1024,
        description="At least 12 characters, 5 of them different; not a common password",
    ),
]
FullName = Annotated[SafeStr, msgspec.Meta(min_length=1, max_length=200)]
Role = Literal["owner", "admin", "member"]


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    full_name: FullName
    password: Password
    role: Role = "member"
    organization_id: uuid.UUID | None = None
    """Admin API keys only: the organization to add the user to (users add to their own)."""


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    full_name: FullName | None = None
    role: Role | None = None
    password: Password | None = None
    """Only for your own account, together with ``current_password``."""
    current_password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] | None = None


class UserRead(msgspec.Struct):
    id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    full_name: str
    role: str
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


def user_read(row: User) -> UserRead:
    return UserRead(**{f: getattr(row, f) for f in UserRead.__struct_fields__})
