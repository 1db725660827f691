"""``licentia licenses``: issue, list and change licenses, read and reset their usage, and
assign their named users, from the command line (the same services as the admin API)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.cli_support import data_dir_option, request_body

if TYPE_CHECKING:
    from server.license_users.schemas import LicenseUserRead, LicenseUsersRead
    from server.metering.schemas import LicenseUsage


_CLI = ("cli", None)
"""The audit actor of every change made here (an admin's view: every organization)."""


@click.group()
def licenses() -> None:
    """Licenses: issue, list, change tier, usage, named users."""


async def _organization_id(session: AsyncSession, org: str) -> uuid.UUID:
    """An organization id, or an exact (unambiguous) organization name."""
    from server.models import Organization

    try:
        wanted = uuid.UUID(org)
    except ValueError:
        query = select(Organization.id).where(Organization.name == org)
        matches = list(await session.scalars(query))
        if len(matches) > 1:
            raise click.ClickException(
                f"{len(matches)} organizations are named {org!r}; pass the id instead"
            ) from None
        if not matches:
            raise click.ClickException(f"No organization named {org!r}") from None
        return matches[0]
    found = await session.scalar(select(Organization.id).where(Organization.id == wanted))
    if found is None:
        raise click.ClickException(f"No organization with id {org}")
    return found


@licenses.command("issue")
@click.option("--org", required=True, help="Organization id or exact name.")
@click.option("--product", required=True, help="Product code, e.g. local_cli.")
@click.option("--tier", required=True, help="Tier code, e.g. pro.")
@click.option(
    "--days",
    type=click.IntRange(1, 36_500),
    default=None,
    help="Term in days (default: the tier's; a tier without one gives a perpetual license).",
)
@click.option(
    "--expires-at",
    type=click.DateTime(),
    default=None,
    help="Exact expiry (UTC when no offset is given); instead of --days.",
)
@click.option(
    "--max-activations",
    type=click.IntRange(0, 1_000_000),
    default=None,
    help="Seats (default: the tier's).",
)
@click.option(
    "--max-users",
    type=click.IntRange(0, 1_000_000),
    default=None,
    help="Named users (default: the tier's; only for a tier of named users).",
)
@data_dir_option
def issue(
    org: str,
    product: str,
    tier: str,
    days: int | None,
    expires_at: datetime | None,
    max_activations: int | None,
    max_users: int | None,
    data_dir: Path,
) -> None:
    """Issue a license and print its key (alone, on stdout). The key is shown only once."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.license_admin import service
    from server.license_admin.schemas import LicenseCreate, LicenseCreated

    settings = settings_for(resolve_database(data_dir))
    when = expires_at.replace(tzinfo=expires_at.tzinfo or UTC) if expires_at else None

    async def work(session: AsyncSession) -> LicenseCreated:
        fields = {
            "organization_id": str(await _organization_id(session, org)),
            "product": product,
            "tier": tier,
            "duration_days": days,
            "expires_at": when.isoformat() if when else None,
            "max_activations": max_activations,
            "max_users": max_users,
        }
        data = request_body(fields, LicenseCreate)
        return await service.issue_license(session, _CLI, data)

    created = run_admin(settings, work)
    expiry = created.expires_at.isoformat() if created.expires_at else "never"
    click.echo(
        f"issued license {created.id} ({created.product}/{created.tier}) for organization "
        f"{created.organization_id}; expires {expiry}",
        err=True,
    )
    click.echo(created.key)


@licenses.command("list")
@click.option("--org", default=None, help="Only this organization (id or exact name).")
@click.option("--product", default=None, help="Only this product code.")
@click.option(
    "--status", type=click.Choice(["active", "suspended", "revoked", "expired"]), default=None
)
@click.option(
    "--expires-before",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]),
    default=None,
    help="Only licenses expiring before this time (UTC when no offset is given).",
)
@click.option("--key-prefix", default=None, help="Only the license whose key starts LK-XXXXX.")
@click.option(
    "--search",
    "-q",
    "search",
    default=None,
    help="Free text in the organization's name or the license's metadata (any case).",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="How many to list, following the pages (100 each) as far as needed.",
)
@click.option("--all", "everything", is_flag=True, help="List every match, page after page.")
@click.option("--cursor", default=None, help="Start after this cursor (printed when more follow).")
@data_dir_option
def list_(
    org: str | None,
    product: str | None,
    status: str | None,
    expires_before: datetime | None,
    key_prefix: str | None,
    search: str | None,
    limit: int,
    everything: bool,
    cursor: str | None,
    data_dir: Path,
) -> None:
    """List licenses (oldest first): id, key prefix, organization, product/tier, status.

    Pages of 100 are followed by their cursors until --limit licenses are listed (or all of
    them with --all); when more follow, the cursor to continue from is printed on stderr."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.license_admin import service
    from server.license_admin.schemas import LicenseRead

    settings = settings_for(resolve_database(data_dir))
    before = expires_before.replace(tzinfo=expires_before.tzinfo or UTC) if expires_before else None
    wanted = None if everything else limit

    async def work(session: AsyncSession) -> tuple[list[LicenseRead], str | None]:
        org_id = await _organization_id(session, org) if org else None
        items: list[LicenseRead] = []
        after = cursor
        while True:
            size = PAGE if wanted is None else min(PAGE, wanted - len(items))
            page = await service.list_licenses(
                session,
                None,
                organization_id=org_id,
                product=product,
                status=status,  # type: ignore[arg-type]
                expires_before=before,
                key_prefix=key_prefix,
                q=search,
                limit=size,
                cursor=after,
            )
            items.extend(page.items)
            after = page.next_cursor
            if after is None or (wanted is not None and len(items) >= wanted):
                return items, after

    items, more = run_admin(settings, work)
    for item in items:
        expiry = item.expires_at.isoformat() if item.expires_at else "never"
        click.echo(
            f"{item.id}  {item.key_prefix}  {item.organization_id}  "
            f"{item.product}/{item.tier}  {item.status:9}  "
            f"seats {item.activations_count}/{item.max_activations}  expires {expiry}"
        )
    if more is not None:
        click.echo(
            f"more licenses follow: list them all with --all, or continue with --cursor {more}",
            err=True,
        )


PAGE = 100
"""The API's largest page; the command follows the cursors from one page to the next."""


@licenses.command("change-tier")
@click.argument("license_id", type=click.UUID)
@click.argument("tier")
@click.option(
    "--release-least-recently-seen",
    is_flag=True,
    help="Free the seats the new tier lacks, least recently checked in first.",
)
@data_dir_option
def change_tier(
    license_id: uuid.UUID, tier: str, release_least_recently_seen: bool, data_dir: Path
) -> None:
    """Move license LICENSE_ID to TIER of its product; its key and machines stay."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.license_admin import service
    from server.license_admin.schemas import ChangeTierRequest, LicenseRead

    settings = settings_for(resolve_database(data_dir))
    release = "least_recently_seen" if release_least_recently_seen else None
    data = request_body({"tier": tier, "release": release}, ChangeTierRequest)

    async def work(session: AsyncSession) -> LicenseRead:
        return await service.change_tier(session, _CLI, license_id, data)

    changed = run_admin(settings, work)
    click.echo(
        f"license {changed.id} is now {changed.product}/{changed.tier}: "
        f"seats {changed.activations_count}/{changed.max_activations}"
    )


# --- usage meters ----------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "-"


def _echo_usage(usage: LicenseUsage) -> None:
    if not usage.meters:
        click.echo(f"license {usage.license_id} has no usage meters")
    for meter in usage.meters:
        period = meter.period or "never resets"
        ends = f", until {_when(meter.period_ends_at)}" if meter.period_ends_at else ""
        click.echo(
            f"{meter.meter}  {meter.used}/{meter.limit} used, {meter.remaining} left  "
            f"({period}{ends})"
        )
        for past in meter.history:
            click.echo(f"  {_when(past.period_start)} .. {_when(past.period_ends_at)}  {past.used}")


@licenses.command("usage")
@click.argument("license_id", type=click.UUID)
@data_dir_option
def usage(license_id: uuid.UUID, data_dir: Path) -> None:
    """Show the usage of license LICENSE_ID: per meter, the current period's count against
    its limit, then the past periods (newest first), as GET /licenses/{id}/usage."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.metering import service

    settings = settings_for(resolve_database(data_dir))

    async def work(session: AsyncSession) -> LicenseUsage:
        return await service.license_usage(session, _CLI, license_id)

    _echo_usage(run_admin(settings, work))


@licenses.command("usage-reset")
@click.argument("license_id", type=click.UUID)
@click.option("--meter", default=None, help="Only this meter (default: every meter).")
@data_dir_option
def usage_reset(license_id: uuid.UUID, meter: str | None, data_dir: Path) -> None:
    """Start the current period of license LICENSE_ID's meters (or of --meter) again from
    zero; past periods are kept. Audited, and announced to webhooks (license.usage_reset)."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.metering import service
    from server.metering.schemas import UsageReset

    settings = settings_for(resolve_database(data_dir))
    data = request_body({"meter": meter}, UsageReset)

    async def work(session: AsyncSession) -> LicenseUsage:
        return await service.reset_usage(session, _CLI, license_id, data.meter)

    reset = run_admin(settings, work)
    click.echo(f"reset {data.meter or 'every meter'} of license {license_id}", err=True)
    _echo_usage(reset)


# --- named users -------------------------------------------------------------------------------


@licenses.group("users")
def users() -> None:
    """Named users of a license: list, assign, unassign (USER: an id or an e-mail address of
    a member of the license's organization)."""


@users.command("list")
@click.argument("license_id", type=click.UUID)
@data_dir_option
def users_list(license_id: uuid.UUID, data_dir: Path) -> None:
    """List the users assigned to license LICENSE_ID (oldest first): id, e-mail, role, live
    machines."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.license_users import service

    settings = settings_for(resolve_database(data_dir))

    async def work(session: AsyncSession) -> LicenseUsersRead:
        return await service.list_users(session, _CLI, license_id)

    found = run_admin(settings, work)
    if found.seat_kind != "user":
        click.echo(f"license {found.license_id} counts machines, not named users", err=True)
        return
    click.echo(
        f"license {found.license_id}: {len(found.users)}/{found.max_users} users, "
        f"{found.machines_per_user} machine(s) each",
        err=True,
    )
    for user in found.users:
        click.echo(
            f"{user.user_id}  {user.email}  {user.role}  machines {user.machines}  "
            f"assigned {user.assigned_at.isoformat()}"
        )


@users.command("assign")
@click.argument("license_id", type=click.UUID)
@click.argument("user")
@data_dir_option
def users_assign(license_id: uuid.UUID, user: str, data_dir: Path) -> None:
    """Assign USER to license LICENSE_ID (a named seat; nothing changes if they already are)."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.license_users import service

    settings = settings_for(resolve_database(data_dir))

    async def work(session: AsyncSession) -> tuple[LicenseUserRead, bool]:
        user_id = await service.member_id(session, _CLI, license_id, user)
        return await service.assign_user(session, _CLI, license_id, user_id)

    assigned, created = run_admin(settings, work)
    state = "assigned" if created else "already assigned"
    click.echo(f"{assigned.email} ({assigned.user_id}) {state} to license {license_id}")


@users.command("unassign")
@click.argument("license_id", type=click.UUID)
@click.argument("user")
@data_dir_option
def users_unassign(license_id: uuid.UUID, user: str, data_dir: Path) -> None:
    """Unassign USER from license LICENSE_ID: their seat is free at once and their machines
    on the license are deactivated."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.license_users import service

    settings = settings_for(resolve_database(data_dir))

    async def work(session: AsyncSession) -> uuid.UUID:
        user_id = await service.member_id(session, _CLI, license_id, user)
        await service.unassign_user(session, _CLI, license_id, user_id)
        return user_id

    user_id = run_admin(settings, work)
    click.echo(f"user {user_id} unassigned from license {license_id}")
