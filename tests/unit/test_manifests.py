"""Offline mode: manifests on disk stand in for the cluster."""

import pytest

from portieris_webhook.admission.owners import OwnerRef
from portieris_webhook.cluster.manifests import load_manifests
from portieris_webhook.errors import ManifestError

POLICIES = """
apiVersion: portieris.cloud.ibm.com/v1
kind: ClusterImagePolicy
metadata: {name: default}
spec:
  repositories: [{name: "*", policy: {}}]
---
apiVersion: portieris.cloud.ibm.com/v1
kind: ImagePolicy
metadata: {name: team, namespace: team}
spec:
  repositories: [{name: "reg.io/*", policy: {mutateImage: false}}]
---
"""

OTHERS = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata: {name: creds, namespace: team}
  type: Opaque
  stringData: {username: u}
  data: {password: cA==}
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: builder, namespace: team}
  imagePullSecrets: [{name: creds}]
- apiVersion: apps/v1
  kind: ReplicaSet
  metadata: {name: web, namespace: team, uid: rs-uid}
  spec:
    template:
      spec:
        containers: [{name: c, image: reg.io/web:1}]
"""


async def test_a_directory_of_manifests_becomes_the_cluster_state(tmp_path):
    (tmp_path / "policies.yaml").write_text(POLICIES)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "others.yml").write_text(OTHERS)
    (tmp_path / "notes.txt").write_text("not a manifest")
    state = load_manifests([str(tmp_path)])
    assert state.is_ready()
    assert [p.name for p in state.cluster_image_policies()] == ["default"]
    assert [(p.namespace, p.name) for p in state.image_policies()] == [("team", "team")]
    assert state.secret("team", "creds").data == {"username": b"u", "password": b"p"}
    assert state.service_account("team", "builder").image_pull_secrets == ("creds",)
    owner = OwnerRef("apps/v1", "ReplicaSet", "web", "rs-uid")
    assert await state.owner_images("team", owner) == {"reg.io/web:1"}
    assert (
        await state.owner_images("team", OwnerRef("apps/v1", "ReplicaSet", "web", "other")) is None
    )
    assert (
        await state.owner_images("team", OwnerRef("apps/v1", "Deployment", "web", "rs-uid")) is None
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a: [unclosed", "cannot read manifest"),
        ("- just\n- a list\n", "document 1 is not a Kubernetes object"),
        ("kind: Secret\n", "without kind or metadata"),
        (
            "apiVersion: portieris.cloud.ibm.com/v1\nkind: ClusterImagePolicy\nmetadata: {name: x}\n"
            "spec: {repositories: [{name: '*', policy: {mutateImage: 3}}]}\n",
            "mutateImage must be true or false",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '***'}\n",
            "data.k is not base64",
        ),
        ("kind: Secret\nx: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ],
)
def test_bad_manifests_are_reported_with_the_file(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message) as info:
        load_manifests([str(tmp_path)])
    assert "bad.yaml" in str(info.value)


def test_missing_manifest_directory_is_reported(tmp_path):
    with pytest.raises(ManifestError, match="no such file or directory"):
        load_manifests([str(tmp_path / "nope")])
