"""How many password checks a login may cost, and from where.

Three counters, kept in PostgreSQL (``server.ratelimit``'s locked state), decide before argon2
runs whether an attempt may check its password:

- **e-mail and address** (a ``Backoff``): ``login_failures_per_address_email`` failures
  (5) at once, then each further one waits for the one before it: ``login_backoff_seconds``
  (30 s), doubled per failure, at most ``login_backoff_max_seconds`` (15 min). Forgotten a day
  after its last failure; cleared by a successful login from that address.
- **address** (a ``Backoff``, any e-mail): ``login_failures_per_address`` (20) at once, then
  the same back-off. Forgotten an hour after its last failure; a successful login gives one
  failure back, so an office behind one address is not slowed by its own logins.
- **e-mail** (a ``Window``, all addresses together): ``login_failures_per_email_per_hour``
  (100) failures in the hour that starts with the first of them; a successful login gives one
  back. Past it, an address that has a failure counted for this e-mail (the first counter) is
  refused until the hour ends, but an address that has none, a *clean* one, still gets its
  password checked once: so an attacker elsewhere cannot lock the owner out, and each further
  guess needs an address (an IPv6 /64) that has not failed for this e-mail within a day.

Addresses are counted by ``ratelimit.address_key`` (IPv6 by its /64). One short transaction
on the side engine decides: a first read without locks refuses most of a flood for one
statement; otherwise it locks the three buckets (advisory locks, one order), reads them again
and either refuses (nothing is counted: a refusal costs no argon2) or counts the attempt in
all three before the password is checked. Concurrent attempts therefore queue on the locks
and each sees the others' counts: however many arrive at once, no bound is exceeded, and of
the attempts from one clean address only the first passes the e-mail's bound. A successful
login gives its counts back in the request's own transaction (``succeeded``), so a failed
commit gives nothing back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server import metrics, ratelimit
from server.errors import RateLimited
from server.settings import Settings

PAIR_FORGET_SECONDS = 24 * 3600
ADDRESS_FORGET_SECONDS = 3600
EMAIL_WINDOW_SECONDS = 3600
StateMap = dict[str, ratelimit.State]


@dataclass(frozen=True)
class LoginLimits:
    pair: ratelimit.Backoff
    address: ratelimit.Backoff
    email: ratelimit.Window

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimits:
        base, cap = settings.login_backoff_seconds, settings.login_backoff_max_seconds
        return cls(
            pair=ratelimit.Backoff(
                settings.login_failures_per_address_email, base, cap, PAIR_FORGET_SECONDS
            ),
            address=ratelimit.Backoff(
                settings.login_failures_per_address, base, cap, ADDRESS_FORGET_SECONDS
            ),
            email=ratelimit.Window(
                settings.login_failures_per_email_per_hour, EMAIL_WINDOW_SECONDS
            ),
        )


@dataclass(frozen=True)
class Admitted:
    """An attempt counted in these buckets; ``succeeded`` gives it back."""

    email: str
    pair: str | None
    address: str | None

    @property
    def buckets(self) -> list[str]:
        return [b for b in (self.email, self.pair, self.address) if b is not None]


def _buckets(email: str, client_ip: str | None) -> Admitted:
    if not client_ip:
        return Admitted(ratelimit.bucket("login:account", email), None, None)
    key = ratelimit.address_key(client_ip)
    return Admitted(
        email=ratelimit.bucket("login:account", email),
        pair=ratelimit.bucket("login:pair", f"{key} {email}"),
        address=ratelimit.bucket("login:addr", key),
    )


def _wait(limits: LoginLimits, admitted: Admitted, states: StateMap, now: datetime) -> float:
    """Seconds this attempt must wait (0: its password may be checked now)."""
    waits = [0.0]
    clean = False  # without an address nothing shows that the caller is not the guesser
    if admitted.pair is not None and admitted.address is not None:
        pair = states[admitted.pair]
        clean = limits.pair.count(pair, now) == 0
        waits += [
            limits.pair.wait(pair, now),
            limits.address.wait(states[admitted.address], now),
        ]
    if limits.email.limit > 0 and not clean:
        waits.append(limits.email.wait(states[admitted.email], now))
    return max(waits)


async def admit(
    engine: AsyncEngine,
    settings: Settings,
    email: str,
    client_ip: str | None,
    now: datetime | None = None,
) -> Admitted:
    """Count one attempt to log in as ``email`` from ``client_ip`` before its password is
    checked, or raise ``RateLimited`` (counting nothing). ``now`` replaces the database
    clock (tests let time pass with it).

    A first read without locks refuses most of a flood at the cost of one statement; an
    attempt it lets through locks the buckets, reads them again and decides for good."""
    limits = LoginLimits.from_settings(settings)
    admitted = _buckets(email, client_ip)
    async with engine.begin() as connection:
        for take in (ratelimit.read, ratelimit.lock):
            states, when = await take(connection, admitted.buckets, now)
            wait = _wait(limits, admitted, states, when)
            if wait > 0:
                metrics.throttled("login")
                raise RateLimited(
                    "Too many failed logins; try again later",
                    retry_after=ratelimit.retry_after(wait),
                )
        counted = [limits.email.counted(states[admitted.email], when)]
        if admitted.pair is not None and admitted.address is not None:
            counted += [
                limits.pair.counted(states[admitted.pair], when),
                limits.address.counted(states[admitted.address], when),
            ]
        await ratelimit.store(connection, counted)
    return admitted


async def succeeded(
    connection: AsyncConnection,
    settings: Settings,
    admitted: Admitted,
    now: datetime | None = None,
) -> None:
    """The password was right: clear the e-mail and address failures, give one back to the
    address and to the e-mail. Runs in the caller's (the request's) transaction."""
    limits = LoginLimits.from_settings(settings)
    states, when = await ratelimit.lock(connection, admitted.buckets, now)
    given_back = [limits.email.given_back(states[admitted.email], when)]
    if admitted.pair is not None and admitted.address is not None:
        given_back += [
            ratelimit.State(admitted.pair),
            limits.address.given_back(states[admitted.address], when),
        ]
    await ratelimit.store(connection, given_back)
