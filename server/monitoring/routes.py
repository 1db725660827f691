"""``GET /metrics``: the Prometheus exposition, for scrapes that carry the metrics token.

Registered only when ``LICENTIA_METRICS_TOKEN`` is set (404 otherwise, like any unknown
path); kept out of the OpenAPI document: it is for the operator's Prometheus, not for API
clients."""

from __future__ import annotations

import asyncio
import hmac

from litestar import Controller, Request, Response, get
from litestar.datastructures import State

from server.errors import Unauthenticated
from server.metrics import CONTENT_TYPE, exposition
from server.monitoring.service import current_stats


def _bearer(request: Request) -> bytes:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return credential.strip().encode() if scheme.lower() == "bearer" else b""


class MetricsController(Controller):
    path = "/metrics"
    include_in_schema = False

    @get(cache=False)
    async def metrics(self, request: Request, state: State) -> Response[bytes]:
        if not hmac.compare_digest(_bearer(request), state.metrics_token):
            raise Unauthenticated(
                "Scrapes carry the metrics token as 'Authorization: Bearer <token>'",
                code="UNAUTHENTICATED",
            )
        stats = await current_stats(state.side_engine, state.metrics_stats)
        body = await asyncio.to_thread(exposition, stats)
        return Response(body, media_type=CONTENT_TYPE)
