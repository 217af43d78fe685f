"""The single node says what it lacks instead of half-starting (no cluster needed)."""

from __future__ import annotations

import pytest

from .node import NodeError, SingleNodeCluster, missing_tools

pytestmark = pytest.mark.e2e


def test_missing_programs_are_named_by_their_debian_packages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert {"containerd", "runc", "iptables", "skopeo"} <= set(missing_tools())


def test_a_node_without_its_programs_fails_naming_the_install_script(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    node = SingleNodeCluster()
    try:
        with pytest.raises(NodeError, match=r"containerd.*scripts/install-system-deps\.sh"):
            node.start()
    finally:
        node.stop()
