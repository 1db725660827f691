"""`licentia serve` on the embedded database comes back after a crash, losing nothing.

An OOM kill or a power cut takes down the server's processes and the embedded PostgreSQL at
once. Each cycle here starts `licentia serve --workers 2`, drives activations at it, then
kills its whole process group and the postmaster with SIGKILL while requests are in flight.
The next start must succeed on its own (stale ``postmaster.pid``, backends still exiting,
crash recovery), and every activation that was answered 201 must still be there at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from support import free_port

from server import embedded

REPO = Path(__file__).resolve().parents[3]
CYCLES = 20
PRODUCT = "crashy"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LICENTIA_")} | {
        "LICENTIA_LOG_JSON": "true"
    }


def _scratch() -> Path:
    """A directory outside pytest's tmp root: a pytest run starting meanwhile resets that
    root to 0700, and run as root the embedded postgres (user pgserver) must traverse it."""
    return Path(tempfile.mkdtemp(prefix="licentia-crash-"))


def _remove(path: Path) -> None:
    """Remove a scratch dir, killing whatever PostgreSQL a failed test left running in it."""
    for pgdata in path.glob("*/pgdata"):
        for pid in embedded.leftover_processes(pgdata):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = _scratch()
    yield path
    _remove(path)


# Most of a start of `licentia serve` is Python importing its modules. To keep twenty cycles
# short, each `licentia serve` is forked from this launcher, which has imported them once:
# the child runs the command's own entry point (`server.cli.main`) in a session of its own,
# with its output in the log; uvicorn spawns its workers afresh, as always.
_LAUNCHER = """
import contextlib, json, os, sys
import alembic.command, asyncpg, uvicorn
import server.api_keys.service, server.cli, server.signing_keys.service
with contextlib.suppress(ImportError):
    import pgserver
