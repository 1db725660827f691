"""LicenseClient with a root of trust, without a Licentia server: the trust material each
answer carries is processed before the token, kept in the cache file, and loaded by the
next process, which then verifies offline. A fake server (conftest.py) gives the answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from licentia_verifier import LicenseClient, NotActivated, UnknownKey

KEY = "LK-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF-GGGGG"
PRODUCT = "acme-ide"
FINGERPRINT = "machine-fingerprint-1"
NOW = 1_780_000_000
DUE = NOW + 3000  # less than a third of the default token's lease is left
DAY = 86400
ACTIVATE = "/api/v1/licenses/activate"
CHECK_IN = "/api/v1/licenses/check-in"
DEACTIVATE = "/api/v1/licenses/deactivate"


def client_for(verifier: Any, tmp_path: Any, base_url: str, **kwargs: Any) -> LicenseClient:
    return LicenseClient(
        base_url,
        product=PRODUCT,
        verifier=verifier,
        cache_dir=tmp_path / "cache",
        fingerprint=FINGERPRINT,
        timeout=2.0,
        **kwargs,
    )


def answer(token: str, certificate: str | None = None, **trust: Any) -> dict[str, Any]:
    """A licensing answer as the server sends it: the token and its trust material."""
    body: dict[str, Any] = {
        "activation_id": "act_01",
        "token": token,
        "lease_expires_at": "2026-05-28T21:00:00Z",
        "key_certificate": certificate,
        "key_revocations": None,
        "root_endorsements": [],
    }
    body.update(trust)
    return body


def cached(client: LicenseClient) -> dict[str, Any]:
    with open(client.cache_path) as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def rotated(env: Any, at: int) -> tuple[Any, str]:
    """A second signing key ("key-2") and an activation token it signed at ``at``."""
    key = env.seeded_key("verifier-tests-key-2")
    claims = env.activation_claims(iat=at, nbf=at, exp=at + 3600, jti="jti-rotated")
    token = env.sign({"alg": "EdDSA", "kid": "key-2", "typ": "activation+jwt"}, claims, key)
    return key, token


OFFLINE_RUN = """
import json, sys
from licentia_verifier import LicenseClient, LicenseError, Verifier
root, cache, url, now = sys.argv[1:5]
verifier = Verifier.from_root(root, product="acme-ide", issuer="https://licensing.example.test")
client = LicenseClient(url, product="acme-ide", verifier=verifier, cache_dir=cache,
                       fingerprint="machine-fingerprint-1", timeout=1.0)
try:
    lic = client.license(now=int(now))
except LicenseError as error:
    print(json.dumps({"error": error.code, "keys": list(verifier.key_ids)}))
else:
    print(json.dumps({"ok": lic.token_id, "keys": list(verifier.key_ids)}))
