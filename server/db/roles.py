"""The runtime role must not be able to bypass row-level security: checked at start-up."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_ROLE_CHECK = text(
    """
    SELECT r.rolname, r.rolsuper, r.rolbypassrls,
           (SELECT count(*) FROM pg_tables t
             WHERE t.schemaname = 'public'
               AND pg_has_role(current_user, t.tableowner, 'USAGE')) AS owned_tables
    FROM pg_roles r WHERE r.rolname = current_user
    """
)


class UnsafeRuntimeRole(Exception):
    """The runtime connection could bypass row-level security."""


async def check_runtime_role(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        row = (await connection.execute(_ROLE_CHECK)).one()
    problems = []
    if row.rolsuper:
        problems.append("is a superuser")
    if row.rolbypassrls:
        problems.append("has BYPASSRLS")
    if row.owned_tables:
        problems.append(f"owns (or can act as the owner of) {row.owned_tables} table(s)")
    if problems:
        raise UnsafeRuntimeRole(
            f"Refusing to start: the runtime database role {row.rolname!r} "
            + ", ".join(problems)
            + ", so row-level security would not isolate tenants. Connect "
            "LICENTIA_DATABASE_URL as a role that owns no table and has neither SUPERUSER nor "
            "BYPASSRLS, and run migrations through LICENTIA_MIGRATION_DATABASE_URL (the owner)."
        )
