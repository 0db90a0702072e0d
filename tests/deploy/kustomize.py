"""A small pure-Python stand-in for `kubectl kustomize`, for machines without the binary.

It supports exactly what deploy/k8s/ uses, and refuses anything else rather than render it
wrongly: `resources` (files, and directories holding a kustomization.yaml), `namespace`,
`images` (newName, newTag) and `patches` given by `path` as strategic-merge patches matched on
kind and name. The merge follows Kubernetes' strategic merge for these cases: maps merge key by
key, lists of maps whose items have a `name` (containers, env, volumes) merge item by item on it,
every other list is replaced. tests/deploy/test_k8s.py compares its output with kubectl's when kubectl
is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume"}


def render(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise NotImplementedError(f"{directory}: kustomization fields not supported here: {sorted(unsupported)}")
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            objects += render(path)
        else:
            objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise NotImplementedError(f"patch {patch}: only `path` strategic-merge patches are supported")
        _apply_patch(objects, yaml.safe_load((directory / patch["path"]).read_text()))
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def _apply_patch(objects: list[dict[str, Any]], patch: dict[str, Any]) -> None:
    targets = [o for o in objects if o["kind"] == patch["kind"] and o["metadata"]["name"] == patch["metadata"]["name"]]
    if len(targets) != 1:
        raise ValueError(f"patch for {patch['kind']}/{patch['metadata']['name']} matches {len(targets)} objects")
    merged = merge(targets[0], patch)
    targets[0].clear()
    targets[0].update(merged)


def merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        by_name = {item["name"]: item for item in base}
        out_list = [merge(by_name[p["name"]], p) if p["name"] in by_name else p for p in patch]
        patched = {p["name"] for p in patch}
        # Strategic merge keeps the base's items the patch does not name, patched ones first.
        return out_list + [item for item in base if item["name"] not in patched]
    return patch


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _set_image(objects: list[dict[str, Any]], image: dict[str, Any]) -> None:
    for obj in objects:
        spec = obj.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
