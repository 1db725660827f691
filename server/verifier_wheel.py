"""``licentia verifier wheel``: the wheel of the verifier this server speaks.

``licentia-verifier`` is not on any public package index: a product team gets it from the
vendor's Licentia, as a wheel to vendor or to put on its own index. The wheel is written
here with the standard library only (no build backend, no network), from the verifier's
sources that ship with the server:

- in an installed server (a wheel, the Docker image), ``server/verifier_source/``: the
  ``verifier/`` directory of the same commit, copied in by the build
  (``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml);
- in a checkout, ``verifier/`` next to ``server/``.

The result is a pure-Python ``py3-none-any`` wheel with the metadata of
``verifier/pyproject.toml`` (name, version, summary, ``Requires-Python``, ``Requires-Dist``,
the README as its description). It is reproducible: the same sources give the same bytes
(sorted entries, fixed timestamps and permissions), so two servers of one release hand out
identical wheels and a team can compare the printed SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "licentia_verifier"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_GENERATOR = "licentia (server/verifier_wheel.py)"


class NoVerifierSource(Exception):
    """Neither the bundled copy nor a checkout's ``verifier/`` was found."""


def source_dirs() -> list[Path]:
    """Where the verifier's sources may be, in the order they are tried."""
    server_dir = Path(__file__).resolve().parent
    return [server_dir / "verifier_source", server_dir.parent / "verifier"]


def find_source() -> Path:
    for candidate in source_dirs():
        if (candidate / "pyproject.toml").is_file() and (candidate / PACKAGE).is_dir():
            return candidate
    tried = ", ".join(str(p) for p in source_dirs())
    raise NoVerifierSource(f"the verifier's sources are not here (looked in {tried})")


@dataclass(frozen=True)
class Built:
    path: Path
    name: str
    version: str
    sha256: str


def _normalized(name: str) -> str:
    """The distribution name as a wheel file name spells it (PEP 427 / PEP 503)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata(project: dict[str, object], source: Path) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
    ]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    dependencies = project.get("dependencies") or []
    assert isinstance(dependencies, list)
    lines.extend(f"Requires-Dist: {dependency}" for dependency in dependencies)
    readme = project.get("readme")
    body = ""
    if isinstance(readme, str) and (source / readme).is_file():
        content_type = "text/markdown" if readme.endswith(".md") else "text/plain"
        lines.append(f"Description-Content-Type: {content_type}")
        body = "\n" + (source / readme).read_text(encoding="utf-8")
    return "\n".join(lines) + "\n" + body


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def build_wheel(output_dir: Path, source: Path | None = None) -> Built:
    """Write the verifier's wheel into ``output_dir`` (created if needed); return its path,
    name, version and SHA-256. An existing file of the same name is replaced."""
    source = source or find_source()
    project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name, version = str(project["name"]), str(project["version"])
    dist = f"{_normalized(name)}-{version}"
    files: list[tuple[str, bytes]] = []
    for path in sorted((source / PACKAGE).rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.append((path.relative_to(source).as_posix(), path.read_bytes()))
    if not any(arcname == f"{PACKAGE}/__init__.py" for arcname, _ in files):
        raise NoVerifierSource(f"{source / PACKAGE} has no __init__.py")
    info = f"{dist}.dist-info"
    files.append((f"{info}/METADATA", _metadata(project, source).encode("utf-8")))
    wheel = (
        f"Wheel-Version: 1.0\nGenerator: {_GENERATOR}\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files.append((f"{info}/WHEEL", wheel.encode("ascii")))
    record = [_record_line(arcname, data) for arcname, data in files]
    record.append(f"{info}/RECORD,,")
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode("utf-8")))

    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{dist}-py3-none-any.whl"
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for arcname, data in files:
            entry = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    partial.replace(target)
    sha256 = hashlib.sha256(target.read_bytes()).hexdigest()
    return Built(path=target, name=name, version=version, sha256=sha256)
