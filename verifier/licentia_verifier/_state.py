"""The on-disk high-water mark used to detect clock rollback across restarts.

The file holds the latest time (epoch seconds) a verifier has read from the local clock. It
is advanced, never moved backwards, and replaced atomically (write a temporary file in the
same directory, fsync, rename). Reads and writes are best effort: a missing file means "no
history"; a file that cannot be read or does not hold a plausible time (not JSON, the wrong
shape, not a finite number of seconds from 1970 to 9999) is treated exactly like a missing
one, with a logged warning, and is rewritten at the next verification that reads the clock;
a failed write is ignored, so a read-only location never stops a product from running.
Anyone who can delete or edit the file can reset it; see docs/embedding.md for the limits.

Only the local clock moves the mark: a time the caller passes as ``now`` is checked against
it but never recorded, so a test that verifies "ten days later" leaves nothing behind for
the next real run to trip over.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone

from ._errors import ClockRollback

# Persist at most this often while time moves forward (every process persists on its
# first verification). The stored mark is a lower bound of what was seen, so writing less
# often can only make the check more forgiving, never produce a false alarm.
WRITE_INTERVAL_SECONDS = 60.0
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z, the latest time a token can carry
_MAX_READ = 4096


def _iso(seconds: float) -> str:
    return (_EPOCH + timedelta(seconds=int(seconds))).isoformat().replace("+00:00", "Z")


class HighWaterMark:
    __slots__ = ("_lock", "_path", "_seen", "_warned", "_written")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        if not isinstance(self._path, str) or not self._path or "\0" in self._path:
            raise ValueError("state_path must be a non-empty str path without NUL characters")
        self._lock = threading.Lock()
        self._seen: float | None = None
        self._written: float | None = None
        self._warned = False

    @property
    def path(self) -> str:
        return self._path

    def read(self) -> float | None:
        """The mark stored on disk, or None when there is none or it is not usable."""
        try:
            with open(self._path, "rb") as handle:
                data = handle.read(_MAX_READ + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn(f"cannot be read ({exc.strerror or type(exc).__name__})")
            return None
        value = None
        # Not JSON (ValueError), too deep (RecursionError), not an object with the member.
        with contextlib.suppress(ValueError, RecursionError, TypeError, KeyError, IndexError):
            if len(data) <= _MAX_READ:
                value = json.loads(data)["high_water"]
        # bool is not a time; NaN fails both comparisons; ints are compared exactly.
        if (type(value) is int or type(value) is float) and 0 <= value <= _MAX_EPOCH:
            return float(value)
        self._warn("does not hold a time from 1970 to 9999")
        return None

    def _warn(self, problem: str) -> None:
        if self._warned:
            return
        self._warned = True
        import logging

        logging.getLogger("licentia_verifier").warning(
            "the clock state file %s %s: treating it as missing; it is rewritten at the next "
            "verification that reads the local clock",
            self._path,
            problem,
        )

    def observe(self, now: float, leeway: float, *, advance: bool) -> None:
        """Raise ClockRollback if ``now`` is before the mark (minus leeway). With ``advance``
        (``now`` is the local clock) the mark moves up to ``now``; otherwise (a time the
        caller chose) the mark is only checked, never moved or written."""
        with self._lock:
            if self._seen is None:
                self._seen = self.read() or 0.0
            seen = self._seen
            if now < seen - leeway:
                clock = "the local clock" if advance else "the time given as now"
                raise ClockRollback(
                    f"{clock} ({_iso(now)}) is earlier than {_iso(seen)}, a time this "
                    "verifier has already seen"
                )
            if not advance:
                return
            if now > seen:
                self._seen = now
            if self._written is None or now - self._written >= WRITE_INTERVAL_SECONDS:
                self._persist(now)

    def _persist(self, now: float) -> None:
        lock = _lock_file(self._path + ".lock")
        try:
            self._persist_locked(now)
        finally:
            if lock is not None:
                os.close(lock)  # closing the descriptor releases the lock

    def _persist_locked(self, now: float) -> None:
        stored = self.read()
        if stored is not None and stored > (self._seen or 0.0):
            self._seen = stored  # another process has seen a later time
        self._written = now
        if stored is not None and stored >= now:
            return
        directory = os.path.dirname(os.path.abspath(self._path))
        tmp = None
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".licentia-state-", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"version": 1, "high_water": int(now)}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
            tmp = None
        except OSError:
            pass
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _lock_file(path: str) -> int | None:
    """Hold an exclusive advisory lock so concurrent processes never move the mark back.

    POSIX only (fcntl); elsewhere, and when the lock cannot be taken, writes go unlocked.
    """
    if sys.platform == "win32":  # pragma: no cover - no fcntl on Windows
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - another platform without fcntl
        return None
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd
