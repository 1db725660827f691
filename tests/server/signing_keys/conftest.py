"""The root-of-trust tables are not in the session-wide clean-up list (tests/conftest.py
truncates ``signing_keys``, which takes the certificates with it): clear them after each
test here, so that a root moved offline or rotated by one test does not leak into the next."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest


@pytest.fixture(autouse=True)
def _clean_root_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "database" in request.fixturenames:
        db = request.getfixturevalue("database")
        with psycopg.connect(db.owner_url, autocommit=True) as conn:
            conn.execute("TRUNCATE root_keys, key_certificates, key_revocation_lists CASCADE")
