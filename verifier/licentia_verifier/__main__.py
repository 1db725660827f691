"""``python -m licentia_verifier verify TOKEN --jwks FILE --product P`` for support staff.

Prints the verified license as JSON and exits 0, or prints ``ErrorName: reason`` and exits 1
(2 for a usage error). With ``--fingerprint`` the token is verified as an activation token,
without it as a license token. Without ``--issuer`` the token's own ``iss`` is accepted and
shown in the output (the signature is still checked against the key set).

``--root FILE`` (the root document) replaces ``--jwks`` for a product that embeds the root;
``--trust FILE`` (repeatable) offers the trust material of a JSON file first: a licensing
answer, ``/.well-known/key-certificates.json``, or a ``LicenseClient`` cache file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ._errors import LicenseError
from ._verifier import License, Verifier, _b64url_decode, _parse_json_object


def _unverified_issuer(token: str) -> str:
    """The ``iss`` of a token before verification, only to pick the issuer to check."""
    try:
        payload = token.split(".")[1].encode("ascii")
        claims = _parse_json_object(_b64url_decode(payload, "payload"), "payload")
    except (IndexError, UnicodeEncodeError, LicenseError):
        return "?"
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) and issuer else "?"


def _as_dict(lic: License, issuer: str) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat().replace("+00:00", "Z")

    return {
        "license_id": lic.license_id,
        "activation_id": lic.activation_id,
        "organization_id": lic.organization_id,
        "product": lic.product,
        "issuer": issuer,
        "tier": lic.tier,
        "features": dict(lic.features),
        "max_activations": lic.max_activations,
        "issued_at": iso(lic.issued_at),
        "expires_at": iso(lic.expires_at),
        "license_expires_at": iso(lic.license_expires_at),
        "token_id": lic.token_id,
        "nonce": lic.nonce,
        "user_id": lic.user_id,
    }


def _parse_now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text), timezone.utc)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise SystemExit(f"--now: not an ISO 8601 time or epoch seconds: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m licentia_verifier", description="Verify a Licentia token offline."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify a license or activation token")
    verify.add_argument("token", help="the token, or - to read it from standard input")
    keys = verify.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks", help="the JWKS file the product embeds")
    keys.add_argument("--root", help="the root document the product embeds (licentia-root.json)")
    verify.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="FILE",
        help="JSON with trust material: an answer, key-certificates.json, a client cache file",
    )
    verify.add_argument("--product", required=True, help="the product code (aud)")
    verify.add_argument("--issuer", help="the expected issuer (default: the token's own iss)")
    verify.add_argument("--fingerprint", help="machine fingerprint: verify an activation token")
    verify.add_argument("--now", help="verify as of this time (ISO 8601 or epoch seconds)")
    args = parser.parse_args(argv)

    token = sys.stdin.read().strip() if args.token == "-" else args.token.strip()
    issuer = args.issuer or _unverified_issuer(token)
    source = args.jwks or args.root
    try:
        if args.root is not None:
            verifier = Verifier.from_root(args.root, product=args.product, issuer=issuer)
        else:
            verifier = Verifier.from_jwks(args.jwks, product=args.product, issuer=issuer)
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: cannot load key set {source!r}: {exc}", file=sys.stderr)
        return 2
    for path in args.trust:
        try:
            with open(path, encoding="utf-8") as handle:
                material = json.load(handle)
        except (OSError, ValueError) as exc:
            print(f"error: cannot read trust material {path!r}: {exc}", file=sys.stderr)
            return 2
        if isinstance(material, dict) and isinstance(material.get("trust"), dict):
            material = material["trust"]  # a LicenseClient cache file
        if not isinstance(material, dict):
            print(f"error: {path!r} is not a JSON object", file=sys.stderr)
            return 2
        for error in verifier.add_trust_material(material):
            print(f"note: {path}: refused {error.code}: {error}", file=sys.stderr)
    now = _parse_now(args.now)
    try:
        if args.fingerprint is not None:
            lic = verifier.verify_activation(token, fingerprint=args.fingerprint, now=now)
        else:
            lic = verifier.verify_license(token, now=now)
    except LicenseError as exc:
        hint = ""
        if exc.code == "WrongTokenType" and args.fingerprint is None:
            hint = " (pass --fingerprint to verify an activation token)"
        print(f"{exc.code}: {exc}{hint}")
        return 1
    print(json.dumps(_as_dict(lic, issuer), indent=2, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
