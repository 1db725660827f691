"""The shared test vectors (tests/vectors/ in the repository), checked with only the verifier
installed. Skipped when the verifier is tested outside the repository checkout."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

import licentia_verifier
from licentia_verifier import LicenseError, Verifier

VECTOR_DIR = Path(__file__).resolve().parents[2] / "tests" / "vectors"
VECTORS = sorted(VECTOR_DIR.glob("*.json")) if VECTOR_DIR.is_dir() else []


@pytest.mark.skipif(not VECTORS, reason=f"no test vectors at {VECTOR_DIR}")
@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_shared_vector(path):
    vector = json.loads(path.read_text())
    options = vector["verifier"]
    verifier = Verifier.from_jwks(
        json.dumps(vector["jwks"]),
        product=options["product"],
        issuer=options["issuer"],
        leeway=timedelta(seconds=options["leeway_seconds"]),
    )
    kwargs = {"now": vector["now"]}
    if vector["method"] == "verify_activation":
        kwargs["fingerprint"] = vector["fingerprint"]
    if "released_at" in vector:
        kwargs["released_at"] = vector["released_at"]
    call = getattr(verifier, vector["method"])
    if "error" in vector["expected"]:
        with pytest.raises(LicenseError) as info:
            call(vector["token"], **kwargs)
        assert type(info.value).__name__ == vector["expected"]["error"]
        assert hasattr(licentia_verifier, vector["expected"]["error"])
    else:
        claims, ids = vector["expected"]["ok"], vector["expected"]["ids"]
        lic = call(vector["token"], **kwargs)
        if vector["method"] == "verify_usage":
            assert (lic.meter, lic.used, lic.limit) == (
                claims["meter"],
                claims["used"],
                claims["limit"],
            )
            lic = lic.license
        assert (lic.license_id, lic.product, lic.tier) == (
            ids["license_id"],
            claims["aud"],
            claims["tier"],
        )
        assert (lic.organization_id, lic.activation_id) == (
            ids["organization_id"],
            ids["activation_id"],
        )
        assert dict(lic.features) == claims["features"]
        assert int(lic.expires_at.timestamp()) == claims["exp"]
        until = lic.updates_until
        assert (None if until is None else int(until.timestamp())) == claims.get("updates_until")
        assert lic.is_trial is claims.get("trial", False)
