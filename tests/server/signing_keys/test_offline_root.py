"""Offline-root mode end to end through the ``licentia`` command: export the root's private
key, then rotate and revoke only with ``--root-key``; the admin API answers 409
``ROOT_OFFLINE``; the root rotates offline into a new file; and it can come back online."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt
import psycopg
from click.testing import CliRunner
from litestar.testing import TestClient
from support import TestDatabase, bearer

from server.cli import main
from server.settings import Settings
from server.signing_keys.cli import ROTATE_NOW_WARNING


def _env(settings: Settings) -> dict[str, str]:
    return {
        "LICENTIA_DATABASE_URL": settings.database_url,
        "LICENTIA_KEY_ENCRYPTION_KEY": settings.key_encryption_key or "",
        "LICENTIA_LOG_LEVEL": "WARNING",
    }


def _cli(settings: Settings, *args: str):
    return CliRunner().invoke(main, list(args), env=_env(settings))


def _root_row(database: TestDatabase) -> tuple[str, bool]:
    with psycopg.connect(database.owner_url) as conn:
        return conn.execute(
            "SELECT kid, encrypted_private_key IS NOT NULL FROM root_keys WHERE state = 'active'"
        ).fetchone()


def _certificate_for(client: TestClient, kid: str) -> dict:
    root = {
        k["kid"]: jwt.PyJWK(k).key
        for k in client.get("/.well-known/licentia-root.json").json()["keys"]
    }
    for certificate in client.get("/.well-known/key-certificates.json").json()["certificates"]:
        header = jwt.get_unverified_header(certificate)
        claims = jwt.decode(certificate, root[header["kid"]], algorithms=["EdDSA"])
        if claims["sub"] == kid:
            return claims
    raise AssertionError(f"no certificate for {kid}")


def test_offline_root_end_to_end(
    client: TestClient,
    admin_key: str,
    settings: Settings,
    signing_key: str,
    database: TestDatabase,
    tmp_path: Path,
) -> None:
    root_kid, online = _root_row(database)
    assert online
    key_file = tmp_path / "root.jwk"

    exported = _cli(settings, "keys", "root", "export-private", "--output", str(key_file))
    assert exported.exit_code == 0, exported.output
    assert root_kid in exported.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    document = json.loads(key_file.read_text())
    assert set(document) == {"kty", "crv", "x", "d", "kid"} and document["kid"] == root_kid
    assert _root_row(database) == (root_kid, False), "the database no longer holds it"
    again = _cli(settings, "keys", "root", "export-private", "--output", str(key_file))
    assert again.exit_code != 0 and "refusing to overwrite" in again.output
    assert json.loads(key_file.read_text()) == document
    elsewhere = _cli(settings, "keys", "root", "export-private", "--output", str(tmp_path / "b"))
    assert elsewhere.exit_code != 0 and "ROOT_OFFLINE" in elsewhere.output
    assert not (tmp_path / "b").exists()

    listed = _cli(settings, "keys", "root", "list")
    assert f"{root_kid}  active      offline" in listed.stdout

    # Without the file: refused, with a message that says what to do; nothing changes.
    refused = _cli(settings, "keys", "rotate")
    assert refused.exit_code != 0
    assert "ROOT_OFFLINE" in refused.output and "--root-key FILE" in refused.output
    api = client.post("/api/v1/keys/rotate", headers=bearer(admin_key))
    assert api.status_code == 409 and api.json()["code"] == "ROOT_OFFLINE", api.text
    with psycopg.connect(database.owner_url) as conn:
        assert conn.execute("SELECT count(*) FROM signing_keys").fetchone() == (1,)

    # With the file: certified by the root that is no longer in the database.
    rotated = _cli(settings, "keys", "rotate", "--root-key", str(key_file))
    assert rotated.exit_code == 0, rotated.output
    new_kid = rotated.stdout.split()[0]
    assert ROTATE_NOW_WARNING in rotated.stderr
    assert "Verifier.from_jwks" in rotated.stderr and "Verifier.from_root" in rotated.stderr
    assert _certificate_for(client, new_kid)["sub"] == new_kid
    assert _root_row(database) == (root_kid, False), "using the file does not store it"

    scheduled = _cli(
        settings, "keys", "rotate", "--root-key", str(key_file), "--activate-at", "2099-01-01"
    )
    assert scheduled.exit_code == 0, scheduled.output
    assert "pending" in scheduled.stdout and ROTATE_NOW_WARNING not in scheduled.stderr
    assert _certificate_for(client, scheduled.stdout.split()[0])

    # Revocation: refused by the API and without the file; a list signed with it otherwise.
    api = client.post(f"/api/v1/keys/{signing_key}/revoke", headers=bearer(admin_key))
    assert api.status_code == 409 and api.json()["code"] == "ROOT_OFFLINE", api.text
    refused = _cli(settings, "keys", "revoke", "--", signing_key)
    assert refused.exit_code != 0 and "ROOT_OFFLINE" in refused.output
    revoked = _cli(settings, "keys", "revoke", "--root-key", str(key_file), "--", signing_key)
    assert revoked.exit_code == 0, revoked.output
    revocations = client.get("/.well-known/key-certificates.json").json()["key_revocations"]
    root_jwk = client.get("/.well-known/licentia-root.json").json()["keys"][0]
    claims = jwt.decode(revocations, jwt.PyJWK(root_jwk).key, algorithms=["EdDSA"])
    assert (claims["seq"], claims["revoked"]) == (1, [signing_key])

    # A file that holds another key is refused.
    stranger = tmp_path / "stranger.jwk"
    assert _cli(settings, "keys", "root", "export-private", "-o", str(stranger)).exit_code != 0
    from keys.crypto import generate_private_key, private_key_file, raw_private_key

    stranger.write_text(json.dumps(private_key_file(raw_private_key(generate_private_key()))))
    mismatch = _cli(settings, "keys", "rotate", "--root-key", str(stranger))
    assert mismatch.exit_code != 0 and "ROOT_MISMATCH" in mismatch.output
    broken = tmp_path / "broken.jwk"
    broken.write_text("{}")
    unreadable = _cli(settings, "keys", "rotate", "--root-key", str(broken))
    assert unreadable.exit_code != 0 and "not a root key file" in unreadable.output

    # Root rotation while offline: the new root must stay offline too.
    online_refused = _cli(settings, "keys", "root", "rotate", "--root-key", str(key_file))
    assert online_refused.exit_code != 0 and "ROOT_OFFLINE" in online_refused.output
    next_file = tmp_path / "root-2.jwk"
    rotated_root = _cli(
        settings, "keys", "root", "rotate", "--root-key", str(key_file), "--output", str(next_file)
    )
    assert rotated_root.exit_code == 0, rotated_root.output
    new_root = json.loads(next_file.read_text())["kid"]
    assert stat.S_IMODE(next_file.stat().st_mode) == 0o600
    assert _root_row(database) == (new_root, False)
    document = client.get("/.well-known/licentia-root.json").json()
    assert [k["kid"] for k in document["keys"]] == [root_kid, new_root]
    [endorsement] = document["root_endorsements"]
    old_key = jwt.PyJWK(document["keys"][0]).key
    assert jwt.decode(endorsement, old_key, algorithms=["EdDSA"])["sub"] == new_root
    assert _certificate_for(client, new_kid)  # re-certified by the new root

    # The old root's file is of no use any more; the new one is.
    stale = _cli(
        settings, "keys", "rotate", "--root-key", str(key_file), "--activate-at", "2099-02-01"
    )
    assert stale.exit_code != 0 and "ROOT_MISMATCH" in stale.output

    exported_root = tmp_path / "licentia-root.json"
    written = _cli(settings, "keys", "export-root", "--output", str(exported_root))
    assert written.exit_code == 0, written.output
    assert json.loads(exported_root.read_text()) == document

    # Back online.
    imported = _cli(settings, "keys", "root", "import-private", str(next_file))
    assert imported.exit_code == 0, imported.output
    assert _root_row(database) == (new_root, True)
    api = client.post("/api/v1/keys/rotate", headers=bearer(admin_key))
    assert api.status_code == 201, api.text
    assert _certificate_for(client, api.json()["kid"])

    retired = _cli(settings, "keys", "root", "retire", root_kid)
    assert retired.exit_code == 0, retired.output
    document = client.get("/.well-known/licentia-root.json").json()
    assert [k["kid"] for k in document["keys"]] == [new_root]


def test_export_root_prints_the_document(settings: Settings, signing_key: str) -> None:
    printed = _cli(settings, "keys", "export-root")
    assert printed.exit_code == 0, printed.output
    document = json.loads(printed.stdout)
    assert set(document) == {"keys", "root_endorsements"} and len(document["keys"]) == 1


def test_certify_command(settings: Settings, signing_key: str, database: TestDatabase) -> None:
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute("DELETE FROM key_certificates")
    certified = _cli(settings, "keys", "certify")
    assert certified.exit_code == 0, certified.output
    assert f"{signing_key} certified" in certified.stdout
    assert _cli(settings, "keys", "certify").stdout.strip() == "nothing to certify"
