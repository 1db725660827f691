"""The public key documents (JWKS, root, certificates) and the admin signing-key API."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import Principal, allow, provide_principal
from server.problems import problem_responses
from server.signing_keys import service
from server.signing_keys.keyring import Keyring
from server.signing_keys.schemas import RotateRequest, SigningKeyRead


async def _invalidate(keyring: Keyring) -> None:
    keyring.invalidate()


PUBLIC_CACHE = {"Cache-Control": "public, max-age=300, stale-while-revalidate=60"}


class JwksController(Controller):
    path = "/.well-known"
    tags = ["keys"]

    @get("/jwks.json", summary="Public signing keys (RFC 7517)", media_type="application/json")
    async def jwks(self, session: AsyncSession) -> Response[dict[str, Any]]:
        return Response(await service.jwks(session), headers=PUBLIC_CACHE)

    @get(
        "/licentia-root.json",
        summary="The root of trust: root public keys and their endorsement chain",
        description="What a product embeds at build time (`Verifier.from_root`): the "
        "trusted root keys as a JWK Set, and `root_endorsements`, the `root+jwt` chain "
        "(oldest first) by which an older root vouches for a newer one.",
        media_type="application/json",
    )
    async def root(self, session: AsyncSession) -> Response[dict[str, Any]]:
        return Response(await service.root_document(session), headers=PUBLIC_CACHE)

    @get(
        "/key-certificates.json",
        summary="Key certificates of the published signing keys, and the revocation list",
        description="`certificates`: the newest `key+jwt` of every published signing key; "
        "`key_revocations`: the current `key-revocations+jwt` (null when no key was ever "
        "revoked); `root_endorsements`: as in `/.well-known/licentia-root.json`.",
        media_type="application/json",
    )
    async def certificates(self, session: AsyncSession) -> Response[dict[str, Any]]:
        return Response(await service.certificates_document(session), headers=PUBLIC_CACHE)


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
        return await service.list_keys(session)

    @post(
        "/rotate",
        guards=[allow(scope="keys:write")],
        summary="Rotate the signing key",
        description="A new key, published in the JWKS at once, signs from `activate_at` "
        "(an RFC 3339 time with an offset; default: now). This process signs with it from the "
        "next request; other processes within `key_refresh_seconds`. The root certifies it "
        "at once; with the root offline the answer is 409 `ROOT_OFFLINE` (rotate with "
        "`licentia keys rotate --root-key FILE`).",
        responses=problem_responses(400, 401, 403, 409, 422),
    )
    async def rotate(
        self,
        session: AsyncSession,
        state: State,
        principal: Principal,
        data: RotateRequest | None = None,
    ) -> Response[SigningKeyRead]:
        activate_at = data.activate_at if data else None
        info = await service.rotate(
            session,
            principal,
            state.kek,
            activate_at=activate_at,
            policy=service.CertificatePolicy.from_settings(state.settings),
        )
        # The keyring forgets its key only once the rotation is committed: the session
        # provider commits before the response is sent, background tasks run after it. An
        # earlier invalidation would let a refresh in between cache the old key again.
        return Response(
            info, status_code=201, background=BackgroundTask(_invalidate, state.keyring)
        )

    @post(
        "/{kid:str}/revoke",
        guards=[allow(scope="keys:write")],
        summary="Revoke a signing key",
        description="Unpublishes the key and issues a new root-signed revocation list, "
        "delivered with every answer from then on. The active key cannot be revoked (409 "
        "`KEY_ACTIVE`); with the root offline the answer is 409 `ROOT_OFFLINE` (revoke with "
        "`licentia keys revoke --root-key FILE KID`).",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
    )
    async def revoke(
        self,
        session: AsyncSession,
        state: State,
        principal: Principal,
        kid: str = Parameter(max_length=64),
    ) -> Response[SigningKeyRead]:
        info = await service.revoke(
            session,
            principal,
            kid,
            state.kek,
            policy=service.CertificatePolicy.from_settings(state.settings),
        )
        return Response(info, background=BackgroundTask(_invalidate, state.keyring))
