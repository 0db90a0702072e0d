"""Issue 14, notify's side, as scenarios with dates: the clock follows the child across moves and
transfers (finding 1), corrections re-evaluate (2), late history raises no false alarm (3), every
escalation level is told (4), planned school starts show on the alert (5), and the school rules
cover school age, evaluated day by day (6). Real PostgreSQL and broker; events published onto the
topics exactly as the recording services' relays publish them; the tick driven with a FixedClock."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services.notify.app import evaluate
from services.notify.settings import NotifySettings
from shared.contracts.placement import PLACEMENT_CHANGED, PLACEMENT_ENDED, PLACEMENT_STARTED
from shared.contracts.topics import TOPIC_ALERTS
from tests.fixtures.notify import Bus, Case, Receiver, alerts, consumed
from tests.fixtures.support import TopicTail, eventually

DAY0 = date(2025, 9, 1)  # the clock fixture's day
QUIET = {"notify_tick_interval_seconds": 3600}
ONLY_GAP = {
    **QUIET,
    "notify_rules": {
        "school_gap": {"prewarning_day": None},
        "health_exam_missing": {"enabled": False},
        "dental_exam_missing": {"enabled": False},
    },
}


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def after(case: Case, on: date, **kw: Any) -> Case:
    """The child's next placement, starting on `on`."""
    nxt = Case(
        on,
        form=kw.get("form", case.form),
        district=kw.get("district", case.district),
        school_change=kw.get("school_change", True),
        birth=case.birth,
    )
    nxt.child_id = case.child_id
    return nxt


async def move(bus: Bus, case: Case, on: date, **kw: Any) -> Case:
    """What POST /v1/placements/{id}/move emits in one transaction: the old placement ended, the
    new one started."""
    nxt = after(case, on, **kw)
    await bus.publish_together((PLACEMENT_ENDED, case.snapshot(end=on)), (PLACEMENT_STARTED, nxt.snapshot()))
    return nxt


