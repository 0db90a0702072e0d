"""`obruten run` (what `make run` calls) brings the suite up from nothing and stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from shared.local.embedded import free_port
from shared.local.runner import available_services
from tests.fixtures.factories import child_body, placement_body


class RunningSuite:
    def __init__(self, proc: subprocess.Popen[str], ports: dict[str, int], broker: str, data_dir: Path) -> None:
        self.proc = proc
        self.ports = ports
        self.broker = broker
        self.data_dir = data_dir
        self.output: list[str] = []
        self.token = ""

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    data_dir = tmp_path_factory.mktemp("run") / "var"
    ports = {name: free_port() for name in available_services()}
    broker_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBRUTEN_")}
    env.update({f"OBRUTEN_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env.update({"OBRUTEN_DATA_DIR": str(data_dir), "OBRUTEN_EMBEDDED_BROKER_PORT": str(broker_port)})
    env["OBRUTEN_EMBEDDED_SMTP_PORT"] = str(free_port())
    # The alert test enters a placement 10 days old and waits a minute for its alert: without the
    # settle period (900 s by default, tests/notify/test_child_clock.py) it is evaluated on arrival.
    env["OBRUTEN_NOTIFY_SETTLE_SECONDS"] = "0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.local.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    suite = RunningSuite(proc, ports, f"127.0.0.1:{broker_port}", data_dir)
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    expect_token = False
    try:
        while True:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError("obruten run exited early:\n" + "".join(suite.output) + _logs(data_dir))
            suite.output.append(line)
            if expect_token:
                suite.token = line.strip()
                expect_token = False
            if "a development token" in line:
                expect_token = True
            if "running; Ctrl-C stops everything" in line:
                break
            if time.monotonic() > deadline:
                raise AssertionError("obruten run did not come up:\n" + "".join(suite.output))
        yield suite
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _logs(data_dir: Path) -> str:
    logs = data_dir / "logs"
    if not logs.exists():
        return ""
    return "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))


@pytest.mark.slow
def test_run_prints_where_each_service_listens(suite: RunningSuite) -> None:
    text = "".join(suite.output)
    for name, port in suite.ports.items():
        assert f"http://127.0.0.1:{port}" in text, name
        assert httpx.get(f"{suite.url(name)}/readyz", timeout=5).status_code == 200, name
    assert suite.token.count(".") == 2, "a JWT is printed to try the API with"


@pytest.mark.slow
def test_run_prints_the_web_address_first_and_it_offers_a_sign_in(suite: RunningSuite) -> None:
    if "web" not in suite.ports:
        pytest.skip("this checkout has no web service")
    urls = [line for line in suite.output if "http://127.0.0.1:" in line]
    assert f"http://127.0.0.1:{suite.ports['web']}/" in urls[0], urls
    page = httpx.get(f"{suite.url('web')}/login", timeout=10)
    assert page.status_code == 200 and '<select id="role" name="role"' in page.text


@pytest.mark.slow
async def test_placement_created_over_http_arrives_on_the_bus_without_personnummer(suite: RunningSuite) -> None:
    headers = {"Authorization": f"Bearer {suite.token}"}
    body = child_body(42)
    async with httpx.AsyncClient(base_url=suite.url("placement"), headers=headers, timeout=10) as client:
        child = await client.post("/v1/children", json=body)
        assert child.status_code == 201, child.text
        placement = await client.post("/v1/placements", json=placement_body(child.json()["id"], start=date.today()))
        assert placement.status_code == 201, placement.text
    consumer = AIOKafkaConsumer(
        "obruten.placement", bootstrap_servers=suite.broker, auto_offset_reset="earliest", group_id="test-run-command"
    )
    await consumer.start()
    try:
        found = None
        deadline = time.monotonic() + 30
        while found is None and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = json.loads(record.value)
                    if event["data"].get("placement_id") == placement.json()["id"]:
                        found = (record, event)
    finally:
        await consumer.stop()
    assert found is not None, "the placement's event did not arrive"
    record, event = found
    assert event["type"] == "obruten.placement.started" and event["specversion"] == "1.0"
    assert record.key.decode() == child.json()["id"]
    digits = body["personnummer"].replace("-", "")
    assert digits not in record.value.decode() and digits[2:] not in record.value.decode()


@pytest.mark.slow
async def test_a_placement_ten_days_without_school_raises_an_alert_end_to_end(suite: RunningSuite) -> None:
    """Placement -> bus -> notify -> obruten.alerts and GET /v1/alerts, across real processes; and
    the named caseworker's mail, through the embedded SMTP server, kept under data_dir/mail."""
    headers = {"Authorization": f"Bearer {suite.token}"}
    async with httpx.AsyncClient(base_url=suite.url("notify"), headers=headers, timeout=10) as client:
        person = await client.put("/v1/people/cw-e2e", json={"email": "cw-e2e@farsta.stad.example"})
        assert person.status_code == 200, person.text
    consumer = AIOKafkaConsumer(
        "obruten.alerts", bootstrap_servers=suite.broker, auto_offset_reset="earliest", group_id="test-run-alerts"
    )
    await consumer.start()
    try:
        async with httpx.AsyncClient(base_url=suite.url("placement"), headers=headers, timeout=10) as client:
            child = (await client.post("/v1/children", json=child_body(43))).json()["id"]
            start = date.today() - timedelta(days=10)
            body = placement_body(child, start=start, caseworker="cw-e2e")
            placement = await client.post("/v1/placements", json=body)
            assert placement.status_code == 201, placement.text
        placement_id = placement.json()["id"]
        opened = None
        deadline = time.monotonic() + 60
        while opened is None and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = json.loads(record.value)
                    if (
                        event["type"] == "obruten.alert.opened"
                        and event["data"].get("placement_id") == placement_id
                        and event["data"].get("rule") == "school_gap"
                    ):
                        opened = event
    finally:
        await consumer.stop()
    assert opened is not None, "no obruten.alert.opened for the placement"
    async with httpx.AsyncClient(base_url=suite.url("notify"), headers=headers, timeout=10) as client:
        alerts = await client.get("/v1/alerts", params={"placement_id": placement_id, "rule": "school_gap"})
    assert alerts.status_code == 200, alerts.text
    items = alerts.json()["items"]
    assert len(items) == 1 and items[0]["status"] == "open"
    deadline = time.monotonic() + 30
    found: list[str] = []
    while not found and time.monotonic() < deadline:
        texts = [p.read_text() for p in (suite.data_dir / "mail").glob("*.eml")]
        found = [t for t in texts if "To: cw-e2e@farsta.stad.example" in t and "Auto-Submitted: auto-generated" in t]
        time.sleep(0.2)
    assert found, "no mail to the caseworker in data_dir/mail"


