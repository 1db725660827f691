"""``licentia keys``: signing keys and the root of trust from the command line (rotate,
list, retire, revoke, export, certify; ``keys root ...``), through the same service as the
admin API."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from keys.crypto import SigningKey, private_key_file, read_private_key_file
from server.cli_support import data_dir_option, kek_bytes, resolve_database, run_admin, settings_for
from server.signing_keys import service
from server.signing_keys.schemas import SigningKeyRead

CLI_ACTOR = ("cli", None)

ROTATE_NOW_WARNING = (
    "warning: the new key signs from now on. Products that pin signing keys "
    "(Verifier.from_jwks) will refuse every token it signs (UnknownKey) until they are "
    "released again with the new key set (licentia keys export); their installs keep "
    "verifying tokens from the previous key only until those expire. To spare them, publish "
    "first and switch later: `licentia keys rotate --activate-at TIME`, and ship the new key "
    "set before TIME. Products that embed the root instead (Verifier.from_root with "
    "licentia keys export-root) follow any rotation: every answer carries the new key's "
    "certificate."
)

root_key_option = click.option(
    "--root-key",
    "root_key_path",
    type=click.Path(dir_okay=False, exists=True, readable=True, path_type=Path),
    default=None,
    help="The root's private key file (offline-root mode; see `licentia keys root "
    "export-private`).",
)


def load_root_key(path: Path | None) -> SigningKey | None:
    """The root signing key in a file written by ``keys root export-private``."""
    if path is None:
        return None
    kid, private_raw = _read_key_file(path)
    return SigningKey.from_raw(kid, private_raw)


def _read_key_file(path: Path) -> tuple[str, bytes]:
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"cannot read the root key file {path}: {exc}") from None
    try:
        return read_private_key_file(document)
    except ValueError as exc:
        raise click.ClickException(f"{path} is not a root key file: {exc}") from None


def _write_new_file(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only (0600); refuse to overwrite anything."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; refusing to overwrite it") from None
    except OSError as exc:
        raise click.ClickException(f"cannot create {path}: {exc}") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _write_key_file(path: Path, private_raw: bytes) -> None:
    _write_new_file(path, json.dumps(private_key_file(private_raw), indent=2) + "\n")


def _write_document(document: Any, output: Path | None) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if output:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@click.group()
def keys() -> None:
    """Signing keys and the root of trust: rotate, list, retire, revoke, export."""


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
@root_key_option
@data_dir_option
def keys_rotate(activate_at: datetime | None, root_key_path: Path | None, data_dir: Path) -> None:
    """Create a new key, certified by the root, published now, signing from --activate-at."""
    settings = settings_for(resolve_database(data_dir))
    kek = kek_bytes(settings)
    root_key = load_root_key(root_key_path)
    when = activate_at.replace(tzinfo=activate_at.tzinfo or UTC) if activate_at else None

    async def work(session: AsyncSession) -> SigningKeyRead:
        return await service.rotate(
            session,
            CLI_ACTOR,
            kek,
            activate_at=when,
            root_key=root_key,
            policy=service.CertificatePolicy.from_settings(settings),
        )

    info = run_admin(settings, work)
    when_text = info.activates_at.isoformat() if info.activates_at else "-"
    click.echo(f"{info.kid} {info.state} activates_at={when_text}")
    if activate_at is None:
        click.echo(ROTATE_NOW_WARNING, err=True)


@keys.command("list")
@data_dir_option
def keys_list(data_dir: Path) -> None:
    """List signing keys and their states."""
    settings = settings_for(resolve_database(data_dir))
    for info in run_admin(settings, service.list_keys):
        click.echo(f"{info.kid}  {info.state:8}  created {info.created_at.isoformat()}")


@keys.command("retire")
@click.argument("kid")
@data_dir_option
def keys_retire(kid: str, data_dir: Path) -> None:
    """Stop publishing-for-signing a pending key."""
    settings = settings_for(resolve_database(data_dir))

    async def work(session: AsyncSession) -> SigningKeyRead:
        return await service.retire(session, CLI_ACTOR, kid)

    info = run_admin(settings, work)
    click.echo(f"{info.kid} {info.state}")


@keys.command("revoke")
@click.argument("kid")
@root_key_option
@data_dir_option
def keys_revoke(kid: str, root_key_path: Path | None, data_dir: Path) -> None:
    """Unpublish a key and withdraw it in a new root-signed revocation list: tokens it
    signed stop verifying."""
    settings = settings_for(resolve_database(data_dir))
    kek = kek_bytes(settings)
    root_key = load_root_key(root_key_path)

    async def work(session: AsyncSession) -> SigningKeyRead:
        return await service.revoke(
            session,
            CLI_ACTOR,
            kid,
            kek,
            root_key=root_key,
            policy=service.CertificatePolicy.from_settings(settings),
        )

    info = run_admin(settings, work)
    click.echo(f"{info.kid} {info.state}")


@keys.command("certify")
@root_key_option
@data_dir_option
def keys_certify(root_key_path: Path | None, data_dir: Path) -> None:
    """Certify published keys that lack a certificate from the active root, or whose
    certificate ends within 90 days (`serve` does this by itself while the root is online)."""
    settings = settings_for(resolve_database(data_dir))
    kek = kek_bytes(settings)
    root_key = load_root_key(root_key_path)

    async def work(session: AsyncSession) -> list[str]:
        return await service.certify(
            session,
            CLI_ACTOR,
            kek,
            root_key=root_key,
            policy=service.CertificatePolicy.from_settings(settings),
        )

    kids = run_admin(settings, work)
    click.echo("\n".join(f"{kid} certified" for kid in kids) or "nothing to certify")


@keys.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
@data_dir_option
def keys_export(output: Path | None, data_dir: Path) -> None:
    """Write the public JWKS that products which pin keys embed."""
    settings = settings_for(resolve_database(data_dir))
    _write_document(run_admin(settings, service.jwks), output)


@keys.command("export-root")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
@data_dir_option
def keys_export_root(output: Path | None, data_dir: Path) -> None:
    """Write the root document (root JWKS and endorsements) that products embed."""
    settings = settings_for(resolve_database(data_dir))
    _write_document(run_admin(settings, service.root_document), output)


# --- keys root -----------------------------------------------------------------------------


@keys.group("root")
def root() -> None:
    """The root of trust: list, rotate, retire, move offline and back."""


@root.command("list")
@data_dir_option
def root_list(data_dir: Path) -> None:
    """List root keys: state, and whether the private key is online."""
    settings = settings_for(resolve_database(data_dir))
    for info in run_admin(settings, service.list_roots):
        where = "online" if info.online else "offline"
        click.echo(f"{info.kid}  {info.state:10}  {where:7}  created {info.created_at.isoformat()}")


@root.command("export-private")
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to create (mode 0600; an existing file is never overwritten).",
)
@data_dir_option
def root_export_private(output: Path, data_dir: Path) -> None:
    """Move the root's private key to FILE and delete it from the database (offline root)."""
    if output.exists():
        raise click.ClickException(f"{output} exists; refusing to overwrite it")
    settings = settings_for(resolve_database(data_dir))
    kek = kek_bytes(settings)

    async def work(session: AsyncSession) -> str:
        kid, private_raw = await service.export_root_private(session, CLI_ACTOR, kek)
        _write_key_file(output, private_raw)  # before the commit deletes the stored copy
        return kid

    kid = run_admin(settings, work)
    click.echo(f"root {kid} moved to {output}; the database no longer holds it")
    click.echo(
        "Keep that file offline (and a second copy). Rotating or revoking signing keys now "
        "needs --root-key FILE.",
        err=True,
    )


