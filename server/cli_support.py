"""Plumbing shared by every ``licentia`` command: find the database, build settings, run a
platform-admin transaction. Kept apart from ``server.cli`` so domain command groups can use
it without an import cycle."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import click
import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from server.settings import Settings, SettingsError, async_url, default_data_dir

T = TypeVar("T")


@dataclass(frozen=True)
class Database:
    runtime_url: str
    owner_url: str | None
    key_encryption_key: str | None
    embedded: bool


def resolve_database(data_dir: Path) -> Database:
    """``LICENTIA_DATABASE_URL`` when set, else the embedded instance in ``data_dir``."""
    url = os.environ.get("LICENTIA_DATABASE_URL")
    kek = os.environ.get("LICENTIA_KEY_ENCRYPTION_KEY") or None
    if url:
        owner = os.environ.get("LICENTIA_MIGRATION_DATABASE_URL") or None
        return Database(url, owner, kek, embedded=False)
    if os.environ.get("LICENTIA_ALLOW_EMBEDDED", "true").lower() in ("0", "false", "no"):
        raise click.ClickException(
            "LICENTIA_DATABASE_URL is required here (the embedded database is disabled by "
            "LICENTIA_ALLOW_EMBEDDED=false). Set it to the runtime role's URL, e.g. "
            "postgresql://licentia_app:secret@db:5432/licentia."
        )
    from server import embedded

    try:
        instance = embedded.start(data_dir)
    except embedded.EmbeddedUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    return Database(
        instance.runtime_url, instance.owner_url, kek or instance.key_encryption_key, True
    )


def settings_for(db: Database, **overrides: Any) -> Settings:
    env = dict(os.environ)
    env["LICENTIA_DATABASE_URL"] = db.runtime_url
    if db.owner_url:
        env["LICENTIA_MIGRATION_DATABASE_URL"] = db.owner_url
    if db.key_encryption_key:
        env["LICENTIA_KEY_ENCRYPTION_KEY"] = db.key_encryption_key
    try:
        return Settings.from_env(env, **overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def kek_bytes(settings: Settings) -> bytes:
    from keys.crypto import parse_kek

    if not settings.key_encryption_key:
        raise click.ClickException(
            "LICENTIA_KEY_ENCRYPTION_KEY is not set; generate one with `licentia keys new-kek`."
        )
    try:
        return parse_kek(settings.key_encryption_key)
    except ValueError as exc:
        raise click.ClickException(f"LICENTIA_KEY_ENCRYPTION_KEY is invalid: {exc}") from None


@asynccontextmanager
async def admin_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A platform-admin transaction on the runtime role, as an admin API key would get."""
    from server.db.session import create_engine, create_sessionmaker, set_tenant

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await set_tenant(session, None, platform_admin=True)
            yield session
    finally:
        await engine.dispose()


def run_licensing(settings: Settings, work: Callable[[asyncpg.Connection, Any], Awaitable[T]]) -> T:
    """Run ``work(connection, caller)`` as a licensing request runs: one transaction on the
    licensing pool, the tenant resolved from the license key by the service itself."""
    from server.db.hot_pool import create_hot_pool, pooled_transaction
    from server.db.session import create_side_engine
    from server.product_licensing.service import Caller
    from server.signing_keys.keyring import Keyring

    async def main() -> T:
        side_engine = create_side_engine(settings)
        pool = await create_hot_pool(settings)
        caller = Caller(settings=settings, keyring=Keyring(side_engine, kek_bytes(settings)))
        try:
            async with pooled_transaction(pool) as connection:
                return await work(connection, caller)
        finally:
            await pool.close()
            await side_engine.dispose()

    return _run(main)


def request_body(fields: dict[str, Any], type_: type[T]) -> T:
    """A command's options as the API's request body, checked exactly as the API checks it;
    a refusal is the command's one-line error."""
    try:
        return msgspec.convert(fields, type_)
    except msgspec.ValidationError as exc:
        raise click.ClickException(f"invalid input: {exc}") from None


def run_admin(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def main() -> T:
        async with admin_session(settings) as session:
            return await work(session)

    return _run(main)


def _run(main: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine; a domain error becomes a one-line CLI error with its code."""
    from server.errors import DomainError

    try:
        return asyncio.run(main())  # type: ignore[arg-type]
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from None


def migrate(db: Database, revision: str = "head") -> None:
    from server.db.migrations import upgrade

    if not db.owner_url:
        raise click.ClickException(
            "Migrations need the schema owner's connection: set LICENTIA_MIGRATION_DATABASE_URL."
        )
    upgrade(async_url(db.owner_url), revision, app_role=runtime_role(db.runtime_url))


def runtime_role(url: str) -> str:
    """The runtime role named in the URL: migrations grant it access and nothing more."""
    from sqlalchemy.engine import make_url

    return make_url(async_url(url)).username or "licentia_app"


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_data_dir,
    show_default=".licentia",
    help="Where the embedded database lives (when LICENTIA_DATABASE_URL is not set).",
)
