"""Sessions under row-level security, a per-user token generation, and e-mail addresses
unique per organization.

- ``refresh_tokens`` becomes a tenant table (ENABLE + FORCE ROW LEVEL SECURITY, the same
  policy as the others); ``licentia_refresh_token_org(hash)`` answers the one question asked
  before the tenant is known: which organization holds this token hash.
- ``users.token_generation``: access tokens carry it and stand only while it is unchanged, so
  a password change or a logout-everywhere ends them at once.
- ``users.email`` is unique per organization instead of globally, so adding a user or signing
  up never reveals whether an address has an account in another organization.
  ``licentia_user_org(email, organization_id)`` finds the account to log in to: the named
  organization's, else the oldest.

Downgrading restores the global unique e-mail constraint, which fails while an address has
accounts in several organizations (remove or rename those first).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CURRENT_ORG = "NULLIF(current_setting('app.organization_id', true), '')::uuid"
PLATFORM = "current_setting('app.platform_admin', true) = 'on'"


def _app_role() -> str:
    return context.get_x_argument(as_dictionary=True).get("app_role", "licentia_app")


def _function(signature: str, returns: str, body: str) -> None:
    op.execute(
        f"CREATE FUNCTION {signature} RETURNS {returns} "
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp "
        f"AS $$ {body} $$"
    )


def _grant_only_to_app(signature: str) -> None:
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{_app_role()}"')


def upgrade() -> None:
    # Access tokens name the generation they were issued under.
    op.execute("ALTER TABLE users ADD COLUMN token_generation integer NOT NULL DEFAULT 0")

    # E-mail addresses: unique per organization; login looks the account up by address.
    op.execute("ALTER TABLE users DROP CONSTRAINT users_email_key")
    op.execute(
        "ALTER TABLE users ADD CONSTRAINT users_organization_email_key "
        "UNIQUE (organization_id, email)"
    )
    op.execute("CREATE INDEX users_email_idx ON users (email, created_at, id)")
    op.execute("DROP FUNCTION licentia_user_org(text)")
    _function(
        "licentia_user_org(p_email text, p_organization_id uuid DEFAULT NULL)",
        "uuid",
        "SELECT organization_id FROM users WHERE email = lower(p_email) "
        "AND (p_organization_id IS NULL OR organization_id = p_organization_id) "
        "ORDER BY created_at, id LIMIT 1",
    )
    _grant_only_to_app("licentia_user_org(text, uuid)")

    # Refresh tokens: a tenant table, with a narrow look-up by hash.
    op.execute("ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON refresh_tokens "
        f"USING (organization_id = {CURRENT_ORG} OR {PLATFORM}) "
        f"WITH CHECK (organization_id = {CURRENT_ORG} OR {PLATFORM})"
    )
    # For the SECURITY DEFINER look-up only (the owner is subject to FORCE too).
    op.execute(
        "CREATE POLICY owner_lookup ON refresh_tokens FOR SELECT TO CURRENT_USER USING (true)"
    )
    _function(
        "licentia_refresh_token_org(p_token_hash bytea)",
        "uuid",
        "SELECT organization_id FROM refresh_tokens WHERE token_hash = p_token_hash",
    )
    _grant_only_to_app("licentia_refresh_token_org(bytea)")
    # Ending every session of a user, and the cascade when a user is removed.
    op.execute("CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id)")


def downgrade() -> None:
    op.execute("DROP INDEX refresh_tokens_user_idx")
    op.execute("DROP FUNCTION licentia_refresh_token_org(bytea)")
    op.execute("DROP POLICY owner_lookup ON refresh_tokens")
    op.execute("DROP POLICY tenant_isolation ON refresh_tokens")
    op.execute("ALTER TABLE refresh_tokens NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE refresh_tokens DISABLE ROW LEVEL SECURITY")

    op.execute("DROP FUNCTION licentia_user_org(text, uuid)")
    _function(
        "licentia_user_org(p_email text)",
        "uuid",
        "SELECT organization_id FROM users WHERE email = lower(p_email)",
    )
    _grant_only_to_app("licentia_user_org(text)")
    op.execute("DROP INDEX users_email_idx")
    op.execute("ALTER TABLE users DROP CONSTRAINT users_organization_email_key")
    op.execute("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)")

    op.execute("ALTER TABLE users DROP COLUMN token_generation")
