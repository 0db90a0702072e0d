"""docker-compose.yml and deploy/: what can be checked without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from shared.kernel.settings import Settings
from shared.local.runner import available_services

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_names_postgres_kafka_kraft_and_every_service() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"], "KRaft mode, no ZooKeeper"
    for name in available_services():
        assert name in services, f"{name} missing from docker-compose.yml"
        assert services[name]["command"] == ["serve", name]


def test_every_built_service_is_buildable_from_files_that_exist() -> None:
    for name, svc in compose()["services"].items():
        if "build" not in svc:
            continue
        dockerfile = ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]
        assert dockerfile.exists(), name
        for line in dockerfile.read_text().splitlines():
            m = re.match(r"COPY\s+(.+)\s+\S+$", line.strip())
            if m:
                for src in m.group(1).split():
                    assert (ROOT / src).exists(), f"{dockerfile.name} copies {src}, which does not exist"
        assert (ROOT / "services" / svc["command"][1] / "app.py").exists()


def test_compose_settings_are_settings_the_code_reads() -> None:
    fields = set(Settings.model_fields)
    for name, svc in compose()["services"].items():
        env = svc.get("environment") or {}
        for key in env:
            if key.startswith("OBRUTEN_"):
                assert key.removeprefix("OBRUTEN_").lower() in fields, f"{name}: {key} is read by nothing"


def test_compose_database_url_selects_the_asyncpg_dialect_per_service() -> None:
    env = compose()["services"]["placement"]["environment"]
    settings = Settings(database_url=env["OBRUTEN_DATABASE_URL"])
    url = settings.service_database_url("placement")
    assert url.startswith("postgresql+asyncpg://") and url.endswith("/obruten_placement")
