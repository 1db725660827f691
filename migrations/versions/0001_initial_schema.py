"""The whole tenant schema, row-level security, the runtime role's grants and the
SECURITY DEFINER look-ups used before the tenant is known.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TENANT_TABLES = ("organizations", "users", "licenses", "activations", "projects", "audit_events")
ALL_TABLES = (
    "organizations",
    "users",
    "products",
    "tiers",
    "licenses",
    "activations",
    "projects",
    "signing_keys",
    "api_keys",
    "refresh_tokens",
    "audit_events",
    "idempotency_keys",
    "rate_limits",
)

CURRENT_ORG = "NULLIF(current_setting('app.organization_id', true), '')::uuid"
PLATFORM = "current_setting('app.platform_admin', true) = 'on'"


def _app_role() -> str:
    return context.get_x_argument(as_dictionary=True).get("app_role", "licentia_app")


SCHEMA = """
CREATE TABLE organizations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(200) NOT NULL CHECK (length(btrim(name)) > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email varchar(320) NOT NULL CHECK (email = lower(email)),
    full_name varchar(200) NOT NULL,
    role varchar(16) NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX users_organization_idx ON users (organization_id, created_at, id);

CREATE TABLE products (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code varchar(64) NOT NULL CONSTRAINT products_code_key UNIQUE,
    name varchar(200) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tiers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id uuid NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    code varchar(64) NOT NULL,
    name varchar(200) NOT NULL,
    features jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(features) = 'object'),
    max_activations integer NOT NULL CHECK (max_activations >= 0),
    duration_days integer CHECK (duration_days > 0),
    offline_lease_days integer NOT NULL DEFAULT 7 CHECK (offline_lease_days > 0),
    lease_grace_days integer NOT NULL DEFAULT 7 CHECK (lease_grace_days >= 0),
    max_deactivations_per_day integer NOT NULL DEFAULT 50 CHECK (max_deactivations_per_day >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tiers_product_code_key UNIQUE (product_id, code)
);

CREATE TABLE licenses (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    product_id uuid NOT NULL REFERENCES products(id),
    tier_id uuid NOT NULL REFERENCES tiers(id),
    key_hash bytea NOT NULL CONSTRAINT licenses_key_hash_key UNIQUE,
    key_prefix varchar(32) NOT NULL,
    status varchar(16) NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'suspended', 'revoked')),
    starts_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    max_activations integer CHECK (max_activations >= 0),
    features jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(features) = 'object'),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX licenses_organization_idx ON licenses (organization_id, created_at, id);
CREATE INDEX licenses_product_idx ON licenses (product_id);
CREATE INDEX licenses_created_idx ON licenses (created_at, id);

CREATE TABLE activations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    license_id uuid NOT NULL REFERENCES licenses(id) ON DELETE CASCADE,
    fingerprint_hash varchar(64) NOT NULL,
    name varchar(200),
    platform varchar(64),
    activated_at timestamptz NOT NULL DEFAULT now(),
    last_check_in_at timestamptz NOT NULL DEFAULT now(),
    lease_expires_at timestamptz NOT NULL,
    deactivated_at timestamptz,
    deactivation_reason varchar(32)
);
CREATE UNIQUE INDEX activations_live_fingerprint_key
    ON activations (license_id, fingerprint_hash) WHERE deactivated_at IS NULL;
CREATE INDEX activations_license_idx ON activations (license_id, activated_at);
CREATE INDEX activations_deactivated_idx
    ON activations (license_id, deactivated_at) WHERE deactivated_at IS NOT NULL;

CREATE TABLE projects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name varchar(200) NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_organization_idx ON projects (organization_id, created_at, id);

CREATE TABLE signing_keys (
    kid varchar(64) PRIMARY KEY,
    state varchar(16) NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'revoked')),
    public_key bytea NOT NULL,
    encrypted_private_key bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    activates_at timestamptz,
    activated_at timestamptz,
    retired_at timestamptz,
    revoked_at timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE state = 'active';

CREATE TABLE api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(200) NOT NULL,
    prefix varchar(32) NOT NULL,
    key_hash bytea NOT NULL CONSTRAINT api_keys_key_hash_key UNIQUE,
    scopes text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);

CREATE TABLE refresh_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    token_hash bytea NOT NULL CONSTRAINT refresh_tokens_token_hash_key UNIQUE,
    family_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE audit_events (
    id bigserial PRIMARY KEY,
    organization_id uuid REFERENCES organizations(id) ON DELETE CASCADE,
    actor_type varchar(16) NOT NULL,
    actor_id varchar(64),
    action varchar(64) NOT NULL,
    target_type varchar(32),
    target_id varchar(64),
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id varchar(128),
    ip varchar(64),
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_organization_idx ON audit_events (organization_id, id);

CREATE TABLE idempotency_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    scope varchar(128) NOT NULL,
    key varchar(255) NOT NULL,
    request_hash bytea NOT NULL,
    response_status integer NOT NULL,
    response_body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_scope_key_key UNIQUE (scope, key)
);

CREATE TABLE rate_limits (
    bucket varchar(255) NOT NULL,
    window_start timestamptz NOT NULL,
    hits integer NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
"""

LOOKUPS = """
CREATE FUNCTION licentia_license_org(p_key_hash bytea) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT organization_id FROM licenses WHERE key_hash = p_key_hash $$;

CREATE FUNCTION licentia_user_org(p_email text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT organization_id FROM users WHERE email = lower(p_email) $$;

REVOKE ALL ON FUNCTION licentia_license_org(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION licentia_user_org(text) FROM PUBLIC;
"""


def _execute_script(sql: str) -> None:
    """asyncpg runs one statement per call; the scripts here have no ';' inside a statement."""
    for statement in sql.split(";\n"):
        if statement.strip():
            op.execute(statement)


def _tenant_column(table: str) -> str:
    return "id" if table == "organizations" else "organization_id"


def upgrade() -> None:
    role = _app_role()
    _execute_script(SCHEMA)
    for table in TENANT_TABLES:
        column = _tenant_column(table)
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING ({column} = {CURRENT_ORG} OR {PLATFORM}) "
            f"WITH CHECK ({column} = {CURRENT_ORG} OR {PLATFORM})"
        )
    # The two SECURITY DEFINER look-ups run as the schema owner, which FORCE subjects to
    # the policies too: give the owner read access for exactly these look-ups.
    for table in ("licenses", "users"):
        op.execute(f"CREATE POLICY owner_lookup ON {table} FOR SELECT TO CURRENT_USER USING (true)")
    _execute_script(LOOKUPS)

    op.execute(
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE "{role}" NOLOGIN NOSUPERUSER NOBYPASSRLS;
            END IF;
        END $$"""
    )
    op.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(ALL_TABLES)} TO "{role}"')
    op.execute(f'GRANT USAGE, SELECT ON SEQUENCE audit_events_id_seq TO "{role}"')
    op.execute(f'GRANT SELECT ON alembic_version TO "{role}"')
    lookups = "licentia_license_org(bytea), licentia_user_org(text)"
    op.execute(f'GRANT EXECUTE ON FUNCTION {lookups} TO "{role}"')


def downgrade() -> None:
    role = _app_role()
    op.execute("DROP FUNCTION IF EXISTS licentia_license_org(bytea)")
    op.execute("DROP FUNCTION IF EXISTS licentia_user_org(text)")
    op.execute(f'REVOKE ALL ON alembic_version FROM "{role}"')
    for table in reversed(ALL_TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
