"""The layer rules of docs/architecture.md, checked on every import statement in the tree
(module level, inside functions and under ``TYPE_CHECKING`` alike).

- ``keys/``: key material and token encoding only; no database, no web framework, nothing
  from ``server``.
- ``verifier/``: the standard library and ``cryptography``; nothing from this repository.
- the server core (settings, db, errors, problems, models, observability, embedded) imports
  no domain and no shared helper.
- shared helpers (pagination, validation, ratelimit, ...) import only the core and ``keys``.
- a domain (``server/<domain>/``) imports the core, shared helpers, ``keys``, itself, and
  another domain's published modules (service, schemas, the principal, the keyring), never
  its routes or its command line.
- the wiring (app, cli, each domain's ``cli`` module, ...) may import anything; nothing but
  the wiring imports it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CORE = {
    "server.settings",
    "server.db",
    "server.errors",
    "server.problems",
    "server.models",
    "server.observability",
    "server.metrics",
    "server.contract",
    "server.embedded",
    "server.client_address",
}
SHARED = {
    "server.pagination",
    "server.validation",
    "server.ratelimit",
    "server.license_rules",
    "server.passwords",
    "server.web",
    "server.idempotency",
}
WIRING = {
    "server.app",
    "server.api_docs",
    "server.cli",
    "server.cli_support",
    "server.demo",
    "server.maintenance",
    "server.verifier_wheel",
}
PUBLISHED = {"service", "schemas", "principal", "keyring"}
WEB_OR_DATABASE = {"litestar", "sqlalchemy", "asyncpg", "alembic", "psycopg", "uvicorn"}
VERIFIER_ALLOWED = {"cryptography", "licentia_verifier"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            # ``from server import embedded`` names a module too
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _layer(module: str) -> str:
    """``core``, ``shared``, ``wiring`` or ``domain:<name>``; fails on an unknown module."""
    for group, name in ((CORE, "core"), (SHARED, "shared"), (WIRING, "wiring")):
        if any(module == m or module.startswith(m + ".") for m in group):
            return name
    parts = module.split(".")
    if len(parts) == 3 and parts[2] == "cli":
        return "wiring"  # a domain's command line is an adapter, as its routes are
    if len(parts) >= 2 and (ROOT / "server" / parts[1]).is_dir():
        return f"domain:{parts[1]}"
    if module == "server":
        return "package"
    raise AssertionError(f"{module} belongs to no layer: add it to tests/architecture")


def _is_server_module(name: str) -> bool:
    if not (name == "server" or name.startswith("server.")):
        return False
    parts = name.split(".")
    path = ROOT.joinpath(*parts)
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _violation(importer: str, imported: str) -> str | None:
    source, target = _layer(importer), _layer(imported)
    if target == "wiring" and source != "wiring":
        return "nothing but the wiring imports the wiring"
    if source == "core" and target not in ("core", "package"):
        return "the core imports no domain and no shared helper"
    if source == "shared" and target not in ("core", "shared", "package"):
        return "a shared helper imports only the core"
    if source.startswith("domain:") and target.startswith("domain:") and source != target:
        parts = imported.split(".")
        # ``from server.users import service`` names the package, then the module
        if len(parts) > 2 and parts[2] not in PUBLISHED:
            return f"a domain imports only another domain's {sorted(PUBLISHED)} modules"
    return None


def _python_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _python_files("server"), ids=lambda p: str(p.relative_to(ROOT)))
def test_server_layers(path: Path) -> None:
    importer = _module_name(path)
    _layer(importer)
    broken = [
        f"line {line}: {importer} -> {name}: {reason}"
        for line, name in _imports(path)
        if _is_server_module(name) and (reason := _violation(importer, name))
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("path", _python_files("keys"), ids=lambda p: str(p.relative_to(ROOT)))
def test_keys_hold_no_database_and_no_web_framework(path: Path) -> None:
    broken = [
        f"line {line}: {name}"
        for line, name in _imports(path)
        if name.split(".")[0] in WEB_OR_DATABASE | {"server"}
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(
    "path",
    _python_files("verifier/licentia_verifier"),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_verifier_uses_the_standard_library_and_cryptography_only(path: Path) -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    broken = [
        f"line {line}: {name}"
        for line, name in _imports(path)
        if name.split(".")[0] not in stdlib | VERIFIER_ALLOWED
    ]
    assert not broken, "\n".join(broken)


def test_the_rules_catch_a_forbidden_import() -> None:
    """The checker itself: each rule refuses what it should."""
    assert _violation("server.db.session", "server.auth.principal")
    assert _violation("server.errors", "server.pagination")
    assert _violation("server.pagination", "server.users.service")
    assert _violation("server.users.service", "server.app")
    assert _violation("server.auth.routes", "server.users.routes")
    assert _violation("server.product_licensing.service", "server.license_admin.facts")
    assert _violation("server.users.routes", "server.audit.service") is None
    # the webhook domain: it reads other domains' published modules; its dispatcher is its own
    assert _layer("server.webhooks.dispatcher") == "domain:webhooks"
    assert _violation("server.webhooks.service", "server.license_admin.service") is None
    assert _violation("server.license_admin.service", "server.webhooks.dispatcher")
    assert _violation("server.webhooks.service", "server.webhooks.cli")
    assert _violation("server.app", "server.users.routes") is None
    with pytest.raises(AssertionError, match="no layer"):
        _layer("server.somewhere_new")
