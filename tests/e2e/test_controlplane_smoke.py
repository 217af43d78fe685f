"""Smoke test: the real etcd + kube-apiserver start, kubectl and helm work."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from .controlplane import REPO_ROOT, ControlPlane

pytestmark = pytest.mark.e2e

GO_MOD = REPO_ROOT / "tests" / "e2e" / "controlplane" / "go.mod"


def _pinned(module: str) -> str:
    m = re.search(rf"^\s*{re.escape(module)} (v\S+)", GO_MOD.read_text(), re.MULTILINE)
    assert m, f"{module} not in {GO_MOD}"
    return m.group(1)


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    with ControlPlane() as plane:
        yield plane


def test_version_is_the_built_one(cp: ControlPlane) -> None:
    version = cp.get_json("/version")
    want = _pinned("k8s.io/kubernetes")
    assert version["gitVersion"] == want
    assert (version["major"], version["minor"]) == ("1", want.split(".")[1])


def test_kubectl_namespace(cp: ControlPlane) -> None:
    cp.kubectl("create", "namespace", "x", check=True)
    out = cp.kubectl("get", "ns", "x", "-o", "jsonpath={.metadata.name}", check=True)
    assert out.stdout == "x"


def test_helm_version(cp: ControlPlane) -> None:
    out = cp.helm("version", "--short", check=True)
    assert out.stdout.startswith(_pinned("helm.sh/helm/v3"))
