"""Field types every service's request bodies and queries share.

Every free-text field and query parameter of every service is one of the text types
below, every `offset` is `Offset`, every timestamp a request carries is
`Instant`: tests/kernel/test_openapi_types.py walks every operation and fails on one that is not.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

# C0 and C1 control characters (NUL included) and unpaired surrogates. PostgreSQL text cannot
# hold NUL, a surrogate cannot be encoded as UTF-8, and no name, note, place or filter needs a
# control character: each is refused with a 422 before it reaches a query or a log line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# What the OpenAPI documents for such a field (the refusal itself is `_refuse_control`).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
# Marks the schema of a field built from `Text`, for the test that walks the OpenAPI documents.
TEXT_MARK = "x-obruten-text"
OFFSET_MAX = 2**31 - 1
# Timestamps a request may carry: wide enough for any audit filter, narrow enough that a
# timezone shift or a comparison with stored ones cannot overflow.
FIRST_YEAR, LAST_YEAR = 1900, 2199


def _refuse_control(value: Any) -> Any:
    # Before stripping: str.strip() would silently drop some control characters (\x1c-\x1f).
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValueError("contains a NUL, a control character or an unpaired surrogate")
    return value


def has_control(value: str) -> bool:
    return _CONTROL.search(value) is not None


_MARK = Field(json_schema_extra={"pattern": TEXT_PATTERN, TEXT_MARK: True})
_REFUSE = BeforeValidator(_refuse_control)

# A single line of free text; each size spelt out so that type checkers see a plain `str`.
ShortText = Annotated[str, _REFUSE, StringConstraints(strip_whitespace=True, max_length=200), _MARK]
LongText = Annotated[str, _REFUSE, StringConstraints(strip_whitespace=True, max_length=2000), _MARK]
# A district's name as configured (the value is checked against the configuration by the route),
# a resource type, an id given as text.
NameText = Annotated[str, _REFUSE, StringConstraints(strip_whitespace=True, max_length=100), _MARK]
# A personnummer or samordningsnummer as typed (validated by the service: `ascii_digits`).
IdentityText = Annotated[str, _REFUSE, StringConstraints(strip_whitespace=True, max_length=13), _MARK]


def ascii_digits(raw: str) -> str:
    """An identity number as ASCII: NFKC folds fullwidth digits and the like; what is still not
    an ASCII digit or a separator (Arabic-Indic digits, letters) is refused by the caller."""
    return unicodedata.normalize("NFKC", raw).strip()


IDENTITY_NUMBER = re.compile(r"(?:[0-9]{2})?[0-9]{6}[-+]?[0-9]{4}")


def _instant(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"outside the years {FIRST_YEAR}-{LAST_YEAR}")
    # A timestamp without an offset is taken as UTC, so comparing it with stored ones is defined.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# Marks the schema of a bounded timestamp, for the same test.
BOUNDED_MARK = "x-obruten-bounded"
Instant = Annotated[
    datetime, AfterValidator(_instant), Field(json_schema_extra={BOUNDED_MARK: [FIRST_YEAR, LAST_YEAR]})
]
# Every day of the calendar: a route that computes with one handles its ends (a report's period,
# a day count), and schemathesis feeds them to every date parameter.
Day = date

# Bounded so that a huge offset is a 422, not a bigint overflow in the database.
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=OFFSET_MAX)]
