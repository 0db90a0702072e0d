"""Valid request bodies, so a test states only what it is about."""

from __future__ import annotations

from datetime import date
from typing import Any


def luhn_pnr(birth: date, serial: int) -> str:
    """A valid personnummer for `birth` with serial 000-999 (three digits)."""
    digits = f"{birth:%y%m%d}{serial:03d}"
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    check = (10 - total % 10) % 10
    return f"{birth:%Y%m%d}-{serial:03d}{check}"


def child_body(
    n: int = 0, *, district: str = "Farsta", protected: bool = False, birth: date | None = None
) -> dict[str, Any]:
    return {
        "personnummer": luhn_pnr(birth or date(2013, 4, 1 + n % 28), 100 + n),
        "district": district,
        "protected_identity": protected,
    }


def placement_body(
    child_id: str,
    *,
    start: date,
    district: str = "Farsta",
    form: str = "familjehem",
    school_change: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "child_id": child_id,
        "district": district,
        "form": form,
        "legal_basis": "SoL",
        "start_date": start.isoformat(),
        "school_change": school_change,
        **extra,
    }
