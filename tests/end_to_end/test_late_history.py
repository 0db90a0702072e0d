"""Issue 14, finding 3, through the API: a city entering its children's histories late, in their
natural order (placement, plan, school start, examinations; a move among them), within notify's
settle period (its default, 900 s), raises no alert, no event on obruten.alerts and no webhook
call for the children who were in school all along. A child who really went without school is
alerted once the period has passed, every level told."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from services.notify.app import evaluate
from shared.contracts.topics import TOPIC_ALERTS
from shared.kernel.clock import FixedClock
from shared.kernel.settings import Settings
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.notify import Receiver, alerts, processed
from tests.fixtures.support import TopicTail, eventually


async def created(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_histories_entered_in_natural_order_within_the_settle_period_raise_no_false_alarm(
    live_service: Any, service_client: Any, settings: Settings, tokens: Any, clock: FixedClock
) -> None:
    today = clock.today()
    on = lambda n: str(today + timedelta(days=n))  # noqa: E731
    notify_override = {
        "notify_tick_interval_seconds": 3600,
        "notify_settle_seconds": 900,
        "notify_webhook_poll_interval_seconds": 0.05,
    }
    async with (
        Receiver() as hook,
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        live_service("placement") as url,
        httpx.AsyncClient(base_url=url, headers=tokens.headers("admin")) as placement,
        service_client("school", settings_override={"placement_url": url}) as school,
        service_client("health", settings_override={"placement_url": url}) as health,
        service_client("notify", settings_override=notify_override) as notify,
    ):
        assert (await notify.post("/v1/webhooks", json={"url": hook.url, "secret": "x" * 20})).status_code == 201
        schooled: list[str] = []

        async def history(n: int, placement_id: str, start: int, school_day: int) -> None:
            await created(
                await school.post("/v1/school-plans", json={"placement_id": placement_id, "drawn_up_on": on(start + 1)})
            )
            await created(
                await school.post(
                    "/v1/school-starts",
                    json={
                        "placement_id": placement_id,
                        "start_date": on(school_day),
                        "school_unit_code": f"{10000000 + n}",
                    },
                )
            )

        async def examined(placement_id: str) -> None:
            for kind, d in (("health", -30), ("dental", -25)):
                body = {"placement_id": placement_id, "kind": kind, "status": "completed", "date": on(d)}
                await created(await health.post("/v1/examinations", json=body))

        for n in range(4):
            child = (await created(await placement.post("/v1/children", json=child_body(n))))["id"]
            pid = (
                await created(
                    await placement.post("/v1/placements", json=placement_body(child, start=today - timedelta(days=40)))
                )
            )["id"]
            await history(n, pid, -40, -37)
            await examined(pid)
            schooled.append(child)
        # A child moved on day 20 of its placement: in school before and after the move, examined before it.
        child = (await created(await placement.post("/v1/children", json=child_body(10))))["id"]
        first = (
            await created(
                await placement.post("/v1/placements", json=placement_body(child, start=today - timedelta(days=40)))
            )
        )["id"]
        await history(10, first, -40, -37)
        await examined(first)  # before the move: they count for the next placement too
        moved = await placement.post(
            f"/v1/placements/{first}/move",
            json={
                "move_date": on(-20),
                "next": {
                    k: v for k, v in placement_body(child, start=today - timedelta(days=20)).items() if k != "child_id"
                },
            },
        )
        assert moved.status_code in (200, 201), moved.text
        second = moved.json()["started"]["id"]
        await history(11, second, -20, -19)
        schooled.append(child)
        # A child who really had no school, no plan and no examination.
        lonely = (await created(await placement.post("/v1/children", json=child_body(20))))["id"]
        await created(
            await placement.post("/v1/placements", json=placement_body(lonely, start=today - timedelta(days=40)))
        )

        expected = (
            4 * 5 + 9 + 1
        )  # per child: placement, plan, start, two exams; the mover: a move (2 events) and a plan and a start more

        async def all_applied() -> bool:
            return processed(notify) >= expected

        await eventually(all_applied, timeout=60, interval=0.1)
        await evaluate(notify.app)
        assert await alerts(notify) == [], "nothing while the histories settle"
        clock.advance(timedelta(seconds=901))
        await evaluate(notify.app)
        found = await alerts(notify)
        assert {a["child_id"] for a in found} == {lonely}
        assert {a["rule"] for a in found} == {
            "school_gap",
            "school_plan_missing",
            "health_exam_missing",
            "dental_exam_missing",
        }
        [gap] = [a for a in found if a["rule"] == "school_gap"]
        assert (gap["status"], gap["level_name"], gap["calendar_days"]) == ("open", "central_office", 40)
        await tail.collect(3)
        await tail.settle(1.5)

        async def hooks_done() -> bool:
            return len(hook.requests) >= len(tail.events())

        await eventually(hooks_done, timeout=15)
    events = tail.events()
    assert events and {e["data"]["child_id"] for e in events} == {lonely}
    gap_steps = [(e["type"].rsplit(".", 1)[1], e["data"]["level"]) for e in events if e["data"]["rule"] == "school_gap"]
    assert gap_steps == [("opened", "district"), ("escalated", "district_manager"), ("escalated", "central_office")]
    assert all(all(c.encode() not in body for c in schooled) for _, body in hook.requests)
    assert len(hook.requests) == len(events)
