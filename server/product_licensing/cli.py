"""``licentia offline activate`` / ``licentia offline deactivate``: air-gapped machines.

The product-facing side of the command line (``licentia licenses`` is the admin side).

A machine with no network writes a request file; an admin (or the customer, by POSTing the
file's content to ``/api/v1/licenses/activate`` or ``/deactivate``) turns it into an answer on
any connected machine. Both go through the same service functions as the HTTP API.

File formats (JSON objects, UTF-8; unknown fields are refused):

Activation request (written by ``licentia_verifier.LicenseClient.offline_request``)::

    {"type": "activation_request", "version": 1,
     "product": "local_cli",             # product code, 1..64 chars
     "fingerprint": "...",               # the machine fingerprint, 1..256 chars
     "license_key": "LK-...",            # <= 128 chars
     "name": "build-agent-7",            # optional, <= 200 chars
     "platform": "linux-x86_64",         # optional, <= 64 chars
     "nonce": "...",                     # <= 128 chars, chosen by the client
     "created_at": "2026-11-25T10:00:00Z"}

Activation response (``offline activate --output TOKEN.json``; ``LicenseClient.install``)::

    {"type": "activation_response", "version": 1,
     "token": "<activation+jwt>", "activation_id": "<uuid>",
     "lease_expires_at": "2026-12-02T10:00:00Z",
     "nonce": "...",                     # the request's nonce, echoed
     "key_certificate": "<key+jwt>",     # the trust material of docs/token-format.md,
     "key_revocations": null,            # "Root of trust", as in every answer that
     "root_endorsements": []}            # carries a token

``POST /api/v1/licenses/activate`` with the request file as its body answers with these fields
too (plus ``activations_count`` and ``max_activations``), so its body is a valid token file.

Deactivation request (``offline deactivate REQUEST.json``; nothing signs it: it can only free
a seat that the key holder owns)::

    {"type": "deactivation_request", "version": 1,
     "product": "...", "fingerprint": "...", "license_key": "...",
     "nonce": "...", "created_at": "..."}

Deactivation response (``--output``, optional)::

    {"type": "deactivation_response", "version": 1, "activation_id": "<uuid>", "nonce": "..."}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import msgspec

from server.cli_support import data_dir_option
from server.product_licensing.schemas import ActivateRequest, DeactivateRequest

_request_argument = click.argument(
    "request", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
_output_option = click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the answer (default: standard output).",
)


@click.group()
def offline() -> None:
    """Air-gapped machines: turn their request files into answers (what products call
    online, done here for a machine with no network)."""


def _read_request(path: Path, schema: type[Any], kind: str) -> Any:
    try:
        request = msgspec.json.decode(path.read_bytes(), type=schema)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # invalid JSON, UTF-8 or schema
        raise click.ClickException(f"{path} is not a valid {kind}: {exc}") from None
    if request.type != kind or request.version != 1:
        raise click.ClickException(
            f"{path} is not a {kind} file (expected type {kind!r} and version 1)"
        )
    return request


def _write(answer: dict[str, Any], output: Path | None) -> None:
    document = json.dumps(answer, indent=2) + "\n"
    if output is None:
        click.echo(document, nl=False)
    else:
        output.write_text(document)
        click.echo(f"wrote {output}", err=True)


@offline.command("activate")
@_request_argument
@_output_option
@data_dir_option
def offline_activate(request: Path, output: Path | None, data_dir: Path) -> None:
    """Turn an offline activation REQUEST file into a token file for an air-gapped machine."""
    from server.cli_support import resolve_database, run_licensing, settings_for
    from server.product_licensing import service

    data = _read_request(request, ActivateRequest, "activation_request")
    settings = settings_for(resolve_database(data_dir))
    activated = run_licensing(
        settings, lambda connection, caller: service.activate(connection, caller, data)
    ).response
    _write(service.activation_response_file(activated), output)


@offline.command("deactivate")
@_request_argument
@_output_option
@data_dir_option
def offline_deactivate(request: Path, output: Path | None, data_dir: Path) -> None:
    """Free the seat named by an offline deactivation REQUEST file."""
    from server.cli_support import resolve_database, run_licensing, settings_for
    from server.product_licensing import service

    data = _read_request(request, DeactivateRequest, "deactivation_request")
    settings = settings_for(resolve_database(data_dir))
    activation_id = run_licensing(
        settings, lambda connection, caller: service.deactivate(connection, caller, data)
    )
    answer = {
        "type": "deactivation_response",
        "version": 1,
        "activation_id": str(activation_id),
        "nonce": data.nonce,
    }
    if output is None:
        click.echo(f"deactivated {activation_id}", err=True)
    _write(answer, output)
