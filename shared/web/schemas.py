"""Field types every service's request bodies and queries share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import StringConstraints

# A single line of free text. PostgreSQL text cannot hold NUL, and no name, note or place
# needs a control character: refused with a 422 rather than failing in the database.
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000, pattern=r"^[^\x00-\x1f\x7f]*$")]

# Bounded so that a huge offset is a 422, not a bigint overflow in the database.
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
