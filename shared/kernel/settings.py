"""One settings mechanism for every service: `OBRUTEN_…` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

# Stockholm's districts (stadsdelsförvaltningar) as of 2021. Other municipalities set
# OBRUTEN_DISTRICTS to their own list (a JSON array).
STOCKHOLM_DISTRICTS = [
    "Rinkeby-Kista",
    "Spånga-Tensta",
    "Hässelby-Vällingby",
    "Bromma",
    "Kungsholmen",
    "Norrmalm",
    "Östermalm",
    "Södermalm",
    "Enskede-Årsta-Vantör",
    "Skarpnäck",
    "Farsta",
    "Hägersten-Älvsjö",
    "Skärholmen",
]


class Settings(BaseSettings):
    # A service's own settings class (services/<service>/settings.py) reads its OBRUTEN_<SERVICE>_…
    # variables itself, and its app factory takes it (`service_settings=`): none are handed in here,
    # and an unknown keyword is refused (a misspelt setting must not pass unseen).
    # Errors name the setting, never its value: some values are secrets (the match key, tokens).
    model_config = SettingsConfigDict(env_prefix="OBRUTEN_", extra="forbid", hide_input_in_errors=True)

    data_dir: Path = Path("var")

    # A PostgreSQL server URL. Each service uses its own database on it, named
    # `<database_prefix><service>`. Unset: `obruten run` starts the embedded server under
    # data_dir and sets it for the services it starts.
    database_url: str | None = None
    database_prefix: str = "obruten_"
    database_pool_size: int = 10

    kafka_bootstrap_servers: str | None = None
    # Where `obruten run` starts its own broker when kafka_bootstrap_servers is unset.
    embedded_broker_port: int = 9092
    # Prepended to every topic and consumer group: lets several suites (or test runs)
    # share one broker without seeing each other. Empty in production.
    kafka_topic_prefix: str = ""
    kafka_topic_partitions: int = 6
    # Consumer group session timeout. The embedded broker holds a group join for half of it,
    # so the tests use a short one to start consumers quickly.
    kafka_session_timeout_ms: int = 10_000
    # How long a publish may wait for the broker before the relay gives up and retries.
    kafka_request_timeout_ms: int = 10_000
    kafka_replication_factor: int = 1
    # How each service authenticates to the broker (shared/bus/kafka.py). The embedded broker speaks
    # PLAINTEXT on 127.0.0.1; production uses SASL_SSL with SCRAM (a user per service, whose ACLs
    # let it write only its own topic: docker-compose.yml) or SSL with a client certificate
    # (mutual TLS: kafka_ssl_certfile and kafka_ssl_keyfile).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # The CA that signed the brokers' certificates (system CAs when unset).
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Apache Kafka: on. Only the embedded broker (tansu) lacks it; `obruten run` turns it off there.
    kafka_idempotent_producer: bool = True
    # How long the broker may hold a fetch that finds nothing new. Apache Kafka answers a fetch as
    # soon as a record arrives (fetch.min.bytes 1), so this costs no latency there and bounds idle
    # fetching. The embedded broker (tansu) holds every fetch for the whole wait, which puts up to
    # this much on each hop of an event: `obruten run`, the tests and the benchmarks use 100 ms.
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=1, le=60_000)

    host: str = "127.0.0.1"
    placement_port: int = 8001
    school_port: int = 8002
    health_port: int = 8003
    notify_port: int = 8004
    web_port: int = 8005
    # Where a service reaches another over HTTP; defaults to the local ports above.
    placement_url: str | None = None
    school_url: str | None = None
    health_url: str | None = None
    notify_url: str | None = None

    districts: list[str] = Field(default_factory=lambda: list(STOCKHOLM_DISTRICTS))
    timezone: str = "Europe/Stockholm"

    # Care covers ages 0-20: a placement starting on or after this birthday is refused.
    max_age_at_placement: int = 21
    # Stödboende is for young people aged 16-20 (domain brief): a stödboende placement starting
    # before this birthday is refused. OBRUTEN_STODBOENDE_MIN_AGE.
    stodboende_min_age: int = Field(default=16, ge=0, le=21)
    # A school start may be recorded ahead of its day (a planned start) up to this many days;
    # it counts as a school start from its day. OBRUTEN_SCHOOL_MAX_PLANNED_DAYS.
    school_max_planned_days: int = Field(default=30, ge=0, le=366)

    # Authentication: bearer JWTs verified with a public key (PEM) or a JWKS URL.
    jwt_public_key_file: Path | None = None
    jwt_jwks_url: str | None = None
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["ES256", "RS256"])
    jwt_issuer: str = "obruten-local"
    jwt_audience: str = "obruten"
    # Only for minting development tokens (`obruten token`) on the embedded default.
    jwt_private_key_file: Path | None = None
    # The claims naming a token's roles (a list or a space-separated string) and district:
    # whatever the city's identity provider calls them.
    jwt_roles_claim: str = "roles"
    jwt_district_claim: str = "district"
    # The bearer token this service presents when it calls another service, or a file holding it
    # (a mounted Secret, or what docker-compose's `keys` init service writes); the file is read
    # at each start, so a rotated token needs only a restart.
    service_token: str | None = None
    service_token_file: Path | None = None

    outbox_poll_interval_seconds: float = 0.5
    # Rows one relay batch claims and publishes: 1,000 drained 5,000 events in 0.7-1.0 s where 200
    # took 1.3-1.6 s (bench/pipeline.py, 2026-12-01), fewer commits and larger produce requests.
    outbox_batch_size: int = 1000
    # Whether a service's own process publishes its outbox (the relay as a task beside the HTTP
    # server, woken by its commits without a NOTIFY). false: `obruten relay <service>` publishes
    # it as a process of its own, woken by the outbox trigger's NOTIFY.
    outbox_relay_in_process: bool = True

    log_level: str = "INFO"

    # Where `obruten run` starts its local SMTP server for notify's mail (issue 16).
    embedded_smtp_port: int = Field(default=8025, ge=1, le=65535)
    # The web page's address: notify's mails link to {web_url}/alerts/{alert_id}; the web service's
    # OIDC redirect is {web_url}/auth/callback when set (else its own host and port).
    web_url: str = "http://127.0.0.1:8005"

    # Reports (shared/web/reports.py). A period may span at most this many days, both ends counted.
    report_max_period_days: int = Field(default=3660, ge=1)
    # Counts from 1 to this minus one are published as `*`, as in the city's own tables
    # (which hide counts under 4). 1 turns suppression off.
    report_suppress_below: int = Field(default=4, ge=1)
    # A temporary placement running longer than this many days is reported as overdue for review.
    # The law sets no limit; six months (183 days) is the usual outer bound. Configurable.
    temporary_placement_max_days: int = Field(default=183, ge=1)
    # The examination report's deadlines are health's own (services/health/settings.py).

    # The key of the keyed hash (shared/kernel/pupil_key.py) that placement and school alone share,
    # so that the SS 12000 intake (services/school/ss12000/, whose other settings live there) can
    # recognise a placed child among a source's pupils. At least 32 characters; unset: placement
    # refuses to hand out hashes and the intake does not run.
    ss12000_match_key: SecretStr | None = Field(default=None, min_length=32)

    # HTTP hardening (shared/web/hardening.py).
    max_request_bytes: int = 1_048_576
    # Writes per client (bearer token, else address) and window, in the `limits` notation.
    rate_limit_writes: str = "600/minute"
    # Bulk imports (POST /v1/imports) have their own limit instead: one request carries
    # thousands of records, so the write limit would count it as one and the import limit
    # keeps a runaway loop of whole files in check. OBRUTEN_RATE_LIMIT_IMPORTS.
    rate_limit_imports: str = "60/minute"
    # An import's body may be this large (max_request_bytes holds for every other request).
    import_max_bytes: int = 64 * 1_048_576
    # `memory://` counts per process; point replicas at a shared store (e.g. redis://…).
    rate_limit_storage: str = "memory://"
    # Browser origins allowed to call the API; none unless configured.
    cors_allow_origins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _kafka_credentials_complete(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError("OBRUTEN_KAFKA_SASL_USERNAME and OBRUTEN_KAFKA_SASL_PASSWORD are needed for SASL")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("mutual TLS needs both OBRUTEN_KAFKA_SSL_CERTFILE and OBRUTEN_KAFKA_SSL_KEYFILE")
        return self

    def service_port(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def service_database_url(self, service: str) -> str:
        if not self.database_url:
            raise RuntimeError(
                "OBRUTEN_DATABASE_URL is not set: point it at a PostgreSQL server, "
                "or start the suite with `obruten run`, which starts one."
            )
        url = make_url(self.database_url).set(drivername="postgresql+asyncpg")
        return url.set(database=f"{self.database_prefix}{service}").render_as_string(hide_password=False)

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"

    def kafka_servers(self) -> str:
        return self.kafka_bootstrap_servers or "127.0.0.1:9092"

    def service_bearer(self) -> str | None:
        if self.service_token:
            return self.service_token
        if self.service_token_file is not None:
            return self.service_token_file.read_text().strip() or None
        return None

    def placement_base_url(self) -> str:
        return self.service_base_url("placement")

    def service_base_url(self, service: str) -> str:
        configured: str | None = getattr(self, f"{service}_url")
        return (configured or f"http://{self.host}:{self.service_port(service)}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
