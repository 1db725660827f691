"""The password rule, in one place. Every path that sets a password (sign-up, user creation,
a password change) calls ``check_password_policy`` before hashing it.

A password must have at least ``MIN_LENGTH`` characters, ``MIN_DISTINCT`` of them different,
and must not be one of the most common passwords (``common_passwords.txt``, compared without
regard to case or surrounding spaces). Anything else is the user's choice: no composition
rules, no expiry (NIST SP 800-63B).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from server.errors import InvalidInput

MIN_LENGTH = 12
MIN_DISTINCT = 5
COMMON_PASSWORDS_FILE = "common_passwords.txt"


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list, read once on first use (lines starting with ``#`` are comments)."""
    text = files("server").joinpath(COMMON_PASSWORDS_FILE).read_text(encoding="utf-8")
    return frozenset(
        line.casefold() for line in text.splitlines() if line and not line.startswith("#")
    )


def _weak(detail: str) -> InvalidInput:
    return InvalidInput(f"password: {detail}", code="WEAK_PASSWORD")


def check_password_policy(password: str) -> None:
    """Refuse a weak password with 422 ``WEAK_PASSWORD`` saying why."""
    if len(password) < MIN_LENGTH:
        raise _weak(f"at least {MIN_LENGTH} characters")
    if not password.strip():
        raise _weak("must not be blank")
    if len(set(password)) < MIN_DISTINCT:
        raise _weak(f"needs at least {MIN_DISTINCT} different characters")
    if password.strip().casefold() in common_passwords():
        raise _weak("this is one of the most common passwords; choose another")
