"""Everything one child's page shows, read through the APIs, and its timeline."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from services.web.backend import ApiError, PersonApi


@dataclass
class ChildView:
    child: dict[str, Any]
    placements: list[dict[str, Any]]
    schooling: dict[str, dict[str, Any]]
    examinations: list[dict[str, Any]]
    alerts: dict[str, list[dict[str, Any]]]
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> dict[str, Any] | None:
        return next((p for p in reversed(self.placements) if p["end_date"] is None), None)


async def _schooling(person: PersonApi, placement_id: str) -> dict[str, Any]:
    try:
        found: dict[str, Any] = await person.get("school", f"/v1/placements/{placement_id}/schooling")
        return found
    except ApiError:
        # The school service has not yet heard of the placement (its event is on the way).
        return {"plans": [], "starts": [], "ends": []}


async def _alerts(person: PersonApi, placement_id: str) -> list[dict[str, Any]]:
    items = await person.get_all("notify", "/v1/alerts", {"placement_id": placement_id})
    details = await asyncio.gather(*(person.get("notify", f"/v1/alerts/{a['id']}") for a in items))
    return sorted(details, key=lambda a: a["created_at"])


async def load_child(person: PersonApi, child_id: str) -> ChildView:
    child = await person.get("placement", f"/v1/children/{child_id}")
    placements, exams = await asyncio.gather(
        person.get_all("placement", "/v1/placements", {"child_id": child_id}),
        person.get_all("health", "/v1/examinations", {"child_id": child_id}),
    )
    placements.sort(key=lambda p: (p["start_date"], p["created_at"]))
    ids = [p["id"] for p in placements]
    schooling, alerts = await asyncio.gather(
        asyncio.gather(*(_schooling(person, i) for i in ids)),
        asyncio.gather(*(_alerts(person, i) for i in ids)),
    )
    view = ChildView(
        child=child,
        placements=placements,
        schooling=dict(zip(ids, schooling, strict=True)),
        examinations=sorted(exams, key=lambda e: (e["date"], e["created_at"])),
        alerts=dict(zip(ids, alerts, strict=True)),
    )
    view.timeline = timeline(view)
    return view


def timeline(view: ChildView) -> list[dict[str, Any]]:
    """What happened, newest first: each entry a date, a kind (a catalogue key) and its record."""
    out: list[dict[str, Any]] = []
    for p in view.placements:
        out.append({"on": p["start_date"], "kind": "placement_started", "record": p})
        if p["end_date"]:
            out.append({"on": p["end_date"], "kind": "placement_ended", "record": p})
        s = view.schooling.get(p["id"], {})
        out += [{"on": x["drawn_up_on"], "kind": "school_plan", "record": x} for x in s.get("plans", [])]
        out += [{"on": x["start_date"], "kind": "school_start", "record": x} for x in s.get("starts", [])]
        out += [{"on": x["end_date"], "kind": "school_end", "record": x} for x in s.get("ends", [])]
        for alert in view.alerts.get(p["id"], []):
            for step in alert.get("history", []):
                out.append({"on": step["on_date"], "kind": "alert", "record": {**step, "rule": alert["rule"]}})
    out += [{"on": e["date"], "kind": f"exam_{e['status']}", "record": e} for e in view.examinations]
    out.sort(key=lambda e: e["on"], reverse=True)
    return out
