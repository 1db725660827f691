"""Without pgserver the embedded mode falls back to initdb/pg_ctl, else explains itself."""

from __future__ import annotations

import os
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
