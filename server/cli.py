"""The ``licentia`` command: serve, db, admin, keys, demo, licenses."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from server.settings import Settings, SettingsError, async_url, default_data_dir

T = TypeVar("T")
log = logging.getLogger("licentia.cli")


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


def _kek_bytes(settings: Settings) -> bytes:
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
    from server.db import create_engine, create_sessionmaker, set_tenant

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await set_tenant(session, None, platform_admin=True)
            yield session
    finally:
        await engine.dispose()


def run_admin(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from server.errors import DomainError

    async def main() -> T:
        async with admin_session(settings) as session:
            return await work(session)

    try:
        return asyncio.run(main())
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from None


def migrate(db: Database, revision: str = "head") -> None:
    from server.db import upgrade

    if not db.owner_url:
        raise click.ClickException(
            "Migrations need the schema owner's connection: set LICENTIA_MIGRATION_DATABASE_URL."
        )
    upgrade(async_url(db.owner_url), revision, app_role=_runtime_role(db.runtime_url))


def _runtime_role(url: str) -> str:
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


@click.group()
def main() -> None:
    """Licentia: an offline-verifiable license server."""
    from server.observability import configure_logging

    configure_logging(os.environ.get("LICENTIA_LOG_LEVEL", "INFO"))


# --- serve -------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@data_dir_option
def serve(host: str, port: int, workers: int, data_dir: Path) -> None:
    """Run the HTTP server (on the embedded PostgreSQL when no database URL is set)."""
    import uvicorn

    db = resolve_database(data_dir)
    if db.owner_url:
        migrate(db)
    settings = settings_for(db)
    kek = _kek_bytes(settings)
    _prepare(settings, kek)
    os.environ["LICENTIA_DATABASE_URL"] = db.runtime_url
    os.environ["LICENTIA_KEY_ENCRYPTION_KEY"] = settings.key_encryption_key or ""
    if db.owner_url:
        os.environ["LICENTIA_MIGRATION_DATABASE_URL"] = db.owner_url
    log.info(
        "serving on http://%s:%s with %d worker(s) (%s database)",
        host,
        port,
        workers,
        "embedded" if db.embedded else "external",
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal; exiting
    # normally from it lets the embedded database stop (atexit) instead of being orphaned.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_cleanly)
    uvicorn.run(
        "server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def _exit_cleanly(signum: int, _frame: object) -> None:
    log.info("stopped by %s", signal.Signals(signum).name)
    sys.exit(0)


def _prepare(settings: Settings, kek: bytes) -> None:
    """Make a signing key if none is active; on the very first start, an admin API key."""
    from keys.store import ensure_active_key
    from server.api_keys.service import create_initial_key

    async def work(session: AsyncSession) -> tuple[str | None, str | None]:
        kid = await ensure_active_key(session, kek)
        return kid, await create_initial_key(session)

    kid, key = run_admin(settings, work)
    if kid:
        log.info("created signing key %s", kid)
    if key:
        banner = "=" * 72
        click.echo(
            f"\n{banner}\n  First start: an admin API key was created. It is shown only once.\n\n"
            f"    {key}\n\n  Use it as 'Authorization: Bearer <key>'. Store it safely.\n{banner}\n",
            err=False,
        )


# --- db ----------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Schema migrations."""


@db.command("upgrade")
@click.argument("revision", default="head")
@data_dir_option
def db_upgrade(revision: str, data_dir: Path) -> None:
    """Migrate the schema up to REVISION (default: head)."""
    migrate(resolve_database(data_dir), revision)
    click.echo(f"schema upgraded to {revision}")


@db.command("downgrade")
@click.argument("revision")
@data_dir_option
def db_downgrade(revision: str, data_dir: Path) -> None:
    """Migrate the schema down to REVISION (`base` removes everything)."""
    from server.db import downgrade

    database = resolve_database(data_dir)
    if not database.owner_url:
        raise click.ClickException("Set LICENTIA_MIGRATION_DATABASE_URL to the schema owner.")
    downgrade(async_url(database.owner_url), revision, _runtime_role(database.runtime_url))
    click.echo(f"schema downgraded to {revision}")


