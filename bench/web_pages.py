"""Web pages: each page's answer time with 10,000 open placements in the district, side by side
with the API call it wraps.

The four services and the web service run as `obruten serve` processes on an embedded
PostgreSQL and broker. `--placements` open placements are made in Farsta over the API (every one
with a change of school, begun two days ago), `--overdue` more begun ten days ago without a
school start, so that notify holds that many open school_gap alerts. Once school has seen every
placement and notify's alerts have settled, a caseworker signs in (development sign-in) and each
page is asked for `--requests` times in turn with its API call, one request at a time after a
warm-up; the figures are the p50 and p95 of each. Target: every page p95 < 300 ms.

    .venv/bin/python bench/web_pages.py            # print the figures
    .venv/bin/python bench/web_pages.py --write    # and record them in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Stack, recorded, serve, verdict, write_section
from bench.http_writes import prepare
from shared.bus.kafka import ensure_topics
from shared.contracts.topics import TOPICS
from shared.local.embedded import free_port
from shared.local.migrate import prepare_database
from shared.web.auth import mint_token
from tests.fixtures.factories import child_body

HEADING = "## Web pages"
TARGET_MS = 300.0
SERVICES = ("placement", "school", "health", "notify")
SUBJECT = "dev:caseworker:Farsta"


async def seed(placement: str, token: str, ids: list[str], overdue: int) -> None:
    """Overdue placements first, so notify's alerts come first down the bus."""
    today = date.today()
    sem = asyncio.Semaphore(24)
    async with httpx.AsyncClient(base_url=placement, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:

        async def one(i: int, child_id: str) -> None:
            start = today - timedelta(days=10 if i < overdue else 2)
            body = {"child_id": child_id, "district": "Farsta", "form": "jourhem", "legal_basis": "SoL",
                    "start_date": start.isoformat(), "school_change": True, "caseworker": SUBJECT}  # fmt: skip
            async with sem:
                resp = await c.post("/v1/placements", json=body)
            assert resp.status_code == 201, resp.text

        await asyncio.gather(*(one(i, cid) for i, cid in enumerate(ids)))


def wait_settled(urls: dict[str, str], token: str, placements: int, overdue: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    today = date.today()
    period = {"from": (today - timedelta(days=30)).isoformat(), "to": today.isoformat(), "district": "Farsta"}
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        report = httpx.get(f"{urls['school']}/v1/reports/school-starts", params=period, headers=headers, timeout=30)
        began = next(r["began"] for r in report.json()["tables"][0]["rows"] if r["district"] == "Farsta")
        alerts = httpx.get(
            f"{urls['notify']}/v1/alerts", params={"district": "Farsta", "status": "open", "limit": 1},
            headers=headers, timeout=30,
        ).json()["total"]  # fmt: skip
        print(f"  school has {began} placements, notify {alerts} open alerts", flush=True)
        if began == placements + overdue and alerts >= overdue:
            time.sleep(10)  # health and notify finish their own backlog
            return
        time.sleep(10)
    raise RuntimeError("the services did not catch up within 30 minutes")


def timed(call: Callable[[], httpx.Response], n: int) -> tuple[float, float]:
    for _ in range(5):
        call().raise_for_status()
    times = []
    for _ in range(n):
        if isinstance(call, Fresh):
            call.prepare()
        t0 = time.perf_counter()
        resp = call()
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    return statistics.median(times), statistics.quantiles(times, n=20)[18]


Result = tuple[str, str, tuple[float, float], tuple[float, float]]


def signed_in(web: str) -> httpx.Client:
    browser = httpx.Client(base_url=web, timeout=30)
    login = browser.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
    browser.post("/login", data={"csrf_token": csrf, "role": "caseworker", "district": "Farsta"})
    return browser


class Fresh:
    """Each call in a new session, signed in before the clock starts: nothing kept between calls."""

    def __init__(self, web: str, path: str) -> None:
        self.web, self.path = web, path
        self.client: httpx.Client | None = None

    def prepare(self) -> None:
        self.client = signed_in(self.web)

    def __call__(self) -> httpx.Response:
        if self.client is None:
            self.prepare()
        assert self.client is not None
        client, self.client = self.client, None
        return client.get(self.path)


def measure(urls: dict[str, str], web: str, token: str, n: int) -> list[Result]:
    api = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    browser = signed_in(web)
    search = browser.get("/search")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', search.text).group(1)  # type: ignore[union-attr]
    alerts = api.get(f"{urls['notify']}/v1/alerts", params={"district": "Farsta", "status": "open", "limit": 1}).json()
    child_id, placement_id = alerts["items"][0]["child_id"], alerts["items"][0]["placement_id"]
    # A child with a valid personnummer to look up (the seeded ones are numbered, not valid).
    found = api.post(f"{urls['placement']}/v1/children", json=child_body(7, district="Farsta"))
    child = found.json()
    parts = {
        "child": lambda: api.get(f"{urls['placement']}/v1/children/{child_id}"),
        "placements": lambda: api.get(f"{urls['placement']}/v1/placements", params={"child_id": child_id}),
        "examinations": lambda: api.get(f"{urls['health']}/v1/examinations", params={"child_id": child_id}),
        "schooling": lambda: api.get(f"{urls['school']}/v1/placements/{placement_id}/schooling"),
        "alerts": lambda: api.get(f"{urls['notify']}/v1/alerts", params={"placement_id": placement_id}),
    }
    for part, call in parts.items():
        print(f"  child page's {part} call: p50/p95 {timed(call, n)} ms", flush=True)
    today = date.today()
    period = {"from": today.replace(day=1).isoformat(), "to": today.isoformat(), "district": "Farsta"}
    open_alerts = {"district": "Farsta", "status": "open", "limit": 500}
    year = {"from": (today - timedelta(days=364)).isoformat(), "to": today.isoformat(), "district": "Farsta"}
    this_year = {"from": f"{today.year}-01-01", "to": f"{today.year}-12-31", "district": "Farsta"}
    pages = [
        ("Larm `/`", "`GET /v1/alerts?district&status=open&limit=500`",
         lambda: browser.get("/"), lambda: api.get(f"{urls['notify']}/v1/alerts", params=open_alerts)),
        ("Larm refresh `/partials/alerts`", "`GET /v1/alerts?district&status=open&limit=500`",
         lambda: browser.get("/partials/alerts"), lambda: api.get(f"{urls['notify']}/v1/alerts", params=open_alerts)),
        ("Barn `/children/{id}`", "`GET /v1/children/{id}`",
         lambda: browser.get(f"/children/{child_id}"), lambda: api.get(f"{urls['placement']}/v1/children/{child_id}")),
        ("Sök `POST /search/lookup`", "`POST /v1/children/lookup`",
         lambda: browser.post("/search/lookup", data={"csrf_token": csrf, "personnummer": child["personnummer"]}),
         lambda: api.post(f"{urls['placement']}/v1/children/lookup", json={"personnummer": child["personnummer"]})),
        ("Uppföljning `/followup` (headings; each section below is its own request)", "(none)",
         lambda: browser.get("/followup"), lambda: browser.get("/healthz")),
        ("… monthly days to school start, signed in afresh each time (nothing kept)",
         "`GET /v1/reports/school-starts?from&to&district` (one month; the section makes 12)",
         Fresh(web, "/followup/part/monthly"),
         lambda: api.get(f"{urls['school']}/v1/reports/school-starts", params=period)),
        ("… children waiting now", "`GET /v1/reports/school-starts/rows?district&from&to` (365 days)",
         lambda: browser.get("/followup/part/waiting"),
         lambda: api.get(f"{urls['school']}/v1/reports/school-starts/rows", params=year)),
        ("… examinations", "`GET /v1/reports/examinations?from&to&district` (365 days)",
         lambda: browser.get("/followup/part/exams"),
         lambda: api.get(f"{urls['health']}/v1/reports/examinations", params=year)),
        ("… open alerts by level", "`GET /v1/alerts?district&status=open&limit=500`",
         lambda: browser.get("/followup/part/levels"),
         lambda: api.get(f"{urls['notify']}/v1/alerts", params=open_alerts)),
        ("… district × form table", "`GET /v1/reports/placements?from&to&district` (this year)",
         lambda: browser.get("/followup/part/table"),
         lambda: api.get(f"{urls['placement']}/v1/reports/placements", params=this_year)),
        ("Inställningar `/settings`", "(none: no mail address in a development sign-in)",
         lambda: browser.get("/settings"), lambda: browser.get("/healthz")),
    ]  # fmt: skip
    results = []
    for name, api_name, page, call in pages:
        results.append((name, api_name, timed(page, n), timed(call, n)))
        print(f"  {name}: page p95 {results[-1][2][1]:.1f} ms, API p95 {results[-1][3][1]:.1f} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--placements", type=int, default=10_000)
    parser.add_argument("--overdue", type=int, default=200)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="obruten-bench-") as tmp:
        work = Path(tmp)
        stack = Stack(work)
        try:
            ids_file = work / "children.txt"
            total = args.placements + args.overdue

            async def setup() -> None:
                await prepare(stack, total, ids_file)
                for service in SERVICES[1:]:
                    await prepare_database(service, stack.settings.service_database_url(service))
                await ensure_topics(stack.settings, TOPICS)

            asyncio.run(setup())
            ports = {s: free_port() for s in (*SERVICES, "web")}
            env = {f"OBRUTEN_{s.upper()}_PORT": str(p) for s, p in ports.items()}
            service_token = mint_token(stack.private_key.read_bytes(), subject="service:bench", roles=["service"],
                                       issuer="obruten-local", audience="obruten", ttl_seconds=24 * 3600)  # fmt: skip
            common = {"OBRUTEN_SERVICE_TOKEN": service_token, "OBRUTEN_NOTIFY_TICK_INTERVAL_SECONDS": "2"}
            urls = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
            with contextlib.ExitStack() as running:
                for s in (*SERVICES, "web"):
                    others = {k: v for k, v in env.items() if k != f"OBRUTEN_{s.upper()}_PORT"}
                    extra = {"OBRUTEN_JWT_PRIVATE_KEY_FILE": str(stack.private_key), "OBRUTEN_WEB_PLAIN_HTTP": "true"}
                    running.enter_context(
                        serve(stack, s, ports[s], **others, **common, **(extra if s == "web" else {}))
                    )
                token = mint_token(stack.private_key.read_bytes(), subject=SUBJECT, roles=["caseworker"],
                                   district="Farsta", issuer="obruten-local", audience="obruten")  # fmt: skip
                ids = ids_file.read_text().split()
                t0 = time.monotonic()
                asyncio.run(seed(urls["placement"], stack.admin_token, ids, args.overdue))
                print(f"seeded {len(ids)} placements in {time.monotonic() - t0:.0f} s", flush=True)
                wait_settled(urls, stack.admin_token, args.placements, args.overdue)
                results = measure(urls, urls["web"], token, args.requests)
        finally:
            stack.close()
    report(args, results)


def report(args: argparse.Namespace, results: list[Result]) -> None:
    rows = [
        f"| {name} | {page[0]:.1f} | {page[1]:.1f} | {api_name} | {api[0]:.1f} | {api[1]:.1f} "
        f"| {verdict(page[1] < TARGET_MS)} |"
        for name, api_name, page, api in results
    ]
    worst = max(page[1] for _, _, page, _ in results)
    section = "\n".join(
        [
            HEADING,
            "",
            recorded(
                f".venv/bin/python bench/web_pages.py --write (--placements {args.placements}, "
                f"--overdue {args.overdue}, --requests {args.requests})"
            ),
            "",
            f"{args.placements + args.overdue} open placements in Farsta ({args.overdue} ten days without school: "
            "that many open school_gap alerts), the four services and the web service each one `obruten serve` "
            "process on one embedded PostgreSQL and broker. One request at a time after 5 warm-up requests; the "
            "page is signed in as a Farsta caseworker (development sign-in), the API call made with the same "
            f"person's token. Times in ms. Load average at the end: {os.getloadavg()[0]:.1f}.",
            "",
            "| page | p50 | p95 | API call it wraps | API p50 | API p95 | page p95 < 300 ms |",
            "|---|---:|---:|---|---:|---:|---|",
            *rows,
            "",
            f"**Slowest page p95 {worst:.0f} ms (target < {TARGET_MS:.0f} ms): {verdict(worst < TARGET_MS)}.**",
        ]
    )
    print(section)
    if args.write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
