"""A policy field the webhook cannot honour denies the images the policy governs, in every mode.

Dropping such a field would turn a rule into allow-everything: `requirement:`
for `requirements:` leaves no requirement, `vulnerability:` alone leaves an
empty policy. Cluster mode stores the object as invalid (what the watch does
with every policy object); offline mode refuses the manifests.
"""

import pytest
import yaml

from portieris_webhook.cluster.manifests import load_manifests
from portieris_webhook.cluster.state import ADDED, MemoryState
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.errors import InvalidPolicy, ManifestError

from tests.builders import cluster_policy, image_policy, pod_spec, request_for, workload

UNHONOURED = {
    "vulnerability": (
        {"vulnerability": {"ICCRVA": {"enabled": True, "account": "123"}}},
        "policy.vulnerability: not implemented by this webhook",
    ),
    "requirement typo": (
        {"simple": {"requirement": [{"type": "reject"}]}},
        "policy.simple.requirement: unknown field",
    ),
    "enable typo": ({"trust": {"enable": True}}, "policy.trust.enable: unknown field"),
}


async def _decide(state: MemoryState, namespace: str) -> dict:
    enforcer = Enforcer(state, {}, Settings())
    obj = workload("Pod", pod_spec("lab/app:1"), namespace=namespace)
    return (await enforcer.decide(request_for(obj))).response.to_review()["response"]


@pytest.mark.parametrize("case", sorted(UNHONOURED))
async def test_cluster_mode_denies_every_image_the_policy_governs_naming_the_field(case):
    policy, named = UNHONOURED[case]
    state = MemoryState()
    state.mark_ready()
    with pytest.raises(InvalidPolicy):
        state.apply(ADDED, image_policy("p", "team", ("lab/*", policy)))
    response = await _decide(state, "team")
    assert response["allowed"] is False
    assert "ImagePolicy team/p" in response["status"]["message"]
    assert named in response["status"]["message"]


@pytest.mark.parametrize("case", sorted(UNHONOURED))
async def test_an_unhonoured_cluster_policy_denies_in_every_namespace_without_image_policies(case):
    policy, named = UNHONOURED[case]
    state = MemoryState()
    state.mark_ready()
    with pytest.raises(InvalidPolicy):
        state.apply(ADDED, cluster_policy("default", ("*", policy)))
    response = await _decide(state, "anywhere")
    assert response["allowed"] is False and named in response["status"]["message"]


@pytest.mark.parametrize("case", sorted(UNHONOURED))
def test_offline_mode_refuses_the_manifests_naming_file_and_field(tmp_path, case):
    policy, named = UNHONOURED[case]
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump(cluster_policy("default", ("*", policy))))
    with pytest.raises(ManifestError) as info:
        load_manifests([str(tmp_path)])
    assert str(path) in str(info.value) and named in str(info.value)
