"""Liveness (no I/O) and readiness (database answers, schema at head)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.datastructures import State

from server.db.migrations import current_revision, head_revision
from server.errors import Unavailable
from server.problems import problem_responses


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", summary="Process is up", cache=False)
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get(
        "/ready",
        summary="Database reachable and schema at head",
        cache=False,
        responses=problem_responses(503),
    )
    async def ready(self, state: State) -> dict[str, str]:
        try:
            revision = await current_revision(state.engine)
        except Exception as exc:
            raise Unavailable("The database does not answer", code="DATABASE_UNAVAILABLE") from exc
        expected = head_revision()
        if revision != expected:
            raise Unavailable(
                f"Schema at {revision or 'nothing'}, expected {expected}; "
                "run `licentia db upgrade`",
                code="SCHEMA_OUTDATED",
            )
        return {"status": "ready", "schema": revision}
