"""sysinv's conductor for the tests: the application's wheel installed into a fresh virtualenv,
as sysinv installs an application's plugins, and sysinv_conductor.py run there for each step."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.app import artifacts
from tests.e2e.controlplane import ControlPlane

SCRIPT = Path(__file__).with_name("sysinv_conductor.py")


def make_venv(where: Path, wheels: list[Path]) -> Path:
    """A fresh virtualenv with the wheels installed (their dependencies, PyYAML, cryptography
    and the kubernetes client the double uses, are seen from the test environment through a
    .pth file: no network). Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, capture_output=True)
    python = where / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            *map(str, wheels),
        ],
        check=True,
        capture_output=True,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "test-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


class StepFailed(AssertionError):
    pass


class Conductor:
    """Runs conductor steps; the database persists in a state file between them."""

    def __init__(self, python: Path, workdir: Path, plane: ControlPlane, app_name: str) -> None:
        self.python, self.workdir = python, workdir
        self.context = workdir / "context.json"
        # sysinv's directories (/opt/platform/... on a controller).
        self.install_path = workdir / "helm"
        self.fluxcd_path = workdir / "fluxcd"
        self.overrides_path = workdir / "helm_overrides"
        self.ssl_ca_dir = workdir / "ssl_ca"
        for path in (
            self.install_path,
            self.fluxcd_path,
            self.overrides_path,
            self.ssl_ca_dir,
            workdir / "platform",
        ):
            path.mkdir(parents=True, exist_ok=True)
        env = plane.env
        helm = plane.bins.helm if plane.bins else "helm"
        # As on a controller: helm (and only the system's tools) on the PATH.
        self.path = os.pathsep.join([str(Path(helm).parent), "/usr/bin", "/bin"])
        self.context.write_text(
            json.dumps(
                {
                    "state": str(workdir / "sysinv-db.json"),
                    "app_name": app_name,
                    "kubeconfig": plane.kubeconfig,
                    "helm": helm,
                    "helm_env": {k: v for k, v in env.items() if k.startswith("HELM_")},
                    "install_path": str(self.install_path),
                    "fluxcd_path": str(self.fluxcd_path),
                    "overrides_path": str(self.overrides_path),
                    "platform_conf_path": str(workdir / "platform"),
                    "ssl_ca_dir": str(self.ssl_ca_dir),
                }
            )
        )
        self._steps = 0

    def run(self, command: str, argument: Any = None, *, expect_error: bool = False) -> Any:
        self._steps += 1
        args = [str(self.python), str(SCRIPT), str(self.context), command]
        if argument is not None:
            path = self.workdir / f"step-{self._steps}-{command}.json"
            path.write_text(json.dumps(argument))
            args.append(str(path))
        # A controller's environment: its own tools and home (helm keeps its caches there).
        env = {
            "PYTHONPATH": str(artifacts.SYSINV_DOUBLE),
            "PATH": self.path,
            "HOME": str(self.workdir),
        }
        result = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise StepFailed(f"sysinv {command} crashed:\n{result.stderr[-6000:]}")
        answer = json.loads(result.stdout.splitlines()[-1])
        error = answer.get("error") if isinstance(answer, dict) else None
        if error and not expect_error:
            raise StepFailed(
                f"sysinv {command} failed: {error['type']}: {error['message']}\n"
                f"{error['traceback']}"
            )
        if expect_error and not error:
            raise StepFailed(f"sysinv {command} was expected to fail, answered {answer}")
        return answer
