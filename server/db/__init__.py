"""Database access, one concern per module: ``session`` (engines, the request transaction,
the tenant), ``hot_pool`` (the licensing routes' asyncpg pool), ``availability`` (is the
database reachable), ``migrations`` (Alembic), ``roles`` (the runtime-role check)."""
