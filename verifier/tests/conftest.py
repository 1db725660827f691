"""Fixtures for the verifier's own tests: tokens are signed by hand with `cryptography`, so
these tests run where only licentia-verifier, cryptography and pytest are installed."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ISSUER = "https://licensing.example.test"
PRODUCT = "acme-ide"
NOW = 1_780_000_000  # a fixed "now" in epoch seconds
FINGERPRINT = "machine-fingerprint-1"
# What the verifier reports (canonical UUID text) and what the token carries: the UUID's
# 16 bytes as 22-character unpadded base64url (docs/token-format.md, "Identifiers").
LICENSE_ID = "5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11"
ORG_ID = "0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ACTIVATION_ID = "7d9e8f70-1a2b-4c3d-8e4f-5a6b7c8d9e0f"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def id_claim(uuid_text: str) -> str:
    return b64(bytes.fromhex(uuid_text.replace("-", "")))


def fp_hash(fingerprint: str) -> str:
    return b64(hashlib.sha256(fingerprint.encode("utf-8")).digest())


def seeded_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def jwk(key: Ed25519PrivateKey, kid: str) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64(public_raw(key)),
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    }


def encode_segment(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return b64(bytes(value))
    return b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def sign(key: Ed25519PrivateKey, header: Any, claims: Any) -> str:
    signing_input = encode_segment(header) + "." + encode_segment(claims)
    return signing_input + "." + b64(key.sign(signing_input.encode("ascii")))


def license_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": id_claim(LICENSE_ID),
        "aud": PRODUCT,
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "jti": "jti-1",
        "org": id_claim(ORG_ID),
        "tier": "pro",
        "features": {"sso": True, "seats": 25, "ratio": 0.5, "edition": "gold", "beta": False},
        "max_activations": 3,
        "license_expires_at": NOW + 86400 * 30,
    }
    claims.update(overrides)
    return claims


def activation_claims(**overrides: Any) -> dict[str, Any]:
    claims = license_claims(act=id_claim(ACTIVATION_ID), fp=fp_hash(FINGERPRINT))
    claims.update(overrides)
    return claims


class Env:
    """A signing key, its JWKS and helpers to mint tokens for one test."""

    ISSUER = ISSUER
    PRODUCT = PRODUCT
    NOW = NOW
    FINGERPRINT = FINGERPRINT
    LICENSE_ID = LICENSE_ID
    ORG_ID = ORG_ID
    ACTIVATION_ID = ACTIVATION_ID
    b64 = staticmethod(b64)
    id_claim = staticmethod(id_claim)
    fp_hash = staticmethod(fp_hash)
    seeded_key = staticmethod(seeded_key)
    jwk = staticmethod(jwk)
    encode_segment = staticmethod(encode_segment)
    license_claims = staticmethod(license_claims)
    activation_claims = staticmethod(activation_claims)

    def sign(self, header: Any, claims: Any, key: Ed25519PrivateKey | None = None) -> str:
        return sign(key or self.key, header, claims)

    def __init__(self) -> None:
        self.key = seeded_key("verifier-tests-key-1")
        self.kid = "key-1"
        self.jwks = {"keys": [jwk(self.key, self.kid)]}

    def header(self, typ: str, **extra: Any) -> dict[str, Any]:
        return {"alg": "EdDSA", "kid": self.kid, "typ": typ, **extra}

    def license(self, **overrides: Any) -> str:
        return sign(self.key, self.header("license+jwt"), license_claims(**overrides))

    def activation(self, **overrides: Any) -> str:
        return sign(self.key, self.header("activation+jwt"), activation_claims(**overrides))

    def verifier(self, **kwargs: Any) -> Any:
        from licentia_verifier import Verifier

        kwargs.setdefault("product", PRODUCT)
        kwargs.setdefault("issuer", ISSUER)
        return Verifier.from_jwks(self.jwks, **kwargs)


@pytest.fixture
def env() -> Env:
    return Env()


class Trust:
    """A deployment's root of trust for one test: the root document a product embeds, and
    the trust material the root signs (docs/token-format.md, "Root of trust"). By default
    it certifies ``env``'s signing key ``key-1`` for a window around NOW."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.root = seeded_key("verifier-tests-root-1")
        self.root_kid = "root-1"
        self.document: dict[str, Any] = {
            "keys": [jwk(self.root, self.root_kid)],
            "root_endorsements": [],
        }

    def _sign(
        self, typ: str, claims: dict[str, Any], root: Ed25519PrivateKey | None, kid: str | None
    ) -> str:
        header = {"alg": "EdDSA", "kid": kid or self.root_kid, "typ": typ}
        return sign(root or self.root, header, claims)

    def certificate(
        self,
        key: Ed25519PrivateKey | None = None,
        kid: str | None = None,
        *,
        nbf: int = NOW - 86400,
        exp: int = NOW + 365 * 86400,
        root: Ed25519PrivateKey | None = None,
        root_kid: str | None = None,
        **changes: Any,
    ) -> str:
        """A ``key+jwt`` for ``key``/``kid`` (default: env's signing key)."""
        key = key or self.env.key
        kid = kid or self.env.kid
        claims = {"iss": ISSUER, "sub": kid, "jwk": jwk(key, kid), "iat": nbf, "nbf": nbf}
        claims.update(exp=exp, **changes)
        return self._sign("key+jwt", claims, root, root_kid)

    def endorsement(
        self,
        new_root: Ed25519PrivateKey,
        new_kid: str,
        *,
        by: Ed25519PrivateKey | None = None,
        by_kid: str | None = None,
        **changes: Any,
    ) -> str:
        """A ``root+jwt``: ``by`` (default: the embedded root) endorses ``new_root``."""
        claims = {"iss": ISSUER, "sub": new_kid, "jwk": jwk(new_root, new_kid), "iat": NOW}
        claims.update(changes)
        return self._sign("root+jwt", claims, by, by_kid)

    def revocations(
        self,
        seq: int,
        revoked: list[str],
        *,
        root: Ed25519PrivateKey | None = None,
        root_kid: str | None = None,
        **changes: Any,
    ) -> str:
        """A ``key-revocations+jwt`` withdrawing ``revoked``."""
        claims = {"iss": ISSUER, "iat": NOW, "seq": seq, "revoked": revoked, **changes}
        return self._sign("key-revocations+jwt", claims, root, root_kid)

    def verifier(self, **kwargs: Any) -> Any:
        from licentia_verifier import Verifier

        kwargs.setdefault("product", PRODUCT)
        kwargs.setdefault("issuer", ISSUER)
        return Verifier.from_root(self.document, **kwargs)

    def certified_verifier(self, **kwargs: Any) -> Any:
        verifier = self.verifier(**kwargs)
        verifier.add_key_certificate(self.certificate())
        return verifier


