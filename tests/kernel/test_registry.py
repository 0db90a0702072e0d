"""The tooling reaches the services through the registry only (shared/web/registry.py, fed by
pyproject.toml's entry points): nothing in shared/ names a service, imports one by a computed
module name or reads a service's own variables; what a service's spec carries is what runs."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.kernel.settings import Settings
from shared.local.replay import main as replay_main
from shared.web.registry import env_names, names, services

ROOT = Path(__file__).resolve().parents[2]
# Where a service's name is in shared/ as something else, or by design.
ALLOWED = {
    # The address of the placement service, which school and health call (shared/web/placement_client.py)
    # and whose events they copy (shared/bus/placement_copy.py): the one service others depend on.
    ("shared/kernel/settings.py", "placement"),
    # A resource of the access policy (the placements), not the service.
    ("shared/web/policy.py", "placement"),
}


def literals(path: Path) -> Iterator[str]:
    """Every string in the module's code (f-strings' fixed parts too)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def test_nothing_in_shared_names_a_service() -> None:
    registered = set(names())
    assert {"placement", "school", "health", "notify", "web"} <= registered
    own_prefixes = tuple(f"OBRUTEN_{name.upper()}_" for name in registered)
    shared_vars = env_names(Settings)  # OBRUTEN_NOTIFY_URL and the like are shared settings
    found = []
    for path in sorted((ROOT / "shared").rglob("*.py")):
        if path.is_relative_to(ROOT / "shared" / "contracts"):
            continue  # the published language names each topic's producer (and "health" is an exam kind)
        for text in literals(path):
            if (str(path.relative_to(ROOT)), text) in ALLOWED:
                continue
            by_name = text in registered or text.startswith("services.")
            own_var = text.startswith(own_prefixes) and not any(v.startswith(text) for v in shared_vars)
            if by_name or own_var:
                found.append(f"{path.relative_to(ROOT)}: {text!r}")
    assert not found


def test_the_spec_carries_background_tasks_replay_and_settings_class() -> None:
    defined = services()
    assert [task.__name__ for task in defined["notify"].background] == ["_tick_loop", "_listen", "_sender", "run_mail"]
    assert [task.__name__ for task in defined["school"].background] == ["run_intake"]
    assert {name for name, d in defined.items() if d.replay is not None} == {"notify"}
    for name, definition in defined.items():
        assert definition.settings is not Settings, f"{name} has a settings class of its own"
        assert definition.settings_prefix.startswith(f"{name}_")


def test_replaying_a_service_without_a_projection_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert replay_main(Settings(), "placement") == 2
    assert "placement has no projection to replay" in capsys.readouterr().err
