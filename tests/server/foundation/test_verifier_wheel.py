"""``licentia verifier wheel``: the wheel of the verifier this server speaks, built offline
with the standard library, reproducible, installable into a fresh environment; and an
installed server (its own wheel) hands out the very same bytes as the checkout."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.cli import main

ROOT = Path(__file__).resolve().parents[3]
VERIFIER = ROOT / "verifier"
UV = shutil.which("uv")
needs_uv = pytest.mark.skipif(UV is None, reason="uv is not on PATH (it installs the wheel)")


def _wheel(output: Path) -> Path:
    result = CliRunner().invoke(main, ["verifier", "wheel", "--output", str(output)])
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.parent == output and path.is_file()
    assert "sha256=" + hashlib.sha256(path.read_bytes()).hexdigest() in result.stderr
    return path


def test_the_wheel_holds_the_verifier_sources_and_valid_metadata(tmp_path: Path) -> None:
    path = _wheel(tmp_path / "dist")
    assert path.name == "licentia_verifier-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        sources = {
            p.relative_to(VERIFIER).as_posix()
            for p in (VERIFIER / "licentia_verifier").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        info = "licentia_verifier-0.1.0.dist-info"
        assert names == sources | {f"{info}/METADATA", f"{info}/WHEEL", f"{info}/RECORD"}
        for name in sources:
            assert archive.read(name) == (VERIFIER / name).read_bytes(), name
        metadata = archive.read(f"{info}/METADATA").decode()
        assert "Name: licentia-verifier\n" in metadata and "Version: 0.1.0\n" in metadata
        assert "Requires-Dist: cryptography>=3.4\n" in metadata
        assert "Requires-Python: >=3.9\n" in metadata
        assert "Tag: py3-none-any" in archive.read(f"{info}/WHEEL").decode()
        record = archive.read(f"{info}/RECORD").decode().splitlines()
        assert {line.split(",")[0] for line in record} == names
        for line in record:
            name, digest, size = line.split(",")
            if name.endswith("/RECORD"):
                assert digest == size == ""
                continue
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode() and int(size) == len(data), name


def test_the_same_sources_give_the_same_bytes(tmp_path: Path) -> None:
    first = _wheel(tmp_path / "a").read_bytes()
    assert _wheel(tmp_path / "b").read_bytes() == first
    assert _wheel(tmp_path / "a").read_bytes() == first  # written again over itself


@needs_uv
def test_the_wheel_installs_into_a_fresh_environment(tmp_path: Path) -> None:
    path = _wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    # --offline: cryptography comes from uv's cache (filled by `uv sync`), never the network.
    subprocess.run(
        [UV, "pip", "install", "-q", "--offline", "--python", str(python), str(path)],
        check=True,
    )
    probe = (
        "import importlib.metadata as m, licentia_verifier as v; "
        "print(m.version('licentia-verifier'), v.__file__, v.Verifier.__name__)"
    )
    out = subprocess.run(
        [str(python), "-c", probe], check=True, capture_output=True, text=True
    ).stdout.split()
    assert out[0] == "0.1.0" and out[2] == "Verifier"
    assert Path(out[1]).is_relative_to(venv), "imported from the fresh environment"


@needs_uv
def test_an_installed_server_hands_out_the_same_wheel(tmp_path: Path) -> None:
    """The server's own wheel carries the verifier's sources (pyproject.toml force-include);
    its ``verifier_wheel`` builds from them, with no checkout, the same bytes."""
    built = subprocess.run(
        [UV, "build", "-q", "--wheel", "--offline", "--out-dir", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        pytest.skip(f"cannot build the server wheel offline here: {built.stderr.strip()[-200:]}")
    [server_wheel] = (tmp_path / "dist").glob("licentia-*.whl")
    installed = tmp_path / "installed"
    with zipfile.ZipFile(server_wheel) as archive:
        archive.extractall(installed)
    assert (installed / "server" / "verifier_source" / "pyproject.toml").is_file()
    probe = (
        "import sys; from pathlib import Path; from server.verifier_wheel import build_wheel, "
        "find_source; print(find_source()); print(build_wheel(Path(sys.argv[1])).path)"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(installed)!r}); " + probe,
            str(tmp_path / "from-installed"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert Path(out[0]) == installed / "server" / "verifier_source"
    assert Path(out[1]).read_bytes() == _wheel(tmp_path / "from-checkout").read_bytes()
