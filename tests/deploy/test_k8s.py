"""deploy/k8s/: the production overlay renders (kubectl kustomize, or tests/deploy/kustomize.py where
kubectl is missing), every object validates against Kubernetes 1.37's schemas with
kubernetes-validate, the workloads are shaped for operations, and every OBRUTEN_* variable set
is one the code reads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.kernel.settings import Settings
from shared.local.runner import available_services
from shared.web.registry import env_names, services
from shared.web.registry import service as registered
from tests.deploy.kustomize import render

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "production"
KUBERNETES = "1.37.0"
SECRET = "obruten-secrets"


def kubectl_render(directory: Path) -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def rendered() -> list[dict[str, Any]]:
    return kubectl_render(OVERLAY) if shutil.which("kubectl") else render(OVERLAY)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def key(o: dict[str, Any]) -> tuple[str, str]:
    return o["kind"], o["metadata"]["name"]


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl not installed: nothing to compare with")
def test_the_python_renderer_agrees_with_kubectl() -> None:
    ours, theirs = render(OVERLAY), kubectl_render(OVERLAY)
    assert sorted(ours, key=key) == sorted(theirs, key=key)


def test_every_object_validates_against_the_kubernetes_schema() -> None:
    objects = rendered()
    assert len(objects) > 20
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_each_service_has_a_hardened_deployment_a_migration_job_a_pdb_and_a_network_policy() -> None:
    objects = rendered()
    deployments, jobs = by_kind(objects, "Deployment"), by_kind(objects, "Job")
    pdbs, policies = by_kind(objects, "PodDisruptionBudget"), by_kind(objects, "NetworkPolicy")
    assert "default-deny" in policies and policies["default-deny"]["spec"]["podSelector"] == {}
    assert jobs["topics"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics"]
    # The web service (a front end) has no manifests yet; the API services all do.
    for name in [s for s in available_services() if not registered(s).front_end]:
        spec = deployments[name]["spec"]
        assert spec["replicas"] >= 2
        pod = spec["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
        [container] = pod["containers"]
        assert container["args"] == ["serve", name, "--skip-migrations"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"requests", "limits"} <= set(container["resources"])
        assert container["image"].startswith("registry.example.se/obruten:")
        job_pod = jobs[f"{name}-migrate"]["spec"]["template"]["spec"]
        assert job_pod["containers"][0]["args"] == ["migrate", name]
        assert job_pod["automountServiceAccountToken"] is False
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
        assert policies[name]["spec"]["podSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
        assert set(policies[name]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    # Only school and health (which ask it for placements) reach placement from inside.
    [rule] = policies["placement"]["spec"]["ingress"]
    peers = [p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule["from"] if "podSelector" in p]
    assert sorted(peers) == ["health", "school"]
    assert "ingress" not in policies["notify"]["spec"] or all(
        "podSelector" not in p for r in policies["notify"]["spec"]["ingress"] for p in r["from"]
    )


def readable() -> set[str]:
    """Every OBRUTEN_* variable a settings class reads: the shared one and each service's own."""
    names = env_names(Settings)
    for definition in services().values():
        names |= env_names(definition.settings)
    return names


def test_every_obruten_variable_set_is_one_the_code_reads_and_the_essentials_are_set() -> None:
    objects = rendered()
    [config] = by_kind(objects, "ConfigMap").values()
    names = set(config["data"])
    for workload in [*by_kind(objects, "Deployment").values(), *by_kind(objects, "Job").values()]:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
            for env in container.get("env", []):
                names.add(env["name"])
                if "valueFrom" in env:
                    assert env["valueFrom"]["secretKeyRef"]["name"] == SECRET
    obruten = {n for n in names if n.startswith("OBRUTEN_")}
    unread = obruten - readable()
    assert not unread, f"set but read by nothing: {sorted(unread)}"
    essentials = {
        "database_url",
        "kafka_bootstrap_servers",
        "jwt_jwks_url",
        "jwt_issuer",
        "service_token",
        "placement_url",
    }
    assert essentials <= {n.removeprefix("OBRUTEN_").lower() for n in obruten}
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in names
    # Secrets are referenced, never committed.
    assert not by_kind(objects, "Secret")
