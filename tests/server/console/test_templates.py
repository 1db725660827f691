"""The pages' templates keep the Content-Security-Policy honest: no inline script, no inline
event handler, no inline style, and every asset from /static."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.web import STATIC_DIR, TEMPLATE_DIR

TEMPLATES = sorted(TEMPLATE_DIR.rglob("*.html"))


def test_there_are_templates_and_assets() -> None:
    assert len(TEMPLATES) > 20
    assert {"htmx.min.js", "htmx.LICENSE", "app.js", "app.css"} <= {
        p.name for p in STATIC_DIR.iterdir()
    }


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(TEMPLATE_DIR)))
def test_no_inline_script_or_style(path: Path) -> None:
    text = path.read_text()
    for tag in re.findall(r"<script\b[^>]*>", text):
        assert re.search(r'\ssrc="/static/[^"]+"', tag), tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", text), "inline script"
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
    assert not re.search(r"\sstyle\s*=|<style\b", text), "inline style"
    assert not re.search(r'(src|href)="(https?:)?//', text), "an asset from elsewhere"
    assert "| safe" not in text.replace("csrf_input | safe", ""), "unescaped output"
