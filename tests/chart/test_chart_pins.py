"""The chart's pinned notary roots (`pinnedTrustRoots`): the `--pinned-trust-root` arguments, the
ConfigMap of root certificates and its mount, read back by the webhook's own option parser and
pin loader (trust/verifier.py parse_pins), so the chart and the webhook cannot drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from portieris_webhook.config import options
from portieris_webhook.trust.verifier import parse_pins

from .test_chart import (
    CHART,
    arg_values,
    container,
    kinds,
    one,
    pod_spec,
    render,
    render_error,
    run_helm,
)
from tests.fixtures.pki import TestCA

CONFIGMAP = "portieris-pinned-trust-roots"
SERVER = "https://notary.example.com:4443"
KEY_ID = "5a0c" + "0123456789abcdef" * 3 + "0123456789ab"


@pytest.fixture(scope="module")
def roots() -> dict[str, TestCA]:
    return {name: TestCA.create(name) for name in ("notary root", "root issuer")}


def pin_docs(roots: dict[str, TestCA]) -> list[dict[str, Any]]:
    return render(
        {
            "pinnedTrustRoots": [
                {"server": SERVER, "keyID": KEY_ID.upper()},
                {"server": SERVER, "certificate": roots["notary root"].cert_pem.decode()},
                {
                    "server": "notary.internal",
                    "certificate": roots["root issuer"].cert_pem.decode(),
                },
            ]
        }
    )


def test_no_pins_by_default() -> None:
    docs = render()
    assert arg_values(docs, "pinned-trust-root") == []
    assert not [d for d in kinds(docs, "ConfigMap") if d["metadata"]["name"] == CONFIGMAP]
    assert all(v["name"] != "pinned-trust-roots" for v in pod_spec(docs)["volumes"])


def test_key_id_pins_are_arguments() -> None:
    docs = render({"pinnedTrustRoots": [{"server": SERVER, "keyID": KEY_ID}]})
    assert arg_values(docs, "pinned-trust-root") == [f"{SERVER}={KEY_ID}"]
    assert not [d for d in kinds(docs, "ConfigMap") if d["metadata"]["name"] == CONFIGMAP]


def test_certificate_pins_are_mounted_and_named_by_their_arguments(
    roots: dict[str, TestCA],
) -> None:
    docs = pin_docs(roots)
    config_map = one(docs, "ConfigMap", CONFIGMAP)
    (volume,) = [
        v for v in pod_spec(docs)["volumes"] if v.get("configMap", {}).get("name") == CONFIGMAP
    ]
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    pins = arg_values(docs, "pinned-trust-root")
    assert pins[0] == f"{SERVER}={KEY_ID.lower()}"
    for pin, root in zip(pins[1:], ("notary root", "root issuer"), strict=True):
        path = pin.rpartition("=")[2]
        directory, _, key = path.rpartition("/")
        assert directory == mount["mountPath"]
        assert config_map["data"][key].strip() == roots[root].cert_pem.decode().strip()


def test_the_webhook_parses_the_rendered_pins(roots: dict[str, TestCA], tmp_path: Path) -> None:
    docs = pin_docs(roots)
    conf = cfg.ConfigOpts()
    for opts in (options.MANIFEST_OPTS, options.VERIFY_OPTS, options.SERVE_OPTS):
        conf.register_cli_opts(opts)
    conf(list(container(docs)["args"]), project="portieris-webhook", default_config_files=[])
    # The ConfigMap's files where the pod would see them, under tmp_path.
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == "pinned-trust-roots"]
    for key, pem in one(docs, "ConfigMap", CONFIGMAP)["data"].items():
        (tmp_path / key).write_text(pem)
    entries = [e.replace(mount["mountPath"], str(tmp_path)) for e in conf.pinned_trust_root]
    pins = parse_pins(entries)
    assert set(pins) == {SERVER, "https://notary.internal"}
    assert pins[SERVER].keyids == {KEY_ID.lower()}
    assert [c.subject for c in pins[SERVER].certificates] == [roots["notary root"].cert.subject]
    assert [c.subject for c in pins["https://notary.internal"].certificates] == [
        roots["root issuer"].cert.subject
    ]


def test_pods_restart_when_a_pinned_certificate_changes(roots: dict[str, TestCA]) -> None:
    def checksum(root: TestCA) -> str:
        docs = render(
            {"pinnedTrustRoots": [{"server": SERVER, "certificate": root.cert_pem.decode()}]}
        )
        annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/pinned-trust-roots"])

    assert checksum(roots["notary root"]) != checksum(roots["root issuer"])


@pytest.mark.parametrize(
    ("pin", "complaint"),
    [
        ({"server": SERVER, "keyID": "abc"}, "keyID"),
        ({"server": SERVER, "keyID": "g" * 64}, "keyID"),
        ({"server": "http://notary.example.com", "keyID": KEY_ID}, "server"),
        ({"server": "notary.example.com=x", "keyID": KEY_ID}, "server"),
        ({"server": "https://[fd00::1]:4443/x y", "keyID": KEY_ID}, "server"),
        ({"keyID": KEY_ID}, "server"),
        ({"server": SERVER, "certificate": "MIIB"}, "certificate"),
        (
            {
                "server": SERVER,
                "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
            },
            "certificate",
        ),
        ({"server": SERVER, "keyId": KEY_ID}, "keyId"),
        ({"server": SERVER}, "pinnedTrustRoots[0] needs a keyID or a certificate"),
        (
            {
                "server": SERVER,
                "keyID": KEY_ID,
                "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            },
            "pinnedTrustRoots[0] gives both keyID and certificate",
        ),
    ],
)
def test_malformed_pins_are_refused(pin: dict[str, Any], complaint: str) -> None:
    assert complaint in render_error({"pinnedTrustRoots": [pin]})


def test_helm_lint_strict_passes_with_pins(roots: dict[str, TestCA]) -> None:
    values = {
        "pinnedTrustRoots": [
            {"server": SERVER, "keyID": KEY_ID},
            {"server": SERVER, "certificate": roots["notary root"].cert_pem.decode()},
        ]
    }
    proc = run_helm("lint", "--strict", str(CHART), values=values)
    assert proc.returncode == 0, proc.stdout + proc.stderr
