"""The ``licentia`` command: serve, db, admin, keys, demo, licenses (admin), webhooks, offline
(for air-gapped product machines), verifier (the wheel products embed)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import click
from sqlalchemy.ext.asyncio import AsyncSession

from server.cli_support import (
    data_dir_option,
    kek_bytes,
    migrate,
    resolve_database,
    run_admin,
    runtime_role,
    settings_for,
)
from server.license_admin.cli import licenses
from server.product_licensing.cli import offline
from server.settings import DEFAULT_ISSUER, Settings, async_url
from server.signing_keys.cli import keys
from server.webhooks.cli import webhooks

log = logging.getLogger("licentia.cli")

DEFAULT_ISSUER_WARNING = (
    f"LICENTIA_ISSUER is still the default {DEFAULT_ISSUER!r} on an external database. Choose "
    "the issuer before shipping a product (normally this server's public base URL, e.g. "
    "https://licensing.example.com): every product embeds it and refuses tokens with "
    "another one, so changing it later means a release of every product"
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
    if not db.embedded and settings.issuer == DEFAULT_ISSUER:
        log.warning(DEFAULT_ISSUER_WARNING)
        click.echo(f"warning: {DEFAULT_ISSUER_WARNING}", err=True)
    kek = kek_bytes(settings)
    _prepare(settings, kek, data_dir)
    os.environ["LICENTIA_DATABASE_URL"] = db.runtime_url
    os.environ["LICENTIA_KEY_ENCRYPTION_KEY"] = settings.key_encryption_key or ""
    if db.owner_url:
        os.environ["LICENTIA_MIGRATION_DATABASE_URL"] = db.owner_url
    if settings.metrics_token and (workers > 1 or "PROMETHEUS_MULTIPROC_DIR" in os.environ):
        _share_metrics_between_workers()
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
        # The scope's client stays the socket's peer in every worker: uvicorn would otherwise
        # believe X-Forwarded-For from loopback. Licentia decides alone, from
        # LICENTIA_TRUSTED_PROXIES (server/client_address.py).
        proxy_headers=False,
        forwarded_allow_ips="",
        # A worker answers uvicorn's health check only once it has imported the app; on a
        # busy machine (a restart after a crash, say) that can take longer than uvicorn's
        # 5 s, and the supervisor would kill and respawn it over and over.
        timeout_worker_healthcheck=30,
    )


def _share_metrics_between_workers() -> None:
    """Each worker writes its metrics to files in one directory and a scrape sums them
    (``server.metrics``); it must be set before the workers start, and is removed at exit."""
    import atexit
    import shutil

    from server.metrics import prepare_multiprocess_directory

    created = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    directory = prepare_multiprocess_directory(os.environ)
    if created:
        atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _exit_cleanly(signum: int, _frame: object) -> None:
    log.info("stopped by %s", signal.Signals(signum).name)
    sys.exit(0)


def _prepare(settings: Settings, kek: bytes, data_dir: Path) -> None:
    """Make a signing key if none is active; on the very first start, an admin API key."""
    from server.api_keys.service import create_initial_key
    from server.signing_keys.service import CertificatePolicy, ensure_active_key

    async def work(session: AsyncSession) -> tuple[str | None, str | None]:
        kid = await ensure_active_key(session, kek, CertificatePolicy.from_settings(settings))
        return kid, await create_initial_key(session)

    kid, key = run_admin(settings, work)
    if kid:
        log.info("created signing key %s", kid)
    if key:
        _hand_over_first_admin_key(key, data_dir)


def _hand_over_first_admin_key(key: str, data_dir: Path) -> None:
    """Print the key on a terminal. Anywhere else stdout is kept (a container's log, a file),
    so write it to a file only the owner can read, and print only where it is."""
    banner = "=" * 72
    if sys.stdout.isatty():
        click.echo(
            f"\n{banner}\n  First start: an admin API key was created. It is shown only once.\n\n"
            f"    {key}\n\n  Use it as 'Authorization: Bearer <key>'. Store it safely.\n{banner}\n",
            err=False,
        )
        return
    path = (data_dir / "first-admin-key").absolute()
    temporary = path.with_name(f".first-admin-key.{os.getpid()}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL: never through a planted file or symlink; os.replace: never half-written.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise click.ClickException(
            f"An admin API key was created but could not be written to {path} ({exc}); "
            "make another with `licentia admin create-key`."
        ) from None
    click.echo(
        f"\n{banner}\n  First start: an admin API key was created. stdout is not a terminal, so "
        f"it is not\n  printed; it is in this file, readable by its owner only:\n\n    {path}\n\n"
        f"  Use it as 'Authorization: Bearer <key>'. Store it safely, then delete the file.\n"
        f"{banner}\n"
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
    from server.db.migrations import downgrade

    database = resolve_database(data_dir)
    if not database.owner_url:
        raise click.ClickException("Set LICENTIA_MIGRATION_DATABASE_URL to the schema owner.")
    downgrade(async_url(database.owner_url), revision, runtime_role(database.runtime_url))
    click.echo(f"schema downgraded to {revision}")


@db.command("current")
@data_dir_option
def db_current(data_dir: Path) -> None:
    """Print the schema revision of the database and the code's head."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from server.db.migrations import current_revision, head_revision

    database = resolve_database(data_dir)

    async def main_() -> str | None:
        engine = create_async_engine(
            async_url(database.owner_url or database.runtime_url), hide_parameters=True
        )
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    revision = asyncio.run(main_())
    click.echo(f"{revision or 'base'} (head: {head_revision()})")


@db.command("cleanup")
@data_dir_option
def db_cleanup(data_dir: Path) -> None:
    """Delete expired rate-limit windows, idempotency records, refresh tokens and web
    sessions, and validation counts older than 30 days."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from server.maintenance import purge_expired

    settings = settings_for(resolve_database(data_dir))

    async def main_() -> object:
        engine = create_async_engine(settings.database_url, hide_parameters=True)
        try:
            return await purge_expired(engine)
        finally:
            await engine.dispose()

    click.echo(asyncio.run(main_()))


# --- admin -------------------------------------------------------------------------------


@main.group()
def admin() -> None:
    """Admin API keys and staff accounts for the console."""


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


@admin.command("create-staff")
@click.option("--email", required=True)
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "support", "viewer"]),
    help="viewer reads; support also suspends, reinstates and frees seats; admin does all.",
)
@data_dir_option
def admin_create_staff(email: str, role: str, data_dir: Path) -> None:
    """Create a staff account for the console (/console). The password comes from
    LICENTIA_STAFF_PASSWORD, or is asked for."""
    from server.console.service import create_staff

    password = os.environ.get("LICENTIA_STAFF_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    settings = settings_for(resolve_database(data_dir))
    account = run_admin(
        settings, lambda s: create_staff(s, email=email, role=role, password=password)
    )
    click.echo(f"Staff account {account.email} ({account.role}) created: sign in at /console")


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


@main.group()
def verifier() -> None:
    """The verifier products embed (licentia-verifier): hand a product team its wheel."""


@verifier.command("wheel")
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The directory to write the wheel into (created if needed).",
)
def verifier_wheel(output: Path) -> None:
    """Write the wheel of the licentia-verifier this server speaks into OUTPUT and print its
    path. No package index has it: vendor the wheel in the product, or put it on your own
    index. Built offline with the standard library; the same server gives the same bytes."""
    from server.verifier_wheel import NoVerifierSource, build_wheel

    try:
        built = build_wheel(output)
    except NoVerifierSource as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(built.path))
    click.echo(f"{built.name} {built.version} sha256={built.sha256}", err=True)


main.add_command(offline)
main.add_command(licenses)
main.add_command(keys)
main.add_command(webhooks)


if __name__ == "__main__":
    sys.exit(main())
