"""The public JWKS and the admin signing-key API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from keys import store
from server.audit.service import record
from server.auth.principal import Principal, allow, provide_principal


class SigningKeyRead(msgspec.Struct):
    kid: str
    state: str
    created_at: datetime
    activates_at: datetime | None
    activated_at: datetime | None
    retired_at: datetime | None
    revoked_at: datetime | None


class RotateRequest(msgspec.Struct, forbid_unknown_fields=True):
    activate_at: datetime | None = None


def _read(info: store.KeyInfo) -> SigningKeyRead:
    return SigningKeyRead(**{f: getattr(info, f) for f in SigningKeyRead.__struct_fields__})


class JwksController(Controller):
    path = "/.well-known"
    tags = ["keys"]

    @get("/jwks.json", summary="Public signing keys (RFC 7517)", media_type="application/json")
    async def jwks(self, session: AsyncSession) -> Response[dict[str, Any]]:
        return Response(
            await store.jwks(session),
            headers={"Cache-Control": "public, max-age=300, stale-while-revalidate=60"},
        )


class SigningKeyController(Controller):
    path = "/keys"
    tags = ["keys"]
    security = [{"bearer": []}]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @get("/", guards=[allow(scope="keys:write")], summary="List signing keys")
    async def list_keys(self, session: AsyncSession) -> list[SigningKeyRead]:
        return [_read(info) for info in await store.list_keys(session)]

    @post("/rotate", guards=[allow(scope="keys:write")], summary="Rotate the signing key")
    async def rotate(
        self,
        session: AsyncSession,
        state: State,
        principal: Principal,
        data: RotateRequest | None = None,
    ) -> SigningKeyRead:
        info = await store.rotate(
            session, state.kek, activate_at=data.activate_at if data else None
        )
        await record(session, principal, "key.rotate", "signing_key", info.kid)
        state.keyring.invalidate()
        return _read(info)