for line in sys.stdin:
    request = json.loads(line)
    if "wait" in request:
        _, status = os.waitpid(request["wait"], 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
        continue
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        print(pid, flush=True)
        continue
    os.setsid()
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    server.cli.main(request["args"], prog_name="licentia")  # exits, running atexit
"""


class Launcher:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER],
            env=_env(),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, request: dict[str, object]) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def start(self, args: list[str], log: Path) -> int:
        return self._ask({"args": args, "log": str(log)})

    def wait(self, pid: int) -> int:
        return self._ask({"wait": pid})

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(30)


def _running(pid: int) -> bool:
    """Not exited (an exited child stays a zombie until the launcher waits for it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@dataclass
class Serve:
    pid: int
    base_url: str


def _serve(launcher: Launcher, data_dir: Path, log: Path, timeout: float = 180) -> Serve | None:
    """Start `licentia serve --workers 2` and wait until it is ready; None if it fails."""
    port = free_port()
    args = ["serve", "--port", str(port), "--workers", "2", "--data-dir", str(data_dir)]
    pid = launcher.start(args, log)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(pid):
            launcher.wait(pid)
            return None
        try:
            if httpx.get(base_url + "/health/ready", timeout=1).status_code == 200:
                return Serve(pid, base_url)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    os.killpg(pid, signal.SIGKILL)
    launcher.wait(pid)
    return None


@dataclass
class Load:
    """Threads activating new machines until stopped; remembers what was answered 201."""

    base_url: str
    license_key: str
    prefix: str
    acknowledged: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, count: int = 4) -> None:
        for n in range(count):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, n: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                body = {
                    "license_key": self.license_key,
                    "product": PRODUCT,
                    "fingerprint": f"{self.prefix}-{n}-{i}",
                }
                try:
                    response = client.post("/api/v1/licenses/activate", json=body)
                except httpx.HTTPError:
                    time.sleep(0.01)
                    continue
                if response.status_code == 201:
                    self.acknowledged.append(response.json()["activation_id"])

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


def _seed(base_url: str, data_dir: Path) -> tuple[str, str, str]:
    """A product, a tier, an organization and a license, made with the first admin key
    (written to the data dir, stdout not being a terminal)."""
    admin = {"Authorization": "Bearer " + (data_dir / "first-admin-key").read_text().strip()}
    with httpx.Client(base_url=base_url + "/api/v1", headers=admin, timeout=30) as api:
        assert api.post("/products", json={"code": PRODUCT, "name": "Crashy"}).status_code == 201
        tier = {"code": "pro", "name": "Pro", "max_activations": 1_000_000}
        assert api.post(f"/products/{PRODUCT}/tiers", json=tier).status_code == 201
        org = api.post("/organizations", json={"name": "Crash Test Inc"})
        assert org.status_code == 201, org.text
        body = {"organization_id": org.json()["id"], "product": PRODUCT, "tier": "pro"}
        lic = api.post("/licenses", json=body)
        assert lic.status_code == 201, lic.text
    return admin["Authorization"], lic.json()["id"], lic.json()["key"]


def _stored_activations(base_url: str, authorization: str, license_id: str) -> set[str]:
    found: set[str] = set()
    cursor = None
    with httpx.Client(base_url=base_url, headers={"Authorization": authorization}) as api:
        while True:
            params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = api.get(f"/api/v1/licenses/{license_id}/activations", params=params)
            assert page.status_code == 200, page.text
            found.update(item["id"] for item in page.json()["items"])
            cursor = page.json()["next_cursor"]
            if not cursor:
                return found


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    launcher = Launcher()
    yield launcher
    launcher.close()


def test_serve_comes_back_after_kill_9_of_server_and_postmaster(
    launcher: Launcher, scratch: Path, tmp_path: Path
) -> None:
    began = time.monotonic()
    data_dir = scratch / "data"
    pgdata = data_dir / "pgdata"
    log = tmp_path / "serve.log"
    server = _serve(launcher, data_dir, log)
    assert server is not None, log.read_text(errors="replace")
    acknowledged: list[str] = []
    failed_starts: list[int] = []
    try:
        authorization, license_id, license_key = _seed(server.base_url, data_dir)
        for cycle in range(CYCLES):
            load = Load(server.base_url, license_key, prefix=f"c{cycle}")
            load.start()
            # Kill once activations are flowing, so some are in flight when it happens.
            deadline = time.monotonic() + 10
            while len(load.acknowledged) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.03 * (cycle % 4))
            postmaster = _postmaster_pid(pgdata)
            if cycle % 2:
                os.kill(postmaster, signal.SIGKILL)
                os.killpg(server.pid, signal.SIGKILL)
            else:
                os.killpg(server.pid, signal.SIGKILL)
                os.kill(postmaster, signal.SIGKILL)
            killed, server = server, None
            assert launcher.wait(killed.pid) == -signal.SIGKILL
            load.finish()
            acknowledged += load.acknowledged

            server = _serve(launcher, data_dir, log)
            if server is None:
                failed_starts.append(cycle)
                server = _serve(launcher, data_dir, log)  # go on, to count the others
            assert server is not None, log.read_text(errors="replace")[-5000:]
        stored = _stored_activations(server.base_url, authorization, license_id)
    finally:
        if server is not None:
            os.kill(server.pid, signal.SIGTERM)
            stopped = launcher.wait(server.pid)
    lost = set(acknowledged) - stored
    elapsed = time.monotonic() - began
    print(
        f"\ncrash recovery: {CYCLES} kill -9 cycles, {len(failed_starts)} failed starts, "
        f"{len(acknowledged)} activations acknowledged, {len(lost)} lost, {elapsed:.1f}s"
    )
    assert failed_starts == [], log.read_text(errors="replace")[-5000:]
    assert lost == set()
    assert len(acknowledged) >= 3 * CYCLES
    assert stopped == 0
    assert not (pgdata / "postmaster.pid").exists(), "a clean stop stops the database too"


# --- what a crash leaves behind, one case at a time ------------------------------------------

