"""Sigstore trust roots for sigstore.trustRoots, checked (pure functions)."""

from __future__ import annotations

import re
import warnings

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from k8sapp_portieris.common import trust_roots
from k8sapp_portieris.common.errors import OverridesError

from tests.fixtures.pki import TestCA


def public_pem(key: object) -> str:
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def dsa_public_pem() -> str:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "DSA is deprecated")
        return public_pem(dsa.generate_private_key(2048).public_key())


@pytest.fixture(scope="module")
def material() -> dict[str, str]:
    root = TestCA.create("Example Fulcio root")
    return {
        "ec": public_pem(ec.generate_private_key(ec.SECP256R1()).public_key()),
        "p384": public_pem(ec.generate_private_key(ec.SECP384R1()).public_key()),
        "rsa": public_pem(rsa.generate_private_key(65537, 2048).public_key()),
        "ed25519": public_pem(ed25519.Ed25519PrivateKey.generate().public_key()),
        "root": root.cert_pem.decode(),
        "leaf": root.issue("tsa.example.com")[0].decode(),
        "root key": root.key_pem.decode(),
    }


@pytest.mark.parametrize("kind", ["ec", "p384", "rsa", "ed25519"])
def test_public_keys_are_taken_in_canonical_pem(material: dict[str, str], kind: str) -> None:
    messy = "\n\n" + material[kind].replace("\n", "\r\n") + "  \n"
    assert trust_roots.parse_trust_roots({"k": messy}, "src") == {"k": material[kind]}


def test_several_keys_in_one_entry(material: dict[str, str]) -> None:
    both = material["ec"] + material["rsa"]
    assert trust_roots.parse_trust_roots({"keys": both}, "src") == {"keys": both}


def test_a_chain_with_its_root_is_taken(material: dict[str, str]) -> None:
    chain = material["leaf"] + material["root"]
    assert trust_roots.parse_trust_roots({"tsa": chain}, "src") == {"tsa": chain}


def test_entries_come_back_by_name(material: dict[str, str]) -> None:
    got = trust_roots.parse_trust_roots({"rekor": material["ec"], "fulcio": material["root"]}, "s")
    assert list(got) == ["fulcio", "rekor"]


@pytest.mark.parametrize("entries", [None, {}])
def test_nothing_is_no_roots(entries: object) -> None:
    assert trust_roots.parse_trust_roots(entries, "src") == {}


@pytest.fixture(scope="module")
def bad_entries(material: dict[str, str]) -> dict[str, object]:
    return {
        "root key": material["root key"],
        "leaf": material["leaf"],
        "not pem": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
        "number": 42,
        "mixed": material["ec"] + material["root"],
        "trailing text": material["ec"] + "and a comment",
        "rsa 1024": public_pem(rsa.generate_private_key(65537, 1024).public_key()),
        "dsa": dsa_public_pem(),
        "bad certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "huge": material["ec"] * 2000,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("root key", "holds a PRIVATE KEY: a trust root is public"),
        ("leaf", "holds no root (self-signed) certificate"),
        ("not pem", "holds no PEM block"),
        ("number", "must be PEM text, not int"),
        ("mixed", "mixes public keys and certificates"),
        ("trailing text", "has text outside its PEM blocks"),
        ("rsa 1024", ": an RSA key of 1024 bits is too weak"),
        pytest.param(
            "dsa",
            ": keys of type DSAPublicKey are not supported",
            marks=pytest.mark.filterwarnings("ignore:DSA is deprecated"),
        ),
        ("bad certificate", "is not a valid X.509 certificate"),
        ("csr", "holds a CERTIFICATE REQUEST block"),
        ("huge", "has more than 262144 bytes"),
    ],
)
def test_what_is_not_a_public_trust_root_is_refused_naming_the_entry(
    bad_entries: dict[str, object], text: str, message: str
) -> None:
    expected = "Secret x/y entry 'entry'" + (message if message.startswith(":") else f" {message}")
    with pytest.raises(OverridesError, match=re.escape(expected)):
        trust_roots.parse_trust_roots({"entry": bad_entries[text]}, "Secret x/y")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("has space", "cannot be a Secret key"),
        ("a/b", "cannot be a Secret key"),
        ("x" * 254, "cannot be a Secret key"),
        ("image", "sysinv reads as an image to download"),
        ("Images", "sysinv reads as an image to download"),
        ("imageTag", "sysinv reads as an image to download"),
        ("tag", "sysinv reads as an image to download"),
    ],
)
def test_names_must_be_secret_keys_that_sysinv_does_not_take_for_images(
    material: dict[str, str], name: str, message: str
) -> None:
    with pytest.raises(OverridesError, match=message):
        trust_roots.parse_trust_roots({name: material["ec"]}, "src")


def test_not_a_map_is_refused() -> None:
    with pytest.raises(OverridesError, match="must be a map of entry name to PEM text, not list"):
        trust_roots.parse_trust_roots(["x"], "sigstore.trustRoots")


def test_user_problems_are_all_reported_and_null_removes_an_entry(
    material: dict[str, str],
) -> None:
    user = {
        "fulcio": material["root"],
        "rekor": None,  # removes the platform's entry of that name
        "broken": "no pem",
        "private": material["root key"],
    }
    problems = trust_roots.user_trust_root_problems(user)
    assert len(problems) == 2
    assert "sigstore.trustRoots entry 'broken' holds no PEM block" in problems[0]
    assert "sigstore.trustRoots entry 'private' holds a PRIVATE KEY" in problems[1]
    assert trust_roots.user_trust_root_problems(None) == []
    assert trust_roots.user_trust_root_problems({"rekor": material["ec"]}) == []
    assert trust_roots.user_trust_root_problems("x") == [
        "sigstore.trustRoots must be a map of entry name to PEM text, not str"
    ]
