"""Image references: the distribution grammar and Docker's normalisation."""

import pytest

from portieris_webhook.errors import InvalidImageReference
from portieris_webhook.images import normalise_registry_host, parse_image

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "repository", "tag", "digest", "normalised"),
    [
        ("nginx", "docker.io/library/nginx", None, None, "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx", "1.25", None, "docker.io/library/nginx:1.25"),
        (
            "docker.io/nginx",
            "docker.io/library/nginx",
            None,
            None,
            "docker.io/library/nginx:latest",
        ),
        ("index.docker.io/team/app:v1", "docker.io/team/app", "v1", None, "docker.io/team/app:v1"),
        ("team/app", "docker.io/team/app", None, None, "docker.io/team/app:latest"),
        ("localhost/app", "localhost/app", None, None, "localhost/app:latest"),
        ("localhost:5000/a/b:t", "localhost:5000/a/b", "t", None, "localhost:5000/a/b:t"),
        (
            "registry.local:9001/team/app",
            "registry.local:9001/team/app",
            None,
            None,
            "registry.local:9001/team/app:latest",
        ),
        (f"quay.io/org/app@{DIGEST}", "quay.io/org/app", None, DIGEST, f"quay.io/org/app@{DIGEST}"),
        (
            f"quay.io/org/app:1@{DIGEST}",
            "quay.io/org/app",
            "1",
            DIGEST,
            f"quay.io/org/app:1@{DIGEST}",
        ),
        ("[::1]:5000/app:x", "[::1]:5000/app", "x", None, "[::1]:5000/app:x"),
        (
            "a.b/c__d/e-f.g/h---i:T_1.0-x",
            "a.b/c__d/e-f.g/h---i",
            "T_1.0-x",
            None,
            "a.b/c__d/e-f.g/h---i:T_1.0-x",
        ),
    ],
)
def test_parse_and_normalise(text, repository, tag, digest, normalised):
    ref = parse_image(text)
    assert (ref.repository, ref.tag, ref.digest, ref.normalised) == (
        repository,
        tag,
        digest,
        normalised,
    )
    assert str(ref) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Nginx", "lower-case"),
        ("registry.io/Team/app", "lower-case"),
        ("registry.io//app", "empty path component"),
        ("app:", "tag is empty"),
        (" nginx", "whitespace"),
        ("app@sha256:abc", "not a valid reference"),
        ("app@md5:" + "a" * 32, "not supported"),
        ("app@sha256:" + "A" * 64, "lower-case hex"),
        ("app:" + "t" * 129, "not a valid reference"),
        ("a/" * 130 + "b", "longer than 255"),
        ("app:tag:tag", "not a valid reference"),
    ],
)
def test_invalid_references_are_explained(text, message):
    with pytest.raises(InvalidImageReference, match=message):
        parse_image(text)


def test_effective_tag_defaults_to_latest_only_without_digest():
    assert parse_image("app").effective_tag == "latest"
    assert parse_image(f"app@{DIGEST}").effective_tag is None


@pytest.mark.parametrize(
    ("text", "pinned"),
    [
        ("nginx:1.25", f"nginx@{DIGEST}"),
        ("localhost:5000/a/b:t", f"localhost:5000/a/b@{DIGEST}"),
        (f"quay.io/app:1@{DIGEST}", f"quay.io/app@{DIGEST}"),
    ],
)
def test_pinned_keeps_the_name_as_written(text, pinned):
    assert parse_image(text).pinned(DIGEST) == pinned


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("Registry.Local:5000", "registry.local:5000"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
    ],
)
def test_registry_host_normalisation(value, host):
    assert normalise_registry_host(value) == host
