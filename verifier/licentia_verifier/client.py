"""The online client: activate a machine, keep its token fresh, deactivate; air-gapped files.

``LicenseClient`` talks to a Licentia server with the standard library only (``urllib``)
and keeps one small JSON file per product in a cache directory. Verification of the stored
token is always offline (``Verifier.verify_activation``); the network is used only to
activate, to renew the lease (check-in) when less than a third of it is left, and to
deactivate. Every network call is bounded by ``timeout`` in wall-clock time, including name
resolution, so a product never waits on the server longer than that at start-up.

The cache file holds the activation token **and the license key** (check-in needs the key).
It is written atomically with mode 0600; anyone who can read it can use the key elsewhere,
so keep ``cache_dir`` private to the user (e.g. the platform's per-user config directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._errors import Expired, LicenseError, MalformedToken, UnknownKey
from ._verifier import _epoch_seconds

if TYPE_CHECKING:  # pragma: no cover
    from ._verifier import License, Usage, Verifier

__all__ = ["ActivationRefused", "LicenseClient", "NotActivated", "ServerUnavailable"]

_CACHE_VERSION = 1
_MAX_RESPONSE_BYTES = 256 * 1024
_MAX_RETRY_AFTER = 24 * 3600.0
_MAX_TIMEOUT = 24 * 3600.0
_MAX_CODE = 100
_MAX_DETAIL = 1000
_MAX_INTERVAL = 366 * 24 * 3600.0
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_TRANSIENT_STATUSES = frozenset((408, 425, 429))
_USER_AGENT = "licentia-verifier-client/1"
# The members of a licensing answer (and of an air-gapped response file) that carry trust
# material next to the token (docs/token-format.md, "Where trust material comes from").
_TRUST_MEMBERS = ("root_endorsements", "key_certificate", "key_revocations")

Json = dict[str, Any]


class ServerUnavailable(LicenseError):
    """The licensing server could not be reached or could not answer right now.

    Raised for connection failures, timeouts, HTTP 429 / 5xx and unexpected answers.
    ``retry_after`` is the server's ``Retry-After`` in seconds when it sent one, else None;
    ``status`` is the HTTP status when there was one, else None.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ActivationRefused(LicenseError):
    """The server answered, and the answer is no (an RFC 9457 problem with a ``code``).

    ``code`` is the server's stable code (``LICENSE_REVOKED``, ``LICENSE_SUSPENDED``,
    ``LICENSE_EXPIRED``, ``LICENSE_NOT_FOUND``, ``PRODUCT_MISMATCH``, ``ACTIVATION_LIMIT``,
    ``NOT_ACTIVATED``, ``DEACTIVATION_LIMIT``, ...), ``status`` the HTTP status and
    ``detail`` the server's human-readable explanation.
    """

    def __init__(self, code: str, status: int, detail: str = "") -> None:
        super().__init__(
            f"{code} (HTTP {status}): {detail}" if detail else f"{code} (HTTP {status})"
        )
        self._code = code
        self.status = status
        self.detail = detail

    @property
    def code(self) -> str:
        return self._code


class NotActivated(LicenseError):
    """No activation token is stored for this product on this machine: call ``activate()``
    (online) or ``install()`` (air-gapped) first."""


def _utc_iso(seconds: float) -> str:
    stamp = datetime.fromtimestamp(int(seconds), tz=timezone.utc)
    return stamp.isoformat().replace("+00:00", "Z")


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date), capped
    at a day; None when absent or not understood (any junk a server sends)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²" or "٣": str.isdigit accepts those
        return min(float(value), _MAX_RETRY_AFTER)
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
        if when is None:  # pragma: no cover - Python < 3.10 returns None for garbage
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        wait = when.timestamp() - time.time()
    except Exception:  # whatever a date parser can raise on junk: no usable value
        return None
    return min(max(0.0, wait), _MAX_RETRY_AFTER)


