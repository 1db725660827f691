"""0010 (a license's own ``max_users``; ``license.usage_reset`` as a webhook event) down to
0009 and up again: the column goes and comes back, and the outbox function returns to 0009's
definition (no usage-reset mapping, no named-user seats in the license snapshot) and back,
still executable by the runtime role only."""

from __future__ import annotations

import psycopg

from server.db.migrations import downgrade, upgrade
from server.settings import async_url


def _state(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        source = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = 'licentia_webhook_outbox'"
        ).fetchone()
        assert source is not None
        return {
            "column": conn.execute(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'licenses' AND column_name = 'max_users'"
            ).fetchone(),
            "usage_reset": "WHEN 'license.usage_reset' THEN 'license.usage_reset'" in source[0],
            "user_events": "WHEN 'license.user_assign' THEN 'license.user_assigned'" in source[0],
            "snapshot_users": "'tier_max_users', t.max_users" in source[0],
            "context_user": "'user_id', NEW.data->>'user_id'" in source[0],
            "granted": conn.execute(
                "SELECT has_function_privilege('licentia_app', 'licentia_webhook_outbox()', "
                "'EXECUTE'), has_function_privilege('public', 'licentia_webhook_outbox()', "
                "'EXECUTE')"
            ).fetchone(),
        }


def _reset_events(url: str) -> tuple[int, str | None]:
    """Events a usage-reset audit row writes with an endpoint listening (none in between)."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO webhook_endpoints (url, secret) VALUES ('http://127.0.0.1:9/', 'x')"
        )
        conn.execute(
            "INSERT INTO audit_events (actor_type, action, data) "
            "VALUES ('cli', 'license.usage_reset', '{\"meters\": {\"m\": 3}}')"
        )
        found = conn.execute(
            "SELECT count(*), max(context->>'reset') FROM webhook_events "
            "WHERE type = 'license.usage_reset'"
        ).fetchone()
        conn.rollback()
    assert found is not None
    return found[0], found[1]


def test_0010_down_to_0009_and_up_again(scratch_url: str) -> None:
    upgrade(async_url(scratch_url), "0010")
    head = _state(scratch_url)
    assert head == {
        "column": (1,),
        "usage_reset": True,
        "user_events": True,
        "snapshot_users": True,
        "context_user": True,
        "granted": (True, False),
    }
    assert _reset_events(scratch_url) == (1, '{"meters": {"m": 3}}')
    downgrade(async_url(scratch_url), "0009")
    assert _state(scratch_url) == {
        "column": (0,),
        "usage_reset": False,
        "user_events": True,
        "snapshot_users": False,
        "context_user": True,
        "granted": (True, False),
    }
    assert _reset_events(scratch_url) == (0, None)
    upgrade(async_url(scratch_url), "0010")
    assert _state(scratch_url) == head
