from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

from server.organizations.schemas import OrganizationName, OrganizationRead
from server.users.schemas import Email, FullName, Password, UserRead
from server.validation import Line, SafeStr

RefreshTokenValue = Annotated[SafeStr, msgspec.Meta(min_length=1, max_length=200)]


class SignupRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    full_name: FullName
    organization_name: OrganizationName


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[Line, msgspec.Meta(min_length=1, max_length=320)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    organization_id: uuid.UUID | None = None
    """Only when your address has accounts in several organizations: the one to log in to
    (without it, the oldest account)."""


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: RefreshTokenValue


class TokenPair(msgspec.Struct):
    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds until the access token expires."""
    token_type: Literal["bearer"] = "bearer"


class SignupResponse(msgspec.Struct):
    user: UserRead
    organization: OrganizationRead
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: Literal["bearer"] = "bearer"


class MeResponse(msgspec.Struct):
    id: uuid.UUID
    email: str
    full_name: str
    role: str
    organization_id: uuid.UUID
    organization: OrganizationRead
