"""``create_app(settings) -> Litestar``. Nothing here does I/O at import time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from keys.crypto import KeyDecryptionError, parse_kek
from server import api_docs, contract, metrics
from server.api_keys.routes import ApiKeyController
from server.audit.routes import AuditController
from server.auth.principal import AuthenticationMiddleware, access_token_secret
from server.auth.routes import AuthController
from server.auth.service import prepare as prepare_auth
from server.console.routes import console_router
from server.db.hot_pool import create_hot_pool
from server.db.roles import check_runtime_role
from server.db.session import (
    create_engine,
    create_sessionmaker,
    create_side_engine,
    provide_session,
)
from server.errors import NoSigningKey
from server.health.routes import HealthController
from server.license_admin.routes import LicenseController
from server.license_users.routes import LicenseUserController
from server.maintenance import run_periodically
from server.metering.routes import LicenseUsageController, UsageController
from server.monitoring.routes import MetricsController
from server.observability import RequestIdMiddleware
from server.organizations.routes import OrganizationController
from server.portal.routes import portal_router
from server.problems import problem_details_plugin
from server.product_licensing.routes import LicensingController
from server.product_licensing.usage import ValidationCounter
from server.products.routes import ProductController
from server.projects.routes import ProjectController
from server.settings import Settings, SettingsError
from server.signing_keys.keyring import Keyring
from server.signing_keys.routes import JwksController, SigningKeyController
from server.trials.routes import TrialController
from server.users.routes import UserController
from server.validation import JsonRequest
from server.web import csrf_secret, static_files_router, template_config
from server.webhooks.dispatcher import Dispatcher
from server.webhooks.routes import WebhookController

log = logging.getLogger("licentia.app")


class StartupError(Exception):
    """The server cannot start safely; the message says why and how to fix it."""


# Routes that may carry a bearer credential (API key or access token): the authentication
# middleware resolves it, and each route decides whether it is required.
CREDENTIAL_CONTROLLERS: list[type] = [
    AuthController,
    ApiKeyController,
    OrganizationController,
    UserController,
    ProductController,
    LicenseController,
    LicenseUserController,
    ProjectController,
    AuditController,
    SigningKeyController,
    WebhookController,
    TrialController,
    LicenseUsageController,
]
# What products call: the license key in the body is the credential, so these routes never
# pass through the authentication middleware (nor do health probes and the key documents).
PRODUCT_CONTROLLERS: list[type] = [LicensingController, UsageController]
API_CONTROLLERS: list[type] = CREDENTIAL_CONTROLLERS + PRODUCT_CONTROLLERS


def create_app(settings: Settings) -> Litestar:
    if not settings.key_encryption_key:
        raise SettingsError(
            "LICENTIA_KEY_ENCRYPTION_KEY is not set: generate one with "
            "`licentia keys new-kek` and keep it secret."
        )
    try:
        kek = parse_kek(settings.key_encryption_key)
    except ValueError as exc:
        raise SettingsError(f"LICENTIA_KEY_ENCRYPTION_KEY is invalid: {exc}") from None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        side_engine = create_side_engine(settings)
        app.state.side_engine = side_engine
        app.state.keyring = Keyring(side_engine, kek, settings.key_refresh_seconds)
        try:
            if settings.check_runtime_role:
                await check_runtime_role(engine)
            await _check_signing_key(app.state.keyring)
            app.state.hot_pool = await create_hot_pool(settings)
            await asyncio.to_thread(prepare_auth)  # the dummy password hash, built once
            housekeeping = asyncio.create_task(run_periodically(side_engine))
            # Its own small pool: deliveries never wait for (nor hold) a request's connection.
            webhook_engine = create_side_engine(settings)
            webhooks = (
                asyncio.create_task(Dispatcher(webhook_engine, kek, settings).run())
                if settings.webhook_dispatcher
                else None
            )
            counting = asyncio.create_task(app.state.validation_counter.run(side_engine))
            pool_gauges = (
                asyncio.create_task(metrics.watch_pools(lambda: _pool_usage(app)))
                if settings.metrics_token
                else None
            )
            # Everything built so far lives as long as the process: keep it out of the
            # cyclic collector's full passes, which otherwise walk it all (tens of ms, a
            # latency spike for every request in flight) now and then under load.
            gc.freeze()
            try:
                yield
            finally:
                housekeeping.cancel()
                if pool_gauges is not None:
                    pool_gauges.cancel()
                counting.cancel()  # it writes what it counted last, then ends
                await asyncio.gather(counting, return_exceptions=True)
                if webhooks is not None:
                    webhooks.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await webhooks
                await webhook_engine.dispose()
        finally:
            metrics.worker_exits()
            if getattr(app.state, "hot_pool", None) is not None:
                await app.state.hot_pool.close()
            await engine.dispose()
            await side_engine.dispose()

    credential_api = Router(
        path="/api/v1",
        route_handlers=CREDENTIAL_CONTROLLERS,
        middleware=[DefineMiddleware(AuthenticationMiddleware)],
    )
    product_api = Router(path="/api/v1", route_handlers=PRODUCT_CONTROLLERS)
    pages_secret = csrf_secret(kek)
    metrics.enable(bool(settings.metrics_token))
    operator_routes = [MetricsController] if settings.metrics_token else []
    app = Litestar(
        route_handlers=[
            HealthController,
            JwksController,
            credential_api,
            product_api,
            console_router(pages_secret),
            portal_router(pages_secret),
            static_files_router(),
            *operator_routes,
            api_docs.assets_router(),
        ],
        template_config=template_config(),
        lifespan=[lifespan],
        dependencies={"session": Provide(provide_session)},
        plugins=[problem_details_plugin()],
        request_class=JsonRequest,
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
        if settings.cors_origins
        else None,
        openapi_config=_openapi_config(),
        request_max_body_size=settings.max_body_bytes,
        state=_initial_state(settings, kek),
        debug=False,
        logging_config=None,
    )
    contract.apply(app)
    # Route middleware does not see unmatched routes (404/405); the request id and the
    # access log must, so they wrap Litestar's outermost handler instead.
    app.asgi_handler = RequestIdMiddleware(
        app.asgi_handler, settings.trusted_proxies, metrics=bool(settings.metrics_token)
    )
    return app


def _initial_state(settings: Settings, kek: bytes) -> State:
    return State(
        {
            "settings": settings,
            "kek": kek,
            "access_token_secret": access_token_secret(kek),
            "validation_counter": ValidationCounter(),
            "metrics_token": (settings.metrics_token or "").encode(),
            "metrics_stats": metrics.StatsStore(metrics.multiprocess_directory()),
        }
    )


def _pool_usage(app: Litestar) -> list[tuple[str, tuple[int, int]]]:
    """This worker's database pools, for the metrics: the request pool, the side pool and
    the licensing pool."""
    state = app.state
    usage = [
        ("main", metrics.sqlalchemy_pool_usage(state.engine)),
        ("side", metrics.sqlalchemy_pool_usage(state.side_engine)),
    ]
    if getattr(state, "hot_pool", None) is not None:
        usage.append(("licensing", metrics.asyncpg_pool_usage(state.hot_pool)))
    return usage


async def _check_signing_key(keyring: Keyring) -> None:
    try:
        await keyring.signer()
    except KeyDecryptionError:
        raise StartupError(
            "Refusing to start: the active signing key cannot be decrypted with "
            "LICENTIA_KEY_ENCRYPTION_KEY. Supply the key-encryption key it was created with."
        ) from None
    except NoSigningKey:
        log.warning("no active signing key yet: run `licentia keys rotate` to create one")


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Licentia",
        version="1.0.0",
        description="Offline-verifiable license server with Ed25519-signed tokens.",
        path="/schema",
        render_plugins=[api_docs.render_plugin()],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An admin API key (lic_admin_...) or a user access token",
                )
            }
        ),
    )


def app_from_env() -> Litestar:
    """Factory for worker processes: settings come from the environment."""
    from server.observability import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
