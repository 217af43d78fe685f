"""signedIdentity rules, case by case as containers/image's policy_reference_match.go decides."""

from __future__ import annotations

import pytest

from portieris_webhook.images import parse_image
from portieris_webhook.policy.model import SignedIdentity
from portieris_webhook.simple.identity import (
    DockerRef,
    identity_accepted,
    intended_reference,
    parse_canonical,
    parse_normalized,
    remap,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
HEX64 = "f" * 64


def accepted(identity: SignedIdentity, image: str, signed: str) -> bool:
    return identity_accepted(identity, intended_reference(parse_image(image)), signed)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1", "docker.io/library/busybox:1"),
        (f"busybox@{D1}", f"docker.io/library/busybox@{D1}"),
        (f"r.io:5000/a/b:t@{D1}", f"r.io:5000/a/b:t@{D1}"),
    ],
)
def test_the_intended_reference_adds_latest_only_without_tag_and_digest(
    image: str, expected: str
) -> None:
    assert str(intended_reference(parse_image(image))) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", DockerRef("docker.io/library/busybox")),
        ("index.docker.io/busybox:1", DockerRef("docker.io/library/busybox", "1")),
        ("localhost/app", DockerRef("localhost/app")),
        (HEX64, None),
        ("busybox/Upper", None),
        ("UPPER", None),
        ("Upper.io/case", DockerRef("Upper.io/case")),
        ("", None),
        ("a/b:t@sha256:short", None),
    ],
)
def test_signed_references_parse_like_parse_normalized_named(
    text: str, expected: DockerRef | None
) -> None:
    assert parse_normalized(text) == expected


def test_canonical_parsing_refuses_what_normalisation_would_change() -> None:
    assert parse_canonical("docker.io/library/busybox:1") == DockerRef(
        "docker.io/library/busybox", "1"
    )
    assert parse_canonical("busybox:1") is None


EXACT = SignedIdentity("matchExact")
DEFAULT = SignedIdentity()
REPOSITORY = SignedIdentity("matchRepository")


@pytest.mark.parametrize(
    ("identity", "image", "signed", "expected"),
    [
        # matchExact: the whole reference, never a name-only one
        (EXACT, "busybox:1", "docker.io/library/busybox:1", True),
        (EXACT, "busybox:1", "busybox:1", True),
        (EXACT, "busybox", "busybox:latest", True),
        (EXACT, "busybox:1", "busybox:2", False),
        (EXACT, "busybox:1", "busybox", False),
        (EXACT, "busybox:1", f"busybox@{D1}", False),
        (EXACT, f"busybox@{D1}", f"busybox@{D1}", True),
        (EXACT, f"busybox@{D1}", "busybox:latest", False),
        (EXACT, "busybox:1", "other:1", False),
        # matchRepoDigestOrExact (the default): exact for a tag, the repository for a digest
        (DEFAULT, "busybox:1", "busybox:1", True),
        (DEFAULT, "busybox:1", "busybox:2", False),
        (DEFAULT, "busybox:1", "busybox", False),
        (DEFAULT, f"busybox@{D1}", "busybox:anything", True),
        (DEFAULT, f"busybox@{D1}", f"busybox@{D2}", True),
        (DEFAULT, f"busybox@{D1}", "busybox", False),
        (DEFAULT, f"busybox@{D1}", "other:1", False),
        (DEFAULT, f"busybox:1@{D1}", "busybox:1", False),
        (DEFAULT, f"busybox:1@{D1}", f"busybox:1@{D1}", True),
        # matchRepository: any reference in the same repository, even name-only
        (REPOSITORY, "busybox:1", "busybox:2", True),
        (REPOSITORY, "busybox:1", "busybox", True),
        (REPOSITORY, "busybox:1", f"busybox@{D2}", True),
        (REPOSITORY, "busybox:1", "library/busybox:1", True),
        (REPOSITORY, "busybox:1", "other/busybox:1", False),
        (REPOSITORY, "r.io/a/b:1", "r.io:443/a/b:1", False),
        # matchExactReference: the signature must be exactly the configured reference
        (
            SignedIdentity("matchExactReference", docker_reference="r.io/a/b:1"),
            "x/y:z",
            "r.io/a/b:1",
            True,
        ),
        (
            SignedIdentity("matchExactReference", docker_reference="r.io/a/b:1"),
            "x/y:z",
            "r.io/a/b:2",
            False,
        ),
        (
            SignedIdentity("matchExactReference", docker_reference="r.io/a/b"),
            "x/y:z",
            "r.io/a/b",
            False,
        ),
        (
            SignedIdentity("matchExactReference", docker_reference="busybox:1"),
            "x",
            "docker.io/library/busybox:1",
            True,
        ),
        (
            SignedIdentity("matchExactReference", docker_reference="INVALID"),
            "x",
            "busybox:1",
            False,
        ),
        # matchExactRepository: the signature's repository must be the configured one
        (
            SignedIdentity("matchExactRepository", docker_repository="r.io/a/b"),
            "x",
            "r.io/a/b:7",
            True,
        ),
        (
            SignedIdentity("matchExactRepository", docker_repository="r.io/a/b"),
            "x",
            "r.io/a/b",
            True,
        ),
        (
            SignedIdentity("matchExactRepository", docker_repository="r.io/a/b"),
            "x",
            "r.io/a/c:7",
            False,
        ),
        (
            SignedIdentity("matchExactRepository", docker_repository="busybox"),
            "x",
            "docker.io/library/busybox:1",
            True,
        ),
        # a signed reference that is not a reference never matches
        (REPOSITORY, "busybox:1", HEX64, False),
        (REPOSITORY, "busybox:1", "", False),
        (SignedIdentity("noSuchType"), "busybox:1", "busybox:1", False),
    ],
)
def test_identity_rules(identity: SignedIdentity, image: str, signed: str, expected: bool) -> None:
    assert accepted(identity, image, signed) is expected


