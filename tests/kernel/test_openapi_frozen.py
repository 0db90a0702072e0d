"""The HTTP contracts do not move when the code does: each service's live OpenAPI document
equals its committed copy under tests/contracts/openapi/. A deliberate API change regenerates
the copy (see the docstring of `openapi_of`) and commits it with the change."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from shared.kernel.settings import Settings

COPIES = Path(__file__).resolve().parents[1] / "contracts" / "openapi"


def openapi_of(service: str) -> dict[str, Any]:
    """The live document, normalised as the committed copies are (json round trip)."""
    app = importlib.import_module(f"services.{service}.app").create_app(Settings())
    doc: dict[str, Any] = json.loads(json.dumps(app.openapi()))
    return doc


@pytest.mark.parametrize("service", ["placement", "school", "health", "notify"])
def test_openapi_document_is_unchanged(service: str) -> None:
    committed = json.loads((COPIES / f"{service}.json").read_text())
    assert openapi_of(service) == committed, f"{service}'s OpenAPI document differs from tests/contracts/openapi"
