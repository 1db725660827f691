"""A license's own ``max_users``, and ``license.usage_reset`` as a webhook event.

- ``licenses.max_users``: overrides the tier's ``max_users`` (named-user seats), like
  ``max_activations`` overrides its seats; ``NULL`` (the default, and every license before
  this revision) keeps the tier's. The rule that uses it (``USER_LIMIT``) runs in Python
  under the license's row lock (``server.license_users``), so no SQL function changes;
- the webhook outbox again (0009's, itself 0006's with the named-user events):
  - ``license.usage_reset`` (the audit action of a usage reset) maps to the event type of
    the same name, and the event's ``context`` carries what was reset (the audit row's
    ``data``: ``{"meters": {name: count cleared}}``) as ``reset``, as the named-user events
    carry their user;
  - the license snapshot carries ``max_users``, the tier's ``max_users`` and its
    ``seat_kind``, so a payload shows the license's named-user seats as the admin API does.

The outbox function is built from the revision that last wrote it (0009), loaded by file
name, with its fragments replaced (each one checked to be there); the downgrade puts 0009's
back.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _module(file_name: str) -> ModuleType:
    path = Path(__file__).with_name(file_name)
    spec = importlib.util.spec_from_file_location(f"licentia_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _named_users() -> ModuleType:
    """The revision that last defined the webhook outbox (on 0006's definition)."""
    return _module("0009_named_users.py")


def _webhooks() -> ModuleType:
    return _module("0006_webhooks.py")


SCHEMA = (
    "ALTER TABLE licenses ADD COLUMN max_users integer "
    "CONSTRAINT licenses_max_users_check CHECK (max_users >= 0)",
)

# audit action -> webhook event type, added to 0006's and 0009's ``ACTIONS``.
ACTIONS = {
    "license.usage_reset": "license.usage_reset",
}

# 0009's context, with what a usage reset cleared (absent for other events).
RESET_CONTEXT = (
    "jsonb_strip_nulls(jsonb_build_object('actor_type', NEW.actor_type, "
    "'audit_event_id', NEW.id, 'user_id', NEW.data->>'user_id', "
    "'reset', CASE WHEN NEW.action = 'license.usage_reset' THEN NEW.data END))"
)

# The license snapshot's seats (0006), followed by the named-user seats.
_SEATS = "'tier_max_activations', t.max_activations,"
_USER_SEATS = (
    "'tier_max_activations', t.max_activations,\n"
    "                'max_users', l.max_users, 'tier_max_users', t.max_users,\n"
    "                'seat_kind', t.seat_kind,"
)


def outbox() -> str:
    """The outbox function of this revision, as ``CREATE OR REPLACE``."""
    named_users, webhooks = _named_users(), _webhooks()
    previous = named_users._outbox({**webhooks.ACTIONS, **named_users.ACTIONS}, with_user=True)
    cases = "\n".join(
        f"        WHEN '{action}' THEN '{kind}'"
        for action, kind in {**webhooks.ACTIONS, **named_users.ACTIONS, **ACTIONS}.items()
    )
    old_cases = "\n".join(
        f"        WHEN '{action}' THEN '{kind}'"
        for action, kind in {**webhooks.ACTIONS, **named_users.ACTIONS}.items()
    )
    for fragment in (old_cases, named_users.USER_CONTEXT, _SEATS):
        assert previous.count(fragment) == 1, fragment
    return (
        previous.replace(old_cases, cases)
        .replace(named_users.USER_CONTEXT, RESET_CONTEXT)
        .replace(_SEATS, _USER_SEATS)
    )


def _previous_outbox() -> str:
    named_users, webhooks = _named_users(), _webhooks()
    return named_users._outbox({**webhooks.ACTIONS, **named_users.ACTIONS}, with_user=True)


def upgrade() -> None:
    for statement in SCHEMA:
        op.execute(statement)
    op.execute(outbox())


def downgrade() -> None:
    op.execute(_previous_outbox())
    op.execute("ALTER TABLE licenses DROP COLUMN max_users")
