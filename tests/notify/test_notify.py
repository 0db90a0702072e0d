"""The notify service on a real PostgreSQL and broker: events published straight onto the topics,
evaluation driven by calling the tick with a FixedClock."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

import pytest
from standardwebhooks import Webhook

from services.notify.app import evaluate
from services.notify.runtime import notify_runtime
from shared.contracts.placement import PLACEMENT_STARTED
from shared.contracts.school import SCHOOL_STARTED
from shared.contracts.topics import TOPIC_ALERTS
from shared.web.runtime import runtime
from tests.fixtures.notify import Bus, Case, Receiver, alerts, consumed, public_dns
from tests.fixtures.support import TopicTail, eventually

DAY0 = date(2025, 9, 1)  # the clock fixture's day
QUIET = {"notify_tick_interval_seconds": 3600}  # the test drives the tick itself
NO_PREWARNING = {**QUIET, "notify_rules": {"school_gap": {"prewarning_day": None}}}


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


async def detail(client, alert_id: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    resp = await client.get(f"/v1/alerts/{alert_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def assert_problem(resp, status: int, field: str | None = None) -> dict:  # type: ignore[no-untyped-def, type-arg]
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["type"].startswith("https://")
    if field is not None:
        assert body["field"] == field, body
    return body  # type: ignore[no-any-return]


async def test_school_gap_opens_on_day_8_and_a_start_on_day_9_resolves_it_with_9_days(service_client, settings, clock):
    case = Case(DAY0)
    async with (
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        Bus(settings) as bus,
        service_client("notify", settings_override=NO_PREWARNING) as notify,
    ):
        await bus.placement(case)
        await consumed(1, notify)
        for n in range(8):
            clock.set_today(day(n))
            # The tick reads the due index: nothing is due before the deadline.
            assert await evaluate(notify.app) == 0
            assert await alerts(notify) == [], f"no alert on day {n}"
        clock.set_today(day(8))
        assert await evaluate(notify.app) == 1
        assert await evaluate(notify.app) == 0
        [alert] = await alerts(notify, placement_id=case.placement_id)
        assert alert["rule"] == "school_gap" and alert["status"] == "open"
        assert alert["level_name"] == "district" and alert["district"] == "Farsta"
        assert alert["clock_start"] == str(DAY0) and alert["deadline"] == str(day(8))
        assert alert["calendar_days"] == 8

        clock.set_today(day(9))
        await bus.school_started(case, day(9))
        await consumed(2, notify)
        got = await detail(notify, alert["id"])
        assert got["status"] == "resolved" and got["resolution_reason"] == "school_started"
        assert [h["transition"] for h in got["history"]] == ["opened", "resolved"]
        resolved = got["history"][-1]
        assert resolved["calendar_days"] == 9 and resolved["counted_days"] == 9
        assert resolved["reason"] == "school_started"

        await tail.collect(2)
    events = tail.events()
    assert [e["type"] for e in events] == ["obruten.alert.opened", "obruten.alert.resolved"]
    opened = events[0]
    assert opened["subject"] == str(case.child_id) and tail.messages[0].key == str(case.child_id).encode()
    assert opened["source"] == "/obruten/notify"
    assert opened["data"]["rule"] == "school_gap" and opened["data"]["placement_id"] == str(case.placement_id)
    assert opened["data"]["calendar_days"] == 8 and opened["data"]["deadline"] == str(day(8))
    assert events[1]["data"]["calendar_days"] == 9
    # Ids, district, rule, dates and days only.
    assert set(opened["data"]) <= {
        "alert_id", "rule", "placement_id", "child_id", "district", "status", "level", "clock_start",
        "deadline", "as_of", "calendar_days", "counted_days", "reason", "acknowledged_by",
    }  # fmt: skip


async def test_with_the_default_prewarning_only_a_warning_precedes_day_8(service_client, settings, clock):
    case = Case(DAY0)
    async with Bus(settings) as bus, service_client("notify", settings_override=QUIET) as notify:
        await bus.placement(case)
        await consumed(1, notify)
        for n in range(8):
            clock.set_today(day(n))
            await evaluate(notify.app)
            expected = ["warning"] if n >= 5 else []
            assert [a["status"] for a in await alerts(notify)] == expected, f"day {n}"
        clock.set_today(day(8))
        await evaluate(notify.app)
        [alert] = await alerts(notify)
        assert alert["status"] == "open"
        assert [h["transition"] for h in (await detail(notify, alert["id"]))["history"]] == ["prewarned", "opened"]


@pytest.mark.parametrize("override", [NO_PREWARNING, QUIET], ids=["no-prewarning", "default-prewarning"])
async def test_a_school_start_on_day_7_means_no_alert_ever(service_client, settings, clock, override):
    case = Case(DAY0)
    async with Bus(settings) as bus, service_client("notify", settings_override=override) as notify:
        await bus.placement(case)
        await consumed(1, notify)
        for n in range(7):
            clock.set_today(day(n))
            await evaluate(notify.app)
        clock.set_today(day(7))
        await bus.school_started(case, day(7))
        await consumed(2, notify)
        for n in range(7, 60):
            clock.set_today(day(n))
            await evaluate(notify.app)
        found = await alerts(notify, rule="school_gap")
        assert all(a["status"] != "open" and a["opened_at"] is None for a in found)
        if override is NO_PREWARNING:
            assert found == []
        else:
            # The pre-warning of day 5 was withdrawn by the start: resolved, 7 days, never opened.
            [warning] = found
            assert warning["status"] == "resolved" and warning["calendar_days"] == 7
            history = (await detail(notify, warning["id"]))["history"]
            assert [h["transition"] for h in history] == ["prewarned", "resolved"]


async def test_a_school_start_that_arrives_before_its_placement_means_no_alert(service_client, settings, clock):
    case = Case(DAY0)
    clock.set_today(day(10))
    async with Bus(settings) as bus, service_client("notify", settings_override=QUIET) as notify:
        await bus.school_started(case, day(3))
        await consumed(1, notify)
        await bus.placement(case)
        await consumed(2, notify)
        for n in (10, 11, 20, 40):
            clock.set_today(day(n))
            await evaluate(notify.app)
        assert await alerts(notify, rule="school_gap") == []
        # The placement itself is known: its other rules run (no health exam by day 40).
        assert {a["rule"] for a in await alerts(notify)} == {"health_exam_missing", "dental_exam_missing"}


async def test_the_same_events_delivered_twice_raise_one_alert(service_client, settings, clock):
    case = Case(DAY0)
    async with (
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        Bus(settings) as bus,
        service_client("notify", settings_override=NO_PREWARNING) as notify,
    ):
        placed = bus.event(PLACEMENT_STARTED, case.snapshot())
        await bus.send(PLACEMENT_STARTED, placed)
        await bus.send(PLACEMENT_STARTED, placed)  # a redelivery: same event id
        # A republished snapshot (same version, new event id) changes nothing either.
        case.version -= 1
        await bus.publish(PLACEMENT_STARTED, case.snapshot())
        await consumed(3, notify)
        clock.set_today(day(8))
        await evaluate(notify.app)
        await evaluate(notify.app)
        clock.set_today(day(12))
        started = bus.event(SCHOOL_STARTED, case.school_started(day(12)))
        await bus.send(SCHOOL_STARTED, started)
        await bus.send(SCHOOL_STARTED, started)
        await consumed(5, notify)
        [alert] = await alerts(notify, rule="school_gap")
        assert alert["status"] == "resolved"
        await tail.collect(2)
        await tail.settle(1.0)
    assert [e["type"] for e in tail.events()] == ["obruten.alert.opened", "obruten.alert.resolved"]


async def test_two_notify_instances_raise_each_alert_once(service_client, settings, clock):
    cases = [Case(DAY0) for _ in range(6)]
    async with (
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        Bus(settings) as bus,
        service_client("notify", settings_override=NO_PREWARNING) as one,
        service_client("notify", settings_override=NO_PREWARNING) as two,
    ):
        for case in cases:
            await bus.placement(case)
        await consumed(len(cases), one, two)
        clock.set_today(day(8))
        # Both replicas tick at once, several times.
        await asyncio.gather(*(evaluate(c.app) for c in (one, two, one, two)))
        found = await alerts(one, rule="school_gap")
        assert sorted(a["placement_id"] for a in found) == sorted(str(c.placement_id) for c in cases)
        assert all(a["status"] == "open" for a in found)
        await tail.collect(len(cases))
        await tail.settle(1.0)
    opened = [e for e in tail.events() if e["type"] == "obruten.alert.opened"]
    assert len(opened) == len(tail.events()) == len(cases)
    assert len({e["data"]["placement_id"] for e in opened}) == len(cases)


async def test_prewarning_escalation_acknowledgement_and_resolution(service_client, settings, clock, tokens):
    case = Case(DAY0, form="hvb")
    only_gap = {
        **QUIET,
        "notify_rules": {"health_exam_missing": {"enabled": False}, "dental_exam_missing": {"enabled": False}},
    }
    async with (
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        Bus(settings) as bus,
        service_client("notify", settings_override=only_gap) as notify,
    ):
        await bus.placement(case)
        await bus.plan(case, day(1))  # keeps school_plan_missing quiet
        await consumed(2, notify)
        clock.set_today(day(4))
        await evaluate(notify.app)
        assert await alerts(notify, rule="school_gap") == []
        clock.set_today(day(5))
        await evaluate(notify.app)
        [alert] = await alerts(notify, rule="school_gap")
        assert alert["status"] == "warning" and alert["level_name"] is None and alert["counted_days"] == 5

        # A pre-warning cannot be acknowledged: the deadline has not passed.
        assert_problem(await notify.post(f"/v1/alerts/{alert['id']}/acknowledge", json={}), 409)

        clock.set_today(day(8))
        await evaluate(notify.app)
        alert = await detail(notify, alert["id"])
        assert (alert["status"], alert["level_name"]) == ("open", "district")

        clock.set_today(day(10))
        notify.headers.update(tokens.headers("caseworker", district="Farsta", subject="caseworker-17"))
        ack = await notify.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"note": "skolan kontaktad"})
        assert ack.status_code == 200, ack.text
        assert ack.json()["status"] == "acknowledged" and ack.json()["acknowledged_by"] == "caseworker-17"
        assert ack.json()["history"][-1]["note"] == "skolan kontaktad"
        assert_problem(await notify.post(f"/v1/alerts/{alert['id']}/acknowledge", json={}), 409)

        clock.set_today(day(14))
        await evaluate(notify.app)
        assert (await detail(notify, alert["id"]))["level_name"] == "district"
        clock.set_today(day(15))  # the deadline (day 8) + 7
        await evaluate(notify.app)
        assert (await detail(notify, alert["id"]))["level_name"] == "district_manager"
        clock.set_today(day(38))  # the deadline + 30
        await evaluate(notify.app)
        got = await detail(notify, alert["id"])
        assert (got["status"], got["level_name"]) == ("acknowledged", "central_office")

        await bus.placement_ended(case, day(38))
        await consumed(3, notify)
        got = await detail(notify, alert["id"])
        assert got["status"] == "resolved" and got["resolution_reason"] == "placement_ended"
        assert [(h["transition"], h["level_name"], h["on_date"]) for h in got["history"]] == [
            ("prewarned", None, str(day(5))),
            ("opened", "district", str(day(8))),
            ("acknowledged", "district", str(day(10))),
            ("escalated", "district_manager", str(day(15))),
            ("escalated", "central_office", str(day(38))),
            ("resolved", "central_office", str(day(38))),
        ]
        assert_problem(await notify.post(f"/v1/alerts/{alert['id']}/acknowledge", json={}), 409)
        await tail.collect(6)
    gap_events = [e for e in tail.events() if e["data"]["rule"] == "school_gap"]
    assert [e["type"].rsplit(".", 1)[1] for e in gap_events] == [
        "prewarned", "opened", "acknowledged", "escalated", "escalated", "resolved",
    ]  # fmt: skip
    # The free-text note stays behind the API.
    assert all("skolan" not in json.dumps(e) for e in tail.events())


async def test_a_late_placement_opens_at_the_step_it_has_reached_and_the_tick_runs_by_itself(
    service_client, settings, clock
):
    case = Case(day(-40))
    async with (
        Bus(settings) as bus,
        service_client("notify", settings_override={"notify_tick_interval_seconds": 0.2}) as notify,
    ):
        await bus.placement(case)
        await consumed(1, notify)
        # Evaluated on arrival: 40 days after the start, 32 after the deadline.
        [alert] = await alerts(notify, rule="school_gap")
        assert (alert["status"], alert["level_name"], alert["calendar_days"]) == ("open", "central_office", 40)

        fresh = Case(DAY0)
        await bus.placement(fresh)
        await consumed(2, notify)
        clock.set_today(day(8))

        async def opened_by_the_tick() -> bool:
            return bool(await alerts(notify, placement_id=fresh.placement_id, rule="school_gap", status="open"))

        await eventually(opened_by_the_tick, timeout=10)


async def test_a_school_end_reopens_the_clock(service_client, settings, clock):
    case = Case(DAY0)
    async with Bus(settings) as bus, service_client("notify", settings_override=NO_PREWARNING) as notify:
        await bus.placement(case)
        clock.set_today(day(2))
        await bus.school_started(case, day(2))
        await consumed(2, notify)
        clock.set_today(day(10))
        await bus.school_ended(case, day(10))
        await consumed(3, notify)
        clock.set_today(day(17))
        await evaluate(notify.app)
        assert await alerts(notify, rule="school_gap") == []
        clock.set_today(day(18))
        await evaluate(notify.app)
        [alert] = await alerts(notify, rule="school_gap")
        assert alert["status"] == "open" and alert["clock_start"] == str(day(10)) and alert["calendar_days"] == 8


async def test_a_withdrawn_school_start_counts_as_never_started(service_client, settings, clock):
    """A start ended on its own first day (a caseworker's correction, an enrolment the school
    cancelled) was never attended: the gap runs on from the placement's start, not from that day."""
    case = Case(DAY0)
    async with Bus(settings) as bus, service_client("notify", settings_override=NO_PREWARNING) as notify:
        await bus.placement(case)
        await consumed(1, notify)
        clock.set_today(day(9))
        await evaluate(notify.app)
        [alert] = await alerts(notify, rule="school_gap")
        assert alert["status"] == "open"
        await bus.school_started(case, day(9))
        await consumed(2, notify)
        assert (await detail(notify, alert["id"]))["status"] == "resolved"
        clock.set_today(day(10))
        await bus.school_ended(case, day(9))
        await consumed(3, notify)
        await evaluate(notify.app)
        got = await detail(notify, alert["id"])
    assert got["status"] == "open" and got["clock_start"] == str(DAY0) and got["calendar_days"] == 10
    assert [h["transition"] for h in got["history"]] == ["opened", "resolved", "opened"]