async def detail(client: Any, alert_id: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/alerts/{alert_id}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def steps(events: list[dict[str, Any]], rule: str = "school_gap") -> list[tuple[str, str | None, str | None]]:
    """(transition, level, reason) of each event about the rule, in order."""
    return [
        (e["type"].rsplit(".", 1)[1], e["data"]["level"], e["data"]["reason"])
        for e in events
        if e["data"]["rule"] == rule
    ]


async def days(notify: Any, clock: Any, first: int, last: int) -> None:
    for n in range(first, last + 1):
        clock.set_today(day(n))
        await evaluate(notify.app)


# --- 1. the child's clock -------------------------------------------------------------------------


async def test_a_move_on_day_5_without_school_opens_the_alert_on_day_8_from_the_first_placement_once(
    service_client, settings, clock
):
    """Placed on day 0 (jourhem), moved on day 5 (familjehem, a change of school), no school:
    the alert opens on day 8 counted from day 0, once, and climbs on schedule (day 15, day 38).
    Today's main: the move restarts the clock and nothing opens until day 13. The settle period
    is its default (900 s) here: a move entered on its day is not held."""
    first = Case(DAY0)
    override = {**ONLY_GAP, "notify_settle_seconds": 900}
    async with (
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        Bus(settings) as bus,
        service_client("notify", settings_override=override) as notify,
    ):
        await bus.placement(first)
        await consumed(1, notify)
        await days(notify, clock, 1, 5)
        second = await move(bus, first, day(5), form="familjehem")
        await consumed(3, notify)
        await days(notify, clock, 5, 7)
        assert await alerts(notify, rule="school_gap") == []
        await days(notify, clock, 8, 8)
        [alert] = await alerts(notify, rule="school_gap")
        assert alert["placement_id"] == str(second.placement_id) and alert["child_id"] == str(first.child_id)
        assert (alert["status"], alert["level_name"]) == ("open", "district")
        assert (alert["clock_start"], alert["deadline"], alert["calendar_days"]) == (str(DAY0), str(day(8)), 8)
        await days(notify, clock, 9, 40)
        got = await detail(notify, alert["id"])
        assert [(h["transition"], h["level_name"], h["on_date"]) for h in got["history"]] == [
            ("opened", "district", str(day(8))),
            ("escalated", "district_manager", str(day(15))),
            ("escalated", "central_office", str(day(38))),
        ]
        await tail.collect(3)
        await tail.settle(1.0)
    assert steps(tail.events()) == [
        ("opened", "district", None),
        ("escalated", "district_manager", None),
        ("escalated", "central_office", None),
    ]
    assert {e["data"]["clock_start"] for e in tail.events() if e["data"]["rule"] == "school_gap"} == {str(DAY0)}


async def test_an_open_alert_stays_open_across_a_move_and_resolves_only_on_a_school_start(
    service_client, settings, clock
):
    """Open since day 8; moved on day 10: the same alert, now on the new placement, its history
    saying so (changed/moved); it climbs on day 15 and resolves on the school start of day 16 with
    16 days. Today's main: resolved as placement_ended on day 10, nothing until day 18."""
    first = Case(DAY0)
    async with (
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        Bus(settings) as bus,
        service_client("notify", settings_override=ONLY_GAP) as notify,
    ):
        await bus.placement(first)
        await consumed(1, notify)
        await days(notify, clock, 8, 10)
        second = await move(bus, first, day(10))
        await consumed(3, notify)
        [alert] = await alerts(notify, rule="school_gap")
        assert alert["status"] == "open" and alert["placement_id"] == str(second.placement_id)
        await days(notify, clock, 11, 16)
        await bus.school_started(second, day(16))
        await consumed(4, notify)
        got = await detail(notify, alert["id"])
        assert (got["status"], got["resolution_reason"], got["calendar_days"]) == ("resolved", "school_started", 16)
        assert [(h["transition"], h["reason"], h["on_date"]) for h in got["history"]] == [
            ("opened", None, str(day(8))),
            ("changed", "moved", str(day(10))),
            ("escalated", None, str(day(15))),
            ("resolved", "school_started", str(day(16))),
        ]
        await tail.collect(4)
        await tail.settle(1.0)
    assert steps(tail.events()) == [
        ("opened", "district", None),
        ("changed", "district", "moved"),
        ("escalated", "district_manager", None),
        ("resolved", "district_manager", "school_started"),
    ]
    assert tail.events()[1]["data"]["placement_id"] == str(second.placement_id)


async def test_a_transfer_to_another_district_keeps_the_clock_and_the_alert_changes_hands(
    service_client, settings, clock, tokens
):
    """Farsta's child, open since day 8, passes to Bromma on day 10: Bromma sees the open alert
    from then on (clock from day 0), Farsta no longer does, and Farsta's webhook hears nothing
    after the transfer."""
    first = Case(DAY0, district="Farsta")
    override = {**ONLY_GAP, "notify_webhook_poll_interval_seconds": 0.05}
    async with (
        Receiver() as farsta_hook,
        Receiver() as bromma_hook,
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        Bus(settings) as bus,
        service_client("notify", settings_override=override) as notify,
    ):
        for url, district in ((farsta_hook.url, "Farsta"), (bromma_hook.url, "Bromma")):
            made = await notify.post("/v1/webhooks", json={"url": url, "secret": "x" * 20, "districts": [district]})
            assert made.status_code == 201, made.text
        await bus.placement(first)
        await consumed(1, notify)
        await days(notify, clock, 8, 9)
        farsta = tokens.headers("caseworker", district="Farsta")
        bromma = tokens.headers("caseworker", district="Bromma")
        [alert] = (await notify.get("/v1/alerts", headers=farsta)).json()["items"]
        await move(bus, first, day(10), district="Bromma")
        await consumed(3, notify)
        assert (await notify.get("/v1/alerts", headers=farsta)).json()["items"] == []
        assert (await notify.get(f"/v1/alerts/{alert['id']}", headers=farsta)).status_code == 404
        [seen] = (await notify.get("/v1/alerts", headers=bromma)).json()["items"]
        assert (seen["id"], seen["status"], seen["district"], seen["clock_start"]) == (
            alert["id"], "open", "Bromma", str(DAY0),
        )  # fmt: skip
        await days(notify, clock, 15, 15)
        await tail.collect(3)
        await tail.settle(1.0)

        async def delivered() -> bool:
            return len(bromma_hook.requests) >= 2

        await eventually(delivered, timeout=15)
    assert steps(tail.events()) == [
        ("opened", "district", None),
        ("changed", "district", "transferred"),
        ("escalated", "district_manager", None),
    ]
    assert [e["data"]["district"] for e in tail.events()] == ["Farsta", "Bromma", "Bromma"]
    assert [b for _, b in farsta_hook.requests if b"transferred" in b or b"escalated" in b] == []
    assert len(farsta_hook.requests) == 1  # the opening, while the case was Farsta's
    assert len(bromma_hook.requests) == 2  # the transfer and the step up


async def test_examinations_done_before_a_move_count_for_the_new_placement(service_client, settings, clock):
    """Health examination on day 2 in the first placement, moved on day 10: no health alert on
    day 40 for the new placement; the dental one (never done) opened on day 31 from day 0."""
    first = Case(DAY0)
    no_school = {**QUIET, "notify_rules": {"school_gap": {"enabled": False}}}
    async with Bus(settings) as bus, service_client("notify", settings_override=no_school) as notify:
        await bus.placement(first)
        await bus.exam(first, "health", day(2))
        await consumed(2, notify)
        clock.set_today(day(10))
        second = await move(bus, first, day(10))
        await consumed(4, notify)
        await days(notify, clock, 30, 40)
        assert await alerts(notify, rule="health_exam_missing", status="open") == []
        [dental] = await alerts(notify, rule="dental_exam_missing", status="open")
        assert dental["placement_id"] == str(second.placement_id)
        assert (dental["clock_start"], dental["deadline"]) == (str(DAY0), str(day(31)))


# --- 2. corrections re-evaluate -------------------------------------------------------------------


async def test_a_corrected_start_date_re_evaluates_the_open_alert(service_client, settings, clock):
    """Open on day 8 (placed day 0). Day 10: the start is corrected to day -5: the alert changes
    (dates_corrected: clock day -5, deadline day 3, 15 days) and climbs to the manager (deadline+7
    = day 10). Day 11: corrected to day 5: today is before the new deadline (day 13): resolved
    (deadline_moved). Day 13: open again on the new dates."""
    case = Case(DAY0)
    async with (
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        Bus(settings) as bus,
        service_client("notify", settings_override=ONLY_GAP) as notify,
    ):
        await bus.placement(case)
        await consumed(1, notify)
        await days(notify, clock, 8, 10)
        case.start = day(-5)
        await bus.publish(PLACEMENT_CHANGED, case.snapshot())
        await consumed(2, notify)
        [alert] = await alerts(notify, rule="school_gap")
        assert (alert["status"], alert["clock_start"], alert["deadline"], alert["calendar_days"]) == (
            "open", str(day(-5)), str(day(3)), 15,
        )  # fmt: skip
        assert alert["level_name"] == "district_manager"
        clock.set_today(day(11))
        case.start = day(5)
        await bus.publish(PLACEMENT_CHANGED, case.snapshot())
        await consumed(3, notify)
        got = await detail(notify, alert["id"])
        assert (got["status"], got["resolution_reason"]) == ("resolved", "deadline_moved")
        await days(notify, clock, 12, 13)
        got = await detail(notify, alert["id"])
        assert (got["status"], got["clock_start"], got["deadline"]) == ("open", str(day(5)), str(day(13)))
        await tail.collect(5)
        await tail.settle(1.0)
    assert [(t, r) for t, _, r in steps(tail.events())] == [
        ("opened", None),
        ("changed", "dates_corrected"),
        ("escalated", None),
        ("resolved", "deadline_moved"),
        ("opened", None),
    ]
    changed = tail.events()[1]["data"]
    assert (changed["clock_start"], changed["deadline"], changed["calendar_days"]) == (str(day(-5)), str(day(3)), 15)


async def test_a_school_start_corrected_to_a_later_day_opens_the_alert_and_shows_it_planned(
    service_client, settings, clock
):
    """A school start recorded for day 5 (met: no alert). On day 11 its date is corrected to day
    12: the child has been without school since day 0, so the alert opens, saying a start is
    planned for day 12; that start resolves it with 12 days."""
    case = Case(DAY0)
    async with Bus(settings) as bus, service_client("notify", settings_override=ONLY_GAP) as notify:
        await bus.placement(case)
        await bus.school_started(case, day(5))
        await consumed(2, notify)
        await days(notify, clock, 5, 11)
        assert await alerts(notify, rule="school_gap") == []
        await bus.school_start_changed(case, day(12))  # the same school start, its date corrected
        await consumed(3, notify)
        [alert] = await alerts(notify, rule="school_gap")
        assert (alert["status"], alert["planned_school_start"], alert["calendar_days"]) == ("open", str(day(12)), 11)
        await days(notify, clock, 12, 12)
        got = await detail(notify, alert["id"])
        assert (got["status"], got["resolution_reason"], got["calendar_days"]) == ("resolved", "school_started", 12)


# --- 3. late history raises no false alarm --------------------------------------------------------


async def test_a_history_entered_late_in_natural_order_raises_nothing_and_a_real_breach_alerts_after_settling(
    service_client, settings, clock
):
    """With the default settle period (900 s): a child placed 40 days ago who was in school from
    day 3 and examined is entered placement first, then school and examinations, a minute apart:
    no alert, no event on obruten.alerts, no webhook call. Another child placed 40 days ago with
    no school: nothing during the settle period; when it ends, the alert opens, telling each level."""
    schooled, unschooled = Case(day(-40)), Case(day(-40))
    assert NotifySettings.model_fields["settle_seconds"].default == 900
    override = {**QUIET, "notify_webhook_poll_interval_seconds": 0.05, "notify_settle_seconds": 900}
    async with (
        Receiver() as hook,
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        Bus(settings) as bus,
        service_client("notify", settings_override=override) as notify,
    ):
        assert (await notify.post("/v1/webhooks", json={"url": hook.url, "secret": "x" * 20})).status_code == 201
        await bus.placement(schooled)
        await bus.placement(unschooled)
        await consumed(2, notify)
        for n, send in enumerate(
            (
                bus.school_started(schooled, day(-37)),
                bus.exam(schooled, "health", day(-30)),
                bus.exam(schooled, "dental", day(-25)),
            )
        ):
            clock.advance(timedelta(seconds=60))
            await send
            await consumed(3 + n, notify)
            await evaluate(notify.app)
        assert await alerts(notify) == []
        clock.advance(timedelta(seconds=900 - 180 - 1))
        await evaluate(notify.app)
        assert await alerts(notify) == [], "still within the settle period of the last placement"
        clock.advance(timedelta(seconds=2))
        await evaluate(notify.app)
        found = await alerts(notify)
        assert {a["placement_id"] for a in found} == {str(unschooled.placement_id)}
        [gap] = [a for a in found if a["rule"] == "school_gap"]
        assert (gap["status"], gap["level_name"], gap["calendar_days"]) == ("open", "central_office", 40)
        await tail.collect(7)  # school gap: opened and two steps; each examination: opened and one step
        await tail.settle(1.5)
    assert all(e["data"]["child_id"] == str(unschooled.child_id) for e in tail.events())
    gap_events = [e for e in tail.events() if e["data"]["rule"] == "school_gap"]
    assert steps(gap_events) == [
        ("opened", "district", None),
        ("escalated", "district_manager", None),
        ("escalated", "central_office", None),
    ]
    assert all(str(schooled.child_id).encode() not in body for _, body in hook.requests)


# --- 4. every level is told -----------------------------------------------------------------------


async def test_an_alert_opening_past_two_steps_announces_each_step_in_order(service_client, settings, clock):
    """Placed 40 days ago, entered today (settle period 0): opened at the district, then the
    manager, then the central office: three events, in order, all dated today, as if it had climbed
    day by day. Today's main: one `opened` event at central_office; the lower levels never told."""
    case = Case(day(-40))
    async with (
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as tail,
        Bus(settings) as bus,
        service_client("notify", settings_override=ONLY_GAP) as notify,
    ):
        await bus.placement(case)
        await consumed(1, notify)
        [alert] = await alerts(notify, rule="school_gap")
        got = await detail(notify, alert["id"])
        assert [(h["transition"], h["level_name"], h["on_date"]) for h in got["history"]] == [
            ("opened", "district", str(DAY0)),
            ("escalated", "district_manager", str(DAY0)),
            ("escalated", "central_office", str(DAY0)),
        ]
        await tail.collect(3)
        await tail.settle(1.0)
    assert steps(tail.events()) == [
        ("opened", "district", None),
        ("escalated", "district_manager", None),
        ("escalated", "central_office", None),
    ]


# --- 5. planned school starts ---------------------------------------------------------------------


async def test_a_start_planned_for_day_10_still_breaches_on_day_8_and_the_alert_says_it_is_planned(
    service_client, settings, clock
):
    """Day 3: a start planned for day 10 is recorded. Day 8: the alert opens (the goal is missed),
    showing the planned start; day 10 resolves it (school_started, 10 days). A second child's
    start planned for day 10 is withdrawn on day 9: still open on day 10, nothing planned."""
    planned, withdrawn = Case(DAY0), Case(DAY0)
    async with Bus(settings) as bus, service_client("notify", settings_override=ONLY_GAP) as notify:
        await bus.placement(planned)
        await bus.placement(withdrawn)
        clock.set_today(day(3))
        await bus.school_started(planned, day(10))
        await bus.school_started(withdrawn, day(10))
        await consumed(4, notify)
        await days(notify, clock, 3, 7)
        assert await alerts(notify, rule="school_gap") == []
        await days(notify, clock, 8, 8)
        found = {a["placement_id"]: a for a in await alerts(notify, rule="school_gap")}
        assert {a["status"] for a in found.values()} == {"open"}
        assert found[str(planned.placement_id)]["planned_school_start"] == str(day(10))
        clock.set_today(day(9))
        await bus.school_ended(withdrawn, day(9))  # withdrawn: ends before it began
        await consumed(5, notify)
        await days(notify, clock, 9, 10)
        found = {a["placement_id"]: a for a in await alerts(notify, rule="school_gap")}
        done, still = found[str(planned.placement_id)], found[str(withdrawn.placement_id)]
        assert (done["status"], done["resolution_reason"], done["calendar_days"]) == ("resolved", "school_started", 10)
        assert (still["status"], still["planned_school_start"]) == ("open", None)


# --- 6. school age, day by day --------------------------------------------------------------------


async def test_the_school_rules_cover_school_age_evaluated_on_each_day(service_client, settings, clock):
    """Defaults: a 3-year-old (jourhem) gets no school-gap alert and a 4-year-old (HVB) no
    school-plan alert; a child who turns 6 in 2025, placed on 1 August, comes under the school-gap
    rule at the autumn term's start (15 August): the alert opens on 23 August, counted from then.
    Today's main: all three alert, with age fixed on the placement's first day."""
    aug1 = date(2025, 8, 1)
    three = Case(aug1, birth=date(2022, 3, 1))
    four = Case(aug1, form="hvb", birth=date(2021, 3, 1))
    six = Case(aug1, birth=date(2019, 3, 1))
    override = {**QUIET, "notify_rules": {"school_gap": {"prewarning_day": None}, "school_plan_missing": {
        "prewarning_day": None}}}  # fmt: skip
    async with Bus(settings) as bus, service_client("notify", settings_override=override) as notify:
        clock.set_today(aug1)
        for case in (three, four, six):
            await bus.placement(case)
        await consumed(3, notify)
        for n in range(1, 40):
            clock.set_today(aug1 + timedelta(days=n))
            await evaluate(notify.app)
            if aug1 + timedelta(days=n) == date(2025, 8, 22):
                assert await alerts(notify, rule="school_gap") == []
        assert await alerts(notify, rule="school_plan_missing") == []
        [gap] = await alerts(notify, rule="school_gap")
        assert gap["placement_id"] == str(six.placement_id)
        assert (gap["clock_start"], gap["deadline"]) == ("2025-08-15", "2025-08-23")
        history = (await detail(notify, gap["id"]))["history"]
        assert (history[0]["transition"], history[0]["on_date"]) == ("opened", "2025-08-23")


async def test_an_end_without_a_move_resolves_after_the_settle_period_and_a_later_placement_starts_afresh(
    service_client, settings, clock
):
    """Open since day 8; the placement ends on day 10 with no next placement: with the default
    settle period the alert waits 900 s for a continuation, then resolves (placement_ended). The
    child is placed again on day 13: more than the default gap (0 days) after the end, a new clock
    (deadline day 21). With `continuation_gap_days: 3` the same history is one run: the alert stays
    open across the three days at home and passes to the new placement."""
    for gap, expected in ((0, "new clock"), (3, "continued")):
        rules = {**ONLY_GAP["notify_rules"], "moves": {"continuation_gap_days": gap}}  # type: ignore[dict-item]
        override = {**QUIET, "notify_settle_seconds": 900, "notify_rules": rules}
        first = Case(DAY0)
        async with Bus(settings) as bus, service_client("notify", settings_override=override) as notify:
            clock.set_today(DAY0)
            await bus.placement(first)
            await consumed(1, notify)
            await days(notify, clock, 8, 10)
            await bus.placement_ended(first, day(10))
            await consumed(2, notify)
            [alert] = await alerts(notify, rule="school_gap", placement_id=first.placement_id)
            assert alert["status"] == "open", "held for a continuation"
            clock.advance(timedelta(seconds=901))
            await evaluate(notify.app)
            got = await detail(notify, alert["id"])
            if gap == 0:
                assert (got["status"], got["resolution_reason"]) == ("resolved", "placement_ended")
            else:
                assert got["status"] == "open", "the run may still continue until day 13"
            clock.set_today(day(13))
            again = after(first, day(13))
            await bus.placement(again)
            await consumed(3, notify)
            clock.advance(timedelta(seconds=901))
            await days(notify, clock, 13, 21)
            found = await alerts(notify, rule="school_gap", status="open")
            [current] = [a for a in found if a["placement_id"] == str(again.placement_id)]
            if expected == "new clock":
                assert (current["clock_start"], current["deadline"]) == (str(day(13)), str(day(21)))
                assert current["id"] != alert["id"]
            else:
                assert (current["id"], current["clock_start"]) == (alert["id"], str(DAY0))
                transitions = [h["transition"] for h in (await detail(notify, alert["id"]))["history"]]
                assert transitions == ["opened", "changed", "escalated"], transitions


async def test_a_transfer_tells_the_receiving_districts_mailboxes_up_to_the_step_reached(
    service_client, settings, clock
):
    """Farsta's alert, at the manager's step since day 15, passes to Bromma on day 16: Bromma's
    district and manager mailboxes get it (queued mail), Farsta's get nothing more."""
    first = Case(DAY0, district="Farsta")
    async with Bus(settings) as bus, service_client("notify", settings_override=ONLY_GAP) as notify:
        for district in ("Farsta", "Bromma"):
            for level in ("district", "district_manager", "central_office"):
                body = {"district": district, "level": level, "address": f"{level}@{district.lower()}.example.se"}
                assert (await notify.post("/v1/mail-recipients", json=body)).status_code == 201
        await bus.placement(first)
        await consumed(1, notify)
        await days(notify, clock, 8, 15)
        [alert] = await alerts(notify, rule="school_gap")
        await move(bus, first, day(16), district="Bromma")
        await consumed(3, notify)
        resp = await notify.get("/v1/mail-deliveries", params={"alert_id": alert["id"], "limit": 100})
        assert resp.status_code == 200, resp.text
        recipients = sorted(d["recipient"] for d in resp.json()["items"])
    assert recipients == sorted(
        [
            "district@farsta.example.se",
            "district_manager@farsta.example.se",
            "district@bromma.example.se",
            "district_manager@bromma.example.se",
        ]
    )