@db.command("current")
@data_dir_option
def db_current(data_dir: Path) -> None:
    """Print the schema revision of the database and the code's head."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from server.db import current_revision, head_revision

    database = resolve_database(data_dir)

    async def main_() -> str | None:
        engine = create_async_engine(async_url(database.owner_url or database.runtime_url))
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    revision = asyncio.run(main_())
    click.echo(f"{revision or 'base'} (head: {head_revision()})")


# --- admin -------------------------------------------------------------------------------


@main.group()
def admin() -> None:
    """Admin API keys."""


@admin.command("create-key")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, help="Repeatable; none means every scope (*).")
@data_dir_option
def admin_create_key(name: str, scopes: tuple[str, ...], data_dir: Path) -> None:
    """Create an admin API key and print it (alone, on stdout) once."""
    from server.api_keys.service import create_api_key

    settings = settings_for(resolve_database(data_dir))
    created = run_admin(settings, lambda s: create_api_key(s, None, name, list(scopes) or ["*"]))
    click.echo(created.key)


# --- keys --------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Signing keys: rotate, list, retire, revoke, export."""


@keys.command("new-kek")
def keys_new_kek() -> None:
    """Print a fresh key-encryption key for LICENTIA_KEY_ENCRYPTION_KEY."""
    from keys.crypto import new_kek_text

    click.echo(new_kek_text())


@keys.command("rotate")
@click.option(
    "--activate-at",
    type=click.DateTime(),
    default=None,
    help="When the new key starts signing (UTC if no offset); default: now.",
)
@data_dir_option
def keys_rotate(activate_at: datetime | None, data_dir: Path) -> None:
    """Create a new key, published now, signing from --activate-at."""
    from datetime import UTC

    from keys import store
    from server.audit.service import record

    settings = settings_for(resolve_database(data_dir))
    kek = _kek_bytes(settings)
    when = activate_at.replace(tzinfo=activate_at.tzinfo or UTC) if activate_at else None

    async def work(session: AsyncSession) -> store.KeyInfo:
        info = await store.rotate(session, kek, activate_at=when)
        await record(session, ("cli", None), "key.rotate", "signing_key", info.kid)
        return info

    info = run_admin(settings, work)
    when_text = info.activates_at.isoformat() if info.activates_at else "-"
    click.echo(f"{info.kid} {info.state} activates_at={when_text}")


@keys.command("list")
@data_dir_option
def keys_list(data_dir: Path) -> None:
    """List signing keys and their states."""
    from keys import store

    settings = settings_for(resolve_database(data_dir))
    for info in run_admin(settings, store.list_keys):
        click.echo(f"{info.kid}  {info.state:8}  created {info.created_at.isoformat()}")


def _key_transition(action: str) -> Callable[[str, Path], None]:
    def command(kid: str, data_dir: Path) -> None:
        from keys import store
        from server.audit.service import record

        settings = settings_for(resolve_database(data_dir))

        async def work(session: AsyncSession) -> store.KeyInfo:
            info = await getattr(store, action)(session, kid)
            await record(session, ("cli", None), f"key.{action}", "signing_key", kid)
            return info

        info = run_admin(settings, work)
        click.echo(f"{info.kid} {info.state}")

    return command


keys.command("retire", help="Stop publishing-for-signing a pending key.")(
    click.argument("kid")(data_dir_option(_key_transition("retire")))
)
keys.command("revoke", help="Unpublish a key: tokens it signed stop verifying.")(
    click.argument("kid")(data_dir_option(_key_transition("revoke")))
)


@keys.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
@data_dir_option
def keys_export(output: Path | None, data_dir: Path) -> None:
    """Write the public JWKS that products embed."""
    from keys import store

    settings = settings_for(resolve_database(data_dir))
    document = json.dumps(run_admin(settings, store.jwks), indent=2) + "\n"
    if output:
        output.write_text(document)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(document, nl=False)


# --- demo --------------------------------------------------------------------------------


@main.group()
def demo() -> None:
    """Demo data."""


@demo.command("seed")
@data_dir_option
def demo_seed(data_dir: Path) -> None:
    """Load the demo catalog (five products, four tiers each) and a demo organization."""
    from server.demo import seed

    settings = settings_for(resolve_database(data_dir))
    summary = run_admin(settings, seed)
    click.echo(summary)


def _register_optional_commands() -> None:
    try:
        from server.licenses.cli import licenses
    except ModuleNotFoundError as exc:
        if not "server.licenses.cli".startswith(exc.name or "-"):
            raise
        return
    main.add_command(licenses)


_register_optional_commands()


if __name__ == "__main__":
    sys.exit(main())
