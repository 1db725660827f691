"""Usage meters: a tier's meters, the usage counted per license, meter and period, and the
one statement that consumes units.

- ``tiers.meters``: ``{name: {"period": "day" | "month" | null}}``. A meter's limit is not
  stored here: it is the tier's feature of the same name (meter names share the feature
  namespace), so a license overrides it like any feature and the license's ``features`` show
  it, and there is one place the limit is written (``server.products.service``).
- ``license_usage``: one row per license, meter and period (``period`` and ``period_start``
  null for a meter that never resets). A new period is a new row, so periods roll over by
  themselves and every past period stays as history. A tenant table: row-level security like
  the others (0001).
- ``licentia_consume(...)``: one statement (one round trip) that sets the tenant from the key
  hash (through ``licentia_license_org``, the narrow ``SECURITY DEFINER`` look-up of 0001),
  takes the license row ``FOR KEY SHARE`` only if it is still the version the caller read and
  judged (``changed`` otherwise, like ``licentia_check_in`` of 0004), and adds ``amount`` to
  this period's counter with one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``: the counter's
  row lock serialises consumptions of one meter across workers and replicas, and the condition
  is checked against the latest committed count, so the limit is never passed (all or
  nothing). A negative amount gives units back, never below zero. ``SECURITY INVOKER``: row-level
  security applies to everything it touches.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from alembic import context, op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TENANT_TABLES = ("license_usage",)

CURRENT_ORG = "NULLIF(current_setting('app.organization_id', true), '')::uuid"
PLATFORM = "current_setting('app.platform_admin', true) = 'on'"

SCHEMA = """
ALTER TABLE tiers ADD COLUMN meters jsonb NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(meters) = 'object');

CREATE TABLE license_usage (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    license_id uuid NOT NULL REFERENCES licenses(id) ON DELETE CASCADE,
    meter varchar(64) NOT NULL,
    period varchar(8) CHECK (period IN ('day', 'month')),
    period_start timestamptz,
    period_end timestamptz,
    used bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((period IS NULL) = (period_start IS NULL)),
    CHECK ((period IS NULL) = (period_end IS NULL)),
    CONSTRAINT license_usage_period_key
        UNIQUE NULLS NOT DISTINCT (license_id, meter, period, period_start)
);
CREATE INDEX license_usage_license_idx ON license_usage (license_id, meter, period_start DESC)
"""

CONSUME = """
CREATE FUNCTION licentia_consume(
    p_key_hash bytea, p_license_id uuid, p_version text, p_meter text, p_period text,
    p_start timestamptz, p_end timestamptz, p_limit bigint, p_amount bigint, p_now timestamptz)
    RETURNS TABLE (outcome text, used bigint)
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_org uuid := licentia_license_org(p_key_hash);
    v_used bigint;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 'changed'::text, 0::bigint;
        RETURN;
    END IF;
    PERFORM set_config('app.organization_id', v_org::text, true);
    PERFORM 1 FROM licenses l
        WHERE l.id = p_license_id AND l.organization_id = v_org AND l.key_hash = p_key_hash
          AND l.xmin::text = p_version
        FOR KEY SHARE OF l;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'changed'::text, 0::bigint;
        RETURN;
    END IF;
    IF p_amount <= 0 OR p_amount <= p_limit THEN
        INSERT INTO license_usage AS u (organization_id, license_id, meter, period, period_start,
                                        period_end, used, updated_at)
            VALUES (v_org, p_license_id, p_meter, p_period, p_start, p_end,
                    greatest(p_amount, 0), p_now)
            ON CONFLICT ON CONSTRAINT license_usage_period_key DO UPDATE
                SET used = greatest(u.used + p_amount, 0), updated_at = p_now
                WHERE p_amount <= 0 OR u.used + p_amount <= p_limit
            RETURNING u.used INTO v_used;
        IF FOUND THEN
            RETURN QUERY SELECT 'ok'::text, v_used;
            RETURN;
        END IF;
    END IF;
    SELECT u.used INTO v_used FROM license_usage u
        WHERE u.license_id = p_license_id AND u.organization_id = v_org AND u.meter = p_meter
          AND u.period IS NOT DISTINCT FROM p_period
          AND u.period_start IS NOT DISTINCT FROM p_start;
    RETURN QUERY SELECT 'limit'::text, coalesce(v_used, 0::bigint);
END
$$
"""

FUNCTIONS = (
    "licentia_consume(bytea, uuid, text, text, text, timestamptz, timestamptz, bigint, bigint, "
    "timestamptz)",
)


def _app_role() -> str:
    return context.get_x_argument(as_dictionary=True).get("app_role", "licentia_app")


def upgrade() -> None:
    role = _app_role()
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (organization_id = {CURRENT_ORG} OR {PLATFORM}) "
            f"WITH CHECK (organization_id = {CURRENT_ORG} OR {PLATFORM})"
        )
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{role}"')
    op.execute(CONSUME)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {function} TO "{role}"')


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    for table in reversed(TENANT_TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("ALTER TABLE tiers DROP COLUMN IF EXISTS meters")
