"""The alert state machine as a pure function (services/notify/alerts/transitions.py): an
assessment and the alert on file become transitions and the next day to look again, with no
database. The database side (tests/notify/test_notify.py) shows the same outcomes written."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from services.notify.alerts.transitions import AlertState, Outcome, days_until, superseded, transitions
from services.notify.facts import Hold
from services.notify.rules import assess as r
from services.notify.rules.config import RulesConfig
from shared.contracts.alerts import AlertStatus, ChangeReason, Transition

RULES = RulesConfig()
NOW = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)
TODAY = date(2026, 3, 20)
START = date(2026, 3, 1)
DEADLINE = date(2026, 3, 16)  # four days before today: the ladder's first step, not yet its second
PLACEMENT = r.Placement(
    placement_id=uuid.uuid4(),
    child_id=uuid.uuid4(),
    district="Skarpnäck",
    form="jourhem",
    start_date=START,
    end_date=None,
    school_change=True,
    child_birth_date=date(2015, 5, 1),
)


def breach(deadline: date = DEADLINE, **kw: object) -> r.Assessment:
    values: dict[str, object] = {
        "rule": "school_gap",
        "state": r.State.breach,
        "clock_start": START,
        "deadline": deadline,
        "calendar_days": (TODAY - START).days,
        "counted_days": 13,
        "next_check": None,
    }
    return r.Assessment(**{**values, **kw})  # type: ignore[arg-type]


def alert(**kw: object) -> AlertState:
    values: dict[str, object] = {
        "rule": "school_gap",
        "placement_id": PLACEMENT.placement_id,
        "child_id": PLACEMENT.child_id,
        "district": PLACEMENT.district,
        "status": AlertStatus.open,
        "level": 0,
        "level_name": "district",
        "clock_start": START,
        "deadline": DEADLINE,
        "as_of": TODAY - timedelta(days=1),
        "calendar_days": 18,
        "counted_days": 12,
        "opened_at": NOW - timedelta(days=9),
    }
    return AlertState(**{**values, **kw})  # type: ignore[arg-type]


def run(a: r.Assessment, current: AlertState | None, *, rules: RulesConfig = RULES, **kw: object) -> Outcome:
    return transitions(a, PLACEMENT, current, rules, now=NOW, today=TODAY, **kw)  # type: ignore[arg-type]


def kinds(outcome: Outcome) -> list[Transition]:
    return [s.transition for s in outcome.steps]


def test_a_breach_with_no_alert_opens_one_at_the_first_step() -> None:
    out = run(breach(), None)
    assert out.raised and kinds(out) == [Transition.opened]
    opened = out.steps[0].alert
    assert (opened.status, opened.level, opened.level_name) == (AlertStatus.open, 0, "district")
    assert (opened.opened_at, opened.prewarned_at, opened.as_of) == (NOW, None, TODAY)
    assert (opened.clock_start, opened.deadline, opened.counted_days) == (START, DEADLINE, 13)
    # Next look: the day the second step is reached (seven days after the deadline).
    assert out.next_check == DEADLINE + timedelta(days=7)


def test_a_warning_with_no_alert_raises_a_pre_warning() -> None:
    a = breach(state=r.State.warning, deadline=TODAY + timedelta(days=2), next_check=TODAY + timedelta(days=2))
    out = run(a, None)
    assert out.raised and kinds(out) == [Transition.prewarned]
    assert out.alert is not None
    assert (out.alert.status, out.alert.level, out.alert.level_name) == (AlertStatus.warning, None, None)
    assert out.alert.prewarned_at == NOW and out.alert.opened_at is None
    assert out.next_check == TODAY + timedelta(days=2)


def test_a_pre_warning_past_its_deadline_opens() -> None:
    warned = alert(status=AlertStatus.warning, level=None, level_name=None, opened_at=None, prewarned_at=NOW)
    out = run(breach(deadline=TODAY), warned)
    assert not out.raised and kinds(out) == [Transition.opened]
    assert out.alert is not None and (out.alert.status, out.alert.level) == (AlertStatus.open, 0)
    assert out.alert.prewarned_at == NOW and out.alert.opened_at == NOW


def test_a_late_alert_tells_every_level_in_turn() -> None:
    out = run(breach(deadline=TODAY - timedelta(days=40)), None)
    assert kinds(out) == [Transition.opened, Transition.escalated, Transition.escalated]
    assert [(s.alert.level, s.alert.level_name) for s in out.steps] == [
        (0, "district"),
        (1, "district_manager"),
        (2, "central_office"),
    ]
    assert out.next_check is None  # the top of the ladder: nothing more to climb


def test_an_open_alert_climbs_one_step_per_level_reached() -> None:
    week_ago = TODAY - timedelta(days=7)
    out = run(breach(deadline=week_ago), alert(deadline=week_ago))
    assert kinds(out) == [Transition.escalated]
    assert out.alert is not None and (out.alert.level, out.alert.level_name) == (1, "district_manager")
    assert out.alert.escalated_at == NOW and out.alert.as_of == TODAY
    assert out.next_check == TODAY - timedelta(days=7) + timedelta(days=30)


def test_an_acknowledged_alert_climbs_only_if_the_rules_say_so() -> None:
    acked = alert(status=AlertStatus.acknowledged, acknowledged_by="handläggare", deadline=TODAY - timedelta(days=7))
    a = breach(deadline=TODAY - timedelta(days=7), next_check=TODAY + timedelta(days=3))
    assert kinds(run(a, acked)) == [Transition.escalated]
    held = run(a, acked, rules=RulesConfig(escalate_acknowledged=False))
    assert held.steps == () and held.alert == acked
    assert held.next_check == TODAY + timedelta(days=3)  # the assessment's own next day only


def test_a_met_rule_resolves_the_alert_with_the_days_it_took() -> None:
    a = r.Assessment(
        rule="school_gap", state=r.State.met, reason=r.Reason.school_started, calendar_days=15, counted_days=11
    )
    out = run(a, alert())
    assert kinds(out) == [Transition.resolved] and out.steps[0].reason == "school_started"
    assert out.alert is not None and out.alert.status == AlertStatus.resolved
    assert (out.alert.resolved_at, out.alert.resolution_reason) == (NOW, "school_started")
    assert (out.alert.calendar_days, out.alert.counted_days, out.alert.as_of) == (15, 11, TODAY)


def test_a_resolved_alert_breached_again_reopens_the_same_alert() -> None:
    done = alert(
        status=AlertStatus.resolved,
        resolved_at=NOW - timedelta(days=2),
        resolution_reason="school_started",
        acknowledged_by="handläggare",
        acknowledged_at=NOW - timedelta(days=3),
        escalated_at=NOW - timedelta(days=4),
    )
    restarted = date(2026, 3, 5)
    out = run(breach(deadline=TODAY, clock_start=restarted, from_school_end=True), done)
    assert not out.raised and kinds(out) == [Transition.opened]
    again = out.alert
    assert again is not None and again.status == AlertStatus.open
    assert (again.resolved_at, again.resolution_reason, again.acknowledged_by, again.escalated_at) == (None,) * 4
    assert (again.clock_start, again.deadline, again.opened_at) == (restarted, TODAY, NOW)


def test_nothing_new_is_a_no_op() -> None:
    current = alert(as_of=TODAY)
    out = run(breach(), current)
    assert out.steps == () and out.alert == current and not out.raised
    assert run(r.Assessment(rule="school_gap", state=r.State.pending), None) == Outcome(None)


def test_a_move_and_a_transfer_are_announced_as_changes() -> None:
    moved = alert(placement_id=uuid.uuid4())
    out = run(breach(), moved)
    assert kinds(out) == [Transition.changed] and out.steps[0].reason == ChangeReason.moved.value
    assert out.alert is not None and out.alert.placement_id == PLACEMENT.placement_id
    out = run(breach(), alert(district="Kista"))
    assert out.steps[0].reason == ChangeReason.transferred.value
    assert out.alert is not None and out.alert.district == PLACEMENT.district


def test_corrected_dates_change_the_alert_in_place_or_resolve_it() -> None:
    later = DEADLINE + timedelta(days=2)
    out = run(breach(deadline=later, clock_start=START + timedelta(days=2)), alert())
    assert kinds(out) == [Transition.changed] and out.steps[0].reason == ChangeReason.dates_corrected.value
    assert out.alert is not None and out.alert.deadline == later
    before = breach(state=r.State.warning, deadline=TODAY + timedelta(days=1))
    out = run(before, alert())
    # The alert is over, and a pre-warning on the new dates is raised anew (the same row).
    assert kinds(out) == [Transition.resolved, Transition.prewarned] and not out.raised
    assert out.steps[0].reason == r.Reason.deadline_moved.value
    assert out.alert is not None and out.alert.status == AlertStatus.warning and out.alert.resolved_at is None


def test_the_settle_period_holds_a_new_alert_and_an_ending_back() -> None:
    until = NOW + timedelta(minutes=15)
    out = run(breach(), None, hold=Hold(new_until=until))
    assert out == Outcome(None, held_until=until)
    ended = r.Assessment(rule="school_gap", state=r.State.inactive, reason=r.Reason.placement_ended)
    out = run(ended, alert(), hold=Hold(end_until=until))
    assert out.steps == () and out.held_until == until
    assert kinds(run(ended, alert())) == [Transition.resolved]


def test_an_alert_superseded_by_the_heads_own_resolves() -> None:
    current = alert()
    out = superseded(current, RULES, now=NOW, today=TODAY)
    calendar, counted = days_until(RULES, "school_gap", START, TODAY)
    assert calendar == (TODAY - START).days and 0 < counted <= calendar
    assert kinds(out) == [Transition.resolved] and out.steps[0].reason == "placement_ended"
    assert out.alert == replace(
        current,
        status=AlertStatus.resolved,
        resolved_at=NOW,
        resolution_reason="placement_ended",
        as_of=TODAY,
        calendar_days=calendar,
        counted_days=counted,
    )
