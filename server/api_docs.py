"""The API documentation pages (``/schema``, ``/swagger``) served whole by Licentia: Swagger
UI's JavaScript, CSS and icon come from the pinned ``swagger-ui-py`` distribution (its
``static`` folder, Swagger UI 5, Apache-2.0; the licence ships beside the files and is served
at ``/schema-assets/LICENSE``), never from a CDN, so air-gapped installs get working docs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/schema-assets"
_FILES = (
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "favicon-32x32.png",
    "LICENSE",
)


def _static_folder() -> Path:
    spec = importlib.util.find_spec("swagger_ui")  # found, not imported: its handlers need more
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py distribution is missing: reinstall licentia")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def render_plugin() -> SwaggerRenderPlugin:
    """Swagger UI at ``/schema`` and ``/swagger``, its assets from ``ASSETS_PATH``."""
    return SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        path=["/", "/swagger"],
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )


def assets_router() -> Router:
    """The distribution's static folder (the pages load the files in ``_FILES``), cached
    for a day: the files change only with a release."""
    folder = _static_folder()
    missing = [name for name in _FILES if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(f"swagger-ui-py lacks {missing}: reinstall licentia")
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[folder],
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=86400, public=True),
        name="api-docs-assets",
    )
