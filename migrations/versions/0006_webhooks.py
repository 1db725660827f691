"""Webhooks: endpoints, the outbox (events and their deliveries) and the trigger that fills it.

Every webhook event starts as an audit row: ``licentia_webhook_outbox`` runs after each
insert into ``audit_events`` (in the same transaction, whoever wrote the row: the ORM, the
licensing functions of 0004/0005 or the expiry scan), maps the audit action to an event type
(``ACTIONS``, the one table of that mapping), and, when at least one enabled endpoint listens,
writes **one row**: the event with a snapshot of its object and a small ``context`` (the
actor's type, which the payload's ``deleted_by`` needs, and the audit row's id, which leads
to the rest: request id, address, data), ``fanned_out_at`` still null. A change that rolls
back takes its audit row and its event with it.

The rest is the dispatcher's, off the request path (``server.webhooks.dispatcher.FAN_OUT``):
it takes the events not yet fanned out in ``position`` order (a sequence value drawn in the
trigger, so while the change's row locks are held), gives each license event the license's
next ``sequence`` (``webhook_sequences``), writes one ``webhook_deliveries`` row per endpoint
that listens, and marks the event fanned out, all in one transaction, one process at a time.

The snapshot of a license counts its live seats with a frozen copy of the live-seat rule
(``server.license_rules.live_seat_sql("a", "t.lease_grace_days", "NEW.at")``);
tests/server/test_license_rules.py checks the copy is the rule's current text.

The webhook tables are deployment tables (managed with admin API keys, like
``signing_keys``): no row-level security. The trigger runs as the caller (``SECURITY
INVOKER``), so it reads licenses and activations under the caller's tenant.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = (
    "webhook_endpoints",
    "webhook_events",
    "webhook_deliveries",
    "webhook_sequences",
    "license_expiry_notices",
)

SCHEMA = """
ALTER TABLE tiers ADD COLUMN expiry_notice_days integer NOT NULL DEFAULT 14
    CHECK (expiry_notice_days >= 0);

CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid REFERENCES organizations(id) ON DELETE CASCADE,
    url text NOT NULL,
    description varchar(500) NOT NULL DEFAULT '',
    events text[] NOT NULL DEFAULT '{}',
    enabled boolean NOT NULL DEFAULT true,
    disabled_reason varchar(32),
    secret bytea NOT NULL,
    previous_secret bytea,
    previous_secret_until timestamptz,
    failing_since timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_created_idx ON webhook_endpoints (created_at, id);

CREATE TABLE webhook_events (
    id uuid PRIMARY KEY,
    position bigserial NOT NULL,
    type varchar(64) NOT NULL,
    organization_id uuid REFERENCES organizations(id) ON DELETE CASCADE,
    license_id uuid,
    sequence bigint,
    occurred_at timestamptz NOT NULL,
    subject jsonb NOT NULL,
    context jsonb NOT NULL DEFAULT '{}'::jsonb,
    fanned_out_at timestamptz
);
CREATE INDEX webhook_events_pending_idx ON webhook_events (position) WHERE fanned_out_at IS NULL;

CREATE TABLE webhook_deliveries (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    last_attempt_at timestamptz,
    last_status integer,
    last_error varchar(300),
    delivered_at timestamptz,
    failed_at timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_deliveries_locked_idx ON webhook_deliveries (endpoint_id)
    WHERE locked_until IS NOT NULL;
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at, id);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

CREATE TABLE webhook_sequences (
    license_id uuid PRIMARY KEY,
    seq bigint NOT NULL
);

CREATE TABLE license_expiry_notices (
    license_id uuid NOT NULL REFERENCES licenses(id) ON DELETE CASCADE,
    kind varchar(16) NOT NULL CHECK (kind IN ('expiring', 'expired')),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (license_id, kind, expires_at)
)
"""

# audit action -> webhook event type: the one place this mapping is written.
ACTIONS = {
    "license.issue": "license.created",
    "license.update": "license.updated",
    "license.suspend": "license.suspended",
    "license.reinstate": "license.reinstated",
    "license.revoke": "license.revoked",
    "license.renew": "license.renewed",
    "license.change_tier": "license.tier_changed",
    "license.expiring": "license.expiring",
    "license.expire": "license.expired",
    "activation.create": "activation.created",
    "activation.deactivate": "activation.deleted",
    "activation.expire": "activation.expired",
    "key.rotate": "signing_key.rotated",
    "key.revoke": "signing_key.revoked",
}


def listens(kind: str, organization_id: str) -> str:
    """An endpoint ``e`` listens to an event of type ``kind`` of ``organization_id`` when it is
    enabled, is not limited to another organization, and its filter is empty or names the
    type or the type's prefix (``license.*``). The trigger asks it (is anyone listening?),
    the dispatcher's fan-out uses it (who?)."""
    return f"""e.enabled
    AND (e.organization_id IS NULL OR e.organization_id = {organization_id})
    AND (cardinality(e.events) = 0 OR {kind} = ANY (e.events)
         OR split_part({kind}, '.', 1) || '.*' = ANY (e.events))"""


