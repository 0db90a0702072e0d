"""The words of a mail: Swedish subject and body, plain text and a simple HTML part.

A mail names the rule, the district, the days counted, the deadline, the level and a link to
the alert on the web page, and nothing else: no personnummer, name, location, school unit or
clinic. It is built from the alert's own columns, which hold none of those, so there is no
field that could carry one in by mistake.
"""

from __future__ import annotations

import hashlib
import html
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime

RULE_TITLES = {
    "school_gap": "Skolgång saknas",
    "school_plan_missing": "Skolplanering saknas",
    "health_exam_missing": "Hälsoundersökning saknas",
    "dental_exam_missing": "Tandundersökning saknas",
}
LEVEL_TITLES = {
    "district": "stadsdelsförvaltningen",
    "district_manager": "stadsdelens chef",
    "central_office": "socialförvaltningen",
}
REASON_TITLES = {
    "school_started": "skolgången har börjat",
    "school_start_scheduled": "en skolstart före tidsgränsen är registrerad",
    "plan_registered": "en skolplanering är registrerad",
    "exam_completed": "undersökningen är gjord",
    "placement_ended": "placeringen har avslutats",
    "not_applicable": "regeln gäller inte längre placeringen",
    "rule_disabled": "regeln är avstängd",
    "deadline_moved": "ändrade datum flyttade tidsgränsen",
    "clock_restarted": "en ny period räknas från ett senare datum",
}
FOOTER = (
    "Detta är ett automatiskt meddelande från Obruten. Det innehåller inga uppgifter om barnet; "
    "logga in via länken för att se ärendet."
)


@dataclass(frozen=True)
class AlertFacts:
    """What a mail may say about an alert."""

    alert_id: uuid.UUID
    rule: str
    district: str
    counted_days: int
    calendar_days: int
    deadline: date
    level: str | None
    reason: str | None


@dataclass(frozen=True)
class Composed:
    subject: str
    text: str
    html: str


def rule_title(rule: str) -> str:
    return RULE_TITLES.get(rule, rule)


def level_title(level: str) -> str:
    return LEVEL_TITLES.get(level, level)


def link(web_url: str, alert_id: uuid.UUID) -> str:
    return f"{web_url.rstrip('/')}/alerts/{alert_id}"


def _lines(f: AlertFacts, stage: str) -> list[tuple[str, str]]:
    rows = [
        ("Regel", rule_title(f.rule)),
        ("Stadsdel", f.district),
        ("Räknade dagar", f"{f.counted_days} (kalenderdagar: {f.calendar_days})"),
        ("Tidsgräns", f.deadline.isoformat()),
    ]
    if stage not in ("prewarning", "resolved"):
        rows.append(("Nivå", level_title(stage)))
    elif f.level:
        rows.append(("Nivå", level_title(f.level)))
    if stage == "resolved" and f.reason:
        rows.append(("Orsak", REASON_TITLES.get(f.reason, f.reason)))
    return rows


def compose(kind: str, stage: str, f: AlertFacts, web_url: str) -> Composed:
    """kind: prewarning, alert or resolved; stage: prewarning, the level reached, or resolved."""
    title = rule_title(f.rule)
    if kind == "prewarning":
        subject = f"[Obruten] Förvarning: {title} – {f.district}"
        lead = f"Tidsgränsen närmar sig: regeln bryts {f.deadline.isoformat()} om inget händer."
    elif kind == "resolved":
        subject = f"[Obruten] Åtgärdat: {title} – {f.district}"
        lead = "Ett larm som du fått besked om är avslutat."
    else:
        subject = f"[Obruten] Larm: {title} – {f.district} (nivå: {level_title(stage)})"
        lead = f"Ett larm har nått nivån {level_title(stage)}."
    url = link(web_url, f.alert_id)
    rows = _lines(f, stage)
    text = "\n".join([lead, "", *(f"{k}: {v}" for k, v in rows), f"Se larmet: {url}", "", FOOTER, ""])
    cells = "".join(f"<tr><th align=\"left\">{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    body_html = (
        f"<html><body><p>{html.escape(lead)}</p><table>{cells}</table>"
        f'<p><a href="{html.escape(url)}">Se larmet</a></p><p><small>{html.escape(FOOTER)}</small></p></body></html>'
    )
    return Composed(subject, text, body_html)


def compose_digest(day: date, items: list[tuple[str, str]], web_url: str) -> Composed:
    """items: (subject, plain text) of each mail the digest lists, oldest first."""
    subject = f"[Obruten] Sammanställning {day.isoformat()}: {len(items)} händelse{'r' if len(items) != 1 else ''}"
    lead = f"Det här har hänt sedan förra sammanställningen ({len(items)} st):"
    parts = [lead, ""]
    html_items = []
    for n, (item_subject, item_text) in enumerate(items, start=1):
        shown = item_subject.removeprefix("[Obruten] ")
        parts += [f"{n}. {shown}", *(f"   {line}" for line in item_text.split("\n") if line and line != FOOTER), ""]
        html_items.append(
            f"<li><p><strong>{html.escape(shown)}</strong></p><pre>{html.escape(item_text.replace(FOOTER, '').strip())}"
            "</pre></li>"
        )
    parts += [FOOTER, ""]
    body_html = (
        f"<html><body><p>{html.escape(lead)}</p><ol>{''.join(html_items)}</ol>"
        f"<p><small>{html.escape(FOOTER)}</small></p></body></html>"
    )
    return Composed(subject, "\n".join(parts), body_html)


def message_id(key: str, sender_domain: str = "obruten.notify") -> str:
    """Stable per queue key ((alert, episode, stage, recipient) or (digest day, recipient)), so a
    resend after a crash carries the same Message-ID and is recognisable as the same mail."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{sender_domain}>"


def build_message(
    *, sender: str, recipient: str, subject: str, text: str, body_html: str, message_id: str, date_: datetime
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(date_)
    # RFC 3834: an automatic message; well-behaved autoresponders do not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(body_html, subtype="html")
    return msg