# Starts the embedded database, records a committed mark, optionally keeps a backend busy
# (CPU-bound, so it outlives its postmaster for a while), then waits to be killed.
_RUN_UNTIL_KILLED = """
import asyncio, sys, time
from pathlib import Path
import asyncpg
from server import embedded

db = embedded.start(Path(sys.argv[1]))

async def main():
    conn = await asyncpg.connect(db.owner_url)
    await conn.execute("CREATE TABLE IF NOT EXISTS marks (n int)")
    await conn.execute("INSERT INTO marks VALUES ($1)", int(sys.argv[2]))
    if sys.argv[3] == "busy":
        busy = await asyncpg.connect(db.owner_url)
        loop = "WHILE clock_timestamp() < now() + interval '3 seconds' LOOP END LOOP;"
        asyncio.ensure_future(busy.execute("DO $$ BEGIN " + loop + " END $$"))
        await asyncio.sleep(0.3)
    print("up", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""

# Starts (recovering) the embedded database, prints the marks, exits cleanly.
_READ_MARKS = """
import asyncio, sys
from pathlib import Path
import asyncpg
from server import embedded

db = embedded.start(Path(sys.argv[1]))

async def main():
    conn = await asyncpg.connect(db.owner_url)
    print(sorted(r["n"] for r in await conn.fetch("SELECT n FROM marks")))
    await conn.close()

