"""`make demo`: the webhook verifying real signatures, on this machine, in well under a minute.

Starts what the tests start (tests/fixtures): a registry over TLS, a notary server, a
lookaside signature store served over HTTP, a GnuPG key; pushes tiny images and signs
them as publishers do (the notary CLI, skopeo --sign-by, cosign with a key and keyless
with a certificate of the demo's own Fulcio-shaped CA and an entry of its Rekor stand-in,
since neither public service is reachable here); writes policies for them; runs
`portieris-webhook serve --manifests` on those policies; sends it one AdmissionReview per
image and prints what it answered; then keeps serving for curl until Ctrl-C.

    .venv/bin/python scripts/demo.py [--port 8443] [--metrics-port 8080] [--no-serve]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.fixtures.cosign import Cosign, sigstore_tools  # noqa: E402
from tests.fixtures.gpg import GpgHome, LookasideStore, SimpleSigner  # noqa: E402
from tests.fixtures.notary import NotaryServer, NotarySigner  # noqa: E402
from tests.fixtures.pki import TestCA  # noqa: E402
from tests.fixtures.procs import ManagedProcess  # noqa: E402
from tests.fixtures.registry import PushedImage, Registry  # noqa: E402
from tests.fixtures.sigstore_pki import (  # noqa: E402
    FulcioCA,
    TransparencyLog,
    keyed_signer,
    keyless_signer,
    sign,
)

DEMO_DIR = ROOT / ".demo"
RELEASE_IDENTITY = "release@example.com"
OIDC_ISSUER = "https://oidc.example.com"


class CosignTrust:
    """What the demo's cosign policy trusts: a key, a certificate authority, a log key."""

    def __init__(self, public_key: bytes, fulcio: FulcioCA, log: TransparencyLog) -> None:
        self.public_key, self.fulcio, self.log = public_key, fulcio, log

    def policy(self) -> dict[str, Any]:
        """Signed with the release key, or keyless by the release identity (logged)."""
        return {
            "sigstore": {
                "authorities": [
                    {
                        "name": "release-key",
                        "key": {"data": self.public_key.decode()},
                        "ctlog": {"enabled": False},
                    },
                    {
                        "name": "release-keyless",
                        "keyless": {
                            "ca-cert": {"data": self.fulcio.chain_pem.decode()},
                            "identities": [{"issuer": OIDC_ISSUER, "subject": RELEASE_IDENTITY}],
                        },
                        "ctlog": {"publicKey": {"data": self.log.public_key_pem.decode()}},
                    },
                ]
            }
        }


def shown(path: Path) -> Path:
    """``path`` as a user types it from the checkout."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def say(text: str = "") -> None:
    print(text, flush=True)


def write_manifests(
    directory: Path,
    host: str,
    notary: NotaryServer,
    store: LookasideStore,
    key: str,
    cosign: CosignTrust | None = None,
    namespace: str = "default",
) -> Path:
    """An ImagePolicy for ``namespace``: notary trust, simple signing, cosign, nothing else."""
    policy = {
        "apiVersion": "portieris.cloud.ibm.com/v1",
        "kind": "ImagePolicy",
        "metadata": {"name": "demo", "namespace": namespace},
        "spec": {
            "repositories": [
                {
                    "name": f"{host}/demo/notary/*",
                    "policy": {"trust": {"enabled": True, "trustServer": notary.url}},
                },
                {
                    "name": f"{host}/demo/simple/*",
                    "policy": {
                        "simple": {
                            "requirements": [{"type": "signedBy", "keySecret": "demo-signer"}],
                            "storeURL": store.url,
                        }
                    },
                },
            ]
        },
    }
    if cosign is not None:
        rule = {"name": f"{host}/demo/cosign/*", "policy": cosign.policy()}
        policy["spec"]["repositories"].append(rule)  # type: ignore[index]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "demo-signer", "namespace": namespace},
        "type": "Opaque",
        "data": {"key": base64.b64encode(key.encode()).decode()},
    }
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "demo.yaml"
    path.write_text(yaml.safe_dump_all([ns, secret, policy]))
    return path


def review(name: str, image: str) -> dict[str, Any]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"demo-{name}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "name": name,
            "operation": "CREATE",
            "object": pod,
            "userInfo": {"username": "demo"},
            "dryRun": False,
        },
    }


def describe(response: dict[str, Any]) -> str:
    """One line a user reads: allowed and pinned to what, or denied and why."""
    answer = response["response"]
    if not answer["allowed"]:
        return f"DENIED   {answer['status']['message']}"
    patch = answer.get("patch")
    if not patch:
        return "ALLOWED  unchanged"
    ops = json.loads(base64.b64decode(patch))
    pinned = ", ".join(str(op["value"]) for op in ops if op["path"].endswith("/image"))
    return f"ALLOWED  pinned to {pinned}"


def start_services(work: Path, ca: TestCA) -> tuple[Registry, NotaryServer, LookasideStore]:
    registry = Registry(work / "registry", ca).start()
    notary = NotaryServer(work / "notary", ca).start()
    store = LookasideStore(work / "lookaside", work / "logs").start()
    return registry, notary, store


Push = Callable[[str, str], PushedImage]


def publish(
    work: Path, registry: Registry, notary: NotaryServer, store: LookasideStore, push: Push
) -> tuple[dict[str, PushedImage], PushedImage, str]:
    """Push and sign the demo's images as a publisher would; return them and the public key."""
    images = {
        "notary-signed": push("demo/notary/app", "v1"),
        "simple-signed": push("demo/simple/app", "v1"),
        "unsigned": push("demo/notary/unsigned", "v1"),
        "moved-tag": push("demo/notary/moved", "v1"),
    }
    signer = NotarySigner(notary, work / "notary-trust")
    for name in ("notary-signed", "moved-tag"):
        image = images[name]
        signer.sign(image.name, image.tag, image.size, image.hex)
    # After signing, someone pushes another image under the signed tag.
    moved = push("demo/notary/moved", "v1")
    gpg = GpgHome(Path(os.environ.get("TMPDIR", "/tmp")) / f"portieris-demo-gpg-{os.getpid()}")
    key = gpg.new_key("demo-publisher")
    SimpleSigner(gpg, store, registry, work / "skopeo").sign(
        images["simple-signed"], key.fingerprint
    )
    gpg.close()
    return images, moved, key.public_armored


