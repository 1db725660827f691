"""The root of trust above the signing keys: root keys, key certificates and key
revocation lists. Like ``signing_keys`` these are deployment tables, not tenant tables (no
row-level security), and the runtime role gets the same grants as on ``signing_keys``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("root_keys", "key_certificates", "key_revocation_lists")

SCHEMA = """
CREATE TABLE root_keys (
    kid varchar(64) PRIMARY KEY,
    state varchar(16) NOT NULL CHECK (state IN ('active', 'superseded', 'retired')),
    public_key bytea NOT NULL,
    encrypted_private_key bytea,
    endorsement text,
    endorsed_by varchar(64) REFERENCES root_keys(kid),
    created_at timestamptz NOT NULL DEFAULT now(),
    exported_at timestamptz,
    superseded_at timestamptz,
    retired_at timestamptz,
    CHECK ((endorsement IS NULL) = (endorsed_by IS NULL))
);
CREATE UNIQUE INDEX root_keys_one_active ON root_keys ((true)) WHERE state = 'active';

CREATE TABLE key_certificates (
    id bigserial PRIMARY KEY,
    kid varchar(64) NOT NULL REFERENCES signing_keys(kid) ON DELETE CASCADE,
    root_kid varchar(64) NOT NULL REFERENCES root_keys(kid),
    token text NOT NULL,
    not_before timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_at > not_before)
);
CREATE INDEX key_certificates_kid_idx ON key_certificates (kid, id);

CREATE TABLE key_revocation_lists (
    seq integer PRIMARY KEY CHECK (seq > 0),
    root_kid varchar(64) NOT NULL REFERENCES root_keys(kid),
    revoked text[] NOT NULL,
    token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
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
    op.execute(f'GRANT USAGE, SELECT ON SEQUENCE key_certificates_id_seq TO "{role}"')


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table}")