async def test_a_school_start_and_end_learnt_together_close_the_episode_and_open_the_next(
    service_client, settings, clock
):
    """A consumer batch (or the time between two ticks) can bring a school start and its end at
    once: the open alert's episode is resolved and the new one opened, not left with a stale clock."""
    from services.notify.evaluation import evaluate_placements
    from services.notify.projection import apply_event
    from shared.contracts.school import SCHOOL_ENDED

    case = Case(DAY0)
    async with Bus(settings) as bus, service_client("notify", settings_override=NO_PREWARNING) as notify:
        await bus.placement(case)
        await consumed(1, notify)
        clock.set_today(day(20))
        await evaluate(notify.app)
        [alert] = await alerts(notify, rule="school_gap")
        assert alert["status"] == "open" and alert["clock_start"] == str(DAY0)
        # Both facts in one transaction, evaluated once: what the consumer does with one batch.
        async with runtime(notify.app).sessionmaker() as session, session.begin():
            await apply_event(session, bus.event(SCHOOL_STARTED, case.school_started(day(2))))
            await apply_event(session, bus.event(SCHOOL_ENDED, case.school_ended(day(11))))
            await evaluate_placements(session, notify_runtime(notify.app).context, [case.placement_id])
        got = await detail(notify, alert["id"])
        assert got["status"] == "open" and got["clock_start"] == str(day(11)) and got["calendar_days"] == 9
        # Opened on day 20, past the deadline (day 8) and the manager's step (day 15): each level is
        # told in turn (issue 14, finding 4), so the first episode is opened then escalated.
        assert [h["transition"] for h in got["history"]] == ["opened", "escalated", "resolved", "opened"]
        assert got["history"][2]["reason"] == "clock_restarted"


