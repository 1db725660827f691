"""Fixtures of the webhook tests: the licensing rows, and an in-process app whose
dispatcher is off (the outbox is inspected as written)."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from licensing_data import in_days, make_license, sql  # noqa: F401
from litestar.testing import TestClient

from server.settings import Settings


@pytest.fixture
def webhook_settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings,
        webhook_allow_insecure=True,
        webhook_allow_private=True,
        webhook_dispatcher=False,
        webhook_timeout_seconds=5.0,
    )


@pytest.fixture
def outbox_client(webhook_settings: Settings, signing_key: str) -> Iterator[TestClient]:
    """The app with no dispatcher: events stay in the outbox for the test to read."""
    from server.app import create_app

    with TestClient(create_app(webhook_settings), raise_server_exceptions=False) as test_client:
        yield test_client
