"""The licensing hot path in one round trip per step.

- ``licentia_license(hash, lock)``: set the transaction's tenant from a license-key hash and
  return the license's row (with ``version``, its ``xmin``), locked as asked;
- ``licentia_validate(hash, fp, now)``: the same, plus the seat count and this machine's seat
  (validation is one autocommit statement);
- ``licentia_check_in(...)`` and ``licentia_activate(...)``: the seat change, as one autocommit
  statement (its own transaction), for a license the caller read and judged usable: the
  function locks the license row and goes ahead only if the row is still the version read
  (``outcome`` ``changed`` otherwise, and the caller starts again), so no change is ever made
  against a license that was suspended, revoked or changed since.

Both are ``SECURITY INVOKER``: they run with the caller's rights, so row-level security
applies to every row they read; the only way around the policies stays the narrow
``licentia_license_org`` look-up (0001), which they call to learn the tenant. The tenant is set
with ``set_config(..., true)``: transaction-local, gone when the caller's transaction (or the
single autocommit statement) ends.

``licentia_validate``, ``licentia_check_in`` and ``licentia_activate`` hold frozen copies of the
live-seat rule (``server.license_rules.live_seat_sql`` / ``stale_seat_sql``);
tests/server/test_license_rules.py runs the rule's table of cases through the validation
function and checks every copy is the rule's current text, so a change of the rule fails the
tests until a migration redefines the functions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = """
    id uuid, organization_id uuid, status varchar, starts_at timestamptz,
    expires_at timestamptz, max_activations integer, features jsonb, product varchar,
    tier varchar, tier_features jsonb, tier_max_activations integer, offline_lease_days integer,
    lease_grace_days integer, max_deactivations_per_day integer, version text"""

_SELECT = """
        SELECT l.id, l.organization_id, l.status, l.starts_at, l.expires_at, l.max_activations,
               l.features, p.code, t.code, t.features, t.max_activations, t.offline_lease_days,
               t.lease_grace_days, t.max_deactivations_per_day, l.xmin::text"""

_FROM = """
        FROM licenses l
        JOIN products p ON p.id = l.product_id
        JOIN tiers t ON t.id = l.tier_id
        WHERE l.key_hash = p_key_hash AND l.organization_id = v_org"""

# server.license_rules.live_seat_sql("a", "t.lease_grace_days", "p_now"), frozen.
LIVE_SEAT = (
    "a.deactivated_at IS NULL AND a.lease_expires_at + make_interval(days => t.lease_grace_days)"
    " > p_now"
)

LICENSE = f"""
CREATE FUNCTION licentia_license(p_key_hash bytea, p_lock text DEFAULT 'none')
    RETURNS TABLE ({_COLUMNS})
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_org uuid := licentia_license_org(p_key_hash);
BEGIN
    IF v_org IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('app.organization_id', v_org::text, true);
    IF p_lock = 'update' THEN
        RETURN QUERY {_SELECT} {_FROM} FOR UPDATE OF l;
    ELSIF p_lock = 'key_share' THEN
        RETURN QUERY {_SELECT} {_FROM} FOR KEY SHARE OF l;
    ELSE
        RETURN QUERY {_SELECT} {_FROM};
    END IF;
END
$$
"""

VALIDATE = f"""
CREATE FUNCTION licentia_validate(p_key_hash bytea, p_fingerprint_hash text, p_now timestamptz)
    RETURNS TABLE ({_COLUMNS}, seats bigint, seat uuid)
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_org uuid := licentia_license_org(p_key_hash);
BEGIN
    IF v_org IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('app.organization_id', v_org::text, true);
    RETURN QUERY {_SELECT},
        (SELECT count(*) FROM activations a
         WHERE a.license_id = l.id AND a.organization_id = l.organization_id
           AND {LIVE_SEAT}),
        (SELECT a.id FROM activations a
         WHERE a.license_id = l.id AND a.organization_id = l.organization_id
           AND {LIVE_SEAT} AND a.fingerprint_hash = p_fingerprint_hash)
    {_FROM};