def publish_cosign(
    work: Path, ca_file: Path, push: Push
) -> tuple[dict[str, PushedImage], CosignTrust]:
    """Sign with the real cosign: with a key; keyless by the release identity; keyless by
    someone else (the policy accepts only the release identity)."""
    tools = sigstore_tools()
    cosign = Cosign(tools.cosign, work / "cosign", ca_file)
    images = {
        "cosign-keyed": push("demo/cosign/keyed", "v1"),
        "cosign-keyless": push("demo/cosign/keyless", "v1"),
        "cosign-intruder": push("demo/cosign/intruder", "v1"),
    }
    pair = cosign.generate_key_pair(work / "cosign-key")
    sign(cosign, images["cosign-keyed"].digest_ref, keyed_signer(pair))
    fulcio, log = FulcioCA.create("portieris demo fulcio"), TransparencyLog()
    for name, identity in (
        ("cosign-keyless", RELEASE_IDENTITY),
        ("cosign-intruder", "intruder@example.net"),
    ):
        signer = keyless_signer(cosign, fulcio.issue(identity, OIDC_ISSUER), work / name)
        sign(cosign, images[name].digest_ref, signer, rekor=log)
    return images, CosignTrust(pair.public_pem, fulcio, log)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8443")))
    parser.add_argument(
        "--metrics-port", type=int, default=int(os.environ.get("METRICS_PORT", "8080"))
    )
    parser.add_argument("--no-serve", action="store_true", help="exit after the decisions")
    parser.add_argument("--workdir", type=Path, default=DEMO_DIR / "run", help="emptied first")
    parser.add_argument(
        "--cluster", action="store_true", help="the same on a single-node cluster (root)"
    )
    args = parser.parse_args()
    if args.cluster:
        return cluster_main(args)

    began = time.monotonic()
    work: Path = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ca = TestCA.create("portieris demo CA")
    ca_file = ca.write(work / "ca")
    cert, key = ca.write_leaf(work / "tls", "webhook")
    say("starting a registry, a notary server and a lookaside signature store ...")
    registry, notary, store = start_services(work, ca)
    webhook: ManagedProcess | None = None
    try:
        say("pushing and signing the demo images ...")
        images, moved, public_key = publish(work, registry, notary, store, registry.push_image)
        signed_by_cosign, cosign_trust = publish_cosign(work, ca_file, registry.push_image)
        images.update(signed_by_cosign)
        manifests = work / "manifests"
        write_manifests(manifests, registry.host, notary, store, public_key, cosign_trust)
        reviews = work / "reviews"
        reviews.mkdir()
        for name, image in images.items():
            (reviews / f"{name}.json").write_text(json.dumps(review(name, image.ref), indent=1))

        webhook = ManagedProcess(
            "portieris-webhook",
            [
                sys.executable,
                "-m",
                "portieris_webhook.cli",
                "serve",
                "--manifests",
                manifests,
                "--ca-file",
                ca_file,
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--host",
                "127.0.0.1",
                "--port",
                str(args.port),
                "--metrics-port",
                str(args.metrics_port),
            ],
            work / "logs" / "webhook.log",
            env={**os.environ, "GNUPGHOME": str(work / "webhook-gnupg")},
        ).start()
        url = f"https://127.0.0.1:{args.port}"
        webhook.wait_for_url(f"{url}/health/readiness", ca_file=ca_file, timeout=60)
        context = ssl.create_default_context(cafile=str(ca_file))

        say(f"\nready in {time.monotonic() - began:.0f} s. Policies: {manifests}/demo.yaml")
        say(f"images in the registry at {registry.host}:")
        for name, image in images.items():
            signed = {"unsigned": "unsigned", "cosign-intruder": "signed by someone else"}
            say(f"  {name:15} {image.ref}  {signed.get(name, 'signed')} {image.digest}")
        say(f"  {'':15} the tag moved after signing: {moved.ref} is now {moved.digest}")
        say("\nwhat the webhook answers for a Pod running each image:")
        for name in images:
            body = (reviews / f"{name}.json").read_bytes()
            request = urllib.request.Request(
                f"{url}/admit", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, context=context, timeout=30) as resp:
                say(f"  {name:15} {describe(json.loads(resp.read()))}")
        if args.no_serve:
            return 0
        say(
            f"""
still serving on {url}; from another terminal:

  curl -s --cacert {shown(ca_file)} -H 'Content-Type: application/json' \\
       --data-binary @{shown(reviews / "unsigned.json")} {url}/admit

  (also notary-signed.json, simple-signed.json, moved-tag.json in {shown(reviews)})
metrics: curl -s http://127.0.0.1:{args.metrics_port}/metrics | grep portieris_
stop with Ctrl-C."""
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            assert webhook.proc is not None
            webhook.proc.wait()
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        if webhook is not None:
            webhook.stop()
        for server in (store, notary, registry):
            server.stop()


# --------------------------------------------------------------------------- make cluster-demo


def deployment(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": image}],
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }


def cluster_main(args: argparse.Namespace) -> int:
    """The same images and policies on a single-node cluster, shown with kubectl."""
    from tests.e2e.node import GATEWAY, SingleNodeCluster
    from tests.e2e.release import (
        BUILD_IMAGE,
        install_chart,
        push_runnable,
        push_webhook_image,
    )

    began = time.monotonic()
    work: Path = (DEMO_DIR / "cluster").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    say("building the webhook image (cached) ...")
    built = subprocess.run(
        [sys.executable, str(BUILD_IMAGE), "--python", sys.executable],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    archive = Path(built.strip().splitlines()[-1].split()[0].removeprefix("image="))
    say("starting a single-node cluster (etcd, kube-apiserver, controller-manager, scheduler,")
    say("kubelet on containerd, kube-proxy) ...")
    node = SingleNodeCluster()
    node.start()
    servers: list[Any] = []
    try:
        ca = TestCA.create("portieris cluster demo CA")
        ca_file = ca.write(work / "ca")
        registry = Registry(work / "registry", ca, address=GATEWAY).start()
        notary = NotaryServer(work / "notary", ca, address=GATEWAY).start()
        store = LookasideStore(work / "lookaside", work / "logs", address=GATEWAY).start()
        servers = [store, notary, registry]
        node.trust_registry(registry.host, registry.ca_file)
        say("installing the chart with the image from the local registry ...")
        install_chart(node, push_webhook_image(registry, archive), ca_file)
        say("pushing and signing the demo images ...")
        images, moved, key = publish(
            work, registry, notary, store,
            lambda repo, tag: push_runnable(registry, repo, tag, f"{repo}:{tag}#{time.time()}"),
        )  # fmt: skip
        policies = write_manifests(work, registry.host, notary, store, key, namespace="demo")
        node.plane.kubectl("apply", "-f", str(policies), check=True)
        # The webhook learns new policies through its watch: until then (the chart has no
        # default ClusterImagePolicy here) it refuses every image of the namespace.
        probe = json.dumps(deployment("probe", images["notary-signed"].ref))
        deadline = time.monotonic() + 60
        while node.plane.kubectl("create", "--dry-run=server", "-f", "-", input=probe).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("the webhook did not apply the demo's policy within 60 s")
            time.sleep(0.5)
        kubectl = f"{node.plane.bins.kubectl if node.plane.bins else 'kubectl'}"
        say(f"\nready in {time.monotonic() - began:.0f} s. Images in the registry:")
        for name, image in images.items():
            signed = {"unsigned": "unsigned", "cosign-intruder": "signed by someone else"}
            say(f"  {name:15} {image.ref}  {signed.get(name, 'signed')} {image.digest}")
        say(f"  {'':15} the tag moved after signing: {moved.ref} is now {moved.digest}")
        say("\n$ kubectl apply -f <a Deployment of each image>")
        for name, image in images.items():
            result = node.plane.kubectl(
                "apply", "-f", "-", input=json.dumps(deployment(name, image.ref))
            )
            say(f"  {name:14} {(result.stdout or result.stderr).strip()}")
        node.plane.kubectl(
            "wait", "--for=condition=Available", "deployment", "--all", "-n", "demo",
            "--timeout=120s",
        )  # fmt: skip
        columns = (
            "NAME:.metadata.name,READY:.status.containerStatuses[0].ready,"
            "IMAGE:.spec.containers[0].image,PULLED:.status.containerStatuses[0].imageID"
        )
        say("\n$ kubectl get pods -n demo -o custom-columns=...")
        pods = node.plane.kubectl("get", "pods", "-n", "demo", "-o", f"custom-columns={columns}")
        say(pods.stdout)
        if args.no_serve:
            return 0
        say(
            f"""the cluster keeps running; from another terminal:

  export KUBECONFIG={node.plane.kubeconfig}
  {kubectl} get pods -A
  {kubectl} -n demo create deployment unsigned --image={images["unsigned"].ref}

stop with Ctrl-C (everything is removed)."""
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        for server in servers:
            server.stop()
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