async def test_plan_and_examination_rules(service_client, settings, clock):
    hvb = Case(DAY0, form="hvb")
    jourhem = Case(DAY0, form="jourhem", school_change=False)
    async with Bus(settings) as bus, service_client("notify", settings_override=QUIET) as notify:
        await bus.placement(hvb)
        await bus.placement(jourhem)
        await bus.exam(hvb, "health", day(20))
        await consumed(3, notify)
        clock.set_today(day(8))
        await evaluate(notify.app)
        [plan] = await alerts(notify, rule="school_plan_missing")  # hvb only; jourhem needs no plan
        assert plan["placement_id"] == str(hvb.placement_id) and plan["status"] == "open"
        assert await alerts(notify, rule="school_gap", placement_id=jourhem.placement_id) == []  # no school change
        await bus.plan(hvb, day(9))
        await consumed(4, notify)
        assert (await detail(notify, plan["id"]))["resolution_reason"] == "plan_registered"
        clock.set_today(day(31))
        await evaluate(notify.app)
        assert await alerts(notify, rule="health_exam_missing", placement_id=hvb.placement_id) == []
        dental = await alerts(notify, rule="dental_exam_missing", status="open")
        assert {a["placement_id"] for a in dental} == {str(hvb.placement_id), str(jourhem.placement_id)}
        health = await alerts(notify, rule="health_exam_missing", status="open")
        assert [a["placement_id"] for a in health] == [str(jourhem.placement_id)]
        assert health[0]["calendar_days"] == 31 and health[0]["deadline"] == str(day(31))