def _json(data: bytes) -> Any:
    """The JSON value of ``data``, or None when it is not UTF-8 JSON (including nesting too
    deep to parse, which raises RecursionError rather than ValueError)."""
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A licensing call is never redirected (a POST body would be dropped or re-sent)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _http_post(
    url: str, body: Json, timeout: float, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST JSON; return (status, headers, body) for any HTTP answer; raise OSError-likes for
    transport failures (those are turned into ServerUnavailable by the caller)."""
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, application/problem+json",
            "User-Agent": _USER_AGENT,
            **(headers or {}),
        },
    )
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        with contextlib.closing(error):
            payload = error.read(_MAX_RESPONSE_BYTES + 1) if error.fp is not None else b""
            return error.code, {k.lower(): v for k, v in error.headers.items()}, payload
    with contextlib.closing(response):
        payload = response.read(_MAX_RESPONSE_BYTES + 1)
        return response.status, {k.lower(): v for k, v in response.headers.items()}, payload


def _bounded_post(
    url: str, body: Json, timeout: float, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """``_http_post`` in a daemon thread, abandoned after ``timeout`` seconds of wall time.

    urllib's own timeout applies per socket operation and not to name resolution, so a slow
    DNS server or a server that trickles bytes could otherwise hold the caller much longer.
    """
    outcome: list[tuple[int, dict[str, str], bytes] | BaseException] = []

    def work() -> None:
        try:
            outcome.append(_http_post(url, body, timeout, headers))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work, name="licentia-client-http", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise ServerUnavailable(f"no answer from {url} within {timeout:g} s")
    result = outcome[0]
    if isinstance(result, BaseException):
        reason = getattr(result, "reason", None) or result
        raise ServerUnavailable(f"could not reach {url}: {reason}") from None
    return result


class LicenseClient:
    """Activate this machine online, keep its activation token fresh, verify it offline.

    ::

        client = LicenseClient("https://licensing.example.com", product="acme-ide",
                               verifier=verifier, cache_dir=user_config_dir)
        client.activate(license_key)          # once, when the user enters the key
        license = client.license()            # at every start: offline, maybe a check-in

    ``fingerprint`` defaults to ``machine_fingerprint(salt=product)``. ``timeout`` bounds
    every network call (seconds of wall time). After a failed check-in the client waits
    ``retry_interval`` seconds (or the server's ``Retry-After``, if longer) before trying
    again; after a refusal (revoked, suspended, expired, not activated) it waits
    ``refusal_interval`` seconds. Both waits survive restarts (they are kept in the cache
    file), so a product started often never hammers the server.

    With a verifier built by ``Verifier.from_root`` the client also processes the trust
    material every answer carries (root endorsements, the signing key's certificate, the
    revocation list, in that order, before the token), keeps what the verifier accepted in
    the cache file and feeds it back to the verifier when it is constructed, so a product
    that was online once after a key rotation verifies offline from then on, in any later
    process. The stored material is verified again when loaded: the file is not trusted.
    """

    def __init__(
        self,
        base_url: str,
        *,
        product: str,
        verifier: Verifier,
        cache_dir: str | os.PathLike[str],
        fingerprint: str | None = None,
        timeout: float = 3.0,
        retry_interval: float = 300.0,
        refusal_interval: float = 3600.0,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        if not isinstance(product, str) or not product:
            raise ValueError("product must be a non-empty string")
        if getattr(verifier, "product", None) != product:
            raise ValueError("the verifier was built for another product")
        if not (isinstance(timeout, (int, float)) and 0 < timeout <= _MAX_TIMEOUT):
            raise ValueError("timeout must be a positive number of seconds, at most a day")
        for interval in (retry_interval, refusal_interval):
            if not (isinstance(interval, (int, float)) and 0 <= interval <= _MAX_INTERVAL):
                raise ValueError(
                    "retry_interval and refusal_interval must be seconds from 0 to a year"
                )
        if fingerprint is None:
            from ._fingerprint import machine_fingerprint

            fingerprint = machine_fingerprint(product)
        if not isinstance(fingerprint, str) or not fingerprint:
            raise ValueError("fingerprint must be a non-empty string")
        try:
            fingerprint.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("fingerprint must be valid Unicode text") from None
        self._base_url = base_url.rstrip("/")
        self._product = product
        self._verifier = verifier
        self._fingerprint = fingerprint
        self._timeout = float(timeout)
        self._retry_interval = float(retry_interval)
        self._refusal_interval = float(refusal_interval)
        self._longest_wait = max(self._retry_interval, self._refusal_interval, _MAX_RETRY_AFTER)
        self._cache_dir = os.fspath(cache_dir)
        self._cache_path = os.path.join(
            self._cache_dir, f"licentia-{_UNSAFE_NAME.sub('_', product)}.json"
        )
        self._lock = threading.RLock()
        stored = self._read().get("trust")
        if isinstance(stored, dict):  # verified again piece by piece; failures are dropped
            verifier.add_trust_material(stored)

    # -- public properties ---------------------------------------------------------------

    @property
    def product(self) -> str:
        return self._product

    @property
    def fingerprint(self) -> str:
        """The machine fingerprint sent to the server (the token holds only its hash)."""
        return self._fingerprint

    @property
    def cache_path(self) -> str:
        """The JSON file holding the token and the license key (mode 0600)."""
        return self._cache_path

    @property
    def refusal(self) -> ActivationRefused | None:
        """The server's last definitive refusal to renew the lease, or None.

        The stored token keeps working offline until its lease ends even after a refusal;
        a product that wants to warn its user early can look here.
        """
        refusal = self._read().get("refusal")
        if not isinstance(refusal, dict):
            return None
        code, status = refusal.get("code"), refusal.get("status")
        if not isinstance(code, str) or not isinstance(status, int):
            return None
        detail = refusal.get("detail")
        return ActivationRefused(code, status, detail if isinstance(detail, str) else "")

    # -- online --------------------------------------------------------------------------

    def activate(
        self,
        license_key: str,
        *,
        name: str | None = None,
        platform: str | None = None,
        now: datetime | float | None = None,
        user_token: str | None = None,
    ) -> License:
        """Activate this machine with ``license_key`` and store the token.

        ``user_token``: for a named-user license, the user's access token (from the
        server's ``/api/v1/auth/login``); the seat is bound to that user and the returned
        license's ``user_id`` names them. It is sent with this call only and never stored.

        The token is verified for this machine before anything is stored (trust material
        the answer carries is processed first, and kept when the verifier accepts it).
        Raises ``ActivationRefused`` (with the server's ``code``), ``ServerUnavailable``, or
        the verifier's error if the token does not verify. ``UnknownKey`` means the server
        has activated this machine and holds its seat, but the product does not know the
        signing key (a key set older than a rotation, or no accepted certificate): update
        the product; activating again from this machine reuses the same seat.
        """
        if not isinstance(license_key, str) or not license_key.strip():
            raise ValueError("license_key must be a non-empty string")
        body = self._machine_body(license_key.strip())
        if name is not None:
            body["name"] = name
        if platform is not None:
            body["platform"] = platform
        if user_token is not None and (not isinstance(user_token, str) or not user_token.strip()):
            raise ValueError("user_token must be a non-empty string when given")
        headers = None if user_token is None else {"Authorization": f"Bearer {user_token.strip()}"}
        answer = self._post("/api/v1/licenses/activate", body, headers)
        token = answer.get("token")
        if not isinstance(token, str):
            raise ServerUnavailable("the activation answer carries no token")
        with self._lock:
            learned = self._absorb(answer)
            try:
                license = self._verifier.verify_activation(
                    token, fingerprint=self._fingerprint, now=now
                )
            except UnknownKey as unknown:
                if learned:
                    self._write(self._read(), keep_checks=True)
                raise UnknownKey(
                    f"{unknown}. The server has activated this machine and holds its seat, "
                    "but this product cannot verify the answer because it does not know the "
                    "key that signed it. Activating again from this machine reuses the same "
                    "seat: update the product (a newer key set, or a verifier built with "
                    "Verifier.from_root), or free the seat from the customer portal."
                ) from None
            except LicenseError:
                if learned:
                    self._write(self._read(), keep_checks=True)
                raise
            self._write({"license_key": license_key.strip(), "token": token})
        return license

    def start_trial(
        self,
        *,
        name: str | None = None,
        platform: str | None = None,
        now: datetime | float | None = None,
    ) -> License:
        """Start this machine's keyless trial of the product (no license key) and store its
        token; ``license()`` then answers offline until the trial ends (``is_trial`` is
        True). The server gives a machine one trial per product, ever: calling this again
        while the trial runs gets the same trial (same end) back; after it ended the server
        refuses with ``ActivationRefused`` code ``TRIAL_ALREADY_USED``. Activating a license
        key later replaces the trial (and the server counts the trial as converted).
        Trust material the answer carries is processed first, as for ``activate``.
        """
        body: Json = {"product": self._product, "fingerprint": self._fingerprint}
        if name is not None:
            body["name"] = name
        if platform is not None:
            body["platform"] = platform
        answer = self._post("/api/v1/trials", body)
        token = answer.get("token")
        if not isinstance(token, str):
            raise ServerUnavailable("the trial answer carries no token")
        with self._lock:
            learned = self._absorb(answer)
            try:
                license = self._verifier.verify_activation(
                    token, fingerprint=self._fingerprint, now=now
                )
            except LicenseError:
                if learned:
                    self._write(self._read(), keep_checks=True)
                raise
            self._write({"license_key": None, "token": token})
        return license

    def license(self, *, now: datetime | float | None = None) -> License:
        """The verified license of this machine, offline.

        When less than a third of the lease is left (or it has run out) the client checks
        in once, bounded by ``timeout``, and keeps the new token if it verifies. When the
        server is unreachable or refuses, the stored token keeps working until its lease
        ends, then this raises ``Expired``. ``now`` (a timezone-aware datetime or epoch
        seconds) is passed to the verifier; it defaults to the local clock.

        Raises ``NotActivated`` when nothing is stored, or a ``LicenseError`` subclass.
        """
        with self._lock:
            state = self._read()
            token = state.get("token")
            if not isinstance(token, str):
                raise NotActivated(
                    f"no activation is stored for {self._product!r}; activate this machine first"
                )
            current = _epoch_seconds(now)
            try:
                license = self._verifier.verify_activation(
                    token, fingerprint=self._fingerprint, now=now
                )
            except Expired as expired:
                renewed = self._maybe_check_in(state, current, now)
                if renewed is not None:
                    return renewed
                refusal = self.refusal
                if refusal is not None:
                    message = f"{expired}; the server refused to renew it: {refusal}"
                    raise Expired(message) from refusal
                raise
            issued = license.issued_at.timestamp()
            expires = license.expires_at.timestamp()
            if expires - current < (expires - issued) / 3.0:
                renewed = self._maybe_check_in(state, current, now)
                if renewed is not None:
                    return renewed
            return license

    def check_in(self, *, now: datetime | float | None = None) -> License:
        """Renew the lease now, ignoring any back-off, and store the new token.

        Raises ``ServerUnavailable`` or ``ActivationRefused`` (which is also recorded, see
        ``refusal``); the stored token is kept in both cases.
        """
        with self._lock:
            state = self._read()
            return self._check_in(state, _epoch_seconds(now), now)

    def deactivate(self) -> None:
        """Free this machine's seat on the server and delete the stored token.

        Succeeds when the server says the seat was already free (``NOT_ACTIVATED``). On
        ``ServerUnavailable`` or another refusal the token is kept, so the call can be
        retried.
        """
        with self._lock:
            state = self._read()
            key = state.get("license_key")
            if not isinstance(key, str):
                raise NotActivated(f"no activation is stored for {self._product!r}")
            try:
                self._post("/api/v1/licenses/deactivate", self._machine_body(key))
            except ActivationRefused as refused:
                if refused.code not in ("NOT_ACTIVATED", "LICENSE_NOT_FOUND"):
                    raise
            self._remove()

    def consume(
        self,
        meter: str,
        amount: int = 1,
        *,
        idempotency_key: str | None = None,
        now: datetime | float | None = None,
    ) -> Usage:
        """Consume ``amount`` units of the license's usage ``meter`` on the server (negative
        gives units back; 0 reads the count) and return the signed count, verified
        (``Verifier.verify_usage``): ``used``, ``limit``, ``remaining``, ``period_ends_at``.

        All or nothing: over the limit the server consumes nothing and this raises
        ``ActivationRefused`` with code ``USAGE_LIMIT``. Each call sends a new random
        ``Idempotency-Key`` unless ``idempotency_key`` is given: pass the same one to retry a
        consumption whose answer was lost (after ``ServerUnavailable``), so that it is
        counted once. ``NotActivated`` when this machine stored no activation.
        """
        if not isinstance(meter, str) or not meter:
            raise ValueError("meter must be a non-empty string")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValueError("amount must be an integer")
        if idempotency_key is None:
            idempotency_key = secrets.token_urlsafe(18)
        elif not isinstance(idempotency_key, str) or not idempotency_key:
            raise ValueError("idempotency_key must be a non-empty string")
        with self._lock:
            state = self._read()
            key = state.get("license_key")
            if not isinstance(key, str):
                raise NotActivated(f"no activation is stored for {self._product!r}")
            body = {**self._machine_body(key), "meter": meter, "amount": amount}
            answer = self._post(
                "/api/v1/licenses/usage", body, {"Idempotency-Key": idempotency_key}
            )
            if self._absorb(answer):
                with contextlib.suppress(OSError):
                    self._write(state, keep_checks=True)  # keeps what the verifier accepted
            token = answer.get("token")
            if not isinstance(token, str):
                raise ServerUnavailable("the usage answer carries no token")
            return self._verifier.verify_usage(token, now=now)

    # -- air-gapped ----------------------------------------------------------------------

    def offline_request(
        self, license_key: str, *, name: str | None = None, platform: str | None = None
    ) -> Json:
        """An activation request for a machine without network (take it to any connected
        machine: ``licentia licenses activate-offline REQUEST.json --output TOKEN.json``).

        The request's nonce is remembered so ``install`` can check that a response answers
        it; the license key is remembered for later check-ins and deactivation.
        """
        if not isinstance(license_key, str) or not license_key.strip():
            raise ValueError("license_key must be a non-empty string")
        nonce = secrets.token_urlsafe(16)
        request: Json = {
            "type": "activation_request",
            "version": 1,
            "product": self._product,
            "fingerprint": self._fingerprint,
            "license_key": license_key.strip(),
            "name": name,
            "platform": platform,
            "nonce": nonce,
            "created_at": _utc_iso(time.time()),
        }
        with self._lock:
            state = self._read()
            state["request"] = {"nonce": nonce, "license_key": license_key.strip()}
            self._write(state, keep_checks=True)
        return request

    def write_offline_request(
        self,
        path: str | os.PathLike[str],
        license_key: str,
        *,
        name: str | None = None,
        platform: str | None = None,
    ) -> Json:
        """``offline_request`` written to ``path`` as JSON (mode 0600: it holds the key)."""
        request = self.offline_request(license_key, name=name, platform=platform)
        _atomic_write(os.fspath(path), request)
        return request

    def install(
        self,
        response: str | os.PathLike[str] | Json,
        *,
        license_key: str | None = None,
        now: datetime | float | None = None,
    ) -> License:
        """Install an activation response (a path to the JSON file, or the parsed dict).

        The token is verified for this machine before it is stored. When this client wrote
        a request, the response's nonce must match it. ``license_key`` is needed only if the
        request was not written by this client (for later online check-ins).
        """
        data = _load_response(response)
        with self._lock:
            state = self._read()
            request = state.get("request")
            pending: Json = request if isinstance(request, dict) else {}
            expected = pending.get("nonce")
            received = data.get("nonce")
            if isinstance(expected, str) and received is not None and received != expected:
                raise MalformedToken(
                    "this activation response answers another request (nonce mismatch); "
                    "install the response to the latest request written on this machine"
                )
            token = data["token"]
            if self._absorb(data):
                self._write(state, keep_checks=True)  # kept even if the token fails
            license = self._verifier.verify_activation(
                token, fingerprint=self._fingerprint, now=now
            )
            key = license_key or pending.get("license_key") or state.get("license_key")
            self._write(
                {"license_key": key.strip() if isinstance(key, str) else None, "token": token}
            )
        return license

    def offline_deactivation_request(self, *, license_key: str | None = None) -> Json:
        """A deactivation request to take to a connected machine; removes the local token.

        From now on this product no longer runs on this machine (until it is activated
        again); the seat is freed once the request is processed on the server.
        """
        return self._offline_deactivation(license_key, None)

    def write_offline_deactivation_request(
        self, path: str | os.PathLike[str], *, license_key: str | None = None
    ) -> Json:
        """``offline_deactivation_request`` written to ``path`` (mode 0600: it holds the key).
        The local token is removed only once the file is written."""
        return self._offline_deactivation(license_key, os.fspath(path))

    # -- internals -----------------------------------------------------------------------

    def _offline_deactivation(self, license_key: str | None, path: str | None) -> Json:
        with self._lock:
            key = license_key or self._read().get("license_key")
            if not isinstance(key, str) or not key.strip():
                raise NotActivated(
                    f"no license key is stored for {self._product!r}; pass license_key="
                )
            request: Json = {
                "type": "deactivation_request",
                "version": 1,
                "product": self._product,
                "fingerprint": self._fingerprint,
                "license_key": key.strip(),
                "nonce": secrets.token_urlsafe(16),
                "created_at": _utc_iso(time.time()),
            }
            if path is not None:
                _atomic_write(path, request)
            self._remove()
        return request

    def _machine_body(self, license_key: str) -> Json:
        return {
            "license_key": license_key,
            "product": self._product,
            "fingerprint": self._fingerprint,
        }

    def _maybe_check_in(
        self, state: Json, current: float, now: datetime | float | None
    ) -> License | None:
        """One check-in unless backed off or impossible; None when it did not renew.

        A stored back-off further ahead than any this client sets was computed with another
        clock (a test's ``now``, a clock since set back) or the file was damaged: it is
        ignored, so it can never keep a product from renewing its lease.
        """
        next_at = state.get("next_check_in_at")
        if (
            isinstance(next_at, (int, float))
            and current < next_at
            and next_at - current <= self._longest_wait
        ):
            return None
        if not isinstance(state.get("license_key"), str):
            return None  # installed offline without a key: nothing to check in with
        try:
            return self._check_in(state, current, now)
        except (LicenseError, OSError):  # the stored token keeps working until it ends
            return None

    def _check_in(self, state: Json, current: float, now: datetime | float | None) -> License:
        key = state.get("license_key")
        if not isinstance(key, str):
            raise NotActivated(f"no license key is stored for {self._product!r}")
        try:
            answer = self._post("/api/v1/licenses/check-in", self._machine_body(key))
            token = answer.get("token")
            if not isinstance(token, str):
                raise ServerUnavailable("the check-in answer carries no token")
            self._absorb(answer)  # stored with whatever is written next
            license = self._verifier.verify_activation(
                token, fingerprint=self._fingerprint, now=now
            )
        except ActivationRefused as refused:
            state["refusal"] = {
                "code": refused.code,
                "status": refused.status,
                "detail": refused.detail,
                "at": int(current),
            }
            state["next_check_in_at"] = current + self._refusal_interval
            self._write(state, keep_checks=True)
            raise
        except LicenseError as error:
            wait = self._retry_interval
            retry_after = getattr(error, "retry_after", None)
            if isinstance(retry_after, (int, float)) and retry_after > wait:
                wait = retry_after
            state["next_check_in_at"] = current + wait
            self._write(state, keep_checks=True)
            raise
        new_state: Json = {"license_key": key, "token": token}
        expires = license.expires_at.timestamp()
        if expires - current < (expires - license.issued_at.timestamp()) / 3.0:
            # The lease cannot grow (e.g. the license itself ends soon): do not renew again
            # at every start.
            new_state["next_check_in_at"] = current + self._retry_interval
        self._write(new_state, keep_checks=True)
        return license

    def _absorb(self, answer: Json) -> bool:
        """Offer the answer's trust material to the verifier, in the specified order; True
        when the verifier accepted something new. A piece that fails is dropped: it does
        not reject the answer by itself (the token is then checked against what is known).
        """
        material = {name: answer.get(name) for name in _TRUST_MEMBERS}
        if all(value is None or value == [] for value in material.values()):
            return False
        before = self._verifier.trust_material()
        self._verifier.add_trust_material(material)
        return self._verifier.trust_material() != before

    def _trust(self) -> Json | None:
        """What the verifier accepted, to store in the cache file; None when nothing."""
        material = self._verifier.trust_material()
        return material if any(material.values()) else None

    def _post(self, path: str, body: Json, headers: dict[str, str] | None = None) -> Json:
        url = self._base_url + path
        status, headers, payload = _bounded_post(url, body, self._timeout, headers)
        if len(payload) > _MAX_RESPONSE_BYTES:
            raise ServerUnavailable(f"the answer from {url} is too large", status=status)
        if 200 <= status < 300:
            if status == 204 or not payload.strip():
                return {}
            data = _json(payload)
            if not isinstance(data, dict):
                raise ServerUnavailable(
                    f"the answer from {url} is not a JSON object", status=status
                )
            return data
        retry_after = _parse_retry_after(headers.get("retry-after"))
        if status >= 500 or status in _TRANSIENT_STATUSES or status < 400:
            raise ServerUnavailable(
                f"{url} answered HTTP {status}", status=status, retry_after=retry_after
            )
        problem = _json(payload)
        if not isinstance(problem, dict):
            problem = {}
        code = problem.get("code")
        detail = problem.get("detail") or problem.get("title") or ""
        # Bounded: a refusal is kept in the cache file, which a server must not bloat.
        return_code = code[:_MAX_CODE] if isinstance(code, str) and code else f"HTTP_{status}"
        detail = detail[:_MAX_DETAIL] if isinstance(detail, str) else ""
        raise ActivationRefused(return_code, status, detail)

    def _read(self) -> Json:
        try:
            with open(self._cache_path, "rb") as handle:
                data = _json(handle.read(_MAX_RESPONSE_BYTES))
        except OSError:
            return {}
        if not isinstance(data, dict) or data.get("product") != self._product:
            return {}
        return data

    def _write(self, state: Json, *, keep_checks: bool = False) -> None:
        """Store ``state`` atomically. Without ``keep_checks`` a fresh state replaces any
        recorded refusal, back-off and pending request."""
        data: Json = {"version": _CACHE_VERSION, "product": self._product}
        for name in ("license_key", "token"):
            data[name] = state.get(name)
        if keep_checks:
            for name in ("next_check_in_at", "refusal", "request"):
                if state.get(name) is not None:
                    data[name] = state[name]
        trust = self._trust()
        if trust is not None:
            data["trust"] = trust
        try:
            _atomic_write(self._cache_path, data)
        except OSError:
            if data.get("token") != self._read().get("token"):
                raise  # a new token that cannot be stored is an error; a back-off is not

    def _remove(self) -> None:
        """Forget the token and the key. Accepted trust material stays (a revocation list
        must outlive a deactivation), so the file remains when there is some."""
        if self._trust() is not None:
            with contextlib.suppress(OSError):
                self._write({})
                return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._cache_path)


def _load_response(response: str | os.PathLike[str] | Json) -> Json:
    if isinstance(response, dict):
        data: Any = response
    elif isinstance(response, (str, os.PathLike)):
        with open(response, "rb") as handle:
            data = _json(handle.read(_MAX_RESPONSE_BYTES))
        if data is None:
            raise MalformedToken("the activation response is not a JSON file")
    else:
        raise TypeError("install() takes a path or a dict")
    if not isinstance(data, dict):
        raise MalformedToken("the activation response is not a JSON object")
    if data.get("type", "activation_response") != "activation_response":
        raise MalformedToken(f"expected an activation_response, got {data.get('type')!r}")
    if data.get("version", 1) != 1:
        raise MalformedToken(f"unsupported activation response version {data.get('version')!r}")
    if not isinstance(data.get("token"), str):
        raise MalformedToken("the activation response carries no token")
    nonce = data.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise MalformedToken("the activation response's nonce must be a string")
    return data


def _atomic_write(path: str, data: Json) -> None:
    """Write JSON to ``path`` with mode 0600: temporary file, fsync, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".licentia-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), 0o600)
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
