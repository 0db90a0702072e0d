"""Events the notify service emits on `obruten.alerts` (key: the child's id).

Every transition of an alert is announced with the alert's state after it. They carry ids,
the district, the rule, dates and day counts only: never a personnummer, a name, a whereabouts
or an acknowledgement's free-text note (that stays behind the API).

The alert follows the child, not the placement: a move (or a new placement starting within the
configured gap after the last one ended) continues the child's time in care, and its open alerts
stay open. What changes on an alert that is neither a step up nor a resolution is announced as
`obruten.alert.changed`, with the alert's state after the change and a `reason`:

* `moved`: the child moved to another placement of the same district (`placement_id` is the new one);
* `transferred`: the case passed to another district (`district` is the receiving one; from this
  event on, the sending district's subscriptions no longer hear of the alert);
* `dates_corrected`: a placement's start date or a school record's date was corrected and the alert,
  still in breach, was re-evaluated from the new dates: `clock_start`, `deadline` and the day counts
  are the new ones. A correction that puts today before the deadline again resolves the alert
  instead (`obruten.alert.resolved`, reason `deadline_moved`); one that moves it past more steps of
  the ladder announces each step reached (`obruten.alert.escalated`, one per level).

Late history and imports: no alert is raised for a child whose placement notify learnt of less
than `OBRUTEN_NOTIFY_SETTLE_SECONDS` ago (default 900), and a placement's end resolves nothing
until that long after notify learnt of it, so that the rest of a history entered late (the next
placement of a move, the school start, the examinations) can arrive first. Imports (`POST
/v1/imports`) need no field of their own on the placement events: an imported child is evaluated
once the settle period after its last imported placement has passed; an import should deliver the
child's school and health records within it (or the operator raises the period for the initial
load). When the period ends, a real breach alerts, each escalation step reached told in turn.

Consumed: `obruten.placement` (shared/contracts/placement.py), `obruten.school`
(shared/contracts/school.py) and `obruten.health` (shared/contracts/health.py).
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field, WithJsonSchema

from shared.contracts.envelope import EventData, event_type
from shared.contracts.topics import TOPIC_ALERTS


# The rules notify evaluates (services/notify/rules/); an alert names the one that raised it.
class RuleName(StrEnum):
    school_gap = "school_gap"
    school_plan_missing = "school_plan_missing"
    health_exam_missing = "health_exam_missing"
    dental_exam_missing = "dental_exam_missing"


RULE_NAMES: tuple[str, ...] = tuple(r.value for r in RuleName)
# As first published, the event schema gives the rule as an inline list of strings, not a
# named enum: the documents (docs/asyncapi.json) do not change with the type in the code.
_RULE_SCHEMA = WithJsonSchema({"enum": list(RULE_NAMES), "title": "Rule", "type": "string"})


class AlertStatus(StrEnum):
    warning = "warning"  # pre-warning: the deadline is near
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"


# An alert in one of these is live: a rule met again resolves it, a new episode restarts it.
ACTIVE_STATUSES = frozenset({AlertStatus.warning, AlertStatus.open, AlertStatus.acknowledged})


class AlertChanged(EventData):
    alert_id: uuid.UUID
    rule: Annotated[RuleName, _RULE_SCHEMA]
    placement_id: uuid.UUID
    child_id: uuid.UUID
    district: str
    status: AlertStatus
    level: str | None = Field(description="The escalation step the alert has reached; null for a pre-warning.")
    clock_start: date = Field(description="Day 0 of the count: the placement start, or the day schooling ended.")
    deadline: date = Field(description="The first day on which the rule is breached.")
    as_of: date = Field(description="The day this transition was decided (Europe/Stockholm).")
    calendar_days: int = Field(description="Calendar days since clock_start, as of as_of (for resolved: it took).")
    counted_days: int = Field(description="Days counted by the rule (term breaks or non-working days skipped).")
    reason: str | None = Field(
        default=None,
        description="Why it was resolved (e.g. school_started, placement_ended) or changed (moved, transferred, "
        "dates_corrected).",
    )
    acknowledged_by: str | None = Field(default=None, description="The staff member's subject id, when acknowledged.")


ALERT_PREWARNED = event_type(
    "obruten.alert.prewarned", TOPIC_ALERTS, AlertChanged, "A deadline is near: the pre-warning day was reached."
)
ALERT_OPENED = event_type(
    "obruten.alert.opened", TOPIC_ALERTS, AlertChanged, "A deadline passed unmet; the first escalation step is told."
)
ALERT_ESCALATED = event_type(
    "obruten.alert.escalated", TOPIC_ALERTS, AlertChanged, "An open alert reached the next step of the ladder."
)
ALERT_ACKNOWLEDGED = event_type(
    "obruten.alert.acknowledged", TOPIC_ALERTS, AlertChanged, "Someone acknowledged the alert."
)
ALERT_RESOLVED = event_type(
    "obruten.alert.resolved", TOPIC_ALERTS, AlertChanged, "The condition was met or no longer applies; with the reason."
)


ALERT_CHANGED = event_type(
    "obruten.alert.changed",
    TOPIC_ALERTS,
    AlertChanged,
    "An active alert changed without a step up or a resolution: the child moved (reason moved), the case "
    "passed to another district (transferred), or corrected dates re-evaluated it (dates_corrected: the new "
    "clock_start, deadline and days).",
)


class Transition(StrEnum):
    """What happened to an alert: each is announced with its own event type."""

    prewarned = "prewarned"
    opened = "opened"
    escalated = "escalated"
    acknowledged = "acknowledged"
    resolved = "resolved"
    changed = "changed"


class ChangeReason(StrEnum):
    """Why an active alert changed (`obruten.alert.changed`)."""

    moved = "moved"
    transferred = "transferred"
    dates_corrected = "dates_corrected"


TRANSITION_EVENTS = {
    Transition.prewarned: ALERT_PREWARNED,
    Transition.opened: ALERT_OPENED,
    Transition.escalated: ALERT_ESCALATED,
    Transition.acknowledged: ALERT_ACKNOWLEDGED,
    Transition.resolved: ALERT_RESOLVED,
    Transition.changed: ALERT_CHANGED,
}
