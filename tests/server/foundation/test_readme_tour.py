"""The README's 60-second tour runs as pasted: its shell block against a real
`licentia serve`, then its Python block in the same directory, so the tour cannot rot.

The only change made to the text is the server's address (the test's server listens on a
free port, not 8000). `uv run` finds this checkout through UV_PROJECT (the tour is meant to
be run in the checkout; here it runs in a temporary directory so its files land there)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support import server_env

ROOT = Path(__file__).resolve().parents[3]
TOOLS = {name: shutil.which(name) for name in ("bash", "curl", "jq", "uv")}
missing = sorted(name for name, path in TOOLS.items() if path is None)

pytestmark = pytest.mark.skipif(
    bool(missing),
    reason=f"the README tour needs {', '.join(missing)} on PATH "
    "(.ci/run installs jq when it is missing)",
)


def _tour_blocks() -> dict[str, list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A 60-second tour", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, list[str]] = {}
    for language, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        blocks.setdefault(language, []).append(body)
    return blocks


def test_the_tour_has_one_shell_and_one_python_block() -> None:
    blocks = _tour_blocks()
    assert sorted(blocks) == ["python", "sh"] and all(len(b) == 1 for b in blocks.values())
    assert "jq" in (ROOT / "README.md").read_text().split("## The two commands")[0]


def test_the_readme_tour_runs_as_pasted(settings, live_server_factory, tmp_path: Path) -> None:
    server = live_server_factory()
    blocks = _tour_blocks()
    script = blocks["sh"][0].replace("http://127.0.0.1:8000", server.base_url)
    env = server_env(settings) | {
        "UV_PROJECT": str(ROOT),
        "UV_NO_SYNC": "1",
        "UV_OFFLINE": "1",
        "LICENTIA_LOG_LEVEL": "WARNING",
    }
    shell = subprocess.run(
        [TOOLS["bash"], "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert re.search(r"^license key: LK-[0-9A-Z-]{41}$", shell.stdout, flags=re.M), shell.stdout
    activation = json.loads((tmp_path / "activation.json").read_text())
    assert activation["token"].count(".") == 2 and activation["activations_count"] == 1
    shown = json.loads(shell.stdout.split("license key:", 1)[1].split("\n", 1)[1])
    assert shown["activation_id"] == activation["activation_id"]
    assert json.loads((tmp_path / "root.json").read_text())["keys"]

    product = subprocess.run(
        [TOOLS["uv"], "run", "python", "-c", blocks["python"][0]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert product.returncode == 0, product.stdout + product.stderr
    assert product.stdout.startswith("plugins enabled for pro until "), product.stdout
