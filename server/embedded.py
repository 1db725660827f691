"""The embedded PostgreSQL used when no database URL is configured.

pgserver ships a real PostgreSQL in a wheel (Python < 3.13). Where it is missing, the
system's ``initdb``/``pg_ctl`` on PATH are used instead. The instance listens on a Unix
socket only. The superuser ``postgres`` owns the schema and runs migrations; the server
itself connects as ``licentia_app``, a role that owns nothing and cannot bypass RLS.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg

from keys.crypto import new_kek_text

log = logging.getLogger("licentia.embedded")

DATABASE_NAME = "licentia"
APP_ROLE = "licentia_app"
OWNER_ROLE = "postgres"


class EmbeddedUnavailable(Exception):
    """Neither pgserver nor the PostgreSQL binaries are available."""


NO_DATABASE_HELP = (
    "No database is configured and no embedded PostgreSQL is available: the `pgserver` "
    "package is not installed for this Python (it has wheels for Python 3.9 to 3.12) and "
    "`initdb`/`pg_ctl` are not on PATH. Either install PostgreSQL 15 or newer locally, or "
    "point Licentia at a server you run: set LICENTIA_DATABASE_URL to the runtime role "
    "(e.g. postgresql://licentia_app:secret@localhost:5432/licentia) and "
    "LICENTIA_MIGRATION_DATABASE_URL to the schema owner's connection."
)


@dataclass(frozen=True)
class EmbeddedDatabase:
    runtime_url: str
    owner_url: str
    key_encryption_key: str
    socket_dir: str


def _socket_url(user: str, database: str, socket_dir: str) -> str:
    return f"postgresql://{user}@/{database}?host={quote(socket_dir, safe='/')}"


def start(data_dir: Path) -> EmbeddedDatabase:
    """Start (or attach to) the embedded instance in ``data_dir`` and prepare roles."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pgdata").resolve()
    admin_uri = _start_server(pgdata)
    socket_dir = _socket_dir_of(admin_uri)
    asyncio.run(_ensure_database_and_roles(_socket_url(OWNER_ROLE, "postgres", socket_dir)))
    return EmbeddedDatabase(
        runtime_url=_socket_url(APP_ROLE, DATABASE_NAME, socket_dir),
        owner_url=_socket_url(OWNER_ROLE, DATABASE_NAME, socket_dir),
        key_encryption_key=ensure_kek_file(data_dir),
        socket_dir=socket_dir,
    )


def _socket_dir_of(uri: str) -> str:
    from urllib.parse import parse_qs, urlparse

    host = parse_qs(urlparse(uri).query).get("host", [""])[0]
    if not host:
        raise EmbeddedUnavailable(f"unexpected embedded database address: {uri}")
    return host


def _start_server(pgdata: Path) -> str:
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on servers; pgserver copes without it.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        try:
            import pgserver
        except ImportError:
            return _start_system_postgres(pgdata)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    return server.get_uri()


def _start_system_postgres(pgdata: Path) -> str:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        raise EmbeddedUnavailable(NO_DATABASE_HELP)
    if os.name != "nt" and os.geteuid() == 0:
        raise EmbeddedUnavailable(
            "The system PostgreSQL binaries refuse to run as root. " + NO_DATABASE_HELP
        )
    socket_dir = pgdata.parent / "socket"
    socket_dir.mkdir(parents=True, exist_ok=True)
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [initdb, "-D", str(pgdata), "--auth=trust", "-U", OWNER_ROLE, "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
    status = subprocess.run([pg_ctl, "-D", str(pgdata), "status"], capture_output=True)
    if status.returncode != 0:
        subprocess.run(
            [
                pg_ctl,
                "-D",
                str(pgdata),
                "-w",
                "-l",
                str(pgdata.parent / "postgres.log"),
                "-o",
                f"-h '' -k {socket_dir}",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        atexit.register(
            lambda: subprocess.run([pg_ctl, "-D", str(pgdata), "-w", "stop"], capture_output=True)
        )
    return _socket_url(OWNER_ROLE, "postgres", str(socket_dir))


async def _ensure_database_and_roles(admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        role = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE)
        if not role:
            await conn.execute(
                f'CREATE ROLE "{APP_ROLE}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE'
            )
        else:
            await conn.execute(f'ALTER ROLE "{APP_ROLE}" LOGIN NOSUPERUSER NOBYPASSRLS')
        await conn.execute(f'GRANT CONNECT ON DATABASE "{DATABASE_NAME}" TO "{APP_ROLE}"')
    finally:
        await conn.close()


def ensure_kek_file(data_dir: Path) -> str:
    """The development key-encryption key: generated once into the data dir, mode 0600."""
    path = data_dir / "key-encryption-key"
    if path.exists():
        return path.read_text().strip()
    text = new_kek_text()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    log.warning(
        "generated a development key-encryption key at %s; production must supply its own "
        "in LICENTIA_KEY_ENCRYPTION_KEY",
        path,
    )
    return text
