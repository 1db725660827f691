"""``licentia keys``: signing keys from the command line (rotate, list, retire, revoke,
export), through the same service as the admin API."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy.ext.asyncio import AsyncSession

from server.cli_support import data_dir_option, kek_bytes, resolve_database, run_admin, settings_for
from server.signing_keys import service

CLI_ACTOR = ("cli", None)


@click.group()
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
    settings = settings_for(resolve_database(data_dir))
    kek = kek_bytes(settings)
    when = activate_at.replace(tzinfo=activate_at.tzinfo or UTC) if activate_at else None

    async def work(session: AsyncSession) -> service.KeyInfo:
        return await service.rotate(session, CLI_ACTOR, kek, activate_at=when)

    info = run_admin(settings, work)
    when_text = info.activates_at.isoformat() if info.activates_at else "-"
    click.echo(f"{info.kid} {info.state} activates_at={when_text}")


@keys.command("list")
@data_dir_option
def keys_list(data_dir: Path) -> None:
    """List signing keys and their states."""
    settings = settings_for(resolve_database(data_dir))
    for info in run_admin(settings, service.list_keys):
        click.echo(f"{info.kid}  {info.state:8}  created {info.created_at.isoformat()}")


def _key_transition(action: str) -> Callable[[str, Path], None]:
    def command(kid: str, data_dir: Path) -> None:
        settings = settings_for(resolve_database(data_dir))

        async def work(session: AsyncSession) -> service.KeyInfo:
            transition = service.retire if action == "retire" else service.revoke
            return await transition(session, CLI_ACTOR, kid)

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
    settings = settings_for(resolve_database(data_dir))
    document = json.dumps(run_admin(settings, service.jwks), indent=2) + "\n"
    if output:
        output.write_text(document)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(document, nl=False)