def remapping(prefix: str, signed_prefix: str) -> SignedIdentity:
    return SignedIdentity("remapIdentity", prefix=prefix, signed_prefix=signed_prefix)


@pytest.mark.parametrize(
    ("identity", "image", "signed", "expected"),
    [
        (
            remapping("mirror.local/dh", "docker.io/library"),
            "mirror.local/dh/busybox:1",
            "busybox:1",
            True,
        ),
        (
            remapping("mirror.local/dh", "docker.io/library"),
            "mirror.local/dh/busybox:1",
            "busybox:2",
            False,
        ),
        (
            remapping("mirror.local/dh", "docker.io/library"),
            "mirror.local/dh/busybox:1",
            "mirror.local/dh/busybox:1",
            False,
        ),
        # a prefix matches whole path components only; otherwise the image is checked as is
        (
            remapping("mirror.local/d", "docker.io/library"),
            "mirror.local/dh/busybox:1",
            "busybox:1",
            False,
        ),
        (
            remapping("mirror.local/d", "docker.io/library"),
            "mirror.local/dh/busybox:1",
            "mirror.local/dh/busybox:1",
            True,
        ),
        # the prefix may be the whole repository name
        (
            remapping("mirror.local/dh/busybox", "docker.io/library/busybox"),
            "mirror.local/dh/busybox:1",
            "busybox:1",
            True,
        ),
        # a host prefix; digest images keep repository semantics after remapping
        (remapping("mirror.local", "r.io"), f"mirror.local/a/b@{D1}", "r.io/a/b:any", True),
        # a remapped reference that is not canonical (a short name) is refused
        (remapping("mirror.local/dh", "busybox"), "mirror.local/dh/x:1", "busybox/x:1", False),
    ],
)
def test_remap_identity(identity: SignedIdentity, image: str, signed: str, expected: bool) -> None:
    assert accepted(identity, image, signed) is expected


def test_remap_leaves_a_non_matching_reference_alone() -> None:
    intended = DockerRef("r.io/a/b", "1")
    assert remap(remapping("other.io", "x.io"), intended) is intended