asyncio.run(main())
"""


def _python(code: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,  # type: ignore[call-overload]
    )


def _crash(data_dir: Path, mark: int, busy: bool = False) -> int:
    """Run the database with a process that is then killed with it; the postmaster's pid."""
    runner = subprocess.Popen(
        [sys.executable, "-c", _RUN_UNTIL_KILLED, str(data_dir), str(mark), "busy" * busy],
        env=_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert runner.stdout is not None and runner.stdout.readline() == "up\n", runner.stderr
    postmaster = _postmaster_pid(data_dir / "pgdata")
    os.kill(postmaster, signal.SIGKILL)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()
    return postmaster


def _rewrite_pid(path: Path, pid: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(f"{pid}\n" + "".join(lines[1:]))


def _zombie() -> subprocess.Popen[bytes]:
    child = subprocess.Popen(["true"])
    stat = Path(f"/proc/{child.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    return child  # not reaped until .wait()


@pytest.fixture(scope="module")
def initialized() -> Iterator[Path]:
    """A data dir whose database was made (and cleanly stopped) once; copied per test."""
    data_dir = _scratch() / "data"
    done = _python(
        "import sys; from pathlib import Path; from server import embedded\n"
        "embedded.start(Path(sys.argv[1]))",
        str(data_dir),
    )
    assert done.returncode == 0, done.stderr
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()
    yield data_dir
    _remove(data_dir.parent)


def _copy(template: Path, scratch: Path) -> Path:
    data_dir = scratch / "data"
    subprocess.run(["cp", "-a", str(template), str(data_dir)], check=True)  # keeps owners
    return data_dir


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("left_behind", ["gone", "zombie", "reused", "torn", "busy-backend"])
def test_start_after_a_crash_recovers_whatever_was_left_behind(
    initialized: Path, scratch: Path, left_behind: str
) -> None:
    """The postmaster's pid may be gone (reaped), a zombie (an init that does not reap), or
    another program's (reused after a reboot); the pid file may be torn by a power cut; a
    backend may still be running. Each time the next start recovers and loses nothing."""
    data_dir = _copy(initialized, scratch)
    pgdata = data_dir / "pgdata"
    holder: subprocess.Popen[bytes] | None = None
    _crash(data_dir, 7, busy=left_behind == "busy-backend")
    pid_file = pgdata / "postmaster.pid"
    assert pid_file.exists()
    if left_behind == "zombie":
        holder = _zombie()
    elif left_behind == "reused":
        holder = subprocess.Popen(["sleep", "60"])
    if holder is not None:
        _rewrite_pid(pid_file, holder.pid)
        for lock in pgdata.glob(".s.PGSQL.*.lock"):
            _rewrite_pid(lock, holder.pid)
    if left_behind == "torn":
        pid_file.write_text("")
    try:
        read = _python(_READ_MARKS, str(data_dir))
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "[7]"
    assert "not shut down cleanly" in read.stderr
    assert not pid_file.exists(), "the recovered server stops with its last user"


def test_a_live_server_that_does_not_answer_is_a_clear_error(
    initialized: Path, scratch: Path
) -> None:
    """The directory really is held: the postmaster lives (stopped here) but never answers."""
    data_dir = _copy(initialized, scratch)
    runner = subprocess.Popen(
        [sys.executable, "-c", _RUN_UNTIL_KILLED, str(data_dir), "1", ""],
        env=_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # its KeyboardInterrupt when stopped with SIGINT
        text=True,
        start_new_session=True,
    )
    assert runner.stdout is not None and runner.stdout.readline() == "up\n"
    postmaster = _postmaster_pid(data_dir / "pgdata")
    os.kill(postmaster, signal.SIGSTOP)
    try:
        started = time.monotonic()
        refused = _python(
            "import sys; from server import embedded; embedded.SILENT_TIMEOUT = 1.0\n"
            "from server.cli import main; main(sys.argv[1:])",
            *["db", "current", "--data-dir", str(data_dir)],
        )
        elapsed = time.monotonic() - started
    finally:
        os.kill(postmaster, signal.SIGCONT)
        runner.send_signal(signal.SIGINT)  # a clean exit: the runner stops the database
        runner.wait(30)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    error = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, refused.stderr
    assert f"held by another PostgreSQL server (pid {postmaster})" in error[0]
    assert elapsed < 30


def test_a_server_still_starting_is_waited_for(initialized: Path, scratch: Path) -> None:
    """A live postmaster that answers but is not ready yet (crash recovery): wait, attach."""
    data_dir = _copy(initialized, scratch)
    runner = subprocess.Popen(
        [sys.executable, "-c", _RUN_UNTIL_KILLED, str(data_dir), "1", ""],
        env=_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # its KeyboardInterrupt when stopped with SIGINT
        text=True,
        start_new_session=True,
    )
    try:
        assert runner.stdout is not None and runner.stdout.readline() == "up\n"
        pid_file = data_dir / "pgdata" / "postmaster.pid"
        ready = pid_file.read_text()
        assert ready.splitlines()[7].strip() == "ready"
        pid_file.write_text(ready.replace("ready", "starting"))  # as during recovery
        threading.Timer(1.0, pid_file.write_text, [ready]).start()
        began = time.monotonic()
        embedded.recover_stale_server(data_dir / "pgdata")
        assert time.monotonic() - began >= 0.9
        assert pid_file.read_text() == ready, "a live server's pid file is left alone"
    finally:
        runner.send_signal(signal.SIGINT)  # a clean exit: the runner stops the database
        runner.wait(30)


def test_connecting_retries_while_the_server_starts_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import asyncpg

    attempts: list[float] = []

    async def connect(url: str, timeout: float) -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 4:
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        return "connection"

    monkeypatch.setattr(asyncpg, "connect", connect)
    assert asyncio.run(embedded._connect("postgresql://x", "/sock")) == "connection"
    assert len(attempts) == 4

    attempts.clear()
    monkeypatch.setattr(embedded, "CONNECT_TIMEOUT", 0.5)

    async def refused(url: str, timeout: float) -> str:
        attempts.append(time.monotonic())
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(asyncpg, "connect", refused)
    with pytest.raises(embedded.EmbeddedUnavailable, match="did not accept connections") as err:
        asyncio.run(embedded._connect("postgresql://x", "/sock"))
    assert "\n" not in str(err.value)
    assert 2 < len(attempts) < 20, "bounded, with a growing delay"
