"""Which signed target a tag or digest resolves to, the way Docker asks notary."""

from __future__ import annotations

import hashlib

from portieris_webhook.trust.lookup import docker_order, find_digest, find_tag, outside_paths

from tests.unit.trust.simulator import RepositorySimulator


def test_targets_releases_wins_over_targets(load):
    sim = RepositorySimulator()
    sim.delegate("targets/releases")
    sim.add_target("targets", "v1", b"from targets")
    wanted = sim.add_target("targets/releases", "v1", b"from releases")

    target = find_tag(load(sim.publish()), "v1")

    assert target is not None and (target.role, target.digest) == ("targets/releases", wanted)


def test_a_tag_only_in_targets_is_found_there(load):
    sim = RepositorySimulator()
    sim.delegate("targets/releases")
    sim.add_target("targets", "v1", b"m")

    target = find_tag(load(sim.publish()), "v1")

    assert target is not None and target.role == "targets"


def test_other_delegations_are_searched_after_releases_and_targets(load):
    sim = RepositorySimulator()
    sim.delegate("targets/alice")
    sim.delegate("targets/releases")
    sim.add_target("targets/alice", "v1", b"alice")
    data = load(sim.publish())

    assert list(docker_order(data)) == ["targets/releases", "targets", "targets/alice"]
    target = find_tag(data, "v1")
    assert target is not None and target.role == "targets/alice"


def test_a_nested_delegation_is_limited_by_its_parents_paths(load):
    sim = RepositorySimulator()
    sim.delegate("targets/team", paths=["prod-"])
    sim.delegate("targets/team/ci", paths=[""])
    sim.add_target("targets/team/ci", "prod-1", b"ok")
    sim.add_target("targets/team/ci", "dev-1", b"not allowed")
    data = load(sim.publish())

    assert find_tag(data, "prod-1") is not None
    assert find_tag(data, "dev-1") is None
    assert outside_paths(data, "dev-1") == [
        "targets/team/ci lists it, but targets/team may only sign paths 'prod-'"
    ]


def test_path_hash_prefixes_grant_nothing_as_in_notary(load):
    """notary checks delegation `paths` only; a role with hash prefixes and no paths signs nothing."""
    sim = RepositorySimulator()
    role = sim.delegate("targets/releases")
    role.paths = None
    sim.add_target("targets/releases", "v1", b"m")
    files = sim.publish()
    import json

    from tests.unit.trust.simulator import envelope

    targets = json.loads(files["targets"])["signed"]
    prefix = hashlib.sha256(b"v1").hexdigest()[:2]
    targets["delegations"]["roles"][0]["path_hash_prefixes"] = [prefix]
    files["targets"] = envelope(targets, sim.targets.keys)
    # re-publish snapshot/timestamp over the edited targets
    sim.targets.signers = None
    import portieris_webhook.trust.lookup as lookup

    snapshot = json.loads(files["snapshot"])["signed"]
    from tests.unit.trust.simulator import file_meta

    snapshot["meta"]["targets"] = file_meta(files["targets"])
    files["snapshot"] = envelope(snapshot, sim.snapshot.keys)
    timestamp = json.loads(files["timestamp"])["signed"]
    timestamp["meta"]["snapshot"] = file_meta(files["snapshot"])
    files["timestamp"] = envelope(timestamp, sim.timestamp.keys)

    data = load(files)

    assert lookup.find_tag(data, "v1") is None
    assert not lookup.allowed(data.chains["targets/releases"], "v1")
    assert not lookup.allowed(data.chains["targets/releases"], "some-other-tag-" + prefix)


def test_a_digest_reference_matches_any_signed_tag_with_that_digest(load):
    sim = RepositorySimulator()
    sim.delegate("targets/releases")
    digest = sim.add_target("targets/releases", "v1", b"m")
    sim.add_target("targets/releases", "stable", b"m")
    data = load(sim.publish())

    found = find_digest(data, bytes.fromhex(digest.split(":")[1]))

    assert sorted(t.name for t in found) == ["stable", "v1"]
    assert find_digest(data, hashlib.sha256(b"other").digest()) == []


def test_a_delegation_without_published_metadata_is_treated_as_empty(load):
    sim = RepositorySimulator()
    sim.delegate("targets/releases")
    sim.delegate("targets/alice")
    sim.add_target("targets/releases", "v1", b"m")
    files = sim.publish()
    import json

    from tests.unit.trust.simulator import envelope, file_meta

    snapshot = json.loads(files["snapshot"])["signed"]
    del snapshot["meta"]["targets/alice"]
    files["snapshot"] = envelope(snapshot, sim.snapshot.keys)
    timestamp = json.loads(files["timestamp"])["signed"]
    timestamp["meta"]["snapshot"] = file_meta(files["snapshot"])
    files["timestamp"] = envelope(timestamp, sim.timestamp.keys)

    data = load(files)

    assert "targets/alice" not in data.roles and find_tag(data, "v1") is not None