"""


def offline_run(trust: Any, tmp_path: Any, url: str, now: int) -> dict[str, Any]:
    """A fresh process that embeds only the root and reads the cache: what license() says."""
    root = tmp_path / "root.json"
    root.write_text(json.dumps(trust.document))
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_RUN, str(root), str(tmp_path / "cache"), url, str(now)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_activation_stores_the_certificate_and_a_fresh_process_verifies_offline(
    env, trust, tmp_path, fake, closed_url
):
    fake.reply(ACTIVATE, 201, answer(env.activation(), trust.certificate()))
    client = client_for(trust.verifier(), tmp_path, fake.base_url)
    assert client.activate(KEY, now=NOW).activation_id == env.ACTIVATION_ID
    assert cached(client)["trust"] == {
        "root_endorsements": [],
        "key_certificates": [trust.certificate()],
        "key_revocations": None,
    }
    # A new process, no server: the stored certificate is verified again and used.
    assert offline_run(trust, tmp_path, closed_url, NOW) == {"ok": "jti-1", "keys": ["key-1"]}


def test_a_rotation_is_learned_at_check_in_and_kept_for_offline_use(
    env, trust, tmp_path, fake, closed_url
):
    fake.reply(ACTIVATE, 201, answer(env.activation(), trust.certificate()))
    client = client_for(trust.verifier(), tmp_path, fake.base_url)
    client.activate(KEY, now=NOW)
    # The server rotated: the check-in answer is signed by key-2 and carries its certificate.
    key2, token2 = rotated(env, DUE)
    fake.reply(CHECK_IN, 200, answer(token2, trust.certificate(key2, "key-2")))
    assert client.license(now=DUE).token_id == "jti-rotated"
    assert len(cached(client)["trust"]["key_certificates"]) == 2
    fake.close()
    assert offline_run(trust, tmp_path, closed_url, DUE) == {
        "ok": "jti-rotated",
        "keys": ["key-1", "key-2"],
    }


def test_a_revocation_received_online_is_enforced_offline_in_a_fresh_process(
    env, trust, tmp_path, fake, closed_url
):
    fake.reply(ACTIVATE, 201, answer(env.activation(), trust.certificate()))
    client = client_for(trust.verifier(), tmp_path, fake.base_url)
    client.activate(KEY, now=NOW)
    # key-1 leaked: the next answer comes from key-2 with a list withdrawing key-1.
    key2, token2 = rotated(env, DUE)
    revocations = trust.revocations(1, ["key-1"])
    fake.reply(
        CHECK_IN, 200, answer(token2, trust.certificate(key2, "key-2"), key_revocations=revocations)
    )
    client.check_in(now=DUE)
    # A copy of the old key-1 token put back into the cache is refused from then on.
    state = cached(client)
    state["token"] = env.activation()
    with open(client.cache_path, "w") as handle:
        json.dump(state, handle)
    assert offline_run(trust, tmp_path, closed_url, NOW) == {
        "error": "UnknownKey",
        "keys": ["key-2"],
    }


def test_a_replayed_older_revocation_list_does_not_undo_a_revocation(env, trust, tmp_path, fake):
    key2, token2 = rotated(env, NOW)
    newer, older = trust.revocations(2, ["key-1"]), trust.revocations(1, [])
    fake.reply(
        ACTIVATE, 201, answer(token2, trust.certificate(key2, "key-2"), key_revocations=newer)
    )
    client = client_for(trust.verifier(), tmp_path, fake.base_url)
    client.activate(KEY, now=NOW)
    fake.reply(
        CHECK_IN,
        200,
        answer(env.activation(), trust.certificate(), key_revocations=older),
    )
    with pytest.raises(UnknownKey, match="revoked"):
        client.check_in(now=NOW)
    assert cached(client)["trust"]["key_revocations"] == newer
    assert cached(client)["token"] == token2


def test_failing_trust_material_does_not_reject_the_answer_by_itself(env, trust, tmp_path, fake):
    other_root = env.seeded_key("someone else's root")
    body = answer(
        env.activation(),
        trust.certificate(),
        key_revocations="junk",
        root_endorsements=[trust.endorsement(env.seeded_key("r2"), "root-2", by=other_root)],
    )
    fake.reply(ACTIVATE, 201, body)
    client = client_for(trust.verifier(), tmp_path, fake.base_url)
    assert client.activate(KEY, now=NOW).activation_id == env.ACTIVATION_ID
    stored = cached(client)["trust"]
    assert stored["root_endorsements"] == [] and stored["key_revocations"] is None


def test_material_injected_into_the_cache_is_verified_again_and_dropped(env, trust, tmp_path, fake):
    fake.reply(ACTIVATE, 201, answer(env.activation(), trust.certificate()))
    client = client_for(trust.verifier(), tmp_path, fake.base_url)
    client.activate(KEY, now=NOW)
    attacker = env.seeded_key("attacker")
    state = cached(client)
    forged = trust.certificate(attacker, "key-evil", root=attacker)
    state["trust"]["key_certificates"].append(forged)
    with open(client.cache_path, "w") as handle:
        json.dump(state, handle)
    verifier = trust.verifier()
    client_for(verifier, tmp_path, fake.base_url)
    assert verifier.key_ids == ("key-1",)


def test_an_activation_signed_by_an_unknown_key_is_a_clean_unknown_key(env, tmp_path, fake):
    """The seat is already taken on the server: the error says so and what to do."""
    other = env.seeded_key("a key this product has never seen")
    token = env.sign(
        {"alg": "EdDSA", "kid": "key-new", "typ": "activation+jwt"}, env.activation_claims(), other
    )
    fake.reply(ACTIVATE, 201, answer(token))
    client = client_for(env.verifier(), tmp_path, fake.base_url)
    with pytest.raises(UnknownKey) as caught:
        client.activate(KEY, now=NOW)
    message = str(caught.value)
    assert "key-new" in message and "holds its seat" in message
    assert "Activating again from this machine reuses the same seat" in message
    assert caught.value.code == "UnknownKey"
    assert not os.path.exists(client.cache_path)


def test_a_root_client_without_a_certificate_in_the_answer_is_unknown_key(
    env, trust, tmp_path, fake
):
    fake.reply(ACTIVATE, 201, answer(env.activation()))
    client = client_for(trust.verifier(), tmp_path, fake.base_url)
    with pytest.raises(UnknownKey, match="holds its seat"):
        client.activate(KEY, now=NOW)
    assert not os.path.exists(client.cache_path)


def test_trust_learned_by_a_failed_activation_is_kept(env, trust, tmp_path, fake):
    """The certificate verified though the token did not (another machine's): the next
    answer without a certificate is understood."""
    wrong_machine = env.activation(fp=env.fp_hash("another machine"))
    fake.reply(ACTIVATE, 201, answer(wrong_machine, trust.certificate()))
    fake.reply(ACTIVATE, 201, answer(env.activation()))
    client = client_for(trust.verifier(), tmp_path, fake.base_url)
    with pytest.raises(Exception) as caught:
        client.activate(KEY, now=NOW)
    assert caught.value.code == "WrongMachine"  # type: ignore[attr-defined]
    assert cached(client)["trust"]["key_certificates"] == [trust.certificate()]
    fresh = client_for(trust.verifier(), tmp_path, fake.base_url)
    assert fresh.activate(KEY, now=NOW).activation_id == env.ACTIVATION_ID


def test_a_check_in_signed_by_an_unknown_key_keeps_the_stored_token(env, trust, tmp_path, fake):
    fake.reply(ACTIVATE, 201, answer(env.activation(), trust.certificate()))
    client = client_for(trust.verifier(), tmp_path, fake.base_url)
    client.activate(KEY, now=NOW)
    _, token2 = rotated(env, DUE)
    fake.reply(CHECK_IN, 200, answer(token2))  # no certificate for key-2
    assert client.license(now=DUE).token_id == "jti-1"
    with pytest.raises(UnknownKey):
        client.check_in(now=DUE)
    assert cached(client)["token"] == env.activation()


def test_deactivation_forgets_the_token_but_keeps_the_trust_material(env, trust, tmp_path, fake):
    fake.reply(ACTIVATE, 201, answer(env.activation(), trust.certificate()))
    fake.reply(DEACTIVATE, 204)
    client = client_for(trust.verifier(), tmp_path, fake.base_url)
    client.activate(KEY, now=NOW)
    client.deactivate()
    state = cached(client)
    assert state.get("token") is None and state.get("license_key") is None
    assert state["trust"]["key_certificates"] == [trust.certificate()]
    with pytest.raises(NotActivated):
        client.license(now=NOW)


def test_an_air_gapped_response_file_carries_its_certificate(env, trust, tmp_path):
    client = client_for(trust.verifier(), tmp_path, "http://127.0.0.1:9")
    request = client.offline_request(KEY)
    response = {
        "type": "activation_response",
        "version": 1,
        **answer(env.activation(), trust.certificate()),
        "nonce": request["nonce"],
    }
    assert client.install(response, now=NOW).activation_id == env.ACTIVATION_ID
    assert cached(client)["trust"]["key_certificates"] == [trust.certificate()]
    fresh = client_for(trust.verifier(), tmp_path, "http://127.0.0.1:9")
    assert fresh.license(now=NOW).activation_id == env.ACTIVATION_ID


def test_a_pinning_client_stores_no_trust_material(env, trust, tmp_path, fake):
    fake.reply(ACTIVATE, 201, answer(env.activation(), trust.certificate()))
    client = client_for(env.verifier(), tmp_path, fake.base_url)
    client.activate(KEY, now=NOW)
    assert "trust" not in cached(client)


def test_a_client_tested_ten_days_later_leaves_the_clock_mark_alone(
    env, trust, tmp_path, fake, clock
):
    """``now=`` in a test of the client never moves the persisted high-water mark."""
    state_path = tmp_path / "state.json"
    long = env.activation(exp=NOW + 365 * DAY)
    fake.reply(ACTIVATE, 201, answer(long, trust.certificate()))
    client = client_for(trust.verifier(state_path=state_path), tmp_path, fake.base_url)
    client.activate(KEY, now=NOW + 10 * DAY)
    client.license(now=NOW + 10 * DAY)
    assert not state_path.exists()
    # The real run that follows (the local clock reads NOW) is not a rollback.
    real = client_for(trust.verifier(state_path=state_path), tmp_path, fake.base_url)
    assert real.license().activation_id == env.ACTIVATION_ID
    assert json.loads(state_path.read_text())["high_water"] == NOW
