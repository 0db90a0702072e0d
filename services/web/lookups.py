"""The records the inbox shows beside each alert (child, placement, schooling), read through
the API with the person's token and kept a few seconds in their session: the inbox refreshes
every couple of seconds and these change rarely."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.web.backend import ApiError, PersonApi
from services.web.sessions import WebSession

TTL_SECONDS = 20.0
MAX_ENTRIES = 3000


async def cached(session: WebSession, key: str, load: Any) -> Any:
    now = time.monotonic()
    hit = session.cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    try:
        value = await load()
    except ApiError:
        value = None  # out of the person's rows, or gone: shown as unknown
    if len(session.cache) >= MAX_ENTRIES:
        session.cache.clear()
    session.cache[key] = (now + TTL_SECONDS, value)
    return value


async def enrich_alerts(person: PersonApi, session: WebSession, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each alert with its child, placement and latest school plan (None where not visible)."""

    async def one(alert: dict[str, Any]) -> dict[str, Any]:
        child_id, placement_id = alert["child_id"], alert["placement_id"]
        child, placement, schooling = await asyncio.gather(
            cached(session, f"child:{child_id}", lambda: person.get("placement", f"/v1/children/{child_id}")),
            cached(
                session, f"placement:{placement_id}", lambda: person.get("placement", f"/v1/placements/{placement_id}")
            ),
            cached(
                session,
                f"schooling:{placement_id}",
                lambda: person.get("school", f"/v1/placements/{placement_id}/schooling"),
            ),
        )
        plans = (schooling or {}).get("plans") or []
        return {**alert, "child": child, "placement": placement, "plan": plans[-1] if plans else None}

    return list(await asyncio.gather(*(one(a) for a in alerts)))
