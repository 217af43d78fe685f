"""Pull-secret credentials: formats, host normalisation, pod-then-service-account order."""

import base64
import json

import pytest

from portieris_webhook.cluster.state import Secret
from portieris_webhook.errors import SecretError
from portieris_webhook.registry.credentials import (
    credentials_for_host,
    credentials_from_secret,
    pull_secret_names,
)

from tests.builders import memory_state


def dockerconfig(name, auths, namespace="ns", legacy=False):
    payload = auths if legacy else {"auths": auths}
    key = ".dockercfg" if legacy else ".dockerconfigjson"
    kind = "kubernetes.io/dockercfg" if legacy else "kubernetes.io/dockerconfigjson"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": kind,
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(json.dumps(payload).encode()).decode()},
    }


def state_with(*secrets, accounts=()):
    return memory_state(*secrets, *accounts)


@pytest.mark.parametrize(
    "host_key",
    ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"],
)
def test_docker_hub_aliases_all_match_docker_io(host_key):
    state = state_with(dockerconfig("hub", {host_key: {"username": "u", "password": "p"}}))
    creds = credentials_for_host(state, "ns", ["hub"], "docker.io")
    assert [(c.username, c.password) for c in creds] == [("u", "p")]


def test_auth_field_and_legacy_dockercfg_are_understood():
    auth = base64.b64encode(b"user:pa:ss").decode()
    state = state_with(dockerconfig("old", {"reg.io:5000": {"auth": auth}}, legacy=True))
    (cred,) = credentials_for_host(state, "ns", ["old"], "reg.io:5000")
    assert (cred.username, cred.password, cred.registry) == ("user", "pa:ss", "reg.io:5000")


def test_port_is_part_of_the_host():
    state = state_with(dockerconfig("s", {"reg.io:5000": {"username": "u", "password": "p"}}))
    assert credentials_for_host(state, "ns", ["s"], "reg.io") == []
    assert len(credentials_for_host(state, "ns", ["s"], "reg.io:5000")) == 1


def test_pod_secrets_come_before_service_account_secrets_without_repeats():
    account = {
        "kind": "ServiceAccount",
        "metadata": {"name": "builder", "namespace": "ns"},
        "imagePullSecrets": [{"name": "sa-secret"}, {"name": "pod-secret"}],
    }
    state = state_with(accounts=[account])
    assert pull_secret_names(state, "ns", ["pod-secret"], "builder") == ["pod-secret", "sa-secret"]
    assert pull_secret_names(state, "ns", [], None) == []


def test_password_never_appears_in_repr():
    state = state_with(dockerconfig("s", {"r.io": {"username": "u", "password": "hunter2"}}))
    (cred,) = credentials_for_host(state, "ns", ["s"], "r.io")
    assert "hunter2" not in repr(cred)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (Secret("ns", "s", "Opaque", {"key": b"x"}), "is not an image pull secret"),
        (
            Secret("ns", "s", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": b"{"}),
            "not valid JSON",
        ),
        (
            Secret(
                "ns", "s", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": b'{"auths": []}'}
            ),
            "no auths object",
        ),
        (
            Secret(
                "ns",
                "s",
                "kubernetes.io/dockerconfigjson",
                {".dockerconfigjson": b'{"auths": {"r": {"auth": "%%%"}}}'},
            ),
            "not base64",
        ),
    ],
)
def test_malformed_pull_secrets_are_explained(secret, message):
    with pytest.raises(SecretError, match=message):
        credentials_from_secret(secret)


def test_malformed_or_missing_pull_secrets_do_not_block_other_credentials():
    good = dockerconfig("good", {"r.io": {"username": "u", "password": "p"}})
    bad = {
        **dockerconfig("bad", {}),
        "data": {".dockerconfigjson": base64.b64encode(b"nope").decode()},
    }
    state = state_with(good, bad)
    creds = credentials_for_host(state, "ns", ["missing", "bad", "good"], "r.io")
    assert [c.source for c in creds] == ["Secret ns/good"]
