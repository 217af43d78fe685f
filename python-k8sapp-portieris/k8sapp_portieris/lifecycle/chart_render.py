"""The chart rendered with the values an apply would give it, as FluxCD's helm would render it.

Used before an apply, so that values the chart's schema or templates refuse are reported to the
operator at once instead of failing the HelmRelease later.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

HELM = "helm"
TIMEOUT_SECONDS = 120


def find_chart(charts_dir: str, chart: str) -> str | None:
    """The chart archive <chart>-<version>.tgz in the application's charts directory."""
    pattern = re.compile(rf"{re.escape(chart)}-\d[^/]*\.tgz")
    found = sorted(
        p
        for p in glob.glob(os.path.join(charts_dir, "*.tgz"))
        if pattern.fullmatch(os.path.basename(p))
    )
    return found[-1] if found else None


def chart_problems(
    chart_archive: str,
    namespace: str,
    values_files: Sequence[str],
    values: Sequence[Mapping[str, Any]],
    kube_version: str | None = None,
) -> list[str]:
    """What `helm template` refuses, with the files then the values documents in that order,
    rendered for the cluster's Kubernetes version when it is given."""
    with tempfile.TemporaryDirectory(prefix="portieris-check-") as tmp:
        argv = [HELM, "template", "portieris", chart_archive, "--namespace", namespace]
        if kube_version:
            argv += ["--kube-version", kube_version]
        for path in values_files:
            argv += ["--values", path]
        for number, document in enumerate(values):
            path = os.path.join(tmp, f"values-{number}.yaml")
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump(dict(document), f)
            argv += ["--values", path]
        # helm is in /usr/local/sbin on a controller, which sysinv adds to PATH as here.
        env = dict(os.environ, PATH="/usr/local/sbin:" + os.environ.get("PATH", ""))
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False, env=env
        )
    if proc.returncode == 0:
        return []
    return [f"the portieris chart refuses these values: {proc.stderr.strip()}"]
