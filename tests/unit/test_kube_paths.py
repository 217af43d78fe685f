"""Owner lookups in cluster mode: an ownerReference can only ever name the object it claims."""

import pytest

from portieris_webhook.admission.owners import OwnerRef
from portieris_webhook.cluster.kube import owner_path

UID = "1f0c5f0e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("api_version", "kind", "name", "path"),
    [
        ("apps/v1", "ReplicaSet", "web-7d9f", "/apis/apps/v1/namespaces/team/replicasets/web-7d9f"),
        ("batch/v1", "Job", "nightly.1", "/apis/batch/v1/namespaces/team/jobs/nightly.1"),
        ("v1", "ReplicationController", "rc", "/api/v1/namespaces/team/replicationcontrollers/rc"),
        ("v1", "Pod", "p", "/api/v1/namespaces/team/pods/p"),
    ],
)
def test_owner_paths(api_version, kind, name, path):
    assert owner_path("team", OwnerRef(api_version, kind, name, UID)) == path


@pytest.mark.parametrize(
    ("api_version", "name"),
    [
        ("apps/v1", "x/../../../kube-system/replicasets/coredns"),
        ("apps/v1", "../x"),
        ("apps/v1", "a%2F..%2Fb"),
        ("apps/v1", "UPPER"),
        ("apps/v1", "a?watch=1"),
        ("apps/v1/namespaces/kube-system/replicasets/x/../..", "web"),
        ("apps/v1?x=", "web"),
        ("apps/../v1", "web"),
    ],
)
def test_owner_references_that_could_steer_the_lookup_are_refused(api_version, name):
    assert owner_path("team", OwnerRef(api_version, "ReplicaSet", name, UID)) is None
