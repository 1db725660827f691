"""The public surface: a handful of names, the online client loaded only when used."""

from __future__ import annotations

import subprocess
import sys

import licentia_verifier


def test_every_public_name_resolves_and_errors_share_one_family() -> None:
    for name in licentia_verifier.__all__:
        value = getattr(licentia_verifier, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, licentia_verifier.LicenseError), name


def test_import_does_not_load_the_network_client() -> None:
    code = (
        "import sys, licentia_verifier; "
        "print('licentia_verifier.client' in sys.modules, 'urllib.request' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
