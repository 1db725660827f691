"""A schema-driven fuzzer (schemathesis) against a live ``licentia serve``: every operation of
the OpenAPI document, examples and coverage cases and random ones, then chains along the
documented ``links``. It fails on any 5xx, and on any answer the document does not describe
(status, content type, body, headers), and on a request the document forbids that is
accepted or one it allows that is refused with an undocumented status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support import make_api_key

# Refusals the document cannot state ahead of time are documented 422 problems, and count as
# answers to a request the schema allows: a cursor that is well formed but not one this
# server issued, cross-field rules ("give exactly one of expires_at or duration_days"), a
# referenced organization that does not exist, a rule that depends on the caller (an admin
# key must name the organization of a new user), an e-mail address that is not one.
# Examples per operation and phase: CI keeps the run to a couple of minutes. The stateful
# phase gets more, so that its chains reach past the first create (about half a minute).
EXAMPLES = int(os.environ.get("LICENTIA_FUZZ_EXAMPLES", "15"))
CONFIG = f"""
generation.max-examples = {EXAMPLES}

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

[phases.stateful]
generation.max-examples = {EXAMPLES * 4}
"""


def test_the_server_answers_as_its_openapi_document_says(
    live_server_factory, settings, tmp_path: Path
) -> None:
    server = live_server_factory()
    key = make_api_key(settings, ["*"])
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(tmp_path / "schemathesis.toml"),
        "run",
        f"{server.base_url}/schema/openapi.json",
        "--checks",
        "all",
        "--seed",
        "20261130",
        "--header",
        f"Authorization: Bearer {key}",
        "--request-timeout",
        "30",
        "--no-shrink",
        "--continue-on-failure",
        "--generation-database",
        "none",
        "--warnings",
        "off",
    ]
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False
    )
    (tmp_path / "schemathesis.txt").write_text(done.stdout + done.stderr)
    if path := os.environ.get("LICENTIA_FUZZ_REPORT"):
        Path(path).write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    covered = re.search(r"API Links:\s+(\d+) covered", done.stdout)
    assert covered and int(covered.group(1)) > 0, "the stateful phase followed no link"