@pytest.mark.slow
def test_token_command_uses_the_local_key(suite: RunningSuite) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBRUTEN_")}
    env["OBRUTEN_DATA_DIR"] = str(suite.data_dir)
    out = subprocess.run(
        [sys.executable, "-m", "shared.local.cli", "token", "--role", "caseworker", "--district", "Farsta"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = out.stdout.strip()
    resp = httpx.get(f"{suite.url('placement')}/v1/placements", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text


def readme_try_it() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Try it") :]
    return section[section.index("```sh\n") + 6 : section.index("\n```", section.index("```sh"))]


@pytest.mark.slow
def test_the_readme_try_it_works_as_pasted(suite: RunningSuite) -> None:
    """The README's commands, unchanged but for the token line (the one the suite printed) and
    the port (the suite listens on a free one, not 8001)."""
    script = readme_try_it()
    assert script.startswith("TOKEN=...")
    script = script.replace("TOKEN=...", f"TOKEN={suite.token}", 1)
    script = script.replace("localhost:8001/", f"localhost:{suite.ports['placement']}/")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr)[-1500:]
    placement = json.loads(result.stdout)
    assert placement["district"] == "Farsta" and placement["start_date"] == "2026-11-20", placement


@pytest.mark.slow
def test_service_logs_are_json_lines_with_utc_times_and_route_templates(suite: RunningSuite) -> None:
    headers = {"Authorization": f"Bearer {suite.token}"}
    resp = httpx.get(f"{suite.url('placement')}/v1/children/not-an-id?q=201503122382", headers=headers, timeout=5)
    assert resp.status_code == 422 and resp.headers["X-Request-ID"]
    rid = resp.headers["X-Request-ID"]

    def access_line() -> dict[str, Any] | None:
        text = (suite.data_dir / "logs" / "placement.log").read_text()
        assert "\x1b[" not in text, "no colour codes"
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        for line in lines:
            assert line["time"].endswith("Z") and line["service"] == "placement" and line["level"]
        return next((line for line in lines if line.get("request_id") == rid), None)

    deadline = time.monotonic() + 10
    while (line := access_line()) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert line is not None, "the access line of the request"
    assert line["route"] == "/v1/children/{child_id}" and line["status"] == 422
    assert "201503122382" not in (suite.data_dir / "logs" / "placement.log").read_text()


@pytest.mark.slow
def test_ctrl_c_stops_everything(suite: RunningSuite) -> None:
    suite.proc.send_signal(signal.SIGINT)
    assert suite.proc.wait(60) == 0
    rest = suite.proc.stdout.read() if suite.proc.stdout else ""
    assert "stopped" in rest
    for port in suite.ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    assert not (suite.data_dir / "postgres" / "postmaster.pid").exists(), "PostgreSQL was stopped"
