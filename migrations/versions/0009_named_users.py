"""Named-user seats.

- ``tiers``: ``seat_kind`` (``machine``, the default and the behaviour before this revision,
  or ``user``), ``max_users`` (required for a ``user`` tier) and ``machines_per_user``
  (default 3);
- ``license_users``: the members of a license's organization assigned to it (a tenant table,
  with row-level security like the others); removing the user or the license removes the
  assignment;
- ``activations.user_id``: the user a seat of a ``user`` license is bound to;
- ``licentia_activate`` again, with the user (from the access token the product sent): for a
  license of a ``user`` tier it requires one, checks that the user still stands (same
  organization, same token generation) and is assigned, and counts the user's live seats
  against ``machines_per_user`` (``server.license_rules``: ``user_seat_sql``, frozen here like
  the live-seat rule), besides the license's own ``max_activations``; it returns the user the
  seat is bound to;
- ``licentia_check_in`` again, returning the user of the seat (the token's ``usr`` claim);
- the webhook outbox again, mapping ``license.user_assign`` / ``license.user_unassign`` to
  ``license.user_assigned`` / ``license.user_unassigned``.

The functions are built on the definitions of the revisions that last wrote them (0005 for the
licensing functions, 0006 for the outbox), loaded by file name below: nothing here depends on
a revision between 0007 and this one. A function's result columns cannot change with
``CREATE OR REPLACE``: each is dropped and created again, in this one transaction.

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-30
"""

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import context, op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _module(file_name: str) -> ModuleType:
    path = Path(__file__).with_name(file_name)
    spec = importlib.util.spec_from_file_location(f"licentia_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _licensing() -> ModuleType:
    """The revision that last defined the licensing functions."""
    return _module("0005_plans_trials_and_fallback.py")


def _webhooks() -> ModuleType:
    """The revision that last defined the webhook outbox."""
    return _module("0006_webhooks.py")


CURRENT_ORG = "NULLIF(current_setting('app.organization_id', true), '')::uuid"
PLATFORM = "current_setting('app.platform_admin', true) = 'on'"

SCHEMA = (
    "ALTER TABLE tiers ADD COLUMN seat_kind varchar(16) NOT NULL DEFAULT 'machine' "
    "CONSTRAINT tiers_seat_kind_check CHECK (seat_kind IN ('machine', 'user'))",
    "ALTER TABLE tiers ADD COLUMN max_users integer "
    "CONSTRAINT tiers_max_users_check CHECK (max_users >= 0)",
    "ALTER TABLE tiers ADD COLUMN machines_per_user integer NOT NULL DEFAULT 3 "
    "CONSTRAINT tiers_machines_per_user_check CHECK (machines_per_user >= 1)",
    "ALTER TABLE tiers ADD CONSTRAINT tiers_user_seats_check "
    "CHECK (seat_kind = 'machine' OR max_users IS NOT NULL)",
    "ALTER TABLE activations ADD COLUMN user_id uuid REFERENCES users(id) ON DELETE SET NULL",
    "CREATE INDEX activations_user_idx ON activations (user_id) WHERE user_id IS NOT NULL",
    """CREATE TABLE license_users (
    license_id uuid NOT NULL REFERENCES licenses(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (license_id, user_id)
)""",
    "CREATE INDEX license_users_user_idx ON license_users (user_id)",
    "ALTER TABLE license_users ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE license_users FORCE ROW LEVEL SECURITY",
    f"CREATE POLICY tenant_isolation ON license_users "
    f"USING (organization_id = {CURRENT_ORG} OR {PLATFORM}) "
    f"WITH CHECK (organization_id = {CURRENT_ORG} OR {PLATFORM})",
)

# server.license_rules.live_seat_sql("a", "v_grace", "p_now") / stale_seat_sql(...), frozen
# (the same text as 0005's).
LIVE_SEAT_V = (
    "a.deactivated_at IS NULL AND a.lease_expires_at + make_interval(days => v_grace) > p_now"
)
STALE_SEAT_V = (
    "a.deactivated_at IS NULL AND NOT (a.lease_expires_at + make_interval(days => v_grace) > p_now)"
)
# server.license_rules.user_seat_sql("a", "p_user_id"), frozen.
USER_SEAT = "a.user_id = p_user_id"

_LOCK_AS_READ = """
    v_org := licentia_license_org(p_key_hash);
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 'changed'::text, NULL::uuid, 0::bigint, NULL::uuid;
        RETURN;
    END IF;
    PERFORM set_config('app.organization_id', v_org::text, true);
    SELECT t.lease_grace_days, t.is_trial, l.product_id, t.seat_kind, t.machines_per_user
        INTO v_grace, v_trial, v_product, v_seat_kind, v_machines_per_user
        FROM licenses l JOIN tiers t ON t.id = l.tier_id
        WHERE l.id = p_license_id AND l.organization_id = v_org AND l.key_hash = p_key_hash
          AND l.xmin::text = p_version
        FOR {mode} OF l;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'changed'::text, NULL::uuid, 0::bigint, NULL::uuid;
        RETURN;
    END IF;"""

_DECLARE = """
    v_org uuid;
    v_grace integer;
    v_trial boolean;
    v_product uuid;
    v_seat_kind text;
    v_machines_per_user integer;"""

_NO_DATA = "'{}'::jsonb"
_AUDIT_COLUMNS = (
    "organization_id, actor_type, actor_id, action, target_type, target_id, data, request_id, ip"
)


def _audit_values(event: str, target: str, data: str) -> str:
    """An audit row from an event built by ``server.audit.service.event`` (as jsonb)."""
    return (
        f"v_org, {event}->>'actor_type', {event}->>'actor_id', {event}->>'action', "
        f"{event}->>'target_type', {target}, coalesce({event}->'data', '{{}}'::jsonb) || {data}, "
        f"{event}->>'request_id', {event}->>'ip'"
    )


CHECK_IN = f"""
CREATE FUNCTION licentia_check_in(
    p_key_hash bytea, p_license_id uuid, p_version text, p_fingerprint_hash text,
    p_now timestamptz, p_lease timestamptz)
    RETURNS TABLE (outcome text, activation_id uuid, seats bigint, user_id uuid)
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE{_DECLARE}
    v_id uuid;
    v_user uuid;
BEGIN
    {_LOCK_AS_READ.format(mode="KEY SHARE")}
    UPDATE activations a SET lease_expires_at = p_lease, last_check_in_at = p_now
        WHERE a.license_id = p_license_id AND a.organization_id = v_org
          AND a.fingerprint_hash = p_fingerprint_hash AND {LIVE_SEAT_V}
        RETURNING a.id, a.user_id INTO v_id, v_user;
    RETURN QUERY SELECT CASE WHEN v_id IS NULL THEN 'not_activated' ELSE 'renewed' END,
                        v_id, 0::bigint, v_user;
END
$$
"""

# As in 0005; in addition, for a license of a ``user`` tier: the user (p_user_id, from an
# access token of organization p_user_org issued under p_user_generation) is required
# ('user_required'), must still stand ('user_invalid') and be assigned to the license
# ('user_not_assigned'); a machine's seat held by another user is not taken over
# ('seat_of_another_user'); and the user's live seats count against the tier's
# machines_per_user ('user_limit'), besides p_max_activations ('limit').
ACTIVATE = f"""
CREATE FUNCTION licentia_activate(
    p_key_hash bytea, p_license_id uuid, p_version text, p_fingerprint_hash text,
    p_now timestamptz, p_lease timestamptz, p_max_activations integer, p_new_id uuid,
    p_name text, p_platform text, p_expired_event jsonb, p_created_event jsonb,
    p_converted_event jsonb, p_user_id uuid, p_user_org uuid, p_user_generation integer)
    RETURNS TABLE (outcome text, activation_id uuid, seats bigint, user_id uuid)
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE{_DECLARE}
    v_live bigint;
    v_user_live bigint;
    v_seat uuid;
    v_seat_user uuid;
    v_user uuid;
    v_converted uuid;
BEGIN
    {_LOCK_AS_READ.format(mode="UPDATE")}
    IF v_seat_kind = 'user' THEN
        IF p_user_id IS NULL THEN
            RETURN QUERY SELECT 'user_required'::text, NULL::uuid, 0::bigint, NULL::uuid;
            RETURN;
        END IF;
        IF p_user_org IS DISTINCT FROM v_org THEN
            RETURN QUERY SELECT 'user_not_assigned'::text, NULL::uuid, 0::bigint, NULL::uuid;
            RETURN;
        END IF;
        PERFORM 1 FROM users u
            WHERE u.id = p_user_id AND u.organization_id = v_org
              AND u.token_generation = p_user_generation;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'user_invalid'::text, NULL::uuid, 0::bigint, NULL::uuid;
            RETURN;
        END IF;
        PERFORM 1 FROM license_users lu
            WHERE lu.license_id = p_license_id AND lu.organization_id = v_org
              AND lu.user_id = p_user_id;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'user_not_assigned'::text, NULL::uuid, 0::bigint, NULL::uuid;
            RETURN;
        END IF;
        v_user := p_user_id;
    END IF;
    WITH stale AS (
        UPDATE activations a SET deactivated_at = p_now, deactivation_reason = 'lease_expired'
        WHERE a.license_id = p_license_id AND a.organization_id = v_org AND {STALE_SEAT_V}
        RETURNING a.id
    )
    INSERT INTO audit_events ({_AUDIT_COLUMNS})
    SELECT {
    _audit_values(
        "p_expired_event", "stale.id::text", "jsonb_build_object('license_id', p_license_id)"
    )
}
    FROM stale;
    SELECT count(*), (array_agg(a.id) FILTER (WHERE a.fingerprint_hash = p_fingerprint_hash))[1],
           (array_agg(a.user_id) FILTER (WHERE a.fingerprint_hash = p_fingerprint_hash))[1],
           count(*) FILTER (WHERE {USER_SEAT})
        INTO v_live, v_seat, v_seat_user, v_user_live
        FROM activations a
        WHERE a.license_id = p_license_id AND a.organization_id = v_org AND {LIVE_SEAT_V};
    IF v_seat IS NOT NULL THEN
        IF v_user IS NOT NULL AND v_seat_user IS DISTINCT FROM v_user THEN
            RETURN QUERY SELECT 'seat_of_another_user'::text, NULL::uuid, v_live, NULL::uuid;
            RETURN;
        END IF;
        UPDATE activations
            SET lease_expires_at = p_lease, last_check_in_at = p_now,
                name = coalesce(p_name, name), platform = coalesce(p_platform, platform)
            WHERE id = v_seat AND organization_id = v_org;
        RETURN QUERY SELECT 'renewed'::text, v_seat, v_live, v_seat_user;
        RETURN;
    END IF;
    IF v_live >= p_max_activations THEN
        RETURN QUERY SELECT 'limit'::text, NULL::uuid, v_live, NULL::uuid;
        RETURN;
    END IF;
    IF v_user IS NOT NULL AND v_user_live >= v_machines_per_user THEN
        RETURN QUERY SELECT 'user_limit'::text, NULL::uuid, v_user_live, NULL::uuid;
        RETURN;
    END IF;
    INSERT INTO activations (id, organization_id, license_id, fingerprint_hash, name, platform,
                             activated_at, last_check_in_at, lease_expires_at, user_id)
        VALUES (p_new_id, v_org, p_license_id, p_fingerprint_hash, p_name, p_platform, p_now,
                p_now, p_lease, v_user)
        ON CONFLICT (license_id, fingerprint_hash) WHERE deactivated_at IS NULL DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::uuid, v_live, NULL::uuid;
        RETURN;
    END IF;
    INSERT INTO audit_events ({_AUDIT_COLUMNS})
        VALUES ({
    _audit_values(
        "p_created_event",
        "p_new_id::text",
        f"CASE WHEN v_user IS NULL THEN {_NO_DATA} ELSE jsonb_build_object('user_id', v_user) END",
    )
});
    IF NOT v_trial THEN
        UPDATE trials tr
            SET converted_at = p_now, converted_license_id = p_license_id,
                converted_organization_id = v_org
            WHERE tr.product_id = v_product AND tr.fingerprint_hash = p_fingerprint_hash
              AND tr.converted_at IS NULL
            RETURNING tr.id INTO v_converted;
        IF v_converted IS NOT NULL THEN
            INSERT INTO audit_events ({_AUDIT_COLUMNS})
                VALUES ({
    _audit_values(
        "p_converted_event",
        "v_converted::text",
        "jsonb_build_object('license_id', p_license_id, 'activation_id', p_new_id)",
    )
});
        END IF;
    END IF;
    RETURN QUERY SELECT 'created'::text, p_new_id, v_live + 1, v_user;
END
$$
"""

FUNCTIONS = (
    "licentia_check_in(bytea, uuid, text, text, timestamptz, timestamptz)",
    "licentia_activate(bytea, uuid, text, text, timestamptz, timestamptz, integer, uuid, text, "
    "text, jsonb, jsonb, jsonb, uuid, uuid, integer)",
)

# audit action -> webhook event type, added to 0006's ``ACTIONS``.
ACTIONS = {
    "license.user_assign": "license.user_assigned",
    "license.user_unassign": "license.user_unassigned",
}


CONTEXT = "jsonb_build_object('actor_type', NEW.actor_type, 'audit_event_id', NEW.id)"
# The assigned user travels with the event (the payload's ``user_id``); absent for others.
USER_CONTEXT = (
    "jsonb_strip_nulls(jsonb_build_object('actor_type', NEW.actor_type, "
    "'audit_event_id', NEW.id, 'user_id', NEW.data->>'user_id'))"
)


def _outbox(actions: dict[str, str], *, with_user: bool) -> str:
    """0006's outbox function with ``actions`` as its mapping (and, ``with_user``, the
    assigned user in the event's context), as ``CREATE OR REPLACE``."""
    previous = _webhooks()
    cases = "\n".join(f"        WHEN '{action}' THEN '{kind}'" for action, kind in actions.items())
    assert previous._CASES in previous.OUTBOX and CONTEXT in previous.OUTBOX
    outbox = previous.OUTBOX.replace(previous._CASES, cases)
    if with_user:
        outbox = outbox.replace(CONTEXT, USER_CONTEXT)
    return outbox.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _app_role() -> str:
    return context.get_x_argument(as_dictionary=True).get("app_role", "licentia_app")


def _replace(drop: tuple[str, ...], definitions: tuple[str, ...], grant: tuple[str, ...]) -> None:
    role = _app_role()
    for function in drop:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    for definition in definitions:
        op.execute(definition)
    for function in grant:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {function} TO "{role}"')


def upgrade() -> None:
    for statement in SCHEMA:
        op.execute(statement)
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON license_users TO "{_app_role()}"')
    previous = _licensing()
    previous_functions = tuple(
        f for f in previous.FUNCTIONS if f.startswith(("licentia_check_in", "licentia_activate"))
    )
    _replace(previous_functions, (CHECK_IN, ACTIVATE), FUNCTIONS)
    op.execute(_outbox({**_webhooks().ACTIONS, **ACTIONS}, with_user=True))


def downgrade() -> None:
    op.execute(_outbox(_webhooks().ACTIONS, with_user=False))
    previous = _licensing()
    previous_functions = tuple(
        f for f in previous.FUNCTIONS if f.startswith(("licentia_check_in", "licentia_activate"))
    )
    _replace(FUNCTIONS, (previous.CHECK_IN, previous.ACTIVATE), previous_functions)
    op.execute("DROP TABLE license_users")
    op.execute("DROP INDEX activations_user_idx")
    op.execute("ALTER TABLE activations DROP COLUMN user_id")
    op.execute("ALTER TABLE tiers DROP CONSTRAINT tiers_user_seats_check")
    for column in ("machines_per_user", "max_users", "seat_kind"):
        op.execute(f"ALTER TABLE tiers DROP COLUMN {column}")
