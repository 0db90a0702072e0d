"""Each service reads its own settings class (services/<service>/settings.py): its variables are
OBRUTEN_<SERVICE>_…, a name it had while it was a shared setting still works, and a misspelt
keyword is refused by every settings class (none allows extras)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from services.health.settings import HealthSettings
from services.notify.runtime import notify_runtime
from services.notify.settings import NotifySettings
from services.placement.settings import PlacementSettings
from services.school.ss12000.settings import IntakeSettings
from services.web.settings import WebSettings
from shared.kernel.settings import Settings
from shared.web.registry import env_names
from shared.web.runtime import runtime
from tests.fixtures.support import service_app


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


@pytest.mark.parametrize(
    ("settings_class", "misspelt"),
    [
        (Settings, {"databse_url": "postgresql://x/y"}),
        (Settings, {"notify_tick_batch_size": 5}),  # notify's own: NotifySettings, not the shared class
        (NotifySettings, {"tick_batch_siz": 5}),
        (PlacementSettings, {"max_future_start_day": 5}),
        (HealthSettings, {"report_health_exam_day": 5}),
        (WebSettings, {"plain_htp": True}),
        (IntakeSettings, {"source": []}),
    ],
)
def test_a_misspelt_setting_is_refused_not_ignored(
    settings_class: type[BaseSettings], misspelt: dict[str, object]
) -> None:
    with pytest.raises(ValidationError) as refused:
        settings_class(**misspelt)
    assert refused.value.errors()[0]["type"] == "extra_forbidden"


def test_the_tests_overrides_reach_the_service_s_own_class_and_a_typo_is_refused() -> None:
    app = service_app("notify", Settings(), None, {"notify_tick_batch_size": 7, "districts": ["Farsta"]})
    assert notify_runtime(app).settings.tick_batch_size == 7 and runtime(app).settings.districts == ["Farsta"]
    with pytest.raises(TypeError, match="notify_tick_batch_siz"):
        service_app("notify", Settings(), None, {"notify_tick_batch_siz": 7})
