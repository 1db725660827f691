"""One frozen Settings object, built from the environment once and passed in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from server.client_address import parse_networks

ENV_PREFIX = "LICENTIA_"


DEFAULT_ISSUER = "licentia"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the server needs to run. Tests build it directly."""

    database_url: str
    """Runtime connection (asyncpg). Must not be able to bypass row-level security."""
    migration_database_url: str | None = None
    """Owner connection used for migrations; defaults to ``database_url``."""
    key_encryption_key: str | None = None
    """Base64url of 32 bytes: the AES-256-GCM key that wraps signing keys at rest."""
    issuer: str = DEFAULT_ISSUER
    """The tokens' ``iss``; products embed it. ``licentia serve`` warns when it is left at
    the default on an external database (a deployment about to ship)."""
    environment: str = "production"
    cors_origins: tuple[str, ...] = ()
    log_json: bool | None = None
    """JSON logs; ``None`` means: JSON unless stdout is a terminal."""
    log_level: str = "INFO"
    max_body_bytes: int = 64 * 1024
    db_pool_size: int = 10
    db_max_overflow: int = 10
    access_token_ttl_seconds: int = 3600
    refresh_token_ttl_seconds: int = 7 * 24 * 3600
    license_token_ttl_seconds: int = 7 * 24 * 3600
    key_refresh_seconds: int = 30
    login_failures_per_address_email: int = 5
    """Failed logins for one e-mail from one client address before back-off starts."""
    login_failures_per_address: int = 20
    """Failed logins from one client address (any e-mail) before back-off starts."""
    login_backoff_seconds: int = 30
    """The first back-off wait; it doubles with each further failure ..."""
    login_backoff_max_seconds: int = 900
    """... up to this."""
    login_failures_per_email_per_hour: int = 100
    """Failed logins for one e-mail from all addresses together; past it only an address
    that has not failed for that e-mail (within a day) still gets its password checked."""
    key_certificate_days: int = 1826
    """How long a key certificate lets its signing key sign (about 5 years): tokens whose
    ``iat`` falls after the window are refused by products that embed the root."""
    unknown_key_attempts_per_minute: int = 30
    trial_requests_per_minute: int = 60
    """Keyless trial requests per client address and minute (every call counts)."""
    signups_per_hour: int = 20
    """Sign-ups per client address and hour (organizations are cheap to make, not free)."""
    check_runtime_role: bool = True
    metrics_token: str | None = None
    """Serve ``GET /metrics`` (Prometheus) to scrapes that carry this as a bearer token;
    unset, the path does not exist (404) and nothing is counted."""
    trusted_proxies: tuple[str, ...] = ()
    """Peers (addresses or CIDR networks) whose X-Forwarded-For is believed (load balancers):
    behind them the client is the right-most hop that is not itself trusted."""
    webhook_allow_insecure: bool = False
    """Allow ``http://`` webhook URLs (development and tests only)."""
    webhook_allow_private: bool = False
    """Allow webhook URLs that resolve to loopback, private, link-local or metadata addresses."""
    webhook_dispatcher: bool = True
    """Run the webhook dispatcher in this process (every worker and replica may)."""
    webhook_timeout_seconds: float = 10.0
    """The whole of one delivery attempt: connect, send, answer."""
    webhook_poll_seconds: float = 1.0
    """How often an idle dispatcher looks for due deliveries."""
    webhook_concurrency: int = 64
    """Attempts in flight per process ..."""
    webhook_concurrency_per_endpoint: int = 16
    """... and per endpoint and process, so one slow endpoint never holds the others."""

    def __post_init__(self) -> None:
        parse_networks(self.trusted_proxies)  # a typo must stop the start, not trust nobody

    @property
    def owner_database_url(self) -> str:
        return self.migration_database_url or self.database_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``LICENTIA_*`` variables; explicit overrides win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        fields = {f.name: f for f in msgspec.structs.fields(cls)}
        for name in fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        if "cors_origins" in values:
            values["cors_origins"] = _split(str(values["cors_origins"]))
        if "trusted_proxies" in values:
            values["trusted_proxies"] = _split(str(values["trusted_proxies"]))
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "database_url" not in values:
            raise SettingsError(
                "LICENTIA_DATABASE_URL is not set. Set it to a PostgreSQL 15+ URL, e.g. "
                "postgresql://licentia_app:secret@db:5432/licentia, or run `licentia serve` "
                "without it to use the embedded database."
            )
        values["database_url"] = async_url(str(values["database_url"]))
        if values.get("migration_database_url"):
            values["migration_database_url"] = async_url(str(values["migration_database_url"]))
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"invalid configuration: {exc}") from None


class SettingsError(Exception):
    """The configuration cannot be used; the message says how to fix it."""


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def async_url(url: str) -> str:
    """Normalise a PostgreSQL URL to the asyncpg SQLAlchemy dialect."""
    for prefix in (
        "postgresql+asyncpg://",
        "postgresql+psycopg://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def default_data_dir() -> Path:
    return Path(os.environ.get("LICENTIA_DATA_DIR") or ".licentia")
