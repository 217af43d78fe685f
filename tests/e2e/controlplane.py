"""A real Kubernetes control plane (etcd + kube-apiserver) and helm for tests.

Binaries come from ``scripts/build-controlplane.sh`` (kube-apiserver, kubectl
and helm built from the Go modules pinned in ``tests/e2e/controlplane/go.mod``,
cached under ``${PORTIERIS_CACHE_DIR:-~/.cache/portieris}/bin``; etcd from the
Debian package).  The API server is started the way controller-runtime's
envtest starts it: client-certificate auth, RBAC, the ServiceAccount admission
plugin off.  There is no controller-manager, scheduler or kubelet: objects are
stored (and admission webhooks are called on create/update) but pods stay
Pending. ``node.py`` adds them, for tests where pods really run.

Usage::

    with ControlPlane() as cp:
        cp.kubectl("create", "namespace", "x", check=True)
        print(cp.get_json("/version")["gitVersion"])

Only the standard library and ``cryptography`` are used; pytest is not needed.
"""

from __future__ import annotations

import atexit
import base64
import functools
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures.pki import TestCA, private_key_pem
from tests.fixtures.procs import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-controlplane.sh"

__all__ = [
    "BUILD_SCRIPT",
    "REPO_ROOT",
    "Binaries",
    "CommandError",
    "ControlPlane",
    "ControlPlaneError",
    "binaries",
]


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started."""


class CommandError(subprocess.CalledProcessError):
    """A kubectl/helm command failed; unlike its base class, str() shows its output."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}\n--- stdout ---\n{self.stdout or ''}"
            f"\n--- stderr ---\n{self.stderr or ''}"
        )


# --------------------------------------------------------------------------- binaries


class Binaries(NamedTuple):
    kube_apiserver: str
    etcd: str
    kubectl: str
    helm: str
    # The node's (tests/e2e/node.py).
    kube_controller_manager: str
    kube_scheduler: str
    kubelet: str
    kube_proxy: str


@functools.lru_cache(maxsize=1)
def binaries() -> Binaries:
    """Paths of kube-apiserver, etcd, kubectl and helm.

    Runs ``scripts/build-controlplane.sh`` (a no-op taking well under a second
    when the binaries are cached; a cold build takes many minutes).
    """
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ControlPlaneError(
            f"{BUILD_SCRIPT} failed with exit code {proc.returncode}:\n{proc.stderr[-8000:]}"
        )
    found: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, sep, path = line.partition("=")
        if sep:
            found[name.strip()] = path.strip()
    try:
        result = Binaries(
            kube_apiserver=found["kube-apiserver"],
            etcd=found["etcd"],
            kubectl=found["kubectl"],
            helm=found["helm"],
            kube_controller_manager=found["kube-controller-manager"],
            kube_scheduler=found["kube-scheduler"],
            kubelet=found["kubelet"],
            kube_proxy=found["kube-proxy"],
        )
    except KeyError as exc:
        raise ControlPlaneError(
            f"{BUILD_SCRIPT} did not report {exc}; stdout was:\n{proc.stdout}"
        ) from None
    for path in result:
        if not os.access(path, os.X_OK):
            raise ControlPlaneError(f"{path} (from {BUILD_SCRIPT}) is not executable")
    return result


# --------------------------------------------------------------------------- helpers


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    text = data[-limit:].decode("utf-8", "replace")
    return ("...\n" if len(data) > limit else "") + text


def _stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- ControlPlane


