"""The persisted trust state's rules (persisted.py): format, merge, reset, bounds, seeding."""

from __future__ import annotations

import base64
import json
import zlib

import pytest

from portieris_webhook.errors import TrustStateError
from portieris_webhook.trust.errors import RollbackError, TrustError
from portieris_webhook.trust.persisted import (
    USED_RESOLUTION,
    Document,
    GunRecord,
    Observation,
    Reconcile,
    StateLimits,
    bound,
    decode,
    encode,
    merge,
    observation,
    reconcile,
    reset,
    seed,
)
from portieris_webhook.trust.updater import GunState, root_hash

from tests.unit.trust.conftest import load_files
from tests.unit.trust.simulator import GUN, RepositorySimulator, make_key

SERVER = "https://notary.example.com"
KEY = (SERVER, GUN)
ROOT_A = b'{"signed":{"version":1}, "root":"A"}'
ROOT_B = b'{"signed":{"version":1}, "root":"B"}'
ROOT_A2 = b'{"signed":{"version":2}, "root":"A2"}'
BOMB = base64.b64encode(zlib.compress(b" " * (600 * 1024))).decode()


def seen_with(
    root: bytes,
    seen: dict[str, int],
    *,
    generation: int = 0,
    used: int = 100,
    lineage: tuple[bytes, ...] = (),
) -> Observation:
    chain = (*(root_hash(r) for r in lineage), root_hash(root))
    return Observation(generation, root, chain, seen, used)


def stored(root: bytes | None, seen: dict[str, int], generation: int = 0, used: int = 100):
    return Document({KEY: GunRecord(generation, root, seen, used)})


# --- format


def test_a_document_round_trips_with_the_exact_root_bytes() -> None:
    root = bytes(range(256))
    document = Document(
        {KEY: GunRecord(2, root, {"root": 1, "timestamp": 7}, 1234), ("s", "g"): GunRecord(1, None)}
    )

    assert decode(encode(document)) == document


def test_an_empty_or_absent_document_is_an_empty_state() -> None:
    assert decode(None) == Document() and decode("") == Document()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("not json", "not JSON"),
        ('{"format": 2, "repositories": []}', "format 2"),
        ('{"format": 1}', "no list of repositories"),
        ('{"format":1,"repositories":[{"server":"s","gun":"g","generation":0,"used":0,'
         '"seen":{},"root":"%%%"}]}', "root is not zlib-compressed base64"),
        ('{"format":1,"repositories":[{"server":"s","gun":"g","generation":0,"used":0,'
         '"seen":{},"root":"' + BOMB + '"}]}', "larger than"),
        ('{"format":1,"repositories":[{"server":"s","gun":"g","generation":-1,"used":0,'
         '"seen":{}}]}', "malformed"),
        ('{"format":1,"repositories":[{"server":"s","gun":"g","generation":0,"used":0,'
         '"seen":{"root":"1"}}]}', "versions"),
    ],
)  # fmt: skip
def test_a_document_that_cannot_be_read_is_refused_never_taken_as_empty(
    text: str, complaint: str
) -> None:
    with pytest.raises(TrustStateError, match=complaint):
        decode(text)


# --- merge


def test_the_first_successful_verification_creates_the_entry() -> None:
    merged = merge(Document(), {KEY: seen_with(ROOT_A, {"root": 1, "timestamp": 3})})

    assert merged.document.records[KEY] == GunRecord(0, ROOT_A, {"root": 1, "timestamp": 3}, 100)
    assert not merged.conflicts


def test_versions_only_go_up_the_highest_of_each_role_is_kept() -> None:
    document = stored(ROOT_A, {"root": 1, "timestamp": 5, "snapshot": 2})

    merged = merge(document, {KEY: seen_with(ROOT_A, {"root": 1, "timestamp": 4, "targets": 3})})

    assert merged.document.records[KEY].seen == {
        "root": 1,
        "timestamp": 5,
        "snapshot": 2,
        "targets": 3,
    }


def test_a_signed_rotation_from_the_stored_root_replaces_it() -> None:
    document = stored(ROOT_A, {"root": 1})

    merged = merge(document, {KEY: seen_with(ROOT_A2, {"root": 2}, lineage=(ROOT_A,))})

    assert merged.document.records[KEY].root == ROOT_A2
    assert merged.document.records[KEY].seen == {"root": 2}


def test_a_different_root_not_rotated_from_the_stored_one_is_refused_with_its_versions() -> None:
    document = stored(ROOT_A, {"root": 1, "timestamp": 2})

    merged = merge(document, {KEY: seen_with(ROOT_B, {"root": 1, "timestamp": 10**9})})

    assert merged.document.records[KEY] == document.records[KEY]
    (conflict,) = merged.conflicts
    assert conflict.stored_root == root_hash(ROOT_A)
    assert conflict.observed_root == root_hash(ROOT_B)


def test_used_is_written_again_only_when_it_moved_by_the_resolution() -> None:
    document = stored(ROOT_A, {"root": 1}, used=1000)

    soon = merge(document, {KEY: seen_with(ROOT_A, {"root": 1}, used=1000 + 60)})
    later = merge(document, {KEY: seen_with(ROOT_A, {"root": 1}, used=1000 + USED_RESOLUTION)})

    assert encode(soon.document) == encode(document)
    assert later.document.records[KEY].used == 1000 + USED_RESOLUTION


def test_merging_is_order_independent_for_versions() -> None:
    one = seen_with(ROOT_A, {"root": 1, "timestamp": 4})
    two = seen_with(ROOT_A, {"root": 1, "timestamp": 6, "snapshot": 3})
    first = merge(merge(Document(), {KEY: one}).document, {KEY: two}).document
    second = merge(merge(Document(), {KEY: two}).document, {KEY: one}).document

    assert (
        first.records[KEY].seen
        == second.records[KEY].seen
        == {
            "root": 1,
            "timestamp": 6,
            "snapshot": 3,
        }
    )


