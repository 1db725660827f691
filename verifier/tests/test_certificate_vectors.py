"""The certificate-path vectors (tests/vectors/certificates/ in the repository) through the
verifier's public API, with only the verifier installed: a root-mode verifier built from the
vector's root document, each piece of trust material offered in order with its outcome
compared, then the token. Skipped when the verifier is tested outside the checkout."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import pytest

import licentia_verifier
from licentia_verifier import LicenseError, Verifier

VECTOR_DIR = Path(__file__).resolve().parents[2] / "tests" / "vectors" / "certificates"
VECTORS = sorted(VECTOR_DIR.glob("*.json")) if VECTOR_DIR.is_dir() else []


def outcome(call: Callable[[], Any]) -> str:
    """ "ok", "ignored" (a revocation list not newer than the stored one) or the error name."""
    try:
        result = call()
    except LicenseError as error:
        assert hasattr(licentia_verifier, type(error).__name__)
        return type(error).__name__
    return "ignored" if result is False else "ok"


def build(vector: dict[str, Any]) -> tuple[Verifier, dict[str, list[str]]]:
    options = vector["verifier"]
    verifier = Verifier.from_root(
        json.dumps(vector["root"]),
        product=options["product"],
        issuer=options["issuer"],
        leeway=timedelta(seconds=options["leeway_seconds"]),
    )
    results = {
        "root_endorsements": [
            outcome(lambda t=t: verifier.add_root_endorsement(t))
            for t in vector["root_endorsements"]
        ],
        "key_certificates": [
            outcome(lambda t=t: verifier.add_key_certificate(t)) for t in vector["key_certificates"]
        ],
        "key_revocations": [
            outcome(lambda t=t: verifier.add_key_revocations(t)) for t in vector["key_revocations"]
        ],
    }
    return verifier, results


def check_token(verifier: Verifier, vector: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"now": vector["now"]}
    if vector["method"] == "verify_activation":
        kwargs["fingerprint"] = vector["fingerprint"]
    call = getattr(verifier, vector["method"])
    expected = vector["expected"]
    if "error" in expected:
        with pytest.raises(LicenseError) as info:
            call(vector["token"], **kwargs)
        assert type(info.value).__name__ == expected["error"]
        return
    lic = call(vector["token"], **kwargs)
    claims, ids = expected["ok"], expected["ids"]
    assert (lic.license_id, lic.organization_id, lic.activation_id) == (
        ids["license_id"],
        ids["organization_id"],
        ids["activation_id"],
    )
    assert (lic.product, lic.tier, dict(lic.features)) == (
        claims["aud"],
        claims["tier"],
        claims["features"],
    )
    assert int(lic.issued_at.timestamp()) == claims["iat"]
    assert int(lic.expires_at.timestamp()) == claims["exp"]


@pytest.mark.skipif(not VECTORS, reason=f"no certificate vectors at {VECTOR_DIR}")
@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_certificate_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    verifier, results = build(vector)
    for field, outcomes in results.items():
        assert outcomes == vector["expected"][field], field
    check_token(verifier, vector)


@pytest.mark.skipif(not VECTORS, reason=f"no certificate vectors at {VECTOR_DIR}")
@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_certificate_vector_through_the_exported_material(path: Path) -> None:
    """What one verifier accepted, exported and fed to a fresh one in one call, decides the
    token the same way (what a client persists across processes)."""
    vector = json.loads(path.read_text())
    first, _ = build(vector)
    exported = json.loads(json.dumps(first.trust_material()))
    options = vector["verifier"]
    fresh = Verifier.from_root(
        vector["root"],
        product=options["product"],
        issuer=options["issuer"],
        leeway=timedelta(seconds=options["leeway_seconds"]),
    )
    assert fresh.add_trust_material(exported) == []
    assert fresh.trust_material() == exported
    check_token(fresh, vector)


@pytest.mark.skipif(not VECTORS, reason=f"no certificate vectors at {VECTOR_DIR}")
@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_certificate_vector_as_one_answer(path: Path) -> None:
    """The vector's material offered as a licensing answer carries it (the spec's order:
    endorsements, certificates, revocation lists): the token is decided the same way and
    every refused piece is reported by its error."""
    vector = json.loads(path.read_text())
    options = vector["verifier"]
    verifier = Verifier.from_root(
        vector["root"], product=options["product"], issuer=options["issuer"]
    )
    errors = verifier.add_trust_material(
        {
            "root_endorsements": vector["root_endorsements"],
            "key_certificates": vector["key_certificates"],
            "key_revocations": vector["key_revocations"],
        }
    )
    expected = vector["expected"]
    refused = [
        name
        for field in ("root_endorsements", "key_certificates", "key_revocations")
        for name in expected[field]
        if name not in ("ok", "ignored")
    ]
    assert [type(error).__name__ for error in errors] == refused
    check_token(verifier, vector)
