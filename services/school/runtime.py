"""The school service's own state in its runtime (shared/web/runtime.py: ServiceRuntime.extra)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from shared.web.runtime import extra

if TYPE_CHECKING:
    from services.school.ss12000.runner import SourceRunner
    from services.school.ss12000.settings import IntakeSettings


@dataclass(kw_only=True)
class SchoolRuntime:
    ss12000_settings: IntakeSettings
    # Set by run_intake: each configured source's loop, by name (the push endpoint wakes one).
    ss12000_runners: dict[str, SourceRunner] = field(default_factory=dict)
    # An httpx transport to stand in for the sources' HTTP, when set before the app starts.
    ss12000_transport: Any = None


def school_runtime(app: FastAPI) -> SchoolRuntime:
    return extra(app, SchoolRuntime)
