"""The verifier with a root of trust (docs/token-format.md, "Root of trust"): building one
from the root document, the three kinds of trust material, how they decide a token, and
the export that a client persists. Only licentia-verifier, cryptography and pytest."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from licentia_verifier import (
    InvalidSignature,
    LicenseError,
    MalformedToken,
    UnknownKey,
    Verifier,
    WrongIssuer,
    WrongTokenType,
)

NOW = 1_780_000_000


# --- building ---------------------------------------------------------------------------


def test_from_root_takes_the_document_as_dict_text_bytes_or_path(trust, env, tmp_path):
    path = tmp_path / "root.json"
    path.write_text(json.dumps(trust.document))
    for root in (trust.document, json.dumps(trust.document), json.dumps(trust.document).encode()):
        verifier = Verifier.from_root(root, product=env.PRODUCT, issuer=env.ISSUER)
        assert verifier.root_ids == ("root-1",) and verifier.key_ids == ()
    verifier = Verifier.from_root(path, product=env.PRODUCT, issuer=env.ISSUER)
    assert verifier.root_ids == ("root-1",)
    assert "roots=['root-1']" in repr(verifier)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"keys": []}, "no Ed25519 signature key"),
        ({"root_endorsements": []}, '"keys" array'),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA", "kid": "r", "d": "x"}]}, "private"),
        ("[1]", '"keys" array'),
        ("{nope", "not valid JSON"),
    ],
)
def test_an_unusable_root_document_is_a_value_error(env, document, message):
    with pytest.raises(ValueError, match=message):
        Verifier.from_root(document, product=env.PRODUCT, issuer=env.ISSUER)


def test_root_endorsements_in_the_document_must_be_an_array(trust, env):
    with pytest.raises(ValueError, match="root_endorsements"):
        Verifier.from_root(
            {**trust.document, "root_endorsements": "x"}, product=env.PRODUCT, issuer=env.ISSUER
        )


def test_a_root_cannot_also_be_pinned(trust, env):
    jwks = {"keys": trust.document["keys"]}
    with pytest.raises(ValueError, match="root key cannot also be pinned"):
        Verifier.from_root(trust.document, product=env.PRODUCT, issuer=env.ISSUER, jwks=jwks)


def test_from_jwks_is_unchanged(env):
    verifier = env.verifier()
    assert verifier.key_ids == ("key-1",) and verifier.root_ids == ()
    assert verifier.verify_activation(env.activation(), fingerprint=env.FINGERPRINT, now=NOW)
    assert verifier.trust_material() == {
        "root_endorsements": [],
        "key_certificates": [],
        "key_revocations": None,
    }


# --- the token path ---------------------------------------------------------------------


def test_a_certified_key_verifies_tokens(trust, env):
    verifier = trust.verifier()
    with pytest.raises(UnknownKey, match="neither pinned nor certified"):
        verifier.verify_activation(env.activation(), fingerprint=env.FINGERPRINT, now=NOW)
    assert verifier.add_key_certificate(trust.certificate()) == "key-1"
    assert verifier.key_ids == ("key-1",)
    lic = verifier.verify_activation(env.activation(), fingerprint=env.FINGERPRINT, now=NOW)
    assert lic.activation_id == env.ACTIVATION_ID
    assert verifier.verify_license(env.license(), now=NOW).license_id == env.LICENSE_ID


def test_root_keys_never_verify_tokens(trust, env):
    verifier = trust.verifier()
    token = env.sign(
        {"alg": "EdDSA", "kid": trust.root_kid, "typ": "license+jwt"},
        env.license_claims(),
        key=trust.root,
    )
    with pytest.raises(UnknownKey):
        verifier.verify_license(token, now=NOW)
    # Nor can the root be certified as a signing key.
    with pytest.raises(MalformedToken, match="root key"):
        verifier.add_key_certificate(trust.certificate(trust.root, "root-as-signer"))


@pytest.mark.parametrize(
    ("nbf", "exp", "accepted"),
    [
        (NOW - 60, NOW - 60, True),  # the window holds exactly the token's iat
        (NOW - 86400, NOW - 61, False),  # ended a second before iat
        (NOW - 59, NOW + 86400, False),  # starts a second after iat
        (NOW - 86400, NOW - 3600, False),  # expired an hour before
    ],
)
def test_the_window_bounds_the_tokens_iat_without_leeway(trust, env, nbf, exp, accepted):
    verifier = trust.verifier()
    verifier.add_key_certificate(trust.certificate(nbf=nbf, exp=exp))
    token = env.license()  # iat NOW - 60
    if accepted:
        assert verifier.verify_license(token, now=NOW)
        # The window bounds iat, not now: much later, the token's own exp decides.
        assert verifier.verify_license(env.license(exp=NOW + 10**7), now=NOW + 10**6)
    else:
        with pytest.raises(UnknownKey, match="covers the token's issue time"):
            verifier.verify_license(token, now=NOW)


def test_a_renewed_certificate_adds_a_window(trust, env):
    verifier = trust.verifier()
    verifier.add_key_certificate(trust.certificate(nbf=NOW - 86400, exp=NOW - 3600))
    with pytest.raises(UnknownKey):
        verifier.verify_license(env.license(), now=NOW)
    verifier.add_key_certificate(trust.certificate(nbf=NOW - 3600, exp=NOW + 86400))
    assert verifier.verify_license(env.license(), now=NOW)
    # Offering the same certificate again changes nothing.
    before = verifier.trust_material()
    verifier.add_key_certificate(trust.certificate(nbf=NOW - 3600, exp=NOW + 86400))
    assert verifier.trust_material() == before and len(before["key_certificates"]) == 2


def test_a_revoked_kid_is_refused_certified_or_pinned(trust, env):
    certified = trust.certified_verifier()
    pinned_too = Verifier.from_root(
        trust.document, product=env.PRODUCT, issuer=env.ISSUER, jwks=env.jwks
    )
    token = env.activation()
    for verifier in (certified, pinned_too):
        # Verified once, so the header is cached: the revocation must still apply.
        assert verifier.verify_activation(token, fingerprint=env.FINGERPRINT, now=NOW)
        assert verifier.add_key_revocations(trust.revocations(1, ["key-1"])) is True
        assert verifier.revoked_key_ids == ("key-1",) and verifier.key_ids == ()
        with pytest.raises(UnknownKey, match="revoked"):
            verifier.verify_activation(token, fingerprint=env.FINGERPRINT, now=NOW)


def test_a_replayed_older_revocation_list_is_ignored(trust, env):
    verifier = trust.certified_verifier()
    assert verifier.add_key_revocations(trust.revocations(2, ["key-1"])) is True
    assert verifier.add_key_revocations(trust.revocations(1, [])) is False
    assert verifier.add_key_revocations(trust.revocations(2, [])) is False
    with pytest.raises(UnknownKey):
        verifier.verify_license(env.license(), now=NOW)
    assert verifier.trust_material()["key_revocations"] == trust.revocations(2, ["key-1"])
    # A newer list is the whole truth: it can reinstate a kid.
    assert verifier.add_key_revocations(trust.revocations(3, ["other"])) is True
    assert verifier.verify_license(env.license(), now=NOW)


def test_pinned_keys_and_a_root_together(trust, env):
    other = env.seeded_key("another signing key")
    verifier = Verifier.from_root(
        trust.document, product=env.PRODUCT, issuer=env.ISSUER, jwks=env.jwks
    )
    assert verifier.verify_license(env.license(), now=NOW)  # pinned, no certificate needed
    verifier.add_key_certificate(trust.certificate(other, "key-2"))
    token = env.sign(
        {"alg": "EdDSA", "kid": "key-2", "typ": "license+jwt"}, env.license_claims(), other
    )
    assert verifier.verify_license(token, now=NOW)
    assert set(verifier.key_ids) == {"key-1", "key-2"}
    # A certificate that contradicts a pinned key is refused.
    with pytest.raises(MalformedToken, match="another public key"):
        verifier.add_key_certificate(trust.certificate(other, "key-1"))


# --- checking trust material ------------------------------------------------------------


def test_a_forged_certificate_is_invalid_signature(trust, env):
    attacker = env.seeded_key("attacker")
    verifier = trust.verifier()
    forged = trust.certificate(attacker, "key-1", root=attacker)  # signed as "root-1"
    with pytest.raises(InvalidSignature):
        verifier.add_key_certificate(forged)
    # A genuine certificate with its payload swapped for the attacker's key.
    genuine = trust.certificate().split(".")
    swapped = trust.certificate(attacker, "key-1", root=attacker).split(".")
    with pytest.raises(InvalidSignature):
        verifier.add_key_certificate(f"{genuine[0]}.{swapped[1]}.{genuine[2]}")
    assert verifier.key_ids == () and verifier.trust_material()["key_certificates"] == []


def test_a_certificate_under_another_root_is_unknown_key(trust, env):
    other_root = env.seeded_key("another deployment's root")
    verifier = trust.verifier()
    with pytest.raises(UnknownKey, match="not a trusted root"):
        verifier.add_key_certificate(trust.certificate(root=other_root, root_kid="root-9"))
    with pytest.raises(UnknownKey):
        verifier.verify_license(env.license(), now=NOW)


@pytest.mark.parametrize(
    ("method", "typ"),
    [
        ("add_key_certificate", "root+jwt"),
        ("add_key_certificate", "license+jwt"),
        ("add_root_endorsement", "key+jwt"),
        ("add_key_revocations", "key+jwt"),
    ],
)
def test_material_of_another_kind_is_wrong_token_type(trust, env, method, typ):
    claims = {"iss": env.ISSUER, "iat": NOW}
    token = env.sign({"alg": "EdDSA", "kid": trust.root_kid, "typ": typ}, claims, trust.root)
    with pytest.raises(WrongTokenType):
        getattr(trust.verifier(), method)(token)


def test_a_certificate_is_not_a_token(trust, env):
    verifier = trust.certified_verifier()
    with pytest.raises(WrongTokenType):
        verifier.verify_license(trust.certificate(), now=NOW)


def test_material_for_another_issuer_is_wrong_issuer(trust, env):
    verifier = trust.verifier()
    other = "https://other.example.test"
    with pytest.raises(WrongIssuer):
        verifier.add_key_certificate(trust.certificate(iss=other))
    with pytest.raises(WrongIssuer):
        verifier.add_root_endorsement(trust.endorsement(env.seeded_key("r2"), "root-2", iss=other))
    with pytest.raises(WrongIssuer):
        verifier.add_key_revocations(trust.revocations(1, ["key-1"], iss=other))


def _jwk(env: Any, **changes: Any) -> dict[str, Any]:
    value = {**env.jwk(env.key, "key-1"), **changes}
    return {k: v for k, v in value.items() if v is not None}


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": None},
        {"sub": 7},
        {"jwk": None},
        {"jwk": "key"},
        {"jwk": "private"},
        {"jwk": "other-kid"},
        {"jwk": "short"},
        {"jwk": "rsa"},
        {"jwk": "enc"},
        {"nbf": None},
        {"exp": "2030"},
        {"nbf": NOW + 10, "exp": NOW},
        {"exp": True},
        {"iat": 1.5},
        {"iss": None},
        {"exp": 253402300800},
    ],
    ids=repr,
)
def test_certificate_claims_of_the_wrong_shape_are_malformed(trust, env, changes):
    claims: dict[str, Any] = {
        "iss": env.ISSUER,
        "sub": "key-1",
        "jwk": _jwk(env),
        "iat": NOW,
        "nbf": NOW - 100,
        "exp": NOW + 100,
    }
    jwk_change = changes.pop("jwk", "keep")
    if jwk_change != "keep":
        claims["jwk"] = {
            None: None,
            "key": "key",
            "private": _jwk(env, d="c2VjcmV0"),
            "other-kid": _jwk(env, kid="key-2"),
            "short": _jwk(env, x="AAAA"),
            "rsa": _jwk(env, kty="RSA"),
            "enc": _jwk(env, use="enc"),
        }[jwk_change]
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    token = env.sign({"alg": "EdDSA", "kid": trust.root_kid, "typ": "key+jwt"}, claims, trust.root)
    with pytest.raises(MalformedToken):
        trust.verifier().add_key_certificate(token)


@pytest.mark.parametrize(
    "changes",
    [{"seq": 0}, {"seq": True}, {"seq": 1.0}, {"revoked": "key-1"}, {"revoked": [1]}],
    ids=repr,
)
def test_revocation_claims_of_the_wrong_shape_are_malformed(trust, changes):
    with pytest.raises(MalformedToken):
        trust.verifier().add_key_revocations(
            trust.revocations(changes.get("seq", 1), changes.get("revoked", ["key-1"]))
        )


def test_duplicate_claim_names_in_material_are_malformed(trust, env):
    payload = (
        f'{{"iss":"{env.ISSUER}","iat":{NOW},"seq":1,"revoked":["key-1"],"revoked":[]}}'
    ).encode()
    token = env.sign(
        {"alg": "EdDSA", "kid": trust.root_kid, "typ": "key-revocations+jwt"}, payload, trust.root
    )
    with pytest.raises(MalformedToken):
        trust.verifier().add_key_revocations(token)


@pytest.mark.parametrize("junk", ["", "a.b", "a.b.c.d", "x" * 20000, "é.a.b", None, 7])
def test_junk_material_is_malformed(trust, junk):
    verifier = trust.verifier()
    for method in ("add_key_certificate", "add_root_endorsement", "add_key_revocations"):
        with pytest.raises(MalformedToken):
            getattr(verifier, method)(junk)


def test_a_pinning_verifier_trusts_no_root(trust, env):
    verifier = env.verifier()
    with pytest.raises(UnknownKey):
        verifier.add_key_certificate(trust.certificate())
    with pytest.raises(UnknownKey):
        verifier.add_key_revocations(trust.revocations(1, ["key-1"]))
    assert verifier.verify_license(env.license(), now=NOW)


# --- root endorsements ------------------------------------------------------------------


def test_an_endorsed_root_certifies_keys(trust, env):
    next_root = env.seeded_key("root 2")
    verifier = trust.verifier()
    certificate = trust.certificate(root=next_root, root_kid="root-2")
    with pytest.raises(UnknownKey):
        verifier.add_key_certificate(certificate)
    assert verifier.add_root_endorsement(trust.endorsement(next_root, "root-2")) == "root-2"
    assert verifier.root_ids == ("root-1", "root-2")
    verifier.add_key_certificate(certificate)
    assert verifier.verify_license(env.license(), now=NOW)
    # The new root's revocation list applies too.
    verifier.add_key_revocations(trust.revocations(1, ["key-1"], root=next_root, root_kid="root-2"))
    with pytest.raises(UnknownKey):
        verifier.verify_license(env.license(), now=NOW)


def test_an_endorsement_by_an_untrusted_root_is_refused(trust, env):
    stranger = env.seeded_key("stranger")
    verifier = trust.verifier()
    with pytest.raises(UnknownKey):
        verifier.add_root_endorsement(
            trust.endorsement(env.seeded_key("r3"), "root-3", by=stranger, by_kid="root-9")
        )
    assert verifier.root_ids == ("root-1",)


def test_an_endorsement_cannot_change_a_trusted_roots_key(trust, env):
    verifier = trust.verifier()
    with pytest.raises(MalformedToken, match="another public key"):
        verifier.add_root_endorsement(trust.endorsement(env.seeded_key("evil"), "root-1"))
    # Nor turn a signing key into a root.
    verifier.add_key_certificate(trust.certificate())
    with pytest.raises(MalformedToken, match="signing key"):
        verifier.add_root_endorsement(trust.endorsement(env.key, "root-x"))


def test_the_documents_endorsements_are_processed_and_bad_ones_skipped(trust, env):
    r2, r3 = env.seeded_key("root 2"), env.seeded_key("root 3")
    chain = [
        trust.endorsement(r3, "root-3", by=env.seeded_key("retired root"), by_kid="root-0"),
        trust.endorsement(r2, "root-2"),
        trust.endorsement(r3, "root-3", by=r2, by_kid="root-2"),
    ]
    verifier = Verifier.from_root(
        {**trust.document, "root_endorsements": chain}, product=env.PRODUCT, issuer=env.ISSUER
    )
    assert verifier.root_ids == ("root-1", "root-2", "root-3")
    verifier.add_key_certificate(trust.certificate(root=r3, root_kid="root-3"))
    assert verifier.verify_license(env.license(), now=NOW)


# --- export and load --------------------------------------------------------------------


def test_the_export_feeds_a_fresh_verifier(trust, env):
    next_root = env.seeded_key("root 2")
    first = trust.verifier()
    first.add_root_endorsement(trust.endorsement(next_root, "root-2"))
    first.add_key_certificate(trust.certificate(root=next_root, root_kid="root-2"))
    first.add_key_revocations(trust.revocations(4, ["old-key"]))
    exported = json.loads(json.dumps(first.trust_material()))
    assert [len(exported[k]) for k in ("root_endorsements", "key_certificates")] == [1, 1]

    fresh = trust.verifier()
    assert fresh.add_trust_material(exported) == []
    assert fresh.trust_material() == exported
    assert fresh.revoked_key_ids == ("old-key",)
    assert fresh.verify_license(env.license(), now=NOW)


def test_add_trust_material_takes_an_answer_and_reports_what_failed(trust, env):
    verifier = trust.verifier()
    answer = {
        "token": env.activation(),
        "root_endorsements": [],
        "key_certificate": trust.certificate(),
        "key_revocations": "not-a-list",
    }
    errors = verifier.add_trust_material(answer)
    assert [type(e) for e in errors] == [MalformedToken]
    assert verifier.verify_activation(answer["token"], fingerprint=env.FINGERPRINT, now=NOW)
    # The well-known document's shape, and nulls, are understood too.
    other = env.seeded_key("key 2")
    well_known = {
        "certificates": [trust.certificate(other, "key-2"), 42],
        "key_revocations": None,
        "root_endorsements": [],
    }
    errors = verifier.add_trust_material(well_known)
    assert [type(e) for e in errors] == [MalformedToken]
    assert set(verifier.key_ids) == {"key-1", "key-2"}
    with pytest.raises(TypeError):
        verifier.add_trust_material(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_every_failure_is_a_license_error(trust, env):
    verifier = trust.verifier()
    for junk in ({}, [], b"\xff.\xff.\xff", "..", "e30.e30.e30"):
        for method in ("add_key_certificate", "add_root_endorsement", "add_key_revocations"):
            with pytest.raises(LicenseError):
                getattr(verifier, method)(junk)


def test_leeway_does_not_widen_a_certificate_window(trust, env):
    verifier = trust.verifier(leeway=timedelta(hours=1))
    verifier.add_key_certificate(trust.certificate(nbf=NOW - 86400, exp=NOW - 61))
    with pytest.raises(UnknownKey):
        verifier.verify_license(env.license(), now=NOW)


# --- the support CLI --------------------------------------------------------------------


def test_cli_verifies_with_the_root_and_trust_files(trust, env, tmp_path, capsys):
    from licentia_verifier.__main__ import main

    root = tmp_path / "root.json"
    root.write_text(json.dumps(trust.document))
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({"token": env.license(), "key_certificate": trust.certificate()}))
    cache = tmp_path / "licentia-acme-ide.json"
    cache.write_text(json.dumps({"trust": {"key_certificates": [trust.certificate()]}}))
    base = ["verify", "--root", str(root), "--product", env.PRODUCT, "--now", str(NOW)]

    assert main([*base, env.license()]) == 1
    assert capsys.readouterr().out.startswith("UnknownKey: ")
    for trust_file in (answer, cache):
        assert main([*base, "--trust", str(trust_file), env.license()]) == 0
        assert json.loads(capsys.readouterr().out)["license_id"] == env.LICENSE_ID

    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps({"key_certificate": "not-a-certificate"}))
    assert main([*base, "--trust", str(junk), env.license()]) == 1
    captured = capsys.readouterr()
    assert "refused MalformedToken" in captured.err
    assert captured.out.startswith("UnknownKey: ")
