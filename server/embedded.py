"""The embedded PostgreSQL used when no database URL is configured.

pgserver ships a real PostgreSQL in a wheel (Python < 3.13). Where it is missing, the
system's ``initdb``/``pg_ctl`` on PATH are used instead. The instance listens on a Unix
socket only. The superuser ``postgres`` owns the schema and runs migrations; the server
itself connects as ``licentia_app``, a role that owns nothing and cannot bypass RLS.

A start after a crash (kill -9, OOM kill, power cut) finds what the old server left behind:
a ``postmaster.pid`` whose process is gone, a zombie or someone else's, backends still
exiting, a socket lock file. ``start`` tells that apart from a live server, waits out the
leftovers, clears the stale files and lets PostgreSQL run its crash recovery.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import shlex
import shutil
import socket
import struct
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg

from keys.crypto import new_kek_text

log = logging.getLogger("licentia.embedded")

DATABASE_NAME = "licentia"
APP_ROLE = "licentia_app"
OWNER_ROLE = "postgres"

# Bounds of a start. A live postmaster that answers but is still starting (crash recovery)
# gets START_TIMEOUT; one that does not answer at all, SILENT_TIMEOUT; processes of a dead
# postmaster that are still exiting, LEFTOVER_TIMEOUT.
START_TIMEOUT = 120.0
SILENT_TIMEOUT = 15.0
LEFTOVER_TIMEOUT = 30.0
CONNECT_TIMEOUT = 30.0
START_ATTEMPTS = 3


class EmbeddedUnavailable(Exception):
    """Neither pgserver nor the PostgreSQL binaries are available, or the instance cannot
    be started or reached. The message is one line, meant for the operator."""


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
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pgdata = (data_dir / "pgdata").resolve()
    with _start_lock(data_dir):
        admin_uri = _start_server(pgdata)
    socket_dir = _socket_dir_of(admin_uri)
    admin_url = _socket_url(OWNER_ROLE, "postgres", socket_dir)
    asyncio.run(_ensure_database_and_roles(admin_url, socket_dir))
    return EmbeddedDatabase(
        runtime_url=_socket_url(APP_ROLE, DATABASE_NAME, socket_dir),
        owner_url=_socket_url(OWNER_ROLE, DATABASE_NAME, socket_dir),
        key_encryption_key=ensure_kek_file(data_dir),
        socket_dir=socket_dir,
    )


@contextlib.contextmanager
def _start_lock(data_dir: Path) -> Iterator[None]:
    """One ``licentia`` process at a time inspects and starts the instance of a data dir."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(data_dir / "embedded.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


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
    error: Exception | None = None
    for _ in range(START_ATTEMPTS):
        recover_stale_server(pgdata)
        try:
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            # pg_ctl failed, or gave up waiting (a long crash recovery goes on without it):
            # look again at what is running before the next attempt.
            error = exc
            _forget_pgserver_instance(pgdata)
            continue
        uri = server.get_uri()
        _restrict_pgserver_dirs(pgdata, Path(_socket_dir_of(uri)), server.system_user)
        return uri
    raise EmbeddedUnavailable(
        f"The embedded PostgreSQL in {pgdata} did not start ({type(error).__name__}); "
        f"its log is {pgdata / 'log'}."
    )


def _forget_pgserver_instance(pgdata: Path) -> None:
    """Drop the handle of a failed ``get_server`` so the next call starts afresh."""
    from pgserver.postgres_server import PostgresServer

    failed = PostgresServer._instances.pop(pgdata, None)
    if failed is not None:
        atexit.unregister(failed._cleanup)


def _restrict_pgserver_dirs(pgdata: Path, socket_dir: Path, system_user: str | None) -> None:
    """pgserver opens every parent of pgdata to others (run as root, postgres runs as its
    own user and must reach pgdata); keep the data dir unlistable, and a socket directory
    outside pgdata (used when the path is too long for a socket) private to postgres."""
    _private_dir(pgdata.parent, traversable=system_user is not None)
    if socket_dir != pgdata and socket_dir.is_dir():
        if system_user is not None:
            import pwd

            entry = pwd.getpwnam(system_user)
            os.chown(socket_dir, entry.pw_uid, entry.pw_gid)
        socket_dir.chmod(0o700)


