"""Every Python example of docs/embedding.md runs as written, in document order, against a
real `licentia serve`, so the examples cannot rot.

The blocks are read from the file at test time and executed in one namespace, like the
parts of one product. That namespace starts with only what the text treats as the
product's own: the stored ``token`` and the answer's ``certificate``, the user's license
``key``, the machine's fingerprint ``fp``, and the product's ``enable_export`` and
``ask_for_a_license_key`` (recording stubs). The working directory holds the ``jwks.json``
and ``root.json`` the blocks read (the server's /.well-known documents), and ``HOME`` is a
temporary directory (the client block keeps its files under ``Path.home()``). The server's
issuer is the one the examples name; the one change made to the text is the base URL given
to ``LicenseClient``, which becomes the test server's. Between the air-gapped blocks the
test does what the ``console`` block between them does: it posts the request file to the
activate endpoint and writes ``license.json``.

A block that raises fails the test with its line in docs/embedding.md; one that calls
``sys.exit`` fails it with the message it would have shown the user.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import stat
import sys
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import factories
import httpx
import pytest
from licentia_verifier import FingerprintUnavailable, License, machine_fingerprint

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "embedding.md"
ISSUER = "https://licensing.example.com"  # the issuer every example names
PRODUCT = "acme-ide"
# The one place the examples name the server as a base URL (not as the issuer), and the
# one API call an example makes itself (the named user's login).
CLIENT_BASE_URL = re.compile(r'(LicenseClient\(\s*)"https://licensing\.example\.com"')
LOGIN_URL = re.compile(r'"https://licensing\.example\.com(/api/v1/auth/login)"')


@dataclass(frozen=True)
class Block:
    fence_line: int  # the line of the opening ```python in docs/embedding.md
    code: str

    def compiled(self, base_url: str) -> Any:
        code = CLIENT_BASE_URL.sub(rf'\g<1>"{base_url}"', self.code)
        code = LOGIN_URL.sub(rf'"{base_url}\g<1>"', code)
        # Padded so that tracebacks name the block's lines in docs/embedding.md.
        return compile("\n" * self.fence_line + code, str(DOC), "exec")


def python_blocks() -> list[Block]:
    blocks: list[Block] = []
    lines = DOC.read_text().splitlines()
    opened: int | None = None
    for number, line in enumerate(lines, start=1):
        if opened is None and line.strip() == "```python":
            opened = number
        elif opened is not None and line.strip() == "```":
            blocks.append(Block(opened, "\n".join(lines[opened : number - 1]) + "\n"))
            opened = None
    assert opened is None, f"docs/embedding.md:{opened}: a ```python block is never closed"
    return blocks


class Recorder:
    """A function of the product that the examples call: records its calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))


def run_block(block: Block, namespace: dict[str, Any], base_url: str) -> None:
    where = f"the ```python block at docs/embedding.md:{block.fence_line}"
    failure = None
    try:
        exec(block.compiled(base_url), namespace)
    except SystemExit as exit:
        failure = f"{where} called sys.exit at line {_doc_line(exit)}: {exit.code}"
    except Exception as err:
        failure = (
            f"{where} raised at docs/embedding.md:{_doc_line(err)}: "
            f"{type(err).__name__}: {err}\n\n" + "".join(traceback.format_exception(err))
        )
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def _doc_line(err: BaseException) -> int | None:
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(err.__traceback__)
        if frame.filename == str(DOC)
    ]
    return lines[-1] if lines else None


# What each block is, in document order: a phrase that identifies it. A block added,
# removed or moved breaks this list, and with it the test, until the test executes it.
BLOCKS = (
    "Verifier.from_jwks(",  # verify offline with a pinned key set
    "released_at=BUILD_DATE",  # perpetual fallback
    "verifier.add_key_certificate(certificate)",  # embedding the root
    "client = LicenseClient(",  # the online client
    "user_token=login(email, password)",  # a named user's activation
    'client.consume("automations")',  # usage meters
    "client.write_offline_request(",  # air-gapped: the request
    'client.install("license.json")',  # air-gapped: the answer
)


def test_every_python_block_of_the_page_is_executed_here() -> None:
    text = DOC.read_text()
    blocks = python_blocks()
    fences = re.findall(r"^\s*(?:```|~~~)\s*(?:python|py|python3|pycon)\s*$", text, re.M)
    assert len(fences) == len(blocks), "a Python block this test does not read"
    assert len(blocks) == len(BLOCKS), (
        f"docs/embedding.md has {len(blocks)} ```python blocks, this test executes "
        f"{len(BLOCKS)}: execute the new one in test_the_examples_run_as_written"
    )
    for block, marker in zip(blocks, BLOCKS, strict=True):
        assert marker in block.code, f"docs/embedding.md:{block.fence_line}: not {marker!r}"
    assert sum(len(CLIENT_BASE_URL.findall(block.code)) for block in blocks) == 1
    assert sum(len(LOGIN_URL.findall(block.code)) for block in blocks) == 1


