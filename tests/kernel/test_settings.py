"""Each service reads its own settings class (services/<service>/settings.py): its variables are
OBRUTEN_<SERVICE>_…, and a name it had while it was a shared setting still works."""

from __future__ import annotations

import pytest

from services.health.settings import HealthSettings
from services.placement.settings import PlacementSettings
from shared.kernel.settings import Settings
from shared.web.registry import env_names


def test_placement_reads_its_own_variable_and_the_shared_name_it_had(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PlacementSettings().max_future_start_days == 366
    monkeypatch.setenv("OBRUTEN_MAX_FUTURE_START_DAYS", "100")
    assert PlacementSettings().max_future_start_days == 100
    monkeypatch.setenv("OBRUTEN_PLACEMENT_MAX_FUTURE_START_DAYS", "200")
    assert PlacementSettings().max_future_start_days == 200  # the service's own name wins
    assert PlacementSettings(max_future_start_days=7).max_future_start_days == 7
    assert "max_future_start_days" not in Settings.model_fields


def test_health_reads_the_report_deadlines_as_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBRUTEN_HEALTH_REPORT_HEALTH_EXAM_DAYS", "10")
    monkeypatch.setenv("OBRUTEN_REPORT_DENTAL_EXAM_DAYS", "20")
    own = HealthSettings()
    assert (own.report_health_exam_days, own.report_dental_exam_days) == (10, 20)
    assert {"OBRUTEN_HEALTH_REPORT_DENTAL_EXAM_DAYS", "OBRUTEN_REPORT_DENTAL_EXAM_DAYS"} <= env_names(HealthSettings)
    assert not {"report_health_exam_days", "report_dental_exam_days"} & set(Settings.model_fields)
