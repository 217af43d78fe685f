"""The trust verifier's inputs: which trust server, which root pins, which signers."""

from __future__ import annotations

import base64

import pytest

from portieris_webhook.cluster.state import ADDED, MemoryState
from portieris_webhook.config.settings import Settings
from portieris_webhook.errors import ConfigurationError, SecretError
from portieris_webhook.images import parse_image
from portieris_webhook.policy.model import Policy, TrustPolicy
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.trust.client import normalise_server
from portieris_webhook.trust.errors import TrustError
from portieris_webhook.trust.verifier import TrustVerifier, parse_pins
from portieris_webhook.verify.contract import ImageCheck, VerifierContext

from tests.unit.trust.simulator import make_key


def verifier(settings: Settings | None = None, state: MemoryState | None = None) -> TrustVerifier:
    context = VerifierContext(settings or Settings(), state or MemoryState(), HttpClient(None))
    return TrustVerifier(context)


def check(image: str, trust_server: str | None = None, signers: tuple[str, ...] = ()) -> ImageCheck:
    policy = Policy(trust=TrustPolicy(True, trust_server, signers))
    return ImageCheck(parse_image(image), policy, "default", (), 0.0)


@pytest.mark.parametrize(
    ("image", "policy_server", "default", "expected"),
    [
        (
            "registry.local:5000/app:v1",
            "notary.local:4443",
            "https://other",
            "https://notary.local:4443",
        ),
        ("registry.local:5000/app:v1", None, "https://Notary.Corp/", "https://notary.corp"),
        ("nginx:1.25", None, None, "https://notary.docker.io"),
        ("docker.io/library/nginx", None, None, "https://notary.docker.io"),
    ],
)
def test_the_trust_server_is_the_policys_then_the_default_then_docker_hubs(
    image, policy_server, default, expected
):
    v = verifier(Settings(default_trust_server=default))

    assert v.trust_server(check(image, policy_server)) == expected


def test_without_a_trust_server_a_private_registry_is_denied():
    with pytest.raises(TrustError, match=r"no trust server is known for registry\.local:5000"):
        verifier().trust_server(check("registry.local:5000/app:v1"))


def test_the_gun_is_the_normalised_repository():
    assert check("nginx").image.repository == "docker.io/library/nginx"


def test_pins_take_a_key_id_or_a_certificate_file(tmp_path):
    key = make_key("ecdsa-x509")
    cert_file = tmp_path / "root.crt"
    cert_file.write_bytes(base64.b64decode(key.public_b64))

    pins = parse_pins([f"notary.local={'ab' * 32}", f"https://notary.local/={cert_file}"])

    pin = pins["https://notary.local"]
    assert pin.keyids == {"ab" * 32} and len(pin.certificates) == 1


@pytest.mark.parametrize("entry", ["no-equals-sign", "https://notary.local=/does/not/exist"])
def test_a_bad_pin_is_a_configuration_error(entry):
    with pytest.raises(ConfigurationError, match="pinned-trust-root"):
        parse_pins([entry])


def signer_state(**data: bytes) -> MemoryState:
    state = MemoryState()
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    state.apply(
        ADDED,
        {"kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, "data": encoded},
    )
    return state


def test_a_signer_secret_gives_the_role_and_key():
    key = make_key("ecdsa")
    v = verifier(state=signer_state(name=b"alice\n", publicKey=key.spki_pem))

    (signer,) = v.signers(check("r.local/app:v1", signers=("s",)))

    assert signer.role == "targets/alice" and signer.secret == "s"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": b"alice"}, "must hold data keys 'name' and 'publicKey'"),
        ({"name": b"alice", "publicKey": b"not a pem"}, "publicKey is not a PEM"),
    ],
)
def test_a_malformed_signer_secret_is_denied(data, message):
    v = verifier(state=signer_state(**data))

    with pytest.raises(SecretError, match=message):
        v.signers(check("r.local/app:v1", signers=("s",)))


@pytest.mark.parametrize(
    "spelling",
    [
        "notary.example.com",
        "https://notary.example.com",
        "https://NOTARY.example.com/",
        "https://notary.example.com:443",
        "notary.example.com:443/",
    ],
)
def test_every_spelling_of_a_trust_server_is_one_server(spelling):
    # A root pin written one way must apply to a policy that writes the server another way.
    assert normalise_server(spelling) == "https://notary.example.com"


def test_a_non_default_port_is_kept():
    assert normalise_server("notary.example.com:4443") == "https://notary.example.com:4443"
