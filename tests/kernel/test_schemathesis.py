"""schemathesis against each service's OpenAPI, with an administrator's token, on a live uvicorn:
no 5xx, and every response matches the documented schema, also for the hostile values
tests/fixtures/schemathesis_hooks.py feeds every parameter. Bounded (few examples per operation)
and deterministic (a fixed seed); the run's summary is printed into the test output."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.kernel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SEED = 20251
MAX_EXAMPLES = 12
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", ["placement", "school", "health", "notify"])
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    service: str, live_service: Any, settings: Settings, tokens: Any, tmp_path: Path, capsys: Any
) -> None:
    # Enough writes for the run not to meet the rate limit, which answers 429 by design.
    override: dict[str, Any] = {"rate_limit_writes": "1000000/minute"}
    async with contextlib.AsyncExitStack() as stack:
        if service in ("school", "health"):
            # A placement not seen on the bus is asked of the placement service: run it, so
            # unknown ids answer 404 (not 503 for an unreachable service).
            override["placement_url"] = await stack.enter_async_context(live_service("placement"))
        url = await stack.enter_async_context(live_service(service, settings_override=override))
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{url}/openapi.json",
            "--header",
            f"Authorization: Bearer {tokens('admin', subject='schemathesis')}",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--no-shrink",
            "--request-timeout",
            "10",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
            env={
                **os.environ,
                "NO_COLOR": "1",
                # NUL, control characters, huge integers, calendar ends in every parameter.
                "SCHEMATHESIS_HOOKS": "tests.fixtures.schemathesis_hooks",
                "PYTHONPATH": str(ROOT),
            },
        )
        out, _ = await proc.communicate()
    summary = out.decode("utf-8", "replace")
    # Past pytest's capture, so that the summary stays in the test command's output (and CI's log).
    with capsys.disabled():
        tail = "\n".join(summary.rstrip().splitlines()[-25:])
        print(f"\n----- schemathesis: {service} (summary) -----\n{tail}\n")
    assert proc.returncode == 0, summary[-6000:]
