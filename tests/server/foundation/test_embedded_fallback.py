"""Without pgserver the embedded mode falls back to initdb/pg_ctl, else explains itself."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from server import embedded


def test_no_pgserver_and_no_binaries_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # as on Python 3.13+
    monkeypatch.setenv("PATH", str(tmp_path))  # no initdb, no pg_ctl
    with pytest.raises(embedded.EmbeddedUnavailable) as caught:
        embedded.start(tmp_path / "data")
    message = str(caught.value)
    assert "LICENTIA_DATABASE_URL" in message and "pgserver" in message
    assert "\n" not in message  # one paragraph


def test_system_binaries_are_used_when_pgserver_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the binaries on PATH the fallback is chosen (it refuses to run them as root)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("initdb", "pg_ctl"):
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\nexit 1\n")
        tool.chmod(0o755)
    monkeypatch.setitem(sys.modules, "pgserver", None)
    monkeypatch.setenv("PATH", str(bin_dir))
    if os.geteuid() == 0:
        with pytest.raises(embedded.EmbeddedUnavailable, match="refuse to run as root"):
            embedded.start(tmp_path / "data")
    else:  # the fake initdb was run, and failed
        with pytest.raises(subprocess.CalledProcessError) as caught:
            embedded.start(tmp_path / "data")
        assert Path(caught.value.cmd[0]).name == "initdb"


def test_fallback_directories_are_private(tmp_path: Path) -> None:
    """The fallback trusts every connection on its socket: only its user reaches it."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    socket_dir = embedded.private_dirs(data_dir / "pgdata")
    assert socket_dir == data_dir / "socket"
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700

    socket_dir.chmod(0o777)  # a directory left open by an older version is corrected
    embedded.private_dirs(data_dir / "pgdata")
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700


def test_fallback_refuses_a_socket_directory_it_does_not_control(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "socket").symlink_to(elsewhere)
    with pytest.raises(embedded.EmbeddedUnavailable, match="not a plain directory"):
        embedded.private_dirs(data_dir / "pgdata")
    if os.geteuid() == 0:  # someone else's directory (only root can make one here)
        (data_dir / "socket").unlink()
        (data_dir / "socket").mkdir()
        os.chown(data_dir / "socket", 65534, 65534)
        with pytest.raises(embedded.EmbeddedUnavailable, match="belongs to another user"):
            embedded.private_dirs(data_dir / "pgdata")


@pytest.mark.skipif(os.geteuid() == 0, reason="the system binaries refuse to run as root")
@pytest.mark.skipif(not (shutil.which("initdb") and shutil.which("pg_ctl")), reason="no initdb")
def test_fallback_runs_postgresql_on_a_private_socket(tmp_path: Path) -> None:
    """The real fallback, in a process of its own (it stops the database when it exits)."""
    script = (
        "import sys, asyncio, asyncpg, os, stat\n"
        "sys.modules['pgserver'] = None\n"
        "from pathlib import Path\n"
        "from server import embedded\n"
        "db = embedded.start(Path(sys.argv[1]))\n"
        "sock = next(Path(db.socket_dir).glob('.s.PGSQL.*[0-9]'))\n"
        "print(oct(stat.S_IMODE(os.stat(db.socket_dir).st_mode)),"
        " oct(stat.S_IMODE(sock.stat().st_mode)))\n"
        "async def main():\n"
        "    conn = await asyncpg.connect(db.runtime_url)\n"
        "    print(await conn.fetchval('SELECT current_user'))\n"
        "    await conn.close()\n"
        "asyncio.run(main())\n"
    )
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-c", script, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0o700", "0o700", "licentia_app"]
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()
