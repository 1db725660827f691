"""Every vector in tests/vectors/ gives its expected result, and the files are up to date."""

from __future__ import annotations

import base64
import importlib.util
import json
import uuid
from datetime import timedelta
from pathlib import Path

import licentia_verifier
import pytest
from licentia_verifier import LicenseError, Verifier

HERE = Path(__file__).resolve().parent
VECTORS = sorted(HERE.glob("*.json"))


def _generator():
    spec = importlib.util.spec_from_file_location("licentia_vector_generator", HERE / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _uuid_text(claim: str) -> str:
    """An id claim (22-character base64url of 16 bytes) as canonical UUID text."""
    assert len(claim) == 22
    return str(uuid.UUID(bytes=base64.urlsafe_b64decode(claim + "==")))


def test_vectors_exist_for_every_error_name():
    names = {json.loads(p.read_text())["expected"].get("error") for p in VECTORS}
    assert names - {None} == {
        "MalformedToken",
        "InvalidSignature",
        "UnknownKey",
        "WrongTokenType",
        "WrongIssuer",
        "WrongProduct",
        "WrongMachine",
        "Expired",
        "NotYetValid",
        "ClockRollback",
    }
    methods = {
        json.loads(p.read_text())["method"]
        for p in VECTORS
        if "ok" in json.loads(p.read_text())["expected"]
    }
    assert methods == {"verify_license", "verify_activation", "verify_usage"}


def test_generator_output_is_stable():
    generator = _generator()
    first = {name: generator.render(v) for name, v in generator.build().items()}
    second = {name: generator.render(v) for name, v in generator.build().items()}
    assert first == second
    on_disk = {p.stem: p.read_text() for p in VECTORS}
    assert on_disk == first, "run: uv run python tests/vectors/generate.py"


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path):
    vector = json.loads(path.read_text())
    options = vector["verifier"]
    verifier = Verifier.from_jwks(
        vector["jwks"],
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
    expected = vector["expected"]
    if "error" in expected:
        with pytest.raises(LicenseError) as info:
            call(vector["token"], **kwargs)
        assert type(info.value) is getattr(licentia_verifier, expected["error"])
        return
    lic = call(vector["token"], **kwargs)
    claims, ids = expected["ok"], expected["ids"]
    if vector["method"] == "verify_usage":
        usage, lic = lic, lic.license
        assert (usage.meter, usage.used, usage.limit) == (
            claims["meter"],
            claims["used"],
            claims["limit"],
        )
        assert usage.remaining == max(claims["limit"] - claims["used"], 0)
        end = usage.period_ends_at
        assert (None if end is None else int(end.timestamp())) == claims["period_end"]
    assert lic.license_id == ids["license_id"] == _uuid_text(claims["sub"])
    assert lic.organization_id == ids["organization_id"] == _uuid_text(claims["org"])
    assert lic.product == claims["aud"]
    assert lic.tier == claims["tier"]
    assert dict(lic.features) == claims["features"]
    assert lic.max_activations == claims["max_activations"]
    assert int(lic.issued_at.timestamp()) == claims["iat"]
    assert int(lic.expires_at.timestamp()) == claims["exp"]
    lexp = lic.license_expires_at
    assert (None if lexp is None else int(lexp.timestamp())) == claims["license_expires_at"]
    assert lic.activation_id == ids["activation_id"]
    assert ids["activation_id"] == (_uuid_text(claims["act"]) if "act" in claims else None)
    assert lic.token_id == claims["jti"]
    assert lic.nonce == claims.get("nonce")
    until = lic.updates_until
    assert (None if until is None else int(until.timestamp())) == claims.get("updates_until")
    assert lic.is_trial is claims.get("trial", False)
    assert lic.user_id == ids.get("user_id")
    assert ids.get("user_id") == (_uuid_text(claims["usr"]) if "usr" in claims else None)
    if "released_at" in vector:
        assert lic.allows_release(vector["released_at"])
