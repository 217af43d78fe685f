"""The cluster state: every writer goes through `apply(event, object)`."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from portieris_webhook.admission.owners import OwnerRef
from portieris_webhook.cluster.state import ADDED, DELETED, MODIFIED, MemoryState
from portieris_webhook.errors import InvalidPolicy, ManifestError

from tests.builders import REJECT, cluster_policy, image_policy, pod_spec, workload


def secret(data: str) -> dict[str, Any]:
    encoded = base64.b64encode(data.encode()).decode()
    return {
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "team"},
        "data": {"k": encoded},
    }


def account(pull_secret: str) -> dict[str, Any]:
    return {
        "kind": "ServiceAccount",
        "metadata": {"name": "sa", "namespace": "team"},
        "imagePullSecrets": [{"name": pull_secret}],
    }


def replicaset(image: str) -> dict[str, Any]:
    obj = workload("ReplicaSet", pod_spec(image), name="rs", namespace="team")
    obj["metadata"]["uid"] = "rs-uid"
    return obj


OWNER = OwnerRef("apps/v1", "ReplicaSet", "rs", "rs-uid")


async def _read(state: MemoryState, kind: str) -> Any:
    """What the request path reads of the one object of `kind` the tests below write."""
    if kind == "ImagePolicy":
        return [p.repositories[0].pattern for p in state.image_policies()]
    if kind == "ClusterImagePolicy":
        return [p.repositories[0].pattern for p in state.cluster_image_policies()]
    if kind == "Secret":
        found = state.secret("team", "s")
        return found.data["k"].decode() if found else None
    if kind == "ServiceAccount":
        account = state.service_account("team", "sa")
        return account.image_pull_secrets[0] if account else None
    return await state.owner_images("team", OWNER)


# kind -> (first version, what is read of it, second version, what is read of that, nothing)
VERSIONS: dict[str, tuple[Any, Any, Any, Any, Any]] = {
    "ImagePolicy": (
        image_policy("p", "team", ("a/*", {})),
        ["a/*"],
        image_policy("p", "team", ("b/*", {})),
        ["b/*"],
        [],
    ),
    "ClusterImagePolicy": (
        cluster_policy("c", ("a/*", {})),
        ["a/*"],
        cluster_policy("c", ("b/*", {})),
        ["b/*"],
        [],
    ),
    "Secret": (secret("one"), "one", secret("two"), "two", None),
    "ServiceAccount": (account("one"), "one", account("two"), "two", None),
    "ReplicaSet": (replicaset("a/x:1"), {"a/x:1"}, replicaset("b/x:1"), {"b/x:1"}, None),
}


@pytest.mark.parametrize("kind", sorted(VERSIONS))
async def test_added_is_stored_modified_replaces_it_and_deleted_forgets_it(kind):
    first, read_first, second, read_second, nothing = VERSIONS[kind]
    state = MemoryState()
    assert await _read(state, kind) == nothing
    state.apply(ADDED, first)
    assert await _read(state, kind) == read_first
    state.apply(MODIFIED, second)
    assert await _read(state, kind) == read_second
    state.apply(DELETED, second)
    assert await _read(state, kind) == nothing


def test_an_invalid_policy_is_kept_as_invalid_until_it_is_fixed_or_deleted():
    state = MemoryState()
    state.apply(ADDED, image_policy("p", "team", ("a/*", {})))
    broken = image_policy("p", "team", ("a/*", {"trust": {"enabled": "yes"}}))
    with pytest.raises(InvalidPolicy, match="must be true or false"):
        state.apply(MODIFIED, broken)
    assert state.image_policies() == []
    [record] = state.invalid_policies()
    assert (record.kind, record.namespace, record.name) == ("ImagePolicy", "team", "p")
    assert "ImagePolicy team/p" in record.error
    state.apply(MODIFIED, image_policy("p", "team", ("b/*", REJECT)))
    assert state.invalid_policies() == [] and len(state.image_policies()) == 1
    with pytest.raises(InvalidPolicy):
        state.apply(MODIFIED, broken)
    state.apply(DELETED, broken)
    assert state.invalid_policies() == [] and state.image_policies() == []


def test_a_secret_whose_data_is_not_base64_is_refused_naming_it():
    state = MemoryState()
    bad = {"kind": "Secret", "metadata": {"name": "s", "namespace": "team"}, "data": {"k": "***"}}
    with pytest.raises(ManifestError, match=r"Secret team/s: data\.k is not base64"):
        state.apply(ADDED, bad)
    assert state.secret("team", "s") is None


def test_a_secret_modified_into_unusable_data_forgets_its_earlier_version():
    # A key secret replaced with garbage must not leave the old key trusted.
    state = MemoryState()
    state.apply(ADDED, secret("old key"))
    bad = {"kind": "Secret", "metadata": {"name": "s", "namespace": "team"}, "data": {"k": "***"}}
    with pytest.raises(ManifestError, match="not base64"):
        state.apply(MODIFIED, bad)
    assert state.secret("team", "s") is None


@pytest.mark.parametrize("event", ["BOOKMARK", "ERROR", "added", ""])
def test_an_event_that_is_not_a_change_to_an_object_is_a_programming_error(event):
    with pytest.raises(ValueError, match="is not one of ADDED, MODIFIED, DELETED"):
        MemoryState().apply(event, cluster_policy("c", ("*", {})))


async def test_clear_forgets_every_object_of_one_kind_and_nothing_else():
    state = MemoryState()
    for obj in (
        image_policy("p", "team", ("a/*", {})),
        cluster_policy("c", ("a/*", {})),
        secret("one"),
        account("one"),
        replicaset("a/x:1"),
    ):
        state.apply(ADDED, obj)
    with pytest.raises(InvalidPolicy):
        state.apply(ADDED, cluster_policy("broken", ("*", {"mutateImage": 3})))
    state.clear("ClusterImagePolicy")
    assert state.cluster_image_policies() == [] and state.invalid_policies() == []
    assert len(state.image_policies()) == 1
    state.clear("ReplicaSet")
    assert await state.owner_images("team", OWNER) is None
    assert state.secret("team", "s") is not None
    assert state.service_account("team", "sa") is not None


@pytest.mark.parametrize("kind", ["ImagePolicy", "ClusterImagePolicy", "Secret", "ServiceAccount"])
def test_every_change_to_what_requests_read_moves_the_generation(kind):
    first, _, second, _, _ = VERSIONS[kind]
    state = MemoryState()
    seen = [state.generation()]
    for event, obj in ((ADDED, first), (MODIFIED, second), (DELETED, second)):
        state.apply(event, obj)
        seen.append(state.generation())
    state.clear(kind)
    seen.append(state.generation())
    assert len(set(seen)) == len(seen)


def test_a_refused_object_moves_the_generation_too():
    state = MemoryState()
    state.apply(ADDED, secret("one"))
    before = state.generation()
    with pytest.raises(ManifestError):
        state.apply(MODIFIED, {**secret("x"), "data": {"k": "not base64!"}})
    assert state.generation() != before


def test_owners_do_not_move_the_generation():
    state = MemoryState()
    before = state.generation()
    state.apply(ADDED, replicaset("a/x:1"))
    state.clear("ReplicaSet")
    assert state.generation() == before