@root.command("import-private")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@data_dir_option
def root_import_private(file: Path, data_dir: Path) -> None:
    """Bring an offline root back online: store FILE's key encrypted in the database."""
    settings = settings_for(resolve_database(data_dir))
    kek = kek_bytes(settings)
    _, private_raw = _read_key_file(file)

    async def work(session: AsyncSession) -> service.RootInfo:
        return await service.import_root_private(session, CLI_ACTOR, kek, private_raw)

    info = run_admin(settings, work)
    click.echo(f"root {info.kid} online")


@root.command("rotate")
@root_key_option
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the new root offline: write its private key to this file (0600) instead of "
    "the database. Required when the current root is offline.",
)
@data_dir_option
def root_rotate(root_key_path: Path | None, output: Path | None, data_dir: Path) -> None:
    """Make a new root, endorsed by the current one, and certify the published keys with
    it. The previous root stays published as trusted until `licentia keys root retire`."""
    settings = settings_for(resolve_database(data_dir))
    kek = kek_bytes(settings)
    root_key = load_root_key(root_key_path)
    if output is not None and output.exists():
        raise click.ClickException(f"{output} exists; refusing to overwrite it")

    async def work(session: AsyncSession) -> service.RootInfo:
        rotation = await service.rotate_root(
            session,
            CLI_ACTOR,
            kek,
            root_key=root_key,
            offline=output is not None,
            policy=service.CertificatePolicy.from_settings(settings),
        )
        if output is not None and rotation.private_key is not None:
            _write_key_file(output, rotation.private_key)
        return rotation.root

    info = run_admin(settings, work)
    where = f"offline in {output}" if output else "online"
    click.echo(f"root {info.kid} active ({where}), endorsed by {info.endorsed_by}")
    click.echo(
        "The endorsement is published in /.well-known/licentia-root.json for products that "
        "embed the previous root. Build new releases with `licentia keys export-root`; retire "
        "the previous root (`licentia keys root retire KID`) once no product needs it.",
        err=True,
    )


@root.command("retire")
@click.argument("kid")
@data_dir_option
def root_retire(kid: str, data_dir: Path) -> None:
    """Stop publishing a superseded root as trusted."""
    settings = settings_for(resolve_database(data_dir))

    async def work(session: AsyncSession) -> service.RootInfo:
        return await service.retire_root(session, CLI_ACTOR, kid)

    info = run_admin(settings, work)
    click.echo(f"root {info.kid} {info.state}")
