"""Fixtures of the licensing API tests (shared with the LicenseClient's live tests)."""

from collections.abc import Iterator

import psycopg
import pytest
from licensing_data import in_days, make_license, sql  # noqa: F401
from support import TestDatabase


@pytest.fixture
def clean_root_tables(database: TestDatabase) -> Iterator[None]:
    """For a test that rotates the root: the root-of-trust tables are not in the session-wide
    clean-up list, so clear them afterwards (the next test starts from one fresh root)."""
    yield
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute("TRUNCATE root_keys, key_certificates, key_revocation_lists CASCADE")