def _private_dir(path: Path, *, traversable: bool = False) -> None:
    """Owner only (0700); 0711 when another system user must pass through to a child."""
    try:
        path.chmod(0o711 if traversable else 0o700)
    except OSError as exc:
        log.warning("could not restrict the permissions of %s: %s", path, exc)


def _start_system_postgres(pgdata: Path) -> str:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        raise EmbeddedUnavailable(NO_DATABASE_HELP)
    if os.name != "nt" and os.geteuid() == 0:
        raise EmbeddedUnavailable(
            "The system PostgreSQL binaries refuse to run as root. " + NO_DATABASE_HELP
        )
    socket_dir = private_dirs(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [initdb, "-D", str(pgdata), "--auth=trust", "-U", OWNER_ROLE, "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
    recover_stale_server(pgdata)
    status = subprocess.run([pg_ctl, "-D", str(pgdata), "status"], capture_output=True)
    if status.returncode != 0:
        options = f"-h '' -k {shlex.quote(str(socket_dir))} -c unix_socket_permissions=0700"
        subprocess.run(
            [
                pg_ctl,
                "-D",
                str(pgdata),
                "-w",
                "-l",
                str(pgdata.parent / "postgres.log"),
                "-o",
                options,
                "start",
            ],
            check=True,
            capture_output=True,
        )
        atexit.register(
            lambda: subprocess.run([pg_ctl, "-D", str(pgdata), "-w", "stop"], capture_output=True)
        )
    return _socket_url(OWNER_ROLE, "postgres", str(socket_dir))


def private_dirs(pgdata: Path) -> Path:
    """The fallback trusts every connection on its socket: only this user may reach the
    socket or read the data. The data dir becomes 0700 (initdb makes pgdata 0700 itself);
    the socket directory ``<data dir>/socket`` is made, or corrected to, 0700, and refused
    when it is a symlink or someone else's. Returns the socket directory."""
    _private_dir(pgdata.parent)
    path = pgdata.parent / "socket"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    if path.is_symlink() or not path.is_dir():
        raise EmbeddedUnavailable(f"The socket directory {path} is not a plain directory.")
    if os.name != "nt" and path.stat().st_uid != os.geteuid():
        raise EmbeddedUnavailable(
            f"The socket directory {path} belongs to another user; remove it and start again."
        )
    path.chmod(0o700)
    return path


# --- telling a live server from what a dead one left behind --------------------------------


@dataclass(frozen=True)
class PidFile:
    """What ``postmaster.pid`` says (pid, data dir, start time, port, socket dir, listen
    address, shared memory key, status); None fields when the file is cut short."""

    pid: int | None
    port: int
    socket_dir: Path | None
    host: str | None
    status: str


def read_pid_file(pgdata: Path) -> PidFile | None:
    """None when there is no ``postmaster.pid``."""
    try:
        lines = (pgdata / "postmaster.pid").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return None
    lines += [""] * (8 - len(lines))
    first, port = lines[0].strip(), lines[3].strip()
    return PidFile(
        pid=int(first) if first.isdigit() else None,  # empty or torn after a power cut
        port=int(port) if port.isdigit() else 5432,
        socket_dir=Path(lines[4].strip()) if lines[4].strip() else None,
        host=lines[5].strip() or None,
        status=lines[7].strip(),
    )


@dataclass(frozen=True)
class Process:
    pid: int
    zombie: bool
    name: str | None  # None: cannot be seen here
    args: list[str] | None
    cwd: str | None


def process(pid: int) -> Process | None:
    """What this system shows of process ``pid``; None when there is no such process."""
    if pid <= 0:
        return None
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self/stat").exists():  # Linux
        try:
            stat = (proc / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        zombie = stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] in ("Z", "X")
        args: list[str] | None
        try:
            raw = (proc / "cmdline").read_bytes()
            args = [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] or None
        except OSError:
            args = None
        try:
            cwd: str | None = os.readlink(proc / "cwd")
        except OSError:
            cwd = None
        return Process(pid, zombie, name, args, cwd)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    ps = subprocess.run(
        ["ps", "-o", "stat=", "-o", "comm=", "-p", str(pid)], capture_output=True, text=True
    )
    fields = ps.stdout.split(None, 1)
    if ps.returncode != 0 or len(fields) < 2:
        return Process(pid, False, None, None, None)
    return Process(pid, fields[0].startswith("Z"), Path(fields[1].strip()).name, None, None)


def _same_dir(path: str | Path, pgdata: Path) -> bool:
    return os.path.realpath(path) == os.path.realpath(pgdata)


def is_postmaster_of(proc: Process, pgdata: Path) -> bool | None:
    """Whether ``proc`` is a live PostgreSQL postmaster of ``pgdata``; None: cannot tell."""
    if proc.zombie or proc.pid in (os.getpid(), os.getppid()):
        return False
    if proc.name is not None and proc.name not in ("postgres", "postmaster"):
        return False
    if proc.args:
        for i, arg in enumerate(proc.args):
            if arg == "-D" and i + 1 < len(proc.args):
                return _same_dir(proc.args[i + 1], pgdata)
            if arg.startswith("-D") and len(arg) > 2:
                return _same_dir(arg[2:], pgdata)
        if proc.args[0].startswith("postgres:"):
            return False  # a backend's title, not a postmaster
    if proc.cwd is not None:
        return _same_dir(proc.cwd, pgdata)  # the postmaster runs in its data directory
    return None


def leftover_processes(pgdata: Path) -> list[int]:
    """Live postgres processes working in ``pgdata`` (backends of a dead postmaster that are
    still exiting, say). Linux only; elsewhere PostgreSQL's own checks remain."""
    if not Path("/proc/self/stat").exists():
        return []
    found = []
    for entry in Path("/proc").iterdir():
        proc = process(int(entry.name)) if entry.name.isdigit() else None
        if proc and not proc.zombie and proc.name == "postgres" and proc.cwd is not None:
            found += [proc.pid] if _same_dir(proc.cwd, pgdata) else []
    return found


def answers(pid_file: PidFile, timeout: float = 1.0) -> bool:
    """Whether a PostgreSQL server answers at the address in ``postmaster.pid``: a reply to
    an SSLRequest, which a server gives while starting, recovering or stopping too."""
    address: str | tuple[str, int]
    if pid_file.socket_dir is not None and hasattr(socket, "AF_UNIX"):
        family, address = socket.AF_UNIX, str(pid_file.socket_dir / f".s.PGSQL.{pid_file.port}")
    elif pid_file.host is not None:
        family, address = socket.AF_INET, (pid_file.host, pid_file.port)
    else:
        return False  # the file does not say where yet
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            sock.sendall(struct.pack("!ii", 8, 80877103))
            return sock.recv(1) in (b"N", b"S")
        except OSError:
            return False


def recover_stale_server(pgdata: Path) -> None:
    """Return when ``pgdata`` can be started or attached to.

    A live postmaster of this directory is waited for until it answers and is ready (it may
    be in crash recovery); one that does not answer at all is an error. A ``postmaster.pid``
    whose process is gone, a zombie or another program is stale: once no postgres process
    works in the directory any more, it is removed with the socket lock file, and the next
    start runs PostgreSQL's crash recovery.
    """
    if os.name == "nt":
        return  # no /proc, no ps, and os.kill would terminate: pgserver's own check only
    began = time.monotonic()
    last_answer = began
    delay = 0.02
    while True:
        pid_file = read_pid_file(pgdata)
        if pid_file is None:
            _prune_pgserver_handles(pgdata)
            return
        # An empty or torn file (power cut) names no process: stale unless a postmaster
        # is still writing it, which _clear_stale_files notices.
        proc = process(pid_file.pid) if pid_file.pid else None
        live = is_postmaster_of(proc, pgdata) if proc else False
        now = time.monotonic()
        if live is False:
            if _clear_stale_files(pgdata, pid_file):
                return
            continue
        if answers(pid_file):
            if pid_file.status == "ready":
                _prune_pgserver_handles(pgdata)
                return
            last_answer = now
            if now - began > START_TIMEOUT:
                raise EmbeddedUnavailable(
                    f"The PostgreSQL server (pid {pid_file.pid}) in {pgdata} answers but was "
                    f"not ready within {START_TIMEOUT:.0f}s (status {pid_file.status or '?'}); "
                    f"see {pgdata / 'log'}."
                )
        elif now - last_answer > SILENT_TIMEOUT:
            raise EmbeddedUnavailable(
                f"The data directory {pgdata} is held by another PostgreSQL server (pid "
                f"{pid_file.pid}) that does not answer; stop that process and start again."
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _clear_stale_files(pgdata: Path, stale: PidFile) -> bool:
    """Wait (bounded) until no postgres process works in ``pgdata``, then remove the stale
    files. False when ``postmaster.pid`` changed meanwhile (look again)."""
    deadline = time.monotonic() + LEFTOVER_TIMEOUT
    while leftovers := leftover_processes(pgdata):
        if read_pid_file(pgdata) != stale:
            return False  # a postmaster (re)wrote it
        if time.monotonic() > deadline:
            raise EmbeddedUnavailable(
                f"PostgreSQL processes {leftovers} of a server that is gone still work in "
                f"{pgdata} after {LEFTOVER_TIMEOUT:.0f}s; stop them and start again."
            )
        time.sleep(0.05)
    if read_pid_file(pgdata) != stale:
        return False
    log.warning(
        "the embedded PostgreSQL in %s was not shut down cleanly (postmaster pid %s is gone); "
        "starting it runs crash recovery",
        pgdata,
        stale.pid if stale.pid is not None else "unreadable",
    )
    for lock in _socket_lock_files(pgdata, stale):
        with contextlib.suppress(OSError):
            if _same_dir(lock.read_text().split("\n")[1].strip(), pgdata):
                lock.unlink()  # it names this data dir, where nothing runs any more
                lock.with_suffix("").unlink(missing_ok=True)  # the socket itself
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    handles = pgdata / ".handle_pids.json"
    if handles.exists():  # pgserver's list of processes using the server: all gone
        handles.write_text("[]")
    return True


def _socket_lock_files(pgdata: Path, stale: PidFile) -> list[Path]:
    """Socket lock files the last server may have left: in the socket directory the pid
    file names or, when it is torn, the one ``postmaster.opts`` recorded (``-k``)."""
    dirs = {pgdata}
    if stale.socket_dir is not None:
        dirs.add(stale.socket_dir)
    with contextlib.suppress(OSError, ValueError):
        args = shlex.split((pgdata / "postmaster.opts").read_text())
        for i, arg in enumerate(args):
            if arg == "-k" and i + 1 < len(args):
                dirs.add(Path(args[i + 1]))
            elif arg.startswith("-k") and len(arg) > 2:
                dirs.add(Path(arg[2:]))
    return [lock for d in dirs if d.is_dir() for lock in d.glob(".s.PGSQL.*.lock")]


def _prune_pgserver_handles(pgdata: Path) -> None:
    """Forget pgserver handles of processes that died without closing them (kill -9): else
    the last clean exit would leave the server running."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if (p := process(pid)) is not None and not p.zombie]
    if alive != pids:
        handles.write_text(json.dumps(alive))


# --- roles ---------------------------------------------------------------------------------


async def _connect(url: str, socket_dir: str) -> asyncpg.Connection:
    """Connect, retrying with a bounded back-off while the server is starting up."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    delay = 0.05
    retry = (
        OSError,
        TimeoutError,
        asyncpg.CannotConnectNowError,  # "the database system is starting up", recovery
        asyncpg.ConnectionDoesNotExistError,
    )
    while True:
        try:
            return await asyncpg.connect(url, timeout=10)
        except retry as exc:
            if time.monotonic() + delay > deadline:
                raise EmbeddedUnavailable(
                    f"The embedded PostgreSQL at {socket_dir} did not accept connections "
                    f"within {CONNECT_TIMEOUT:.0f}s ({type(exc).__name__}: {exc})."
                ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def _ensure_database_and_roles(admin_url: str, socket_dir: str = "") -> None:
    conn = await _connect(admin_url, socket_dir)
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
