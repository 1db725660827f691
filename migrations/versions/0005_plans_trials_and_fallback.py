"""Change of plan, trials and perpetual fallback.

- ``tiers``: ``is_trial``, ``self_serve_trials`` (keyless machine trials of the product; at
  most one such tier per product, a trial tier with a duration) and ``expiry_behavior``
  (``restrict``, the default, or ``fallback``);
- ``trials``: keyless machine trials, one per product and machine fingerprint hash, ever; no
  organization (a trial belongs to nobody until it converts), so no row-level security: only
  the product licensing API (which writes them) and the vendor's admin keys read them;
- the licensing functions of 0004 again, returning the tier's ``expiry_behavior`` and
  ``is_trial`` and the license's ``updates_until`` (``server.license_rules.updates_until_sql``,
  frozen here like the live-seat rule, and checked by tests/server/test_license_rules.py);
  ``licentia_activate`` also marks this machine's trial of the product converted (audited)
  when it takes a seat of a license whose tier is not a trial tier.

A function's result columns cannot change with ``CREATE OR REPLACE``: each is dropped and
created again, in this one transaction, with its grants.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-30
"""

import importlib.util
from pathlib import Path

from alembic import context, op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _previous():  # type: ignore[no-untyped-def]
    """Migration 0004's module (its function definitions, for the downgrade)."""
    path = Path(__file__).with_name("0004_license_tenant_functions.py")
    spec = importlib.util.spec_from_file_location("licentia_migration_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCHEMA = (
    "ALTER TABLE tiers ADD COLUMN is_trial boolean NOT NULL DEFAULT false",
    "ALTER TABLE tiers ADD COLUMN self_serve_trials boolean NOT NULL DEFAULT false",
    "ALTER TABLE tiers ADD COLUMN expiry_behavior varchar(16) NOT NULL DEFAULT 'restrict' "
    "CONSTRAINT tiers_expiry_behavior_check CHECK (expiry_behavior IN ('restrict', 'fallback'))",
    "ALTER TABLE tiers ADD CONSTRAINT tiers_self_serve_trials_check "
    "CHECK (NOT self_serve_trials OR (is_trial AND duration_days IS NOT NULL))",
    "CREATE UNIQUE INDEX tiers_self_serve_trial_key ON tiers (product_id) WHERE self_serve_trials",
    """CREATE TABLE trials (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id uuid NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    tier_id uuid NOT NULL REFERENCES tiers(id) ON DELETE CASCADE,
    fingerprint_hash varchar(64) NOT NULL,
    name varchar(200),
    platform varchar(64),
    started_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    converted_at timestamptz,
    converted_license_id uuid REFERENCES licenses(id) ON DELETE SET NULL,
    converted_organization_id uuid REFERENCES organizations(id) ON DELETE SET NULL,
    CONSTRAINT trials_product_fingerprint_key UNIQUE (product_id, fingerprint_hash)
)""",
    "CREATE INDEX trials_product_started_idx ON trials (product_id, started_at, id)",
)

_COLUMNS = """
    id uuid, organization_id uuid, status varchar, starts_at timestamptz,
    expires_at timestamptz, max_activations integer, features jsonb, product varchar,
    tier varchar, tier_features jsonb, tier_max_activations integer, offline_lease_days integer,
    lease_grace_days integer, max_deactivations_per_day integer, version text,
    expiry_behavior varchar, is_trial boolean, updates_until timestamptz"""

# server.license_rules.updates_until_sql("l", "t"), frozen.
UPDATES_UNTIL = (
    "CASE WHEN t.expiry_behavior = 'fallback' "
    "THEN date_trunc('second', CAST(l.expires_at AS timestamptz)) END"
)

_SELECT = f"""
        SELECT l.id, l.organization_id, l.status, l.starts_at, l.expires_at, l.max_activations,
               l.features, p.code, t.code, t.features, t.max_activations, t.offline_lease_days,
               t.lease_grace_days, t.max_deactivations_per_day, l.xmin::text,
               t.expiry_behavior, t.is_trial, {UPDATES_UNTIL}"""

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

_LOCK_AS_READ = """
    v_org := licentia_license_org(p_key_hash);
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 'changed'::text, NULL::uuid, 0::bigint;
        RETURN;
    END IF;
    PERFORM set_config('app.organization_id', v_org::text, true);
    SELECT t.lease_grace_days, t.is_trial, l.product_id INTO v_grace, v_trial, v_product
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
    v_trial boolean;
    v_product uuid;
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

# As in 0004; in addition, a new seat of a license that is not a trial marks this machine's
# trial of the product converted (audited with p_converted_event).
ACTIVATE = f"""
CREATE FUNCTION licentia_activate(
    p_key_hash bytea, p_license_id uuid, p_version text, p_fingerprint_hash text,
    p_now timestamptz, p_lease timestamptz, p_max_activations integer, p_new_id uuid,
    p_name text, p_platform text, p_expired_event jsonb, p_created_event jsonb,
    p_converted_event jsonb)
    RETURNS TABLE (outcome text, activation_id uuid, seats bigint)
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_org uuid;
    v_grace integer;
    v_trial boolean;
    v_product uuid;
    v_live bigint;
    v_seat uuid;
    v_converted uuid;
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
    RETURN QUERY SELECT 'created'::text, p_new_id, v_live + 1;
END
$$
"""

FUNCTIONS = (
    "licentia_license(bytea, text)",
    "licentia_validate(bytea, text, timestamptz)",
    "licentia_check_in(bytea, uuid, text, text, timestamptz, timestamptz)",
    "licentia_activate(bytea, uuid, text, text, timestamptz, timestamptz, integer, uuid, text, "
    "text, jsonb, jsonb, jsonb)",
)


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
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON trials TO "{_app_role()}"')
    previous = _previous()
    _replace(previous.FUNCTIONS, (LICENSE, VALIDATE, CHECK_IN, ACTIVATE), FUNCTIONS)


def downgrade() -> None:
    previous = _previous()
    _replace(
        FUNCTIONS,
        (previous.LICENSE, previous.VALIDATE, previous.CHECK_IN, previous.ACTIVATE),
        previous.FUNCTIONS,
    )
    op.execute("DROP TABLE trials")
    op.execute("DROP INDEX tiers_self_serve_trial_key")
    op.execute("ALTER TABLE tiers DROP CONSTRAINT tiers_self_serve_trials_check")
    for column in ("expiry_behavior", "self_serve_trials", "is_trial"):
        op.execute(f"ALTER TABLE tiers DROP COLUMN {column}")