async def test_a_webhook_that_fails_twice_then_succeeds_gets_the_alert_once_signed(service_client, settings, clock):
    secret = "a-long-shared-secret-0123456789"
    override = {
        **NO_PREWARNING,
        "notify_webhook_backoff_initial_seconds": 0.05,
        "notify_webhook_poll_interval_seconds": 0.05,
        "notify_webhook_max_attempts": 4,
    }
    case = Case(DAY0)
    async with (
        Receiver(fail_first=2) as receiver,
        Receiver() as other,
        Receiver(fail_first=1000) as broken,
        Bus(settings) as bus,
        service_client("notify", settings_override=override) as notify,
    ):
        dead_end = (await notify.post("/v1/webhooks", json={"url": broken.url, "secret": "x" * 20})).json()
        created = await notify.post(
            "/v1/webhooks",
            json={"url": receiver.url, "secret": secret, "districts": ["Farsta"], "rules": ["school_gap"]},
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        assert "secret" not in hook
        elsewhere = await notify.post(
            "/v1/webhooks", json={"url": other.url, "secret": secret, "districts": ["Bromma"]}
        )
        assert elsewhere.status_code == 201
        assert len((await notify.get("/v1/webhooks")).json()) == 3

        await bus.placement(case)
        await consumed(1, notify)
        clock.set_today(day(8))
        await evaluate(notify.app)

        async def delivered() -> list:  # type: ignore[type-arg]
            resp = await notify.get(f"/v1/webhooks/{hook['id']}/deliveries")
            items = resp.json()["items"]
            return items if items and items[0]["status"] == "delivered" else []

        [delivery] = await eventually(delivered, timeout=15)
        assert delivery["event_type"] == "obruten.alert.opened"
        assert delivery["attempts"] == 3
        assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 500, 200]
        assert [a["number"] for a in delivery["attempt_log"]] == [1, 2, 3]

        async def dead() -> list:  # type: ignore[type-arg]
            resp = await notify.get(f"/v1/webhooks/{dead_end['id']}/deliveries", params={"status": "dead"})
            return resp.json()["items"]  # type: ignore[no-any-return]

        # The receiver that never answers 2xx: four attempts, then the dead-letter list.
        [dead_letter] = await eventually(dead, timeout=15)
        assert dead_letter["attempts"] == 4 and dead_letter["dead_at"] and len(dead_letter["attempt_log"]) == 4
        assert len(broken.requests) == 4
        assert (await notify.delete(f"/v1/webhooks/{dead_end['id']}")).status_code == 204
        assert_problem(await notify.get(f"/v1/webhooks/{dead_end['id']}/deliveries"), 404)
        assert len((await notify.get("/v1/webhooks")).json()) == 2
    assert len(receiver.requests) == 3
    bodies = {body for _, body in receiver.requests}
    assert len(bodies) == 1, "every retry sends the same body"
    successful_headers, body = receiver.requests[-1]
    # Standard Webhooks, verified by its own package; a raw secret is the key's UTF-8 bytes.
    event = Webhook(secret.encode()).verify(body, successful_headers)
    assert successful_headers["webhook-id"] == delivery["id"]
    assert {h["webhook-id"] for h, _ in receiver.requests} == {delivery["id"]}, "the same id on every retry"
    assert event["type"] == "obruten.alert.opened" and event["data"]["placement_id"] == str(case.placement_id)
    assert other.requests == [], "the Bromma subscription does not get Farsta's alert"


