"""A stable, per-product machine fingerprint."""

from __future__ import annotations

import sys

from ._errors import FingerprintUnavailable

_LINUX_SOURCES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_BSD_SOURCES = ("/etc/hostid",)
_DOMAIN = b"licentia-machine-fingerprint-v1"


def machine_fingerprint(salt: str | bytes) -> str:
    """A stable identifier of this machine, specific to ``salt`` (use your product code).

    It is HMAC-SHA256(salt, machine id) in unpadded base64url (43 characters), where the
    machine id is /etc/machine-id on Linux, IOPlatformUUID on macOS and MachineGuid on
    Windows. It survives reboots, differs between products with different salts and does
    not reveal the machine id. Raises ``FingerprintUnavailable`` where no machine id exists
    (for example a minimal container without /etc/machine-id).
    """
    import hashlib
    import hmac

    if isinstance(salt, str):
        salt = salt.encode("utf-8")
    if not isinstance(salt, bytes) or not salt:
        raise ValueError("salt must be a non-empty string, e.g. your product code")
    machine_id = _machine_id()
    digest = hmac.new(salt, _DOMAIN + b"\x00" + machine_id, hashlib.sha256).digest()
    from ._verifier import b64url_encode

    return b64url_encode(digest)


def _machine_id() -> bytes:
    if sys.platform.startswith("linux"):
        return _first_file(_LINUX_SOURCES)
    if sys.platform == "darwin":
        return _macos_platform_uuid()
    if sys.platform in ("win32", "cygwin"):
        return _windows_machine_guid()
    if "bsd" in sys.platform or sys.platform.startswith("dragonfly"):
        return _first_file(_BSD_SOURCES)
    raise FingerprintUnavailable(f"no machine identifier is known on {sys.platform}")


def _usable(value: str) -> bool:
    value = value.strip().lower()
    return bool(value) and value != "uninitialized" and set(value) - set("0-") != set()


def _first_file(paths: tuple[str, ...]) -> bytes:
    for path in paths:
        try:
            with open(path, encoding="ascii", errors="replace") as handle:
                value = handle.read(256).strip()
        except OSError:
            continue
        if _usable(value):
            return value.lower().encode("ascii", "replace")
    raise FingerprintUnavailable(
        f"no machine id found (looked in {', '.join(paths)}); on Linux run "
        "`systemd-machine-id-setup` or provide /etc/machine-id"
    )


def _macos_platform_uuid() -> bytes:
    import subprocess

    try:
        output = subprocess.run(
            ["/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise FingerprintUnavailable(f"could not run ioreg: {exc}") from None
    for line in output.splitlines():
        if '"IOPlatformUUID"' in line:
            value = line.split("=", 1)[-1].strip().strip('"')
            if _usable(value):
                return value.lower().encode("ascii", "replace")
    raise FingerprintUnavailable("ioreg reported no IOPlatformUUID")


def _windows_machine_guid() -> bytes:
    if sys.platform != "win32":  # cygwin has no winreg; the check also guides type checkers
        raise FingerprintUnavailable("could not read MachineGuid: winreg is Windows only")
    try:
        import winreg

        flags = winreg.KEY_READ | getattr(winreg, "KEY_WOW64_64KEY", 0)
        with winreg.OpenKey(
            winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography", 0, flags
        ) as key:
            value, _ = winreg.QueryValueEx(key, "MachineGuid")
    except (ImportError, OSError) as exc:
        raise FingerprintUnavailable(f"could not read MachineGuid: {exc}") from None
    if not isinstance(value, str) or not _usable(value):
        raise FingerprintUnavailable("MachineGuid is empty")
    return value.lower().encode("ascii", "replace")