def test_the_examples_import_what_they_catch() -> None:
    """A name in an ``except`` clause is looked up only when something is raised, so a
    block that catches an error it never imports passes until the day it matters. Every
    block imports what it catches (blocks share names in the text, not their imports)."""
    for block in python_blocks():
        tree = ast.parse(block.code)
        imported = {
            alias.asname or alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler)):
            caught = handler.type
            names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
            for name in names:
                assert isinstance(name, ast.Name), ast.dump(handler)
                assert name.id in imported or hasattr(builtins, name.id), (
                    f"docs/embedding.md:{block.fence_line + name.lineno}: "
                    f"catches {name.id} without importing it"
                )


@pytest.fixture
def fingerprint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """This machine's fingerprint for the product; a minimal container without a machine id
    gets one, as the page advises ("mount or generate a machine id")."""
    try:
        return machine_fingerprint(PRODUCT)
    except FingerprintUnavailable:
        if not sys.platform.startswith("linux"):
            raise
        from licentia_verifier import _fingerprint

        machine_id = tmp_path / "machine-id"
        machine_id.write_text(uuid.uuid4().hex + "\n")
        monkeypatch.setattr(_fingerprint, "_LINUX_SOURCES", (str(machine_id),))
        return machine_fingerprint(PRODUCT)


