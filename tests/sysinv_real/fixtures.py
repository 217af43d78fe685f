"""pytest fixtures of the real-sysinv suite (its tests are sysinv's unittest-style cases)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.controlplane import ControlPlane
from tests.fixtures.pki import TestCA
from tests.sysinv_real import boundary
from tests.sysinv_real.platform import app_tarball, forget_application, start_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[tuple[ControlPlane, TestCA]]:
    yield from start_cluster()


@pytest.fixture(scope="session")
def tarball() -> Path:
    return app_tarball()


@pytest.fixture(autouse=True)
def platform(
    request: pytest.FixtureRequest, cluster: tuple[ControlPlane, TestCA], tarball: Path
) -> Iterator[None]:
    """An empty platform and a cluster without the application, for each test."""
    plane, platform_ca = cluster
    boundary.reset_platform()
    if request.instance is not None:
        request.instance.cluster = plane
        request.instance.platform_ca = platform_ca
        request.instance.tarball = tarball
    yield
    forget_application(plane)


@pytest.fixture(autouse=True, scope="session")
def report_real_paths() -> Iterator[None]:
    """sysinv must write only under the temporary platform, never to a controller's paths."""
    yield
    created = [
        p
        for p in boundary.REAL_PLATFORM_PATHS
        if os.path.exists(p) and p not in boundary.EXISTING_REAL_PATHS
    ]
    assert not created, f"sysinv wrote outside the temporary platform: {created}"
