"""The informers' handling of each listed or watched object: one they cannot use is recorded
(log, count, its name) and never stops the objects after it (kube._apply), checked without a
server; tests/e2e/test_kube_informers.py does the same through the real API server."""

import ssl

import pytest

from portieris_webhook.cluster.kube import ClusterState, KubeApi, _apply
from portieris_webhook.cluster.state import ADDED, DELETED, MODIFIED
from portieris_webhook.kits import nesting
from portieris_webhook.serving.metrics import Metrics, UnusableObjectMetrics

from tests.builders import image_policy


@pytest.fixture
def state() -> ClusterState:
    return ClusterState(KubeApi("https://127.0.0.1:1", ssl.create_default_context(), None, None))


def policy(name: str, namespace: str = "team") -> dict:
    return image_policy(name, namespace, ("lab/*", {}))


def names(state: ClusterState) -> list[str]:
    return sorted(p.name for p in state.image_policies())


@pytest.mark.parametrize(
    "unusable",
    [
        None,
        "text",
        {"kind": "ImagePolicy", "metadata": "not an object"},
        {"kind": "ImagePolicy", "metadata": {"name": "odd", "namespace": "team"}, "spec": []},
        {"kind": "Secret", "metadata": {"name": "s", "namespace": "team"}, "data": ["x"]},
        {"kind": "ServiceAccount", "metadata": {"name": "a"}, "imagePullSecrets": "x"},
    ],
    ids=["none", "text", "metadata-text", "spec-list", "secret-data-list", "account-secrets-text"],
)
def test_an_object_that_cannot_be_used_never_stops_the_next_event(state, unusable):
    _apply(state, ADDED, policy("first"), False)
    _apply(state, MODIFIED, unusable, False)
    _apply(state, ADDED, policy("next"), False)
    _apply(state, DELETED, policy("first"), False)
    assert names(state) == ["next"]


def test_a_pruned_policy_is_kept_as_invalid_under_its_name_replacing_what_it_was(state):
    _apply(state, ADDED, policy("p"), False)
    pruned = {**policy("p"), "spec": {"nested": nesting.PRUNED}}
    _apply(state, MODIFIED, pruned, True)
    assert names(state) == []
    [record] = state.invalid_policies()
    assert (record.namespace, record.name) == ("team", "p")
    assert "nested deeper than 100 levels" in record.error
    assert state.unusable == {"ImagePolicy": 1}
    _apply(state, DELETED, pruned, True)
    assert state.invalid_policies() == []


def test_a_pruned_secret_forgets_the_version_before_it(state):
    secret = {"kind": "Secret", "metadata": {"name": "keys", "namespace": "team"}, "data": {}}
    _apply(state, ADDED, secret, False)
    assert state.secret("team", "keys") is not None
    _apply(state, MODIFIED, {**secret, "data": {"key": nesting.PRUNED}}, True)
    assert state.secret("team", "keys") is None
    assert state.unusable == {"Secret": 1}


def test_an_object_of_a_page_that_was_pruned_elsewhere_is_applied(state):
    """A page holding one deep object is pruned as a whole; the others are used as they are."""
    _apply(state, ADDED, policy("shallow"), True)
    assert names(state) == ["shallow"]
    assert state.unusable == {}


def test_unusable_objects_are_counted_by_kind_in_metrics(state):
    metrics = Metrics()
    metrics.registry.register(UnusableObjectMetrics(state.unusable))
    _apply(state, MODIFIED, {**policy("p"), "spec": {"nested": nesting.PRUNED}}, True)
    _apply(state, MODIFIED, {**policy("q"), "spec": {"nested": nesting.PRUNED}}, True)
    text = metrics.exposition().decode()
    assert 'portieris_informer_unusable_objects_total{kind="ImagePolicy"} 2.0' in text
