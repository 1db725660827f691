"""License keys: how they are made. Hashing and every license rule live in
``server.license_rules``."""

from __future__ import annotations

import secrets

from server.license_rules import hash_license_key

LICENSE_KEY_PREFIX = "LK"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_GROUPS, _GROUP_LEN = 7, 5  # 35 symbols x 5 bits = 175 random bits


def new_license_key() -> tuple[str, str, bytes]:
    """A new license key: (key shown once, display prefix, stored SHA-256 hash).

    ``LK-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX``: 175 random bits; the display prefix
    reveals the first group only (150 bits stay secret).
    """
    symbols = "".join(secrets.choice(_ALPHABET) for _ in range(_GROUPS * _GROUP_LEN))
    groups = [symbols[i : i + _GROUP_LEN] for i in range(0, len(symbols), _GROUP_LEN)]
    key = "-".join([LICENSE_KEY_PREFIX, *groups])
    return key, f"{LICENSE_KEY_PREFIX}-{groups[0]}", hash_license_key(key)