# --- reset


def test_reset_leaves_a_tombstone_one_generation_higher() -> None:
    document = reset(stored(ROOT_A, {"root": 1, "timestamp": 9}), KEY, 500)

    assert document.records[KEY] == GunRecord(1, None, {}, 500)


def test_observations_from_before_a_reset_are_discarded() -> None:
    document = reset(stored(ROOT_A, {"root": 1}), KEY, 500)

    merged = merge(document, {KEY: seen_with(ROOT_A, {"root": 1, "timestamp": 9})})

    assert merged.document.records[KEY].root is None


def test_after_a_reset_the_first_verification_is_trusted_again() -> None:
    document = reset(stored(ROOT_A, {"root": 1, "timestamp": 9}), KEY, 500)
    state = seed(document.records[KEY])

    merged = merge(
        document, {KEY: seen_with(ROOT_B, {"timestamp": 1}, generation=state.generation)}
    )

    assert merged.document.records[KEY] == GunRecord(1, ROOT_B, {"timestamp": 1}, 100)


# --- bounds


def records(count: int) -> Document:
    return Document(
        {
            (SERVER, f"reg.io/app{i}"): GunRecord(0, ROOT_A, {"root": 1}, used=i)
            for i in range(count)
        }
    )


def test_the_least_recently_used_entries_are_dropped_past_the_count() -> None:
    bounded, dropped = bound(records(5), StateLimits(max_entries=3))

    assert sorted(g for _, g in bounded.records) == ["reg.io/app2", "reg.io/app3", "reg.io/app4"]
    assert dropped == ((SERVER, "reg.io/app0"), (SERVER, "reg.io/app1"))


def test_the_encoded_document_stays_within_the_byte_bound() -> None:
    document = records(50)
    limit = len(encode(document)) // 2

    bounded, dropped = bound(document, StateLimits(max_bytes=limit))

    assert len(encode(bounded)) <= limit < len(encode(document))
    assert min(r.used for r in bounded.records.values()) > max(
        document.records[k].used for k in dropped
    )


def test_a_document_within_its_bounds_is_left_alone() -> None:
    document = records(3)
    assert bound(document, StateLimits()) == (document, ())


# --- processes: seeding and following the stored record, with real TUF refreshes


def test_a_fresh_process_seeded_from_the_state_refuses_another_root_for_the_gun(repo) -> None:
    first = GunState()
    load_files(repo.publish(), state=first)
    document = merge(Document(), {KEY: observation(first, 100)}).document
    impostor = RepositorySimulator()  # same GUN, certificates and keys of its own
    impostor.delegate("targets/releases")
    impostor.add_target("targets/releases", "v1", b"evil")

    with pytest.raises(TrustError, match="differs"):
        load_files(impostor.publish(bump=True), state=seed(document.records[KEY]))
    assert load_files(repo.publish(), state=seed(document.records[KEY])).gun == GUN


def test_a_fresh_process_seeded_from_the_state_refuses_rolled_back_versions(repo) -> None:
    old = repo.publish()
    first = GunState()
    load_files(repo.publish(bump=True), state=first)
    document = merge(Document(), {KEY: observation(first, 100)}).document

    with pytest.raises(RollbackError, match="rollback"):
        load_files(old, state=seed(document.records[KEY]))


def test_a_fresh_process_follows_a_rotation_persisted_by_another(repo) -> None:
    first = GunState()
    load_files(repo.publish(), state=first)
    document = merge(Document(), {KEY: observation(first, 100)}).document
    second = seed(document.records[KEY])
    repo.rotate_root([make_key("ecdsa-x509", common_name=GUN)])
    load_files(repo.publish(bump=True), state=second)

    document = merge(document, {KEY: observation(second, 200)}).document

    assert document.records[KEY].root == repo.root_bytes
    assert document.records[KEY].seen["root"] == 2


def test_reconcile_adopts_a_root_trusted_first_elsewhere() -> None:
    state = GunState(trusted_root=ROOT_B, lineage=[root_hash(ROOT_B)], seen={"timestamp": 50})

    assert reconcile(state, GunRecord(0, ROOT_A, {"timestamp": 2})) is Reconcile.ADOPT


def test_reconcile_keeps_a_local_rotation_and_merges_versions_of_the_same_root() -> None:
    rotated = GunState(trusted_root=ROOT_A2, lineage=[root_hash(ROOT_A), root_hash(ROOT_A2)])
    same = GunState(trusted_root=ROOT_A, lineage=[root_hash(ROOT_A)], seen={"timestamp": 3})
    record = GunRecord(0, ROOT_A, {"timestamp": 7, "snapshot": 2})

    assert reconcile(rotated, record) is Reconcile.KEEP
    assert reconcile(same, record) is Reconcile.KEEP
    assert same.seen == {"timestamp": 7, "snapshot": 2}


def test_reconcile_forgets_a_gun_reset_after_it_was_learnt() -> None:
    state = GunState(trusted_root=ROOT_A, lineage=[root_hash(ROOT_A)])

    assert reconcile(state, GunRecord(1, None)) is Reconcile.FORGET


def test_show_describes_the_root_by_version_hash_and_key_ids(repo) -> None:
    from portieris_webhook.trust.persisted import describe

    document = Document({KEY: GunRecord(0, repo.root_bytes, {"root": 1}, 5)})

    (entry,) = describe(document)

    root = json.loads(repo.root_bytes)["signed"]
    assert entry["root_version"] == 1
    assert entry["root_keyids"] == root["roles"]["root"]["keyids"]
    assert entry["root_sha256"] == root_hash(repo.root_bytes)