def test_the_examples_run_as_written(
    live_server_factory, owner_db, sql, fingerprint: str, tmp_path: Path, monkeypatch
) -> None:
    blocks = python_blocks()
    assert len(blocks) == len(BLOCKS)
    server = live_server_factory(LICENTIA_ISSUER=ISSUER)
    api = httpx.Client(base_url=server.base_url, timeout=30)

    # The vendor's catalogue: a tier with `export` whose licenses fall back to perpetual
    # use of the builds released before they end, and a self-serve trial.
    factories.product(
        owner_db,
        PRODUCT,
        {
            "pro": factories.Tier(
                features={"export": True, "seats": 5},
                expiry_behavior="fallback",
                meters={"automations": {"limit": 100, "period": "month"}},
            ),
            "team": factories.Tier(seat_kind="user", max_users=5, machines_per_user=2),
            "trial": factories.Tier(
                features={"export": False},
                is_trial=True,
                self_serve_trials=True,
                duration_days=14,
                max_activations=1,
            ),
        },
    )
    org = factories.organization(owner_db)
    # Updates until long after any build date the page shows, and updates that ended
    # before it (bought in 2019; still usable, for the builds of its time).
    covered = factories.license(
        owner_db, org, PRODUCT, "pro", expires_at=datetime(2100, 1, 1, tzinfo=UTC)
    )
    ended = factories.license(
        owner_db,
        org,
        PRODUCT,
        "pro",
        starts_at=datetime(2019, 1, 1, tzinfo=UTC),
        expires_at=datetime(2020, 1, 1, tzinfo=UTC),
    )

    # A license sold per person, and Dana, a member of its organization assigned to it.
    dana = factories.signup(api, "Dana's team", password=factories.PASSWORD)
    team = factories.license(owner_db, dana["organization"]["id"], PRODUCT, "team")
    factories.license_user(owner_db, team, dana["user"]["id"])

    def activate(key: str) -> dict[str, Any]:
        body = {"license_key": key, "product": PRODUCT, "fingerprint": fingerprint}
        response = api.post("/api/v1/licenses/activate", json=body)
        assert response.status_code in (200, 201), response.text
        answer: dict[str, Any] = response.json()
        return answer

    # The product's directory: the public documents it ships with, and a home of its own.
    product_dir, home = tmp_path / "product", tmp_path / "home"
    product_dir.mkdir()
    home.mkdir()
    for name, path in (("jwks.json", "jwks.json"), ("root.json", "licentia-root.json")):
        document = api.get(f"/.well-known/{path}")
        assert document.status_code == 200, document.text
        (product_dir / name).write_text(document.text)
    monkeypatch.chdir(product_dir)
    monkeypatch.setenv("HOME", str(home))

    stored = activate(covered.key)  # what the product stored when it was activated
    enable_export = Recorder("enable_export")
    ask_for_a_license_key = Recorder("ask_for_a_license_key")
    ns: dict[str, Any] = {
        "__name__": "__main__",
        "token": stored["token"],
        "certificate": stored["key_certificate"],
        "key": covered.key,
        "fp": fingerprint,
        "enable_export": enable_export,
        "ask_for_a_license_key": ask_for_a_license_key,
    }
    steps: list[Callable[[Block], None]] = []

    def step(check: Callable[[Block], None]) -> Callable[[Block], None]:
        steps.append(check)
        return check

    def run(block: Block) -> None:
        run_block(block, ns, server.base_url)

    @step
    def pinned_key_set(block: Block) -> None:
        run(block)
        lic = ns["lic"]
        assert isinstance(lic, License) and lic.license_id == str(covered.id)
        assert lic.tier == "pro" and lic.has("export") and lic.limit("seats") == 5
        assert enable_export.calls == [((), {})], "the licensed feature was not enabled"

    @step
    def perpetual_fallback(block: Block) -> None:
        # A license whose updates run past this build: verified, and it says until when.
        before = ns["lic"]
        run(block)
        lic, build = ns["lic"], ns["BUILD_DATE"]
        assert lic is not before and lic.license_id == str(covered.id)
        assert lic.license_expires_at is None and lic.updates_until >= build
        # Updates that ended before this build: the block takes its `except Expired` path.
        ns["token"] = activate(ended.key)["token"]
        del ns["lic"]
        run(block)
        assert "lic" not in ns, "a build released after the updates ended was accepted"
        ns["token"] = stored["token"]

    @step
    def embedding_the_root(block: Block) -> None:
        run(block)
        verifier, lic = ns["verifier"], ns["lic"]
        kid = json.loads((product_dir / "jwks.json").read_text())["keys"][0]["kid"]
        assert verifier.key_ids == (kid,) and verifier.root_ids
        assert lic.license_id == str(covered.id)

    @step
    def online_client(block: Block) -> None:
        run(block)
        lic, client = ns["lic"], ns["client"]
        # Activated with the key, verified at start, deactivated, then the keyless trial.
        assert ask_for_a_license_key.calls == []
        assert sql.live(covered.id) == 0, "client.deactivate() did not free the seat"
        assert lic.is_trial and lic.tier == "trial" and lic.license_expires_at is not None
        remaining = lic.expires_at - datetime.now(UTC)
        assert timedelta(days=13) < remaining <= timedelta(days=14)
        assert client.license() == lic  # stored like an activation
        config = home / ".config" / PRODUCT
        assert (config / f"licentia-{PRODUCT}.json").exists()
        assert (config / "licentia-state.json").exists(), "no clock high-water mark"

    @step
    def named_user(block: Block) -> None:
        ns.update(key=team.key, email=dana["user"]["email"], password=factories.PASSWORD)
        run(block)
        lic, client = ns["lic"], ns["client"]
        assert lic.license_id == str(team.id) and lic.user_id == dana["user"]["id"]
        assert sql.live(team.id) == 1
        client.deactivate()
        ns["key"] = covered.key

    run_the_automation = Recorder("run_the_automation")

    @step
    def usage_meters(block: Block) -> None:
        ns["client"].activate(covered.key)
        ns["run_the_automation"] = run_the_automation
        run(block)
        usage = ns["usage"]  # the count read again, without spending
        assert run_the_automation.calls == [((), {})]
        assert (usage.meter, usage.used, usage.limit, usage.remaining) == (
            "automations",
            1,
            100,
            99,
        )
        assert usage.period_ends_at is not None
        ns["client"].deactivate()

    request_file = product_dir / "activation-request.json"

    @step
    def air_gapped_request(block: Block) -> None:
        run(block)
        request = json.loads(request_file.read_text())
        assert stat.S_IMODE(request_file.stat().st_mode) == 0o600
        assert request["type"] == "activation_request" and request["name"] == "lab-pc-3"
        assert request["license_key"] == covered.key and request["fingerprint"] == fingerprint
        # The console block: the customer posts the request file to the activate endpoint.
        response = api.post(
            "/api/v1/licenses/activate",
            content=request_file.read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code in (200, 201), response.text
        (product_dir / "license.json").write_text(response.text)

    @step
    def air_gapped_install(block: Block) -> None:
        answer = json.loads((product_dir / "license.json").read_text())
        run(block)
        lic, client = ns["lic"], ns["client"]
        assert lic.license_id == str(covered.id) and not lic.is_trial
        assert lic.activation_id == answer["activation_id"]
        assert client.license() == lic, "install() did not store the license"
        assert sql.live(covered.id) == 1
        names = sql.all("SELECT name FROM activations WHERE id = %s", lic.activation_id)
        assert names == [("lab-pc-3",)]

    assert len(steps) == len(blocks) == len(BLOCKS)
    for block, check in zip(blocks, steps, strict=True):
        check(block)
