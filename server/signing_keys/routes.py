"""The public JWKS and the admin signing-key API."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import Principal, allow, provide_principal
from server.problems import problem_responses
from server.signing_keys import service
from server.signing_keys.keyring import Keyring
from server.signing_keys.schemas import RotateRequest, SigningKeyRead


def _read(info: service.KeyInfo) -> SigningKeyRead:
    return SigningKeyRead(**{f: getattr(info, f) for f in SigningKeyRead.__struct_fields__})


async def _invalidate(keyring: Keyring) -> None:
    keyring.invalidate()


class JwksController(Controller):
    path = "/.well-known"
    tags = ["keys"]

    @get("/jwks.json", summary="Public signing keys (RFC 7517)", media_type="application/json")
    async def jwks(self, session: AsyncSession) -> Response[dict[str, Any]]:
        return Response(
            await service.jwks(session),
            headers={"Cache-Control": "public, max-age=300, stale-while-revalidate=60"},
        )


class SigningKeyController(Controller):
    path = "/keys"
    tags = ["keys"]
    security = [{"bearer": []}]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @get(
        "/",
        guards=[allow(scope="keys:write")],
        summary="List signing keys",
        responses=problem_responses(401, 403),
    )
    async def list_keys(self, session: AsyncSession) -> list[SigningKeyRead]:
        return [_read(info) for info in await service.list_keys(session)]

    @post(
        "/rotate",
        guards=[allow(scope="keys:write")],
        summary="Rotate the signing key",
        description="A new key, published in the JWKS at once, signs from `activate_at` "
        "(an RFC 3339 time with an offset; default: now). This process signs with it from the "
        "next request; other processes within `key_refresh_seconds`.",
        responses=problem_responses(400, 401, 403, 422),
    )
    async def rotate(
        self,
        session: AsyncSession,
        state: State,
        principal: Principal,
        data: RotateRequest | None = None,
    ) -> Response[SigningKeyRead]:
        activate_at = data.activate_at if data else None
        info = await service.rotate(session, principal, state.kek, activate_at=activate_at)
        # The keyring forgets its key only once the rotation is committed: the session
        # provider commits before the response is sent, background tasks run after it. An
        # earlier invalidation would let a refresh in between cache the old key again.
        return Response(
            _read(info), status_code=201, background=BackgroundTask(_invalidate, state.keyring)
        )
