"""Staff accounts for the console, server-side sessions for the console and the portal, and
validation counts per hour for the console's chart.

All three are deployment tables, not tenant tables (no row-level security), like ``api_keys``: a
session is found by the SHA-256 of its cookie before anyone is known, and a staff account
belongs to no organization. A portal session names its user's organization; the request
that uses it sets that tenant, so everything it reads stays under the policies.

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-30
"""

from alembic import context, op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("staff_accounts", "web_sessions", "validation_counts")

SCHEMA = """
CREATE TABLE staff_accounts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email varchar(320) NOT NULL CONSTRAINT staff_accounts_email_key UNIQUE
        CHECK (email = lower(email)),
    role varchar(16) NOT NULL CHECK (role IN ('admin', 'support', 'viewer')),
    password_hash text NOT NULL,
    token_generation integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);

CREATE TABLE web_sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash bytea NOT NULL CONSTRAINT web_sessions_token_hash_key UNIQUE,
    area varchar(16) NOT NULL CHECK (area IN ('console', 'portal')),
    subject_id uuid NOT NULL,
    organization_id uuid REFERENCES organizations(id) ON DELETE CASCADE,
    role varchar(16) NOT NULL,
    token_generation integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CHECK ((area = 'portal') = (organization_id IS NOT NULL))
);
CREATE INDEX web_sessions_subject_idx ON web_sessions (area, subject_id);
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);

CREATE TABLE validation_counts (
    hour timestamptz PRIMARY KEY CHECK (hour = date_trunc('hour', hour)),
    count bigint NOT NULL CHECK (count >= 0)
)
"""


def _app_role() -> str:
    return context.get_x_argument(as_dictionary=True).get("app_role", "licentia_app")


def upgrade() -> None:
    role = _app_role()
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(TABLES)} TO "{role}"')


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table}")