@pytest.fixture
def trust(env: Env) -> Trust:
    return Trust(env)


class FakeClock:
    """Stands in for the ``time`` module inside the verifier: ``time()`` reads ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The local clock of the verifier and the client, set to NOW; assign ``clock.now`` to
    move it."""
    from licentia_verifier import _verifier, client

    fake = FakeClock(NOW)
    monkeypatch.setattr(_verifier, "time", fake)
    monkeypatch.setattr(client, "time", fake)
    return fake


# --- a fake server for network shapes -----------------------------------------------------

Reply = tuple  # (status, body: dict | bytes | None, headers: dict)


class FakeServer:
    """Answers each path with queued replies (the last one repeats) and records requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: dict[str, list[Reply]] = {}
        self.behaviour: Callable[[BaseHTTPRequestHandler], None] | None = None
        self.release = threading.Event()  # set at teardown: lets stalled handlers finish
        self.entered = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                fake.requests.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "body": json.loads(raw) if raw else None,
                    }
                )
                fake.entered.set()
                if fake.behaviour is not None:
                    fake.behaviour(self)
                    return
                queue = fake.replies.get(self.path) or [(404, {"code": "NO_ROUTE"}, {})]
                status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
                payload = body if isinstance(body, bytes) else b""
                if isinstance(body, dict):
                    payload = json.dumps(body).encode()
                self.send_response(status)
                kind = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("Content-Type", kind)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def reply(self, path: str, status: int, body: Any = None, **headers: str) -> None:
        self.replies.setdefault(path, []).append((status, body, headers))

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture
def closed_url() -> str:
    """A local port nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
