"""The embedded database trusts every connection on its socket: only its user reaches it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

_START = """
import sys
from pathlib import Path
from server import embedded
print(embedded.start(Path(sys.argv[1])).socket_dir)
"""


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="pgserver has no wheel here")
def test_a_socket_outside_pgdata_and_the_data_dir_stay_private() -> None:
    """With a data dir path too long for a socket, pgserver puts the socket in a runtime
    directory it opens to everyone (0777) when run as root; it is closed again."""
    scratch = Path(tempfile.mkdtemp(prefix="licentia-perm-"))  # not under pytest's tmp root
    data_dir = scratch / ("d" * 100) / "data"
    socket_dir = None
    try:
        started = subprocess.run(
            [sys.executable, "-c", _START, str(data_dir)],
            env={k: v for k, v in os.environ.items() if not k.startswith("LICENTIA_")},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.returncode == 0, started.stderr
        socket_dir = Path(started.stdout.strip())
        pgdata = (data_dir / "pgdata").resolve()
        assert socket_dir != pgdata
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        assert socket_dir.stat().st_uid == pgdata.stat().st_uid  # postgres's own user
        as_root = os.geteuid() == 0  # then postgres runs as another user, who must pass
        assert stat.S_IMODE(data_dir.stat().st_mode) == (0o711 if as_root else 0o700)
        assert stat.S_IMODE((data_dir / "key-encryption-key").stat().st_mode) == 0o600
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if socket_dir is not None and not str(socket_dir).startswith(str(scratch)):
            shutil.rmtree(socket_dir, ignore_errors=True)