class ControlPlane:
    """etcd + kube-apiserver on free 127.0.0.1 ports, with an admin kubeconfig.

    Attributes (valid after ``start()``):
      ``url``          https://127.0.0.1:PORT of the API server
      ``kubeconfig``   path of a kubeconfig (client-cert auth as admin, system:masters)
      ``ca_pem``       PEM of the CA that signed the serving and client certificates
      ``ca``           the ``TestCA`` itself (to issue more certificates)
      ``workdir``      the temp dir holding certificates, logs and the kubeconfig
      ``apiserver_log``, ``etcd_log``  log files of the two processes
    """

    def __init__(
        self,
        *,
        start_timeout: float = 120.0,
        extra_apiserver_args: Sequence[str] = (),
        keep_workdir: bool = False,
        address: str = "127.0.0.1",
        service_accounts: bool = False,
    ) -> None:
        """``address``: where the API server listens (a node's pods must reach it, so not
        127.0.0.1 there). ``service_accounts``: run the ServiceAccount admission plugin
        (pods get their account's token; needs the controller-manager's token controllers).
        """
        self.address = address
        self.service_accounts = service_accounts
        self.start_timeout = start_timeout
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.keep_workdir = keep_workdir
        self.bins: Binaries | None = None
        self.workdir: Path | None = None
        self._etcd_data: Path | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0
        self.etcd_url = ""
        self.kubeconfig = ""
        self.ca: TestCA | None = None
        self.ca_pem = b""
        self.ca_file = ""
        self.admin_cert_file = ""
        self.admin_key_file = ""
        self.apiserver_log: Path | None = None
        self.etcd_log: Path | None = None
        self.startup_seconds = 0.0
        self._log_handles: list[Any] = []

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        if self._apiserver is not None:
            raise ControlPlaneError("control plane already started")
        self.bins = binaries()
        began = time.monotonic()
        attempts = 3
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
            except ControlPlaneError as exc:
                port_clash = "address already in use" in str(exc).lower()
                self.stop()
                if port_clash and attempt < attempts:
                    continue
                raise
            break
        self.startup_seconds = time.monotonic() - began
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        atexit.unregister(self.stop)
        _stop_process(self._apiserver)
        _stop_process(self._etcd)
        self._apiserver = None
        self._etcd = None
        for handle in self._log_handles:
            handle.close()
        self._log_handles = []
        if self._etcd_data is not None:
            shutil.rmtree(self._etcd_data, ignore_errors=True)
            self._etcd_data = None
        if self.workdir is not None and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _start_once(self) -> None:
        assert self.bins is not None
        self._log_handles = []
        work = Path(tempfile.mkdtemp(prefix="portieris-controlplane-"))
        self.workdir = work
        # etcd fsyncs on every write; tmpfs makes that free (etcd 3.4 has no
        # --unsafe-no-fsync).
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            self._etcd_data = Path(tempfile.mkdtemp(prefix="portieris-etcd-", dir=shm))
        else:
            self._etcd_data = work / "etcd-data"
            self._etcd_data.mkdir()

        # --- certificates and keys
        ca = TestCA.create("portieris-controlplane-ca")
        self.ca = ca
        self.ca_pem = ca.cert_pem
        serving_cert, serving_key = ca.issue(
            "kube-apiserver",
            dns_sans=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ip_sans=sorted({"127.0.0.1", "10.0.0.1", self.address}),
            client=False,
        )
        admin_cert, admin_key = ca.issue(
            "admin", ip_sans=(), dns_sans=(), organizations=["system:masters"], server=False
        )
        sa_key = ec.generate_private_key(ec.SECP256R1())
        files = {
            "ca.crt": ca.cert_pem,
            "apiserver.crt": serving_cert,
            "apiserver.key": serving_key,
            "admin.crt": admin_cert,
            "admin.key": admin_key,
            "sa.key": private_key_pem(sa_key),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }
        for name, data in files.items():
            (work / name).write_bytes(data)
            os.chmod(work / name, 0o600)
        self.ca_file = str(work / "ca.crt")
        self.admin_cert_file = str(work / "admin.crt")
        self.admin_key_file = str(work / "admin.key")

        # --- etcd
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self.etcd_log = work / "etcd.log"
        etcd_cmd = [
            self.bins.etcd,
            "--name=default",
            f"--data-dir={self._etcd_data}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        self._etcd = self._spawn(etcd_cmd, self.etcd_log)
        deadline = time.monotonic() + self.start_timeout
        self._wait(
            "etcd",
            lambda: self._http_ok(f"{self.etcd_url}/health"),
            deadline,
        )

        # --- kube-apiserver
        self.port = free_port(self.address)
        self.url = f"https://{self.address}:{self.port}"
        self.apiserver_log = work / "kube-apiserver.log"
        apiserver_cmd = [
            self.bins.kube_apiserver,
            f"--etcd-servers={self.etcd_url}",
            f"--cert-dir={work / 'apiserver-certs'}",
            f"--tls-cert-file={work / 'apiserver.crt'}",
            f"--tls-private-key-file={work / 'apiserver.key'}",
            f"--client-ca-file={work / 'ca.crt'}",
            f"--service-account-issuer={self.url}/",
            f"--service-account-key-file={work / 'sa.pub'}",
            f"--service-account-signing-key-file={work / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            f"--advertise-address={self.address}",
            f"--bind-address={self.address}",
            f"--secure-port={self.port}",
            "--authorization-mode=RBAC",
            *([] if self.service_accounts else ["--disable-admission-plugins=ServiceAccount"]),
            "--allow-privileged=true",
            # How it authenticates to a kubelet (logs, exec), when there is one.
            f"--kubelet-client-certificate={work / 'admin.crt'}",
            f"--kubelet-client-key={work / 'admin.key'}",
            *self.extra_apiserver_args,
        ]
        self._apiserver = self._spawn(apiserver_cmd, self.apiserver_log)
        self._wait("kube-apiserver", lambda: self._readyz_ok(), deadline)
        self.kubeconfig = str(work / "kubeconfig")
        self._write_kubeconfig(Path(self.kubeconfig), admin_cert, admin_key)

    def _spawn(self, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        handle = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self._log_handles.append(handle)
        handle.write(("$ " + " ".join(cmd) + "\n").encode())
        handle.flush()
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait(self, what: str, ready: Any, deadline: float) -> None:
        last_error = ""
        while True:
            for name, proc in (("etcd", self._etcd), ("kube-apiserver", self._apiserver)):
                if proc is not None and proc.poll() is not None:
                    raise ControlPlaneError(
                        f"{name} exited with code {proc.returncode} while waiting for "
                        f"{what}\n{self.logs()}"
                    )
            try:
                if ready():
                    return
            except Exception as exc:  # not listening yet, TLS not ready, ...
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{what} not ready after {self.start_timeout:.0f}s "
                    f"(last error: {last_error or 'not ready'})\n{self.logs()}"
                )
            time.sleep(0.2)

    def logs(self) -> str:
        """The tails of both processes' logs (for error messages)."""
        parts = []
        for name, path in (("etcd", self.etcd_log), ("kube-apiserver", self.apiserver_log)):
            if path is not None:
                parts.append(f"===== {name} log ({path}) =====\n{_tail(path)}")
        return "\n".join(parts)

    def _write_kubeconfig(self, path: Path, admin_cert: bytes, admin_key: bytes) -> None:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        path.write_text(
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            "- name: portieris-test\n"
            "  cluster:\n"
            f"    server: {self.url}\n"
            f"    certificate-authority-data: {b64(self.ca_pem)}\n"
            "users:\n"
            "- name: admin\n"
            "  user:\n"
            f"    client-certificate-data: {b64(admin_cert)}\n"
            f"    client-key-data: {b64(admin_key)}\n"
            "contexts:\n"
            "- name: portieris-test\n"
            "  context:\n"
            "    cluster: portieris-test\n"
            "    user: admin\n"
            "    namespace: default\n"
            "current-context: portieris-test\n"
        )
        os.chmod(path, 0o600)

    # ----------------------------------------------------------------- HTTP

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting the CA and presenting the admin cert."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.load_cert_chain(self.admin_cert_file, self.admin_key_file)
        return ctx

    @staticmethod
    def _http_ok(url: str) -> bool:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)

    def _readyz_ok(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.url}/readyz", timeout=5, context=self.ssl_context()
            ) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError:
            return False  # 500 while post-start hooks finish

    def request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> Any:
        """Call the API server as admin; returns the decoded JSON body.

        HTTP errors raise ``urllib.error.HTTPError`` (its ``.read()`` has the Status).
        """
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        with urllib.request.urlopen(req, timeout=30, context=self.ssl_context()) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def get_json(self, path: str) -> Any:
        return self.request("GET", path)

    # ----------------------------------------------------------------- CLIs

    @property
    def env(self) -> dict[str, str]:
        """Environment for child processes that should talk to this cluster."""
        assert self.workdir is not None, "control plane not started"
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        env["KUBECACHEDIR"] = str(self.workdir / "kube-cache")
        env["HELM_CACHE_HOME"] = str(self.workdir / "helm" / "cache")
        env["HELM_CONFIG_HOME"] = str(self.workdir / "helm" / "config")
        env["HELM_DATA_HOME"] = str(self.workdir / "helm" / "data")
        return env

    def _run(
        self,
        argv: list[str],
        *,
        check: bool,
        input: str | bytes | None,
        timeout: float,
        env: Mapping[str, str] | None,
    ) -> subprocess.CompletedProcess[Any]:
        full_env = self.env
        if env:
            full_env.update(env)
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=not isinstance(input, bytes),
            timeout=timeout,
            env=full_env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def kubectl(
        self,
        *args: str,
        check: bool = False,
        input: str | bytes | None = None,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[Any]:
        """Run the real kubectl against this cluster (output captured as text)."""
        assert self.bins is not None, "control plane not started"
        argv = [self.bins.kubectl, f"--kubeconfig={self.kubeconfig}", *args]
        return self._run(argv, check=check, input=input, timeout=timeout, env=env)

    def helm(
        self,
        *args: str,
        check: bool = False,
        input: str | bytes | None = None,
        timeout: float = 300.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[Any]:
        """Run the real helm 3 against this cluster (KUBECONFIG set, helm dirs private)."""
        assert self.bins is not None, "control plane not started"
        argv = [self.bins.helm, *args]
        return self._run(argv, check=check, input=input, timeout=timeout, env=env)
