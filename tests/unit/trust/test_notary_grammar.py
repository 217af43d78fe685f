"""Metadata notary itself refuses is refused: delegation role names and `expires` times.

Role names follow notary's data.IsDelegation: `targets/` then only
`[-a-z0-9_/]`, a clean path (no empty segment, no trailing slash), shorter
than 256 characters. Times are read as Go's time.Parse(time.RFC3339, ...)
reads them (what encoding/json does for notary's `expires`), which is not
what Python's datetime.fromisoformat accepts. tests/integration/
test_trust_go_time.py holds the time parser to the real Go parser.
"""

from __future__ import annotations

import datetime
import json

import pytest

from portieris_webhook.trust.errors import MetadataError
from portieris_webhook.trust.lookup import find_tag
from portieris_webhook.trust.metadata import valid_delegation_name
from portieris_webhook.trust.rfc3339 import parse_go_rfc3339

from tests.unit.trust.simulator import NOW, RepositorySimulator, envelope, file_meta

UTC = datetime.UTC
LONGEST = "targets/" + "a" * 247

# --- delegation role names -----------------------------------------------------------

VALID_NAMES = ["targets/releases", "targets/a-b_c9", "targets/team/dev", LONGEST]
INVALID_NAMES = [
    "targets/Releases",
    "targets/rel.eases",
    "targets/..",
    "targets/.",
    "targets/a b",
    "targets/é",
    "targets/*",
    "targets/x:y",
    "targets/x@y",
    "targets/tab\t",
    LONGEST + "a",
    "targets/",
    "targets//x",
    "targets/x/",
    "targets",
    "releases",
    "root",
    "Targets/x",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_notary_role_names_are_valid_delegation_names(name):
    assert valid_delegation_name(name)


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_names_outside_notarys_grammar_are_not_delegation_names(name):
    assert not valid_delegation_name(name)


def _repository_delegating(*names: str) -> RepositorySimulator:
    sim = RepositorySimulator()
    for name in names:
        sim.delegate(name)
    sim.delegate("targets/releases")
    sim.add_target("targets/releases", "v1", b"manifest v1")
    return sim


@pytest.mark.parametrize(
    "name",
    [
        "targets/Releases",
        "targets/rel.eases",
        "targets/..",
        "targets/é",
        "targets/*",
        LONGEST + "a",
    ],
)
def test_targets_delegating_to_a_name_notary_refuses_is_refused(name, load):
    with pytest.raises(MetadataError, match="not a delegation name notary accepts"):
        load(_repository_delegating(name).publish())


def test_a_delegated_role_delegating_to_a_name_notary_refuses_is_refused(load):
    sim = _repository_delegating("targets/team", "targets/team/Dev")

    with pytest.raises(MetadataError, match="targets/team: delegated role name 'targets/team/Dev'"):
        load(sim.publish())


def test_the_longest_name_notary_accepts_is_followed(load):
    sim = _repository_delegating(LONGEST)
    sim.add_target(LONGEST, "v2", b"manifest v2")

    assert find_tag(load(sim.publish()), "v2") is not None


# --- expires -------------------------------------------------------------------------


def at(*fields: int, micro: int = 0, offset: datetime.timedelta | None = None) -> datetime.datetime:
    zone = datetime.timezone(offset) if offset is not None else UTC
    return datetime.datetime(*fields, micro, tzinfo=zone).astimezone(UTC)


ACCEPTED = [
    ("2030-01-01T00:00:00Z", at(2030, 1, 1, 0, 0, 0)),
    ("2030-01-01T00:00:00.123456789Z", at(2030, 1, 1, 0, 0, 0, micro=123456)),
    ("2030-01-01T00:00:00.1234567891234Z", at(2030, 1, 1, 0, 0, 0, micro=123456)),
    ("2030-01-01T00:00:00,5Z", at(2030, 1, 1, 0, 0, 0, micro=500000)),
    ("2030-01-01T00:00:00+01:30", at(2030, 1, 1, 0, 0, 0, offset=datetime.timedelta(hours=1.5))),
    ("2030-01-01T00:00:00-00:00", at(2030, 1, 1, 0, 0, 0)),
    ("2030-01-01T5:04:05Z", at(2030, 1, 1, 5, 4, 5)),
    ("2030-01-01T00:00:00+24:00", at(2029, 12, 31, 0, 0, 0)),
    ("2030-01-01T00:00:00-23:60", at(2030, 1, 2, 0, 0, 0)),
    ("2024-02-29T23:59:59Z", at(2024, 2, 29, 23, 59, 59)),
    ("0000-01-01T00:00:00Z", datetime.datetime.min.replace(tzinfo=UTC)),
    ("9999-12-31T23:59:59-01:00", datetime.datetime.max.replace(tzinfo=UTC)),
]

REFUSED = [
    "2030-01-01 00:00:00Z",
    "2030-01-01t00:00:00Z",
    "2030-01-01T00:00:00z",
    "2030-01-01T00:00:00",
    "2030-01-01",
    "2030-01-01T00:00Z",
    "20300101T000000Z",
    "2030-01-01T00:00:00+0100",
    "2030-01-01T00:00:00+01",
    " 2030-01-01T00:00:00Z",
    "2030-01-01T00:00:00Z ",
    "2030-01-01T00:00:00.Z",
    "2030-01-01T24:00:00Z",
    "2030-01-01T00:60:00Z",
    "2030-01-01T00:00:60Z",
    "2030-13-01T00:00:00Z",
    "2030-00-01T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2030-04-31T00:00:00Z",
    "2030-01-00T00:00:00Z",
    "2030-1-01T00:00:00Z",
    "2030-01-1T00:00:00Z",
    "+2030-01-01T00:00:00Z",
    "12030-01-01T00:00:00Z",
    "2030-01-01T00:00:00+25:00",
    "2030-01-01T00:00:00+01:61",
    "2030-01-01T00:00:00\u221201:00",
    "\uff12\uff10\uff13\uff10-01-01T00:00:00Z",
    "2030-01-01T\u0665:00:00Z",
    "2030-W01-1T00:00:00Z",
    "2030-01-01T00:00:00.5",
    "2030-01-01T00:00:00ZZ",
    "",
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[t for t, _ in ACCEPTED])
def test_times_gos_rfc3339_parser_accepts_are_read_as_go_reads_them(text, expected):
    assert parse_go_rfc3339(text) == expected


@pytest.mark.parametrize("text", REFUSED)
def test_times_gos_rfc3339_parser_refuses_are_refused(text):
    with pytest.raises(ValueError):
        parse_go_rfc3339(text)


def _with_expires(sim: RepositorySimulator, role: str, text: str) -> dict[str, bytes]:
    """Timestamp or snapshot with its expires written as `text` (re-signed, hash recorded)."""
    files = sim.publish()
    signed = json.loads(files[role])["signed"]
    signed["expires"] = text
    files[role] = envelope(signed, sim.role(role).keys)
    if role == "timestamp":
        return files
    timestamp = json.loads(files["timestamp"])["signed"]
    timestamp["meta"]["snapshot"] = file_meta(files["snapshot"])
    files["timestamp"] = envelope(timestamp, sim.timestamp.keys)
    return files


@pytest.mark.parametrize("text", ["2031-01-01 00:00:00Z", "2031-01-01T00:00Z", "20310101T000000Z"])
@pytest.mark.parametrize("role", ["timestamp", "snapshot"])
def test_metadata_whose_expiry_go_cannot_parse_is_refused(repo, load, role, text):
    with pytest.raises(MetadataError, match=f"{role}: expires .* Go's RFC 3339 parser"):
        load(_with_expires(repo, role, text))


def test_metadata_whose_expiry_only_go_can_parse_is_accepted(repo, load):
    """A one-digit hour: Go takes it, Python's fromisoformat does not."""
    data = load(_with_expires(repo, "timestamp", f"{NOW.year + 1}-01-01T5:00:00Z"))

    assert data.timestamp.expires == at(NOW.year + 1, 1, 1, 5, 0, 0)
