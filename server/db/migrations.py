"""Alembic, run through the schema owner's connection."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(owner_url: str, app_role: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", owner_url.replace("%", "%%"))
    if app_role:
        config.cmd_opts = type("Opts", (), {"x": [f"app_role={app_role}"]})()
    return config


def upgrade(owner_url: str, revision: str = "head", app_role: str | None = None) -> None:
    command.upgrade(alembic_config(owner_url, app_role), revision)


def downgrade(owner_url: str, revision: str, app_role: str | None = None) -> None:
    command.downgrade(alembic_config(owner_url, app_role), revision)


@functools.cache
def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head() or ""


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
