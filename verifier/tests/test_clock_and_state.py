"""Times, the clock state file and fingerprints fail closed, inside the LicenseError family.

A ``now`` outside 1970..9999 (milliseconds, infinities, NaN, huge integers), a corrupt state
file and a fingerprint that is not valid Unicode used to escape as OverflowError,
RecursionError or UnicodeEncodeError, and a bad time once persisted broke every later
verification, in every later process. Only the local clock moves the persisted mark.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone, tzinfo

import pytest

from licentia_verifier import ClockRollback, LicenseError, WrongMachine

DAY = 86400
MAX_EPOCH = 253402300799

BAD_NOWS = [
    pytest.param(1_780_000_000_000, id="milliseconds"),
    pytest.param(1_780_000_000_000.0, id="milliseconds-float"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(float("-inf"), id="-inf"),
    pytest.param(float("nan"), id="nan"),
    pytest.param(10**400, id="10**400"),
    pytest.param(-(10**400), id="-10**400"),
    pytest.param(10**5000, id="10**5000"),
    pytest.param(1e300, id="1e300"),
    pytest.param(-1, id="before-1970"),
    pytest.param(MAX_EPOCH + 1, id="year-10000"),
    pytest.param(datetime(1, 1, 1, tzinfo=timezone.utc), id="year-1"),
    pytest.param(datetime(1969, 12, 31, 23, 59, tzinfo=timezone.utc), id="1969"),
    pytest.param(True, id="bool"),
    pytest.param("1780000000", id="text"),
    pytest.param(object(), id="object"),
]


def long_token(env):
    """A license token valid from NOW - 1 day to NOW + 30 days."""
    return env.license(iat=env.NOW - DAY, nbf=env.NOW - DAY, exp=env.NOW + 30 * DAY)


def stored_mark(path) -> object:
    return json.loads(path.read_text())["high_water"]


# --- now -----------------------------------------------------------------------------------


@pytest.mark.parametrize("now", BAD_NOWS)
def test_a_time_outside_1970_to_9999_is_a_license_error(env, now):
    with pytest.raises(LicenseError):
        env.verifier().verify_license(long_token(env), now=now)


@pytest.mark.parametrize("now", BAD_NOWS)
def test_a_bad_now_leaves_nothing_behind_for_later_runs(env, tmp_path, clock, now):
    state = tmp_path / "state.json"
    with pytest.raises(LicenseError):
        env.verifier(state_path=state).verify_license(long_token(env), now=now)
    # A later process with a sane clock is not affected.
    assert env.verifier(state_path=state).verify_license(long_token(env))
    assert stored_mark(state) == env.NOW


def test_the_edges_of_the_time_range_are_accepted(env):
    v = env.verifier()
    token = env.license(iat=0, nbf=0, exp=MAX_EPOCH, license_expires_at=None)
    assert v.verify_license(token, now=0)
    assert v.verify_license(token, now=MAX_EPOCH - 301)
    assert v.verify_license(token, now=datetime(1970, 1, 1, tzinfo=timezone.utc))


def test_a_local_clock_outside_the_range_is_a_license_error(env, clock):
    v = env.verifier()
    for reading in (float("nan"), float("inf"), -5.0, 1e13):
        clock.now = reading
        with pytest.raises(LicenseError, match="local clock"):
            v.verify_license(long_token(env))


class BrokenZone(tzinfo):
    def utcoffset(self, dt):
        raise RuntimeError("no offset today")


class HugeZone(tzinfo):
    def utcoffset(self, dt):
        return timedelta(days=2)  # more than a day: datetime itself refuses it


@pytest.mark.parametrize("zone", [BrokenZone(), HugeZone()])
def test_a_datetime_with_a_broken_timezone_is_a_license_error(env, zone):
    with pytest.raises(LicenseError):
        env.verifier().verify_license(long_token(env), now=datetime(2026, 1, 1, tzinfo=zone))


# --- the state file ------------------------------------------------------------------------

CORRUPT_STATES = [
    pytest.param(b'{"version": 1, "high_water": Infinity}', id="Infinity"),
    pytest.param(b'{"version": 1, "high_water": -Infinity}', id="-Infinity"),
    pytest.param(b'{"version": 1, "high_water": NaN}', id="NaN"),
    pytest.param(b'{"version": 1, "high_water": 1e300}', id="1e300"),
    pytest.param(b'{"version": 1, "high_water": 1e999}', id="1e999"),
    pytest.param(b'{"version": 1, "high_water": 1780000000000}', id="milliseconds"),
    pytest.param(b'{"version": 1, "high_water": 253402300800}', id="year-10000"),
    pytest.param(b'{"version": 1, "high_water": -5}', id="negative"),
    pytest.param(b'{"high_water": ' + b"9" * 4000 + b"}", id="4000-digits"),
    pytest.param(b'{"version": 1, "high_water": "1780000000"}', id="text"),
    pytest.param(b'{"version": 1, "high_water": true}', id="bool"),
    pytest.param(b'{"version": 1, "high_water": null}', id="null"),
    pytest.param(b'{"version": 1, "high_water": [1780000000]}', id="list"),
    pytest.param(b'{"version": 1}', id="no-mark"),
    pytest.param(b"[1780000000]", id="array"),
    pytest.param(b"1780000000", id="number"),
    pytest.param(b'"x"', id="string"),
    pytest.param(b"garbage", id="garbage"),
    pytest.param(b"", id="empty"),
    pytest.param(b"\xff\xfe\x00", id="not-utf8"),
    pytest.param(b"[" * 2000 + b"]" * 2000, id="deep-arrays"),  # deeper than recursion allows
    pytest.param(b'{"a":' * 800 + b"1" + b"}" * 800, id="nested-objects"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep-and-big"),
    pytest.param(b'{"high_water": 1780000000, "pad": "' + b"x" * 5000 + b'"}', id="too-big"),
]


@pytest.mark.parametrize("content", CORRUPT_STATES)
def test_a_corrupt_state_file_counts_as_missing_and_is_rewritten(
    env, tmp_path, clock, caplog, content
):
    state = tmp_path / "state.json"
    state.write_bytes(content)
    token = long_token(env)
    with caplog.at_level(logging.WARNING, logger="licentia_verifier"):
        assert env.verifier(state_path=state).verify_license(token)
    assert [r.name for r in caplog.records] == ["licentia_verifier"]
    assert "state file" in caplog.records[0].getMessage()
    assert stored_mark(state) == env.NOW  # rewritten with the local clock
    # And it guards again: a later run with the clock set back is caught.
    clock.now = env.NOW - 3600
    with pytest.raises(ClockRollback):
        env.verifier(state_path=state).verify_license(token)


def test_an_unreadable_state_file_warns_once_per_verifier(env, tmp_path, clock, caplog):
    state = tmp_path / "blocked"
    state.mkdir()  # a directory: never readable as a file, never replaced by one
    v = env.verifier(state_path=state)
    with caplog.at_level(logging.WARNING, logger="licentia_verifier"):
        for step in range(3):
            clock.now = env.NOW + step * 120  # past the write interval each time
            assert v.verify_license(long_token(env))
    assert len(caplog.records) == 1


def test_a_plausible_future_mark_is_still_a_rollback(env, tmp_path, clock, caplog):
    state = tmp_path / "state.json"
    content = json.dumps({"version": 1, "high_water": env.NOW + 10 * DAY})
    state.write_text(content)
    with caplog.at_level(logging.WARNING, logger="licentia_verifier"), pytest.raises(ClockRollback):
        env.verifier(state_path=state).verify_license(long_token(env))
    assert not caplog.records
    assert state.read_text() == content


def test_a_state_path_with_a_nul_character_is_refused_at_construction(env):
    with pytest.raises(ValueError, match="state_path"):
        env.verifier(state_path="state\0.json")


# --- a caller-supplied now is checked against the mark, never recorded ----------------------


def test_a_caller_supplied_now_never_moves_the_mark(env, tmp_path, clock):
    state = tmp_path / "state.json"
    token = long_token(env)
    v = env.verifier(state_path=state)
    # A test of "ten days later" ...
    assert v.verify_license(token, now=env.NOW + 10 * DAY)
    assert not state.exists()
    # ... does not trip the real run that follows, in this process or the next.
    assert v.verify_license(token)
    assert stored_mark(state) == env.NOW
    assert env.verifier(state_path=state).verify_license(token)
    # Nor does it move an existing mark.
    assert env.verifier(state_path=state).verify_license(token, now=env.NOW + 20 * DAY)
    assert stored_mark(state) == env.NOW


def test_a_caller_supplied_now_is_still_checked_against_the_mark(env, tmp_path, clock):
    state = tmp_path / "state.json"
    token = long_token(env)
    env.verifier(state_path=state).verify_license(token)  # the local clock: NOW
    v = env.verifier(state_path=state)
    with pytest.raises(ClockRollback, match="given as now"):
        v.verify_license(token, now=env.NOW - 3600)
    assert v.verify_license(token, now=env.NOW - 200)  # within the leeway
    assert stored_mark(state) == env.NOW


def test_the_local_clock_moves_the_mark_in_one_process(env, tmp_path, clock):
    v = env.verifier(state_path=tmp_path / "state.json")
    token = long_token(env)
    clock.now = env.NOW + DAY
    v.verify_license(token)
    with pytest.raises(ClockRollback, match="given as now"):
        v.verify_license(token, now=env.NOW)
    clock.now = env.NOW
    with pytest.raises(ClockRollback, match="local clock"):
        v.verify_license(token)


# --- fingerprints --------------------------------------------------------------------------


class NoTruth:
    def __bool__(self) -> bool:
        raise RuntimeError("ambiguous")


class Weird:
    """Compares like an array: ``==`` returns something that cannot be used as a bool."""

    def __eq__(self, other: object) -> object:  # type: ignore[override]
        return NoTruth()

    __hash__ = object.__hash__


@pytest.mark.parametrize(
    "fingerprint", ["\ud800", "machine-\udfff-1", "\ud83d", Weird(), b"bytes", 42]
)
def test_an_unusable_fingerprint_is_wrong_machine(env, fingerprint):
    v = env.verifier()
    token = env.activation()
    assert v.verify_activation(token, fingerprint=env.FINGERPRINT, now=env.NOW)  # fills the cache
    with pytest.raises(WrongMachine):
        v.verify_activation(token, fingerprint=fingerprint, now=env.NOW)