async def test_bad_input_is_a_problem(service_client):
    async with service_client("notify", settings_override=QUIET) as notify:
        assert_problem(await notify.get("/v1/alerts", params={"district": "Atlantis"}), 422, "query.district")
        assert_problem(await notify.get("/v1/alerts", params={"rule": "no_such_rule"}), 422, "query.rule")
        assert_problem(await notify.get("/v1/alerts", params={"status": "sleeping"}), 422, "query.status")
        assert_problem(await notify.get("/v1/alerts", params={"placement_id": "x"}), 422, "query.placement_id")
        unknown = "00000000-0000-4000-8000-000000000000"
        assert_problem(await notify.get(f"/v1/alerts/{unknown}"), 404)
        assert_problem(await notify.post(f"/v1/alerts/{unknown}/acknowledge", json={"note": "x"}), 404)
        for url in ("ftp://example.org/hook", "example.org/hook", "javascript:alert(1)", "http://u:p@example.org/"):
            assert_problem(await notify.post("/v1/webhooks", json={"url": url, "secret": "x" * 20}), 422, "body.url")
        assert_problem(
            await notify.post("/v1/webhooks", json={"url": "https://example.org/h", "secret": "short"}),
            422,
            "body.secret",
        )
        assert_problem(
            await notify.post(
                "/v1/webhooks", json={"url": "https://example.org/h", "secret": "x" * 20, "districts": ["Atlantis"]}
            ),
            422,
            "body.districts.0",
        )
        assert_problem(
            await notify.post(
                "/v1/webhooks", json={"url": "https://example.org/h", "secret": "x" * 20, "rules": ["nope"]}
            ),
            422,
            "body.rules.0",
        )
        assert_problem(await notify.delete(f"/v1/webhooks/{unknown}"), 404)
        assert_problem(await notify.get("/v1/alerts", headers={"Authorization": ""}), 401)


