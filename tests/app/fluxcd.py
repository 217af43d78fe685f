"""What FluxCD does with the application's manifests, done with the real tools.

FluxCD's controllers cannot run here (their Go module is not served), so the tests do their
work by hand against the real kube-apiserver, with FluxCD's real CRDs installed:
  - sysinv applies the manifests with `kubectl apply -k` (a kustomization);
  - source-controller serves the chart of the HelmRepository (here: the bundled chart file);
  - helm-controller reads every `valuesFrom` Secret from the cluster, merges them in order
    (later ones win, maps merged key by key), handles the chart's CRDs as the HelmRelease's
    `crds` policy says, then installs or upgrades the release `spec.releaseName`.
"""

from __future__ import annotations

import base64
import copy
import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.controlplane import ControlPlane, binaries


def kustomize(manifests: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize`: the objects a kustomization renders."""
    out = subprocess.run(
        [binaries().kubectl, "kustomize", str(manifests)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def apply(
    plane: ControlPlane, objects: list[dict[str, Any]], *, dry_run: bool = False
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` of the objects (namespaces first, as kustomize orders them)."""
    args = ["apply", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    return plane.kubectl(*args, input=yaml.safe_dump_all(objects))


def merge_maps(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """helm-controller's merge of values sources: maps merge key by key, the rest is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_maps(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def values_from(plane: ControlPlane, release: dict[str, Any]) -> dict[str, Any]:
    """The values of a HelmRelease: its valuesFrom Secrets as stored in the cluster, in order."""
    namespace = release["metadata"]["namespace"]
    values: dict[str, Any] = {}
    for source in release["spec"].get("valuesFrom", []):
        assert source["kind"] == "Secret", source
        secret = plane.get_json(f"/api/v1/namespaces/{namespace}/secrets/{source['name']}")
        text = base64.b64decode(secret["data"][source.get("valuesKey", "values.yaml")]).decode()
        values = merge_maps(values, yaml.safe_load(text) or {})
    return merge_maps(values, release["spec"].get("values") or {})


def chart_crds(chart: Path) -> list[dict[str, Any]]:
    with tarfile.open(chart) as archive:
        documents = [
            archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in sorted(archive.getmembers(), key=lambda m: m.name)
            if member.isfile() and "/crds/" in member.name
        ]
    return [doc for text in documents for doc in yaml.safe_load_all(io.BytesIO(text)) if doc]


def install(
    plane: ControlPlane, release: dict[str, Any], chart: Path, values: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """Install or upgrade the release as helm-controller does, CRDs by the release's policy."""
    spec = release["spec"]
    namespace = spec.get("targetNamespace", release["metadata"]["namespace"])
    policy = spec["upgrade" if deployed(plane, release) else "install"].get("crds", "Create")
    if policy == "CreateReplace":
        for crd in chart_crds(chart):
            plane.kubectl(
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                "-",
                input=yaml.safe_dump(crd),
                check=True,
            )
    return plane.helm(
        "upgrade",
        "--install",
        spec.get("releaseName", release["metadata"]["name"]),
        str(chart),
        "--namespace",
        namespace,
        "--skip-crds",
        "--values",
        "-",
        input=yaml.safe_dump(values),
    )


def deployed(plane: ControlPlane, release: dict[str, Any]) -> bool:
    spec = release["spec"]
    namespace = spec.get("targetNamespace", release["metadata"]["namespace"])
    name = spec.get("releaseName", release["metadata"]["name"])
    result = plane.helm("status", name, "--namespace", namespace)
    return result.returncode == 0
