"""The real-sysinv suite runs only where StarlingX's sysinv is installed: in the venvs
scripts/sysinv-venv.sh builds (Python 3.9 and 3.13, run by `make sysinv-real`). In any other
environment (the project's Python 3.11 venv, whose tests use tests/sysinv_double) it is not
collected at all, so it is neither run nor reported as skipped there."""

from __future__ import annotations

import importlib.metadata


def _sysinv_installed() -> bool:
    # The venv's sysinv-1.0.dist-info: present only beside the real sysinv sources.
    try:
        importlib.metadata.distribution("sysinv")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


if not _sysinv_installed():
    collect_ignore_glob = ["*"]
else:
    from tests.sysinv_real import boundary  # noqa: F401  (first: before anything imports sysinv)
    from tests.sysinv_real.fixtures import (  # noqa: F401
        cluster,
        platform,
        report_real_paths,
        tarball,
    )