END
$$
"""

# server.license_rules.live_seat_sql("a", "v_grace", "p_now") / stale_seat_sql(...), frozen.
LIVE_SEAT_V = (
    "a.deactivated_at IS NULL AND a.lease_expires_at + make_interval(days => v_grace) > p_now"
)
STALE_SEAT_V = (
    "a.deactivated_at IS NULL AND NOT (a.lease_expires_at + make_interval(days => v_grace) > p_now)"
)

# The license row as the caller read it, locked (or nothing: the caller starts again).
_LOCK_AS_READ = """
    v_org := licentia_license_org(p_key_hash);
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 'changed'::text, NULL::uuid, 0::bigint;
        RETURN;
    END IF;
    PERFORM set_config('app.organization_id', v_org::text, true);
    SELECT t.lease_grace_days INTO v_grace
        FROM licenses l JOIN tiers t ON t.id = l.tier_id
        WHERE l.id = p_license_id AND l.organization_id = v_org AND l.key_hash = p_key_hash
          AND l.xmin::text = p_version
        FOR {mode} OF l;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'changed'::text, NULL::uuid, 0::bigint;
        RETURN;
    END IF;"""

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


# Check-ins of one license run side by side (KEY SHARE), never interleaved with a seat
# decision (activate takes UPDATE).
CHECK_IN = f"""
CREATE FUNCTION licentia_check_in(
    p_key_hash bytea, p_license_id uuid, p_version text, p_fingerprint_hash text,
    p_now timestamptz, p_lease timestamptz)
    RETURNS TABLE (outcome text, activation_id uuid, seats bigint)
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_org uuid;
    v_grace integer;
    v_id uuid;
BEGIN
    {_LOCK_AS_READ.format(mode="KEY SHARE")}
    UPDATE activations a SET lease_expires_at = p_lease, last_check_in_at = p_now
        WHERE a.license_id = p_license_id AND a.organization_id = v_org
          AND a.fingerprint_hash = p_fingerprint_hash AND {LIVE_SEAT_V}
        RETURNING a.id INTO v_id;
    RETURN QUERY SELECT CASE WHEN v_id IS NULL THEN 'not_activated' ELSE 'renewed' END,
                        v_id, 0::bigint;
END
$$
"""

# Activation: release stale seats (audited), count the live ones in a new statement (a fresh
# snapshot, after the lock: it sees every activation committed before), then renew this
# machine's seat or take a new one if there is room (audited).
ACTIVATE = f"""
CREATE FUNCTION licentia_activate(
    p_key_hash bytea, p_license_id uuid, p_version text, p_fingerprint_hash text,
    p_now timestamptz, p_lease timestamptz, p_max_activations integer, p_new_id uuid,
    p_name text, p_platform text, p_expired_event jsonb, p_created_event jsonb)
    RETURNS TABLE (outcome text, activation_id uuid, seats bigint)
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_org uuid;
    v_grace integer;
    v_live bigint;
    v_seat uuid;
BEGIN
    {_LOCK_AS_READ.format(mode="UPDATE")}
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
    SELECT count(*), (array_agg(a.id) FILTER (WHERE a.fingerprint_hash = p_fingerprint_hash))[1]
        INTO v_live, v_seat
        FROM activations a
        WHERE a.license_id = p_license_id AND a.organization_id = v_org AND {LIVE_SEAT_V};
    IF v_seat IS NOT NULL THEN
        UPDATE activations
            SET lease_expires_at = p_lease, last_check_in_at = p_now,
                name = coalesce(p_name, name), platform = coalesce(p_platform, platform)
            WHERE id = v_seat AND organization_id = v_org;
        RETURN QUERY SELECT 'renewed'::text, v_seat, v_live;
        RETURN;
    END IF;
    IF v_live >= p_max_activations THEN
        RETURN QUERY SELECT 'limit'::text, NULL::uuid, v_live;
        RETURN;
    END IF;
    INSERT INTO activations (id, organization_id, license_id, fingerprint_hash, name, platform,
                             activated_at, last_check_in_at, lease_expires_at)
        VALUES (p_new_id, v_org, p_license_id, p_fingerprint_hash, p_name, p_platform, p_now,
                p_now, p_lease)
        ON CONFLICT (license_id, fingerprint_hash) WHERE deactivated_at IS NULL DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::uuid, v_live;
        RETURN;
    END IF;
    INSERT INTO audit_events ({_AUDIT_COLUMNS})
        VALUES ({_audit_values("p_created_event", "p_new_id::text", _NO_DATA)});
    RETURN QUERY SELECT 'created'::text, p_new_id, v_live + 1;
END
$$
"""

FUNCTIONS = (
    "licentia_license(bytea, text)",
    "licentia_validate(bytea, text, timestamptz)",
    "licentia_check_in(bytea, uuid, text, text, timestamptz, timestamptz)",
    "licentia_activate(bytea, uuid, text, text, timestamptz, timestamptz, integer, uuid, text, "
    "text, jsonb, jsonb)",
)


def _app_role() -> str:
    return context.get_x_argument(as_dictionary=True).get("app_role", "licentia_app")


def upgrade() -> None:
    role = _app_role()
    for definition in (LICENSE, VALIDATE, CHECK_IN, ACTIVATE):
        op.execute(definition)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {function} TO "{role}"')


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
