"""Notify's configuration: the rule parameters and the operational knobs.

Two layers:

* `NotifySettings` (services/notify/settings.py, environment `OBRUTEN_NOTIFY_…`): tick interval,
  webhook delivery, and where the rules come from.
* `RulesConfig`: the deadlines. Loaded from OBRUTEN_NOTIFY_RULES_FILE (YAML or JSON) when it is
  set, else the defaults below. `rules.default.yaml` next to this file is the documented copy of
  those defaults, with their sources; a test keeps the two equal.

The reports the product is built on give no number for most deadlines, so each default says where
it comes from, and every one can be changed by a municipality without touching code.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.contracts.alerts import RULE_NAMES
from shared.contracts.vocabulary import PlacementForm
from shared.kernel.errors import invalid


def check_rule_name(value: str, field: str) -> None:
    """422 naming the field unless the value is one of the rules (a query filter, a webhook's)."""
    if value not in RULE_NAMES:
        raise invalid(field, f"unknown rule; expected one of: {', '.join(RULE_NAMES)}")


class RulesConfigError(ValueError):
    """An inconsistent rules configuration; the message names the setting at fault."""


class _Strict(BaseModel):
    # A misspelt key in a rules file must be refused, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


def years_later(day: date, years: int) -> date:
    """The same day `years` later (29 February becomes 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def months_earlier(day: date, months: int) -> date:
    """The same day `months` earlier, clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month + 1, d)
        except ValueError:
            continue
    raise ValueError(day)