LISTENS = listens("v_type", "NEW.organization_id")

# server.license_rules.live_seat_sql("a", "t.lease_grace_days", "NEW.at"), frozen.
LIVE_SEAT = (
    "a.deactivated_at IS NULL AND a.lease_expires_at + make_interval(days => t.lease_grace_days)"
    " > NEW.at"
)

_CASES = "\n".join(f"        WHEN '{action}' THEN '{kind}'" for action, kind in ACTIONS.items())

OUTBOX = f"""
CREATE FUNCTION licentia_webhook_outbox() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp
AS $$
DECLARE
    v_type text;
    v_license uuid;
    v_subject jsonb;
BEGIN
    v_type := CASE NEW.action
{_CASES}
        ELSE NULL END;
    IF v_type IS NULL THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE {LISTENS}) THEN
        RETURN NULL;  -- nobody listens: nothing to write
    END IF;
    IF NEW.target_type = 'license' THEN
        v_license := NEW.target_id::uuid;
        SELECT jsonb_build_object(
                'id', l.id, 'key_prefix', l.key_prefix, 'organization_id', l.organization_id,
                'product', p.code, 'tier', t.code, 'status', l.status,
                'features', l.features, 'tier_features', t.features,
                'max_activations', l.max_activations,
                'tier_max_activations', t.max_activations,
                'activations_count', (SELECT count(*) FROM activations a
                    WHERE a.license_id = l.id AND a.organization_id = l.organization_id
                      AND {LIVE_SEAT}),
                'starts_at', l.starts_at, 'expires_at', l.expires_at,
                'created_at', l.created_at, 'metadata', l.metadata,
                'expiry_behavior', t.expiry_behavior, 'is_trial', t.is_trial)
            INTO v_subject
            FROM licenses l JOIN products p ON p.id = l.product_id JOIN tiers t ON t.id = l.tier_id
            WHERE l.id = v_license;
    ELSIF NEW.target_type = 'activation' THEN
        SELECT to_jsonb(a) || jsonb_build_object('lease_grace_days', t.lease_grace_days),
               a.license_id
            INTO v_subject, v_license
            FROM activations a JOIN licenses l ON l.id = a.license_id
            JOIN tiers t ON t.id = l.tier_id
            WHERE a.id = NEW.target_id::uuid;
    ELSIF NEW.target_type = 'signing_key' THEN
        SELECT to_jsonb(k) - 'encrypted_private_key' - 'public_key' INTO v_subject
            FROM signing_keys k WHERE k.kid = NEW.target_id;
    END IF;
    -- One row, and nothing else: the sequence and the deliveries are the dispatcher's fan-out.
    INSERT INTO webhook_events (id, type, organization_id, license_id, occurred_at, subject,
                                context)
        VALUES (gen_random_uuid(), v_type, NEW.organization_id, v_license, NEW.at,
                coalesce(v_subject, '{{}}'::jsonb),
                jsonb_build_object('actor_type', NEW.actor_type, 'audit_event_id', NEW.id));
    RETURN NULL;
END
$$
"""

TRIGGER = """
CREATE TRIGGER audit_events_webhook_outbox AFTER INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION licentia_webhook_outbox()
"""


def _app_role() -> str:
    return context.get_x_argument(as_dictionary=True).get("app_role", "licentia_app")


def upgrade() -> None:
    role = _app_role()
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    op.execute(OUTBOX)
    op.execute(TRIGGER)
    op.execute("REVOKE ALL ON FUNCTION licentia_webhook_outbox() FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION licentia_webhook_outbox() TO "{role}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(TABLES)} TO "{role}"')
    for sequence in ("webhook_deliveries_id_seq", "webhook_events_position_seq"):
        op.execute(f'GRANT USAGE, SELECT ON SEQUENCE {sequence} TO "{role}"')


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_events_webhook_outbox ON audit_events")
    op.execute("DROP FUNCTION IF EXISTS licentia_webhook_outbox()")
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("ALTER TABLE tiers DROP COLUMN IF EXISTS expiry_notice_days")
