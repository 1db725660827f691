"""0005 (plans, trials, fallback) down to 0004 and up again: the licensing functions go back
to 0004's definitions (their result columns and arguments) and return."""

from __future__ import annotations

import psycopg

from server.db.migrations import downgrade, upgrade
from server.settings import async_url


def _state(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        return {
            "trials": conn.execute("SELECT to_regclass('public.trials') IS NOT NULL").fetchone(),
            "tier_columns": sorted(
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = "
                    "'tiers' AND column_name IN ('is_trial', 'self_serve_trials', "
                    "'expiry_behavior')"
                )
            ),
            "functions": sorted(
                (r[0], r[1], r[2])
                for r in conn.execute(
                    "SELECT proname, pronargs, pg_get_function_result(oid) LIKE "
                    "'%updates_until%' FROM pg_proc WHERE proname IN ('licentia_license', "
                    "'licentia_validate', 'licentia_check_in', 'licentia_activate')"
                )
            ),
            "granted": conn.execute(
                "SELECT count(*) FROM pg_proc WHERE proname LIKE 'licentia\\_%' "
                "AND proname NOT LIKE '%\\_org' AND has_function_privilege('licentia_app', "
                "oid, 'EXECUTE')"
            ).fetchone(),
        }


def test_0005_down_to_0004_and_up_again(scratch_url: str) -> None:
    upgrade(async_url(scratch_url), "0005")
    head = _state(scratch_url)
    assert head == {
        "trials": (True,),
        "tier_columns": ["expiry_behavior", "is_trial", "self_serve_trials"],
        "functions": [
            ("licentia_activate", 13, False),
            ("licentia_check_in", 6, False),
            ("licentia_license", 2, True),
            ("licentia_validate", 3, True),
        ],
        "granted": (4,),
    }
    downgrade(async_url(scratch_url), "0004")
    assert _state(scratch_url) == {
        "trials": (False,),
        "tier_columns": [],
        "functions": [
            ("licentia_activate", 12, False),
            ("licentia_check_in", 6, False),
            ("licentia_license", 2, False),
            ("licentia_validate", 3, False),
        ],
        "granted": (4,),
    }
    upgrade(async_url(scratch_url), "0005")
    assert _state(scratch_url) == head
