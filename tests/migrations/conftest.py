"""A scratch database per test, empty, for migrating up and down on its own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from support import TestDatabase, with_credentials


@pytest.fixture
def scratch_url(database: TestDatabase, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"licentia_scratch_{request.node.module.__name__.rsplit('.', 1)[-1]}_{os.getpid()}"
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_credentials(database.admin_url, db=name)
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
