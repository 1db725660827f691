"""The first admin API key: printed on a terminal, else written to a private file.

A container's stdout is kept in its logs, so there the key goes to
``<data-dir>/first-admin-key`` (0600) and only that path is printed."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from support import free_port, server_env, start_server, stop_server

from server import cli
from server.settings import Settings

REPO = Path(__file__).resolve().parents[3]
KEY = re.compile(r"lic_admin_[A-Za-z0-9_-]{20,}")


def _api_keys(base_url: str, key: str) -> httpx.Response:
    return httpx.get(base_url + "/api/v1/api-keys", headers={"Authorization": f"Bearer {key}"})


def test_without_a_terminal_the_key_goes_to_a_private_file(
    settings: Settings, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "serve.log"
    server = start_server(server_env(settings), log, data_dir=data_dir)
    try:
        key_file = data_dir / "first-admin-key"
        key = key_file.read_text().strip()
        assert KEY.fullmatch(key)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert str(key_file.absolute()) in server.log()
        assert not KEY.search(server.log()), "the key itself is never printed or logged"
        assert _api_keys(server.base_url, key).status_code == 200
    finally:
        assert stop_server(server) == 0
    assert not KEY.search(server.log())
    assert list(data_dir.iterdir()) == [key_file], "no temporary file is left behind"

    again = start_server(server_env(settings), tmp_path / "again.log", data_dir=data_dir)
    stop_server(again)
    assert "First start" not in again.log()
    assert key_file.read_text().strip() == key


def test_on_a_terminal_the_key_is_printed_and_no_file_written(
    settings: Settings, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    args = ["serve", "--port", str(port), "--data-dir", str(data_dir)]
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", *args],
        env=server_env(settings),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = bytearray()

    def drain() -> None:  # keep reading, or the server blocks writing to its terminal
        while True:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the other side closed
                return
            if not chunk:
                return
            output.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, output.decode(errors="replace")
            assert time.monotonic() < deadline, output.decode(errors="replace")
            try:
                if httpx.get(base_url + "/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        printed = KEY.search(output.decode(errors="replace"))
        assert printed, output.decode(errors="replace")
        assert "It is shown only once" in output.decode(errors="replace")
        assert _api_keys(base_url, printed.group()).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        reader.join(10)
        os.close(controller)
    assert not (data_dir / "first-admin-key").exists()


def test_the_key_file_replaces_what_was_planted_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A symlink (or a file someone else could read) in its place is replaced, not followed."""
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    victim.chmod(0o644)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "first-admin-key").symlink_to(victim)
    cli._hand_over_first_admin_key("lic_admin_" + "x" * 43, data_dir)
    key_file = data_dir / "first-admin-key"
    assert not key_file.is_symlink()
    assert key_file.read_text() == "lic_admin_" + "x" * 43 + "\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert victim.read_text() == "untouched\n"
    out = capsys.readouterr().out
    assert str(key_file) in out and "lic_admin_" not in out
