"""The pure verifier on trust data captured from a real notary-server (see capture_notary_metadata.py)."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import pytest
from securesystemslib.formats import encode_canonical as sslib_canonical

from portieris_webhook.trust.canonical import encode_canonical
from portieris_webhook.trust.errors import (
    ExpiredMetadataError,
    HashMismatchError,
    RollbackError,
    SignatureError,
)
from portieris_webhook.trust.keys import key_id
from portieris_webhook.trust.lookup import find_digest, find_tag, outside_paths
from portieris_webhook.trust.trusted_set import RootPin, TrustedMetadataSet
from portieris_webhook.trust.updater import GunState, refresh

from tests.unit.trust.simulator import make_key

DATA = Path(__file__).parent / "data"
SCENARIOS = ["releases-v1", "releases-v2", "targets-only", "outside-paths"]


def scenario(name: str) -> tuple[dict[str, bytes], dict]:
    root = DATA / name
    files = {
        str(p.relative_to(root).with_suffix("")): p.read_bytes()
        for p in root.rglob("*.json")
        if p.name != "info.json"
    }
    return files, json.loads((root / "info.json").read_text())


def captured_now(info: dict) -> datetime.datetime:
    return datetime.datetime.fromisoformat(info["captured_at"]) + datetime.timedelta(hours=1)


def load(files, info, *, now=None, state=None, pin=None):
    async def fetch(role: str, max_bytes: int) -> bytes | None:
        return files.get(role)

    import asyncio

    return asyncio.run(
        refresh(info["gun"], state or GunState(), fetch, now or captured_now(info), pin)
    )


@pytest.mark.parametrize("name", SCENARIOS)
def test_canonical_json_reproduces_the_bytes_notary_signed(name):
    files, _ = scenario(name)
    for role, raw in files.items():
        signed = json.loads(raw)["signed"]
        assert encode_canonical(signed) == sslib_canonical(signed).encode(), role


@pytest.mark.parametrize("name", SCENARIOS)
def test_key_ids_are_the_ids_notary_gives_its_keys(name):
    files, _ = scenario(name)
    keys = json.loads(files["root"])["signed"]["keys"]
    for keyid, key in keys.items():
        assert key_id(key["keytype"], key["keyval"]["public"]) == keyid


@pytest.mark.parametrize("name", SCENARIOS)
def test_captured_trust_data_verifies(name):
    files, info = scenario(name)

    data = load(files, info)

    assert set(data.roles) == {r for r in files if r.startswith("targets")}


def test_key_types_notary_uses_are_all_present():
    files, _ = scenario("releases-v1")
    keys = json.loads(files["root"])["signed"]["keys"].values()
    delegation_keys = json.loads(files["targets"])["signed"]["delegations"]["keys"].values()

    assert {k["keytype"] for k in [*keys, *delegation_keys]} >= {"ecdsa", "ecdsa-x509", "ed25519"}


@pytest.mark.parametrize("name", ["releases-v1", "releases-v2", "targets-only"])
def test_each_signed_tag_resolves_to_its_digest_in_its_role(name):
    files, info = scenario(name)
    data = load(files, info)

    for tag, digest in info["tags"].items():
        target = find_tag(data, tag)
        assert target is not None and (target.digest, target.role) == (digest, info["roles"][tag])


def test_a_digest_is_found_only_if_signed():
    files, info = scenario("releases-v2")
    data = load(files, info)

    assert [t.name for t in find_digest(data, bytes.fromhex("22" * 32))] == ["v2"]
    assert find_digest(data, bytes.fromhex("99" * 32)) == []
    assert find_tag(data, "latest") is None


def test_a_tag_outside_the_delegation_paths_is_not_trusted_and_the_reason_is_given():
    files, info = scenario("outside-paths")
    data = load(files, info)

    assert find_tag(data, "prod-1") is not None
    assert find_tag(data, "dev-1") is None
    assert outside_paths(data, "dev-1") == [
        "targets/alice lists it, but targets/alice may only sign paths 'prod-'"
    ]
    assert find_digest(data, bytes.fromhex("44" * 32)) == []


def test_captured_data_is_expired_when_the_clock_passes_the_timestamp_expiry():
    files, info = scenario("releases-v1")
    expires = json.loads(files["timestamp"])["signed"]["expires"]
    later = datetime.datetime.fromisoformat(expires.replace("Z", "+00:00")[:26] + "+00:00")

    with pytest.raises(ExpiredMetadataError, match="timestamp metadata expired"):
        load(files, info, now=later + datetime.timedelta(seconds=1))


def test_older_captured_data_after_newer_was_seen_is_a_rollback():
    new_files, info = scenario("releases-v2")
    old_files, _ = scenario("releases-v1")
    state = GunState()
    load(new_files, info, state=state)

    with pytest.raises(RollbackError, match="older than version"):
        load(old_files, info, state=GunState(seen=state.seen))


@pytest.mark.parametrize("role", ["snapshot", "targets/releases"])
def test_a_captured_role_from_the_older_publish_fails_the_newer_parent_hash(role):
    files, info = scenario("releases-v2")
    old_files, _ = scenario("releases-v1")
    assert old_files[role] != files[role]
    files[role] = old_files[role]

    with pytest.raises(HashMismatchError):
        load(files, info)


def test_a_target_hash_rewritten_in_transit_is_denied():
    files, info = scenario("releases-v1")
    files["targets/releases"] = files["targets/releases"].replace(
        base64.b64encode(bytes.fromhex("11" * 32)), base64.b64encode(bytes.fromhex("66" * 32))
    )

    with pytest.raises(HashMismatchError, match="sha256 hash differs"):
        load(files, info)


def test_a_root_whose_signature_is_replaced_by_another_key_is_denied():
    files, info = scenario("releases-v1")
    document = json.loads(files["root"])
    intruder = make_key("ecdsa-x509")
    document["signatures"] = [intruder.sign(encode_canonical(document["signed"]))]
    files["root"] = json.dumps(document).encode()

    with pytest.raises(SignatureError, match="root metadata has 0 valid"):
        load(files, info)


def test_a_root_without_signatures_is_denied():
    files, info = scenario("releases-v1")
    document = json.loads(files["root"])
    document["signatures"] = []
    files["root"] = json.dumps(document).encode()

    with pytest.raises(SignatureError, match=r"0 valid signature.*1 required"):
        load(files, info)


def test_the_captured_root_can_be_pinned_by_its_key_id():
    files, info = scenario("releases-v1")
    root_keyid = json.loads(files["root"])["signed"]["roles"]["root"]["keyids"][0]

    assert load(files, info, pin=RootPin(frozenset({root_keyid}))).root.version == 1
    with pytest.raises(SignatureError, match="pinned root"):
        load(files, info, pin=RootPin(frozenset({"ab" * 32})))


def test_the_delegation_certificate_is_a_key_of_the_role_that_signed():
    files, info = scenario("releases-v1")
    data = load(files, info)
    from portieris_webhook.trust.keys import load_pem_public

    cert_spki = load_pem_public(info["delegation_certs"]["targets/releases"].encode())

    assert data.signers["targets/releases"] == frozenset({cert_spki})


def test_the_state_machine_alone_walks_the_captured_roles_in_order():
    files, info = scenario("releases-v1")
    trusted = TrustedMetadataSet(info["gun"], files["root"], now=captured_now(info), seen={})
    trusted.update_timestamp(files["timestamp"])
    trusted.update_snapshot(files["snapshot"])
    trusted.update_targets(files["targets"])

    assert trusted.delegated_roles("targets") == ["targets/releases"]
    trusted.update_delegated_targets("targets/releases", files["targets/releases"])
    assert trusted.result().roles["targets/releases"].version == 1
