"""How the tests themselves are written, checked on their source text.

- The things tests need (organizations, users, products and tiers, licenses, activations) are
  made in one place, tests/factories.py: no other test writes their rows with its own
  ``INSERT``, except the few listed below with the reason.
- Fixtures live in conftest.py files; helper modules (support, factories, ...) define none,
  and nothing imports a conftest.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
FACTORY = "tests/factories.py"

MADE_BY_THE_FACTORY = re.compile(
    r"\bINSERT\s+INTO\s+(organizations|users|products|tiers|licenses|activations|license_users)\b",
    re.IGNORECASE,
)
# Files that write those rows themselves, and why.
ALLOWED_INSERTS = {
    # Loads 100,000 licenses into a benchmark's own database in bulk (COPY and executemany);
    # row by row through the factory would take longer than the measurement.
    "tests/benchmarks/bench_server.py",
}
# Outside tests/: the verifier's own tests.
TEST_TREES = (TESTS, ROOT / "verifier" / "tests")


def _python_files() -> list[Path]:
    return sorted(path for tree in TEST_TREES for path in tree.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_rows_of_the_factory_are_made_only_by_the_factory() -> None:
    offenders = []
    for path in _python_files():
        name = _relative(path)
        if name == FACTORY or name in ALLOWED_INSERTS:
            continue
        text = path.read_text()
        for found in MADE_BY_THE_FACTORY.finditer(text):
            line = text.count("\n", 0, found.start()) + 1
            offenders.append(f"{name}:{line}: {found.group(0)}")
    assert not offenders, "make these through tests/factories.py:\n" + "\n".join(offenders)


def test_the_allow_list_is_still_needed() -> None:
    for name in ALLOWED_INSERTS:
        assert MADE_BY_THE_FACTORY.search((ROOT / name).read_text()), f"{name}: drop it"


def test_the_rule_sees_what_it_forbids() -> None:
    assert MADE_BY_THE_FACTORY.search((ROOT / FACTORY).read_text())
    insert = "INSERT"  # apart, so that this file does not match itself
    for made in (
        f"{insert} INTO licenses (id)",
        f"{insert.lower()} into\n  tiers",
        f"{insert} INTO users",
    ):
        assert MADE_BY_THE_FACTORY.search(made)
    for other in (f"{insert} INTO refresh_tokens", f"{insert} INTO projects", "SELECT licenses"):
        assert not MADE_BY_THE_FACTORY.search(other)


def test_fixtures_only_in_conftest_and_no_conftest_imports() -> None:
    offenders = []
    for path in _python_files():
        name = _relative(path)
        text = path.read_text()
        if re.search(r"^\s*(from\s+conftest\s+import|import\s+conftest\b)", text, re.MULTILINE):
            offenders.append(f"{name}: imports a conftest")
        helper = path.name != "conftest.py" and not path.name.startswith("test_")
        if helper and re.search(r"@pytest\.fixture\b", text):
            offenders.append(f"{name}: a helper module defines a fixture")
    assert not offenders, "\n".join(offenders)