class SchoolAge(_Strict):
    """School age in Sweden (skollagen): compulsory from the autumn term of the year the child
    turns 6 (förskoleklass, compulsory since autumn 2018), and the right to start upper
    secondary school until the first half of the year the young person turns 20 (30 June)."""

    from_year_turning: int = Field(default=6, ge=0, le=20)
    # MM-DD: the first day of the autumn term. Municipalities set their own (mostly mid to late
    # August); the default is the earliest usual one, so that no child falls outside the rule.
    autumn_term_start: str = Field(default="08-15", pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
    until_year_turning: int = Field(default=20, ge=0, le=21)
    # MM-DD: the last day of the band in the year the young person turns `until_year_turning`.
    until: str = Field(default="06-30", pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")

    def window(self, birth: date) -> tuple[date, date]:
        m, d = (int(x) for x in self.autumn_term_start.split("-"))
        um, ud = (int(x) for x in self.until.split("-"))
        return date(birth.year + self.from_year_turning, m, d), date(birth.year + self.until_year_turning, um, ud)


class AgeBand(_Strict):
    """Ages a rule covers, evaluated on each day (a child who comes of age during a placement
    comes under the rule on that day). `school_age`: the legal school age (`RulesConfig.school_age`);
    `min_age`/`max_age`: whole years, both ends inclusive. All that are set apply together."""

    school_age: bool = False
    min_age: int | None = Field(default=None, ge=0, le=20)
    max_age: int | None = Field(default=None, ge=0, le=20)

    @model_validator(mode="after")
    def _ordered(self) -> AgeBand:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is above max_age")
        return self

    def window(self, birth: date, school: SchoolAge) -> tuple[date | None, date | None]:
        """The first and the last day the band covers (None: open at that end)."""
        first: date | None = None
        last: date | None = None
        if self.school_age:
            first, last = school.window(birth)
        if self.min_age is not None:
            at = years_later(birth, self.min_age)
            first = at if first is None else max(first, at)
        if self.max_age is not None:
            until = years_later(birth, self.max_age + 1) - timedelta(days=1)
            last = until if last is None else min(last, until)
        return first, last

    def covers(self, birth: date, on: date, school: SchoolAge | None = None) -> bool:
        first, last = self.window(birth, school or SchoolAge())
        return (first is None or on >= first) and (last is None or on <= last)


def _school_age_band() -> AgeBand:
    return AgeBand(school_age=True)


class TermBreak(_Strict):
    """A school holiday (both dates inclusive) during which the school-gap count pauses."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> TermBreak:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class RuleBase(_Strict):
    enabled: bool = True
    # The child is in breach when MORE than `days` counted days have passed since the clock
    # started: clock day 0, still unmet on day days+1 means an alert.
    days: int = Field(ge=0, le=3650)
    # Counted day on which a pre-warning is raised (None: no pre-warning). Must lie before the
    # deadline, i.e. at most `days`.
    prewarning_day: int | None = Field(default=None, ge=1)
    forms: list[PlacementForm]
    age_band: AgeBand = Field(default_factory=AgeBand)


class SchoolGapRule(RuleBase):
    """`school_gap`: a placement that means a change of school, with no school start.

    Source: the City of Stockholm's rule "no child without schooling for more than one week"
    and the SAMS collaboration model (jourhem, familjehem, HVB, stödboende; protected housing's
    own seven-day goal). Whether SiS homes are included was undecided: `include_sis` switches them on.
    """

    days: int = Field(default=7, ge=0, le=3650)
    prewarning_day: int | None = Field(default=5, ge=1)
    forms: list[PlacementForm] = Field(
        default_factory=lambda: [
            PlacementForm.jourhem,
            PlacementForm.familjehem,
            PlacementForm.hvb,
            PlacementForm.stodboende,
            PlacementForm.skyddat_boende,
        ]
    )
    age_band: AgeBand = Field(default_factory=_school_age_band)
    include_sis: bool = False
    # Term breaks pause the count (the reports leave it open; default: they do not). With
    # pause_in_term_breaks the breaks of the school-year calendars (rules/calendar.py) pause it,
    # and so do any listed here.
    pause_in_term_breaks: bool = False
    term_breaks: list[TermBreak] = Field(default_factory=list)

    @field_validator("forms")
    @classmethod
    def _sis_by_switch(cls, forms: list[PlacementForm]) -> list[PlacementForm]:
        if PlacementForm.sis in forms:
            raise ValueError("list sis through include_sis, not forms")
        return forms

    def effective_forms(self) -> frozenset[str]:
        forms = {f.value for f in self.forms}
        if self.include_sis:
            forms.add(PlacementForm.sis.value)
        return frozenset(forms)


class SchoolPlanRule(RuleBase):
    """`school_plan_missing`: a placement in HVB or familjehem without a school plan.

    Source: the city's rule that every child placed in an HVB or a foster family has a school
    plan (skolplanering). No report gives a number of days; the default ties the plan to the
    schooling goal it serves: drawn up within the same first week.
    """

    days: int = Field(default=7, ge=0, le=3650)
    prewarning_day: int | None = Field(default=5, ge=1)
    forms: list[PlacementForm] = Field(default_factory=lambda: [PlacementForm.hvb, PlacementForm.familjehem])
    age_band: AgeBand = Field(default_factory=_school_age_band)

    def effective_forms(self) -> frozenset[str]:
        return frozenset(f.value for f in self.forms)


class ExamRule(RuleBase):
    """`health_exam_missing` / `dental_exam_missing`: no completed examination in time.

    Source of the default (30 calendar days): US paediatric guidance (American Academy of
    Pediatrics, "Fostering Health") asks for a comprehensive examination within 30 days of
    entering care. England's statutory guidance asks for the initial health assessment within
    20 working days: set `days: 20, working_days: true` for that. Working days skip weekends,
    Swedish public holidays and the de facto eves (midsummer, Christmas, New Year; `holidays`).
    """

    days: int = Field(default=30, ge=0, le=3650)
    prewarning_day: int | None = Field(default=21, ge=1)
    forms: list[PlacementForm] = Field(default_factory=lambda: list(PlacementForm))
    working_days: bool = False
    # An examination done for the child counts for a new placement if it was done at most this
    # many months before the placement (the child's time in care) began.
    valid_for_months: int = Field(default=12, ge=0, le=120)

    def effective_forms(self) -> frozenset[str]:
        return frozenset(f.value for f in self.forms)


class Moves(_Strict):
    """When a new placement continues the child's time in care (and its clocks): a move, or a
    placement starting at most `continuation_gap_days` after the previous one ended."""

    continuation_gap_days: int = Field(default=0, ge=0, le=365)


class EscalationStep(_Strict):
    level: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    # Calendar days after the deadline (the day the alert opens). 0 = at the deadline.
    after_days: int


def _default_ladder() -> list[EscalationStep]:
    # The example ladder: the district at the deadline, its manager a week later,
    # the central office (socialförvaltningen) after a month.
    return [
        EscalationStep(level="district", after_days=0),
        EscalationStep(level="district_manager", after_days=7),
        EscalationStep(level="central_office", after_days=30),
    ]


class RulesConfig(_Strict):
    school_gap: SchoolGapRule = Field(default_factory=SchoolGapRule)
    school_plan_missing: SchoolPlanRule = Field(default_factory=SchoolPlanRule)
    health_exam_missing: ExamRule = Field(default_factory=ExamRule)
    dental_exam_missing: ExamRule = Field(default_factory=ExamRule)
    escalation: list[EscalationStep] = Field(default_factory=_default_ladder, min_length=1)
    school_age: SchoolAge = Field(default_factory=SchoolAge)
    moves: Moves = Field(default_factory=Moves)
    # An acknowledged alert keeps climbing the ladder while the child is still without school:
    # acknowledging says someone is on it, not that the problem is gone.
    escalate_acknowledged: bool = True

    def rule(self, name: str) -> RuleBase:
        rule: RuleBase = getattr(self, name)
        return rule


def _error_message(exc: ValidationError, origin: str) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    return f"invalid notify rules ({origin}): " + "; ".join(parts)


def consistency_errors(cfg: RulesConfig) -> list[str]:
    """Cross-field checks, each naming the setting at fault by its path in the rules file."""
    errors = []
    for name in RULE_NAMES:
        rule = cfg.rule(name)
        if rule.prewarning_day is not None and rule.prewarning_day > rule.days:
            errors.append(
                f"{name}.prewarning_day: day {rule.prewarning_day} falls after the deadline ({name}.days = "
                f"{rule.days}: the alert opens when more than {rule.days} days have passed); "
                f"it must be at most {rule.days}"
            )
    steps = cfg.escalation
    for i, step in enumerate(steps):
        if step.after_days < 0:
            errors.append(
                f"escalation[{i}].after_days: {step.after_days} puts the {step.level} step before the deadline; "
                "steps count days after it and cannot be negative"
            )
    if steps[0].after_days > 0:
        errors.append("escalation[0].after_days: the first step is who is told when the alert opens; it must be 0")
    for i in range(1, len(steps)):
        if steps[i].after_days <= steps[i - 1].after_days:
            errors.append(f"escalation[{i}].after_days: must be greater than escalation[{i - 1}].after_days")
    if len({s.level for s in steps}) != len(steps):
        errors.append("escalation: the levels must be distinct")
    return errors


def parse_rules(raw: Any, origin: str) -> RulesConfig:
    try:
        cfg = RulesConfig.model_validate(raw or {})
    except ValidationError as exc:
        raise RulesConfigError(_error_message(exc, origin)) from None
    errors = consistency_errors(cfg)
    if errors:
        raise RulesConfigError(f"inconsistent notify rules ({origin}): " + "; ".join(errors))
    return cfg


def load_rules_file(path: Path) -> RulesConfig:
    origin = f"OBRUTEN_NOTIFY_RULES_FILE={path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesConfigError(f"{origin}: cannot read the file ({exc.strerror})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise RulesConfigError(f"{origin}: PyYAML is not installed; write the rules as JSON") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RulesConfigError(f"{origin}: not valid YAML ({exc})") from None
    else:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise RulesConfigError(f"{origin}: not valid JSON ({exc})") from None
    return parse_rules(raw, origin)