async def test_a_webhook_cannot_point_into_the_machine_or_a_private_network(service_client):
    secret = "x" * 20
    async with service_client("notify", settings_override={**QUIET, "notify_webhook_allow_private": False}) as notify:
        notify_runtime(notify.app).webhook_resolver = public_dns({"hooks.example.org": "93.184.215.14"})
        for url in (
            "http://127.0.0.1:8001/v1/placements",
            "http://localhost/hook",
            "http://api.localhost/hook",
            "http://10.0.0.5/hook",
            "http://192.168.1.1/hook",
            "http://169.254.169.254/latest/meta-data/",  # a cloud metadata service
            "http://[::1]/hook",
            "http://0.0.0.0/hook",
        ):
            resp = await notify.post("/v1/webhooks", json={"url": url, "secret": secret})
            assert_problem(resp, 422, "body.url")
        assert (
            await notify.post("/v1/webhooks", json={"url": "https://hooks.example.org/a", "secret": secret})
        ).status_code == 201
    allowed = {**QUIET, "notify_webhook_allowed_hosts": ["hooks.stad.example", ".larm.stad.example"]}
    async with service_client("notify", settings_override=allowed) as notify:
        for url, status in (
            ("https://hooks.stad.example/obruten", 201),
            ("https://farsta.larm.stad.example/obruten", 201),
            ("https://evil.example/obruten", 422),
            ("https://hooks.stad.example.evil.example/obruten", 422),
            ("http://127.0.0.1/hook", 422),
        ):
            resp = await notify.post("/v1/webhooks", json={"url": url, "secret": secret})
            assert resp.status_code == status, (url, resp.text)
