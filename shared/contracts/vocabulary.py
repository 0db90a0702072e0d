"""The domain words every service shares (see ../shared/domain.md)."""

from __future__ import annotations

from enum import StrEnum


class PlacementForm(StrEnum):
    jourhem = "jourhem"  # emergency home
    familjehem = "familjehem"  # foster family
    hvb = "hvb"  # residential care institution
    sis = "sis"  # state secure youth home (§12-hem)
    stodboende = "stodboende"  # own flat with support, 16-20
    skyddat_boende = "skyddat_boende"  # protected housing


class LegalBasis(StrEnum):
    SoL = "SoL"  # voluntary
    LVU2 = "LVU2"  # compulsory, home conditions
    LVU3 = "LVU3"  # compulsory, own behaviour
