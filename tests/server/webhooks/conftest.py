"""Fixtures of the webhook tests: the licensing rows, an in-process app whose dispatcher is
off (the outbox is inspected as written), and the dispatcher's fan-out, run on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from licensing_data import in_days, make_license, sql  # noqa: F401
from litestar.testing import TestClient
from support import LiveServer, kill_server, run, server_env, start_server, stop_server

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
def fan_out(webhook_settings: Settings) -> Callable[[], tuple[int, int]]:
    """``fan_out()``: what a dispatcher does first in each round (sequences, deliveries);
    returns (events, deliveries written)."""
    from server.db.session import create_side_engine
    from server.webhooks import dispatcher

    async def work() -> tuple[int, int]:
        engine = create_side_engine(webhook_settings)
        try:
            return await dispatcher.fan_out(engine)
        finally:
            await engine.dispose()

    return lambda: run(work())


@pytest.fixture
def outbox_client(webhook_settings: Settings, signing_key: str) -> Iterator[TestClient]:
    """The app with no dispatcher: events stay in the outbox for the test to read."""
    from server.app import create_app

    with TestClient(create_app(webhook_settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def webhook_server(settings: Settings, signing_key: str, tmp_path: Path):
    """``webhook_server(workers=1, **env)``: a real `licentia serve` (its own process group)
    allowed to deliver to the loopback over http; every one started is killed afterwards."""
    started: list[LiveServer] = []

    def factory(workers: int = 1, **env: str) -> LiveServer:
        env = {
            "LICENTIA_WEBHOOK_ALLOW_INSECURE": "1",
            "LICENTIA_WEBHOOK_ALLOW_PRIVATE": "1",
            "LICENTIA_WEBHOOK_POLL_SECONDS": "0.2",
            **env,
        }
        server = start_server(
            server_env(settings, **env),
            tmp_path / f"server-{len(started)}.log",
            workers=workers,
            new_session=True,
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.process.poll() is None:
            stop_server(server)
            kill_server(server)
