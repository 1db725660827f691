"""``licentia webhooks``: subscribe, list, remove endpoints and see their deliveries."""

from __future__ import annotations

import uuid
from pathlib import Path

import click
from sqlalchemy.ext.asyncio import AsyncSession

from server.cli_support import data_dir_option, request_body

_CLI = ("cli", None)


@click.group()
def webhooks() -> None:
    """Webhook endpoints: add, list, remove, deliveries."""


@webhooks.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True, help="An event type or prefix (license.*).")
@click.option("--org", default=None, help="Only this organization's events (its id).")
@click.option("--description", default="", help="A note for people.")
@data_dir_option
def add(
    url: str, events: tuple[str, ...], org: str | None, description: str, data_dir: Path
) -> None:
    """Subscribe URL and print its signing secret (alone, on stdout; shown only once)."""
    from server.cli_support import kek_bytes, resolve_database, run_admin, settings_for
    from server.webhooks import service
    from server.webhooks.schemas import EndpointCreate, EndpointCreated

    settings = settings_for(resolve_database(data_dir))
    kek = kek_bytes(settings)
    policy = service.UrlPolicy(settings.webhook_allow_insecure, settings.webhook_allow_private)
    data = request_body(
        {
            "url": url,
            "events": list(events),
            "organization_id": org,
            "description": description,
        },
        EndpointCreate,
    )

    async def work(session: AsyncSession) -> EndpointCreated:
        return await service.create_endpoint(session, _CLI, kek, policy, data)

    created = run_admin(settings, work)
    click.echo(f"added webhook endpoint {created.id} -> {created.url}", err=True)
    click.echo(created.secret)


@webhooks.command("list")
@data_dir_option
def list_(data_dir: Path) -> None:
    """List endpoints: id, enabled, organization, events, URL."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.webhooks import service
    from server.webhooks.schemas import EndpointRead

    settings = settings_for(resolve_database(data_dir))

    async def work(session: AsyncSession) -> list[EndpointRead]:
        return (await service.list_endpoints(session, limit=100, cursor=None)).items

    for item in run_admin(settings, work):
        state = "enabled" if item.enabled else f"disabled ({item.disabled_reason})"
        events = ",".join(item.events) or "*"
        click.echo(f"{item.id}  {state}  {item.organization_id or '-'}  {events}  {item.url}")


@webhooks.command("remove")
@click.argument("endpoint_id", type=click.UUID)
@data_dir_option
def remove(endpoint_id: uuid.UUID, data_dir: Path) -> None:
    """Remove an endpoint and its pending deliveries."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.webhooks import service

    settings = settings_for(resolve_database(data_dir))

    async def work(session: AsyncSession) -> None:
        await service.delete_endpoint(session, _CLI, endpoint_id)

    run_admin(settings, work)
    click.echo(f"removed webhook endpoint {endpoint_id}", err=True)


@webhooks.command("deliveries")
@click.argument("endpoint_id", type=click.UUID)
@click.option("--limit", type=click.IntRange(1, 100), default=100, show_default=True)
@data_dir_option
def deliveries(endpoint_id: uuid.UUID, limit: int, data_dir: Path) -> None:
    """An endpoint's deliveries, oldest first: id, event, type, attempts, state."""
    from server.cli_support import resolve_database, run_admin, settings_for
    from server.webhooks import service
    from server.webhooks.schemas import DeliveryRead

    settings = settings_for(resolve_database(data_dir))

    async def work(session: AsyncSession) -> list[DeliveryRead]:
        page = await service.list_deliveries(session, endpoint_id, limit=limit, cursor=None)
        return page.items

    for d in run_admin(settings, work):
        if d.delivered_at:
            state = f"delivered {d.delivered_at.isoformat()}"
        elif d.failed_at:
            state = f"failed {d.failed_at.isoformat()}"
        else:
            state = f"next {d.next_attempt_at.isoformat() if d.next_attempt_at else '-'}"
        last = d.last_status if d.last_status is not None else (d.last_error or "-")
        click.echo(f"{d.id}  {d.event_id}  {d.type}  attempts {d.attempts}  last {last}  {state}")
