"""Notify's rules as pure functions, and its configuration: no database, no broker."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from services.notify.app import create_app
from services.notify.rules import assess as r
from services.notify.rules.config import RulesConfig, RulesConfigError, parse_rules
from services.notify.settings import NotifySettings
from shared.kernel.settings import Settings
from shared.web.runtime import runtime

DAY0 = date(2025, 9, 1)  # a Monday
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "services" / "notify" / "rules" / "rules.default.yaml"


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def facts(form: str = "jourhem", *, start: date = DAY0, school_change: bool = True, birth: date = date(2013, 4, 2),
          end: date | None = None) -> r.Facts:  # fmt: skip
    return r.Facts(r.Placement(uuid.uuid4(), uuid.uuid4(), "Farsta", form, start, end, school_change, birth))


def rules(**raw: object) -> RulesConfig:
    return parse_rules(raw, "test")


# --- school_gap ---------------------------------------------------------------------------------


def test_more_than_seven_days_without_school_is_a_breach_and_day_seven_is_not():
    cfg, f = rules(), facts()
    assert r.assess("school_gap", cfg, f, day(4)).state == r.State.pending
    assert r.assess("school_gap", cfg, f, day(5)).state == r.State.warning
    assert r.assess("school_gap", cfg, f, day(7)).state == r.State.warning
    breach = r.assess("school_gap", cfg, f, day(8))
    assert (breach.state, breach.deadline, breach.calendar_days, breach.counted_days) == (
        r.State.breach, day(8), 8, 8,
    )  # fmt: skip
    f.attendances.append(r.Attendance(day(7), None))
    met = r.assess("school_gap", cfg, f, day(8))
    assert (met.state, met.reason, met.calendar_days) == (r.State.met, r.Reason.school_started, 7)


def test_the_next_check_is_the_next_day_anything_can_change():
    cfg, f = rules(), facts()
    assert r.assess("school_gap", cfg, f, DAY0).next_check == day(5)  # the pre-warning
    assert r.assess("school_gap", cfg, f, day(5)).next_check == day(8)  # the deadline
    assert r.assess("school_gap", cfg, f, day(8)).next_check is None  # escalation is the service's
    assert r.next_escalation(cfg, day(8), 0) == day(15)
    assert r.escalation_level(cfg, day(8), day(37)) == 1
    assert r.escalation_level(cfg, day(8), day(38)) == 2


def test_a_known_start_on_or_before_the_deadline_needs_no_prewarning():
    f = facts()
    f.attendances.append(r.Attendance(day(7), None))
    a = r.assess("school_gap", rules(), f, day(5))
    assert (a.state, a.reason, a.next_check) == (r.State.pending, r.Reason.school_start_scheduled, day(7))
    f.attendances[0] = r.Attendance(day(9), None)
    assert r.assess("school_gap", rules(), f, day(8)).state == r.State.breach


def test_term_breaks_pause_the_count_and_both_counts_are_stated():
    cfg = rules(school_gap={"term_breaks": [{"start": str(day(2)), "end": str(day(4))}]})
    f = facts()
    assert r.assess("school_gap", cfg, f, day(10)).state != r.State.breach
    breach = r.assess("school_gap", cfg, f, day(11))
    assert (breach.state, breach.deadline, breach.calendar_days, breach.counted_days) == (
        r.State.breach, day(11), 11, 8,
    )  # fmt: skip


def test_a_school_end_reopens_the_clock_from_its_date():
    f = facts()
    f.attendances.append(r.Attendance(day(2), day(10)))
    assert r.assess("school_gap", rules(), f, day(9)).state == r.State.met
    a = r.assess("school_gap", rules(), f, day(18))
    assert (a.state, a.clock_start, a.deadline) == (r.State.breach, day(10), day(18))


def test_forms_school_change_age_band_and_sis():
    assert r.assess("school_gap", rules(), facts("sis"), day(20)).reason == r.Reason.not_applicable
    assert r.assess("school_gap", rules(school_gap={"include_sis": True}), facts("sis"), day(20)).state == (
        r.State.breach
    )
    assert r.assess("school_gap", rules(), facts(school_change=False), day(20)).state == r.State.inactive
    band = rules(school_gap={"age_band": {"min_age": 6, "max_age": 16}})
    assert r.assess("school_gap", band, facts(birth=date(2021, 1, 1)), day(20)).state == r.State.inactive
    assert r.assess("school_gap", band, facts(birth=date(2013, 1, 1)), day(20)).state == r.State.breach
    ended = facts(end=day(6))
    assert r.assess("school_gap", rules(), ended, day(20)).reason == r.Reason.placement_ended


# --- plan and examinations ----------------------------------------------------------------------


def test_school_plan_applies_to_hvb_and_familjehem_only():
    assert r.assess("school_plan_missing", rules(), facts("jourhem"), day(30)).state == r.State.inactive
    f = facts("hvb")
    assert r.assess("school_plan_missing", rules(), f, day(8)).state == r.State.breach
    f.plans.append(day(9))
    met = r.assess("school_plan_missing", rules(), f, day(10))
    assert (met.state, met.calendar_days) == (r.State.met, 9)


def test_examinations_default_to_30_days_and_can_count_swedish_working_days():
    f = facts()
    assert r.assess("health_exam_missing", rules(), f, day(30)).state == r.State.warning
    assert r.assess("health_exam_missing", rules(), f, day(31)).deadline == day(31)
    # England's 20 working days. Not working days: weekends, 24-26 and 31 December, 1 and 6 January.
    cfg = rules(health_exam_missing={"days": 20, "prewarning_day": 15, "working_days": True})
    december = facts(start=date(2025, 12, 15))
    a = r.assess("health_exam_missing", cfg, december, date(2025, 12, 16))
    assert a.deadline == date(2026, 1, 21)  # the 21st working day after 15 December
    f.dental_exams.append(day(12))
    assert r.assess("dental_exam_missing", rules(), f, day(40)).state == r.State.met


# --- configuration ------------------------------------------------------------------------------


def test_the_documented_rules_file_is_the_default():
    documented = parse_rules(yaml.safe_load(DEFAULT_FILE.read_text()), str(DEFAULT_FILE))
    assert documented == RulesConfig()
    assert json.loads(documented.model_dump_json()) == json.loads(RulesConfig().model_dump_json())


@pytest.mark.parametrize(
    "raw,setting",
    [
        ({"school_gap": {"days": 7, "prewarning_day": 9}}, "school_gap.prewarning_day"),
        ({"dental_exam_missing": {"days": 30, "prewarning_day": 31}}, "dental_exam_missing.prewarning_day"),
        (
            {"escalation": [{"level": "district", "after_days": 0}, {"level": "manager", "after_days": -3}]},
            "escalation[1].after_days",
        ),
        ({"escalation": [{"level": "district", "after_days": 5}]}, "escalation[0].after_days"),
        ({"school_gap": {"dayz": 7}}, "school_gap.dayz"),
        ({"school_gap": {"forms": ["hvb", "sis"]}}, "school_gap.forms"),
    ],
)
def test_an_inconsistent_configuration_is_refused_at_start_up_naming_the_setting(raw, setting):
    with pytest.raises(RulesConfigError) as refused:
        create_app(Settings(), service_settings=NotifySettings(rules=raw))
    assert setting in str(refused.value)


def test_the_rules_file_is_read_from_the_environment(tmp_path, monkeypatch):
    good = tmp_path / "rules.yaml"
    good.write_text("school_gap:\n  days: 10\n  prewarning_day: 8\n")
    monkeypatch.setenv("OBRUTEN_NOTIFY_RULES_FILE", str(good))
    cfg = NotifySettings().load_rules()
    assert (cfg.school_gap.days, cfg.school_gap.prewarning_day, cfg.health_exam_missing.days) == (10, 8, 30)

    bad = tmp_path / "rules.json"
    bad.write_text(json.dumps({"school_gap": {"days": 3}}))  # the default pre-warning (day 5) is now too late
    monkeypatch.setenv("OBRUTEN_NOTIFY_RULES_FILE", str(bad))
    with pytest.raises(RulesConfigError) as refused:
        create_app(Settings())
    assert "OBRUTEN_NOTIFY_RULES_FILE" in str(refused.value) and "school_gap.prewarning_day" in str(refused.value)


# --- issue 14: the child's clock, school age ------------------------------------------------------


def run(*placements: r.Facts) -> r.Facts:
    """The last placement as the head of a run, the others before it."""
    head = placements[-1]
    head.earlier = list(placements[:-1])
    return head


def test_a_school_plan_carries_over_a_move_unless_the_move_means_a_change_of_school():
    first = facts("hvb", start=DAY0, end=day(10))
    first.plans.append(day(2))
    same_school = run(first, facts("familjehem", start=day(10), school_change=False))
    met = r.assess("school_plan_missing", rules(), same_school, day(30))
    assert (met.state, met.clock_start, met.met_on) == (r.State.met, DAY0, day(2))
    first_again = facts("hvb", start=DAY0, end=day(10))
    first_again.plans.append(day(2))
    new_school = run(first_again, facts("familjehem", start=day(10), school_change=True))
    breach = r.assess("school_plan_missing", rules(), new_school, day(18))
    assert (breach.state, breach.clock_start, breach.deadline) == (r.State.breach, day(10), day(18))


def test_an_examination_counts_for_the_child_for_12_months():
    old = facts(start=date(2024, 1, 1), end=date(2024, 3, 1))
    old.health_exams.append(date(2024, 8, 31))  # 12 months and a day before 1 September 2025
    head = facts(start=DAY0)
    head.other_health_exams = list(old.health_exams)
    assert r.assess("health_exam_missing", rules(), head, day(31)).state == r.State.breach
    head.other_health_exams = [date(2024, 9, 1)]  # 12 months before: still valid
    assert r.assess("health_exam_missing", rules(), head, day(31)).state == r.State.met
    strict = rules(health_exam_missing={"valid_for_months": 6})
    assert r.assess("health_exam_missing", strict, head, day(31)).state == r.State.breach


def test_the_school_gap_clock_runs_over_a_move_and_a_school_left_at_a_move_reopens_it():
    first = facts(start=DAY0, end=day(5))
    head = run(first, facts("familjehem", start=day(5)))
    a = r.assess("school_gap", rules(), head, day(8))
    assert (a.state, a.clock_start, a.deadline) == (r.State.breach, DAY0, day(8))
    # In school from day 2 in the first placement; the move of day 5 means a change of school.
    schooled = facts(start=DAY0, end=day(5))
    schooled.attendances.append(r.Attendance(day(2), None))
    head = run(schooled, facts("familjehem", start=day(5)))
    assert r.assess("school_gap", rules(), head, day(12)).state == r.State.warning
    a = r.assess("school_gap", rules(), head, day(13))
    assert (a.state, a.clock_start, a.from_school_end) == (r.State.breach, day(5), True)


def test_a_new_placement_continues_the_run_within_the_configured_gap():
    from services.notify.facts import runs_of

    a, b = facts(start=DAY0, end=day(5)), facts(start=day(8))
    assert [len(x) for x in runs_of([a, b], 0)] == [1, 1]
    assert [len(x) for x in runs_of([a, b], 3)] == [2]
    moved = facts(start=day(5))
    assert [len(x) for x in runs_of([moved, a], 0)] == [2]


def test_school_age_runs_from_the_autumn_term_of_the_year_turning_6_to_30_june_of_the_year_turning_20():
    cfg = rules()
    young = facts(start=date(2025, 8, 1), birth=date(2019, 12, 31))
    before = r.assess("school_gap", cfg, young, date(2025, 8, 14))
    assert (before.state, before.reason, before.next_check) == (
        r.State.inactive, r.Reason.not_applicable, date(2025, 8, 15),
    )  # fmt: skip
    a = r.assess("school_gap", cfg, young, date(2025, 8, 23))
    assert (a.state, a.clock_start) == (r.State.breach, date(2025, 8, 15))
    old = facts(start=date(2025, 5, 1), birth=date(2005, 1, 1))
    assert r.assess("school_gap", cfg, old, date(2025, 6, 30)).state == r.State.breach
    assert r.assess("school_gap", cfg, old, date(2025, 7, 1)).reason == r.Reason.not_applicable
    later_term = rules(school_age={"autumn_term_start": "08-20"})
    assert r.assess("school_gap", later_term, young, date(2025, 8, 23)).state == r.State.pending
    # Examinations cover every age.
    assert r.assess("health_exam_missing", cfg, facts(birth=date(2024, 1, 1)), day(31)).state == r.State.breach


def test_term_breaks_come_from_the_school_year_calendars_when_the_municipality_pauses_in_them():
    from services.notify.rules.calendar import SHIPPED, load_school_years, with_calendars

    years = load_school_years(SHIPPED)
    assert [y.school_year for y in years] == ["2025/2026", "2026/2027"]
    f = facts(start=date(2025, 10, 20))
    assert r.assess("school_gap", with_calendars(rules(), years), f, date(2025, 10, 21)).deadline == date(2025, 10, 28)
    pausing = with_calendars(rules(school_gap={"pause_in_term_breaks": True}), years)
    # Höstlov 27-31 October is not counted: the 8th counted day is 2 November.
    assert r.assess("school_gap", pausing, f, date(2025, 10, 21)).deadline == date(2025, 11, 2)
    summer = facts(start=date(2026, 6, 10))
    assert r.assess("school_gap", pausing, summer, date(2026, 6, 11)).deadline == date(2026, 8, 22)


def test_today_outside_every_school_year_is_a_warning_and_a_metric(caplog):
    from prometheus_client import generate_latest

    from services.notify.app import check_school_year
    from shared.kernel.clock import STOCKHOLM, FixedClock

    inside = create_app(Settings(), FixedClock(datetime(2026, 3, 2, 12, tzinfo=STOCKHOLM)))
    assert check_school_year(inside) is False
    july = create_app(Settings(), FixedClock(datetime(2026, 7, 10, 12, tzinfo=STOCKHOLM)))
    assert check_school_year(july) is False  # the summer between two configured years
    later = create_app(Settings(), FixedClock(datetime(2030, 1, 10, 12, tzinfo=STOCKHOLM)))
    with caplog.at_level("WARNING", logger="obruten.notify"):
        assert check_school_year(later) is True
        assert check_school_year(later) is True
    warnings = [rec for rec in caplog.records if "outside every configured school year" in rec.getMessage()]
    assert len(warnings) == 1, "once a day, not once a tick"
    assert b"obruten_notify_outside_school_year 1.0" in generate_latest(runtime(later).metrics.registry)
