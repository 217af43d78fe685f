"""Capture trust data from a real notary-server into tests/unit/trust/data/ for the unit tests.

Run from the repository root: `.venv/bin/python -m tests.unit.trust.capture_notary_metadata`.
It starts notary-server (tests/fixtures), signs with the `notary` CLI, and
writes every document exactly as served, plus `info.json` (GUN, tags and
digests, capture time, delegation certificates) per scenario.
"""

from __future__ import annotations

import datetime
import json
import shutil
import tempfile
from pathlib import Path

from tests.fixtures.notary import NotaryServer, NotarySigner, make_delegation_key
from tests.fixtures.pki import TestCA

DATA = Path(__file__).parent / "data"
DIGESTS = {"v1": "11" * 32, "v2": "22" * 32, "prod-1": "33" * 32, "dev-1": "44" * 32}


def save(
    server: NotaryServer, gun: str, scenario: str, tags: dict[str, str], certs: dict[str, str]
) -> None:
    out = DATA / scenario
    shutil.rmtree(out, ignore_errors=True)
    snapshot = json.loads(server.fetch(gun, "snapshot") or b"{}")
    roles = ["root", "timestamp", "snapshot", *snapshot["signed"]["meta"]]
    for role in dict.fromkeys(roles):
        raw = server.fetch(gun, role)
        assert raw is not None, role
        path = out / f"{role}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    info = {
        "gun": gun,
        "tags": {tag: "sha256:" + DIGESTS[tag] for tag in tags},
        "roles": {tag: role for tag, role in tags.items()},
        "captured_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "delegation_certs": certs,
    }
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="capture-notary-"))
    ca = TestCA.create()
    ca.write(tmp / "ca")
    server = NotaryServer(tmp / "server", ca).start()
    try:
        signer = NotarySigner(server, tmp / "trust")
        gun = "registry.example.com:5000/team/app"
        key = signer.sign(gun, "v1", 1234, DIGESTS["v1"])
        assert key is not None
        certs = {"targets/releases": key.cert_pem.decode()}
        save(server, gun, "releases-v1", {"v1": "targets/releases"}, certs)
        signer.add_hash(gun, "v2", 1234, DIGESTS["v2"], publish=True)
        save(
            server, gun, "releases-v2", {"v1": "targets/releases", "v2": "targets/releases"}, certs
        )

        gun = "registry.example.com:5000/team/targets-only"
        signer.sign(gun, "v1", 1234, DIGESTS["v1"], role="targets")
        save(server, gun, "targets-only", {"v1": "targets"}, {})

        gun = "registry.example.com:5000/team/paths"
        alice = make_delegation_key("alice")
        signer.init(gun, publish=False)
        signer.import_delegation_key(alice.key_pem, "targets/alice")
        signer.add_delegation(gun, "targets/alice", alice.cert_pem, paths=["prod-", "dev-"])
        signer.add_hash(gun, "prod-1", 1234, DIGESTS["prod-1"], roles=["targets/alice"])
        signer.add_hash(gun, "dev-1", 1234, DIGESTS["dev-1"], roles=["targets/alice"])
        signer.publish(gun)
        # Narrow the delegation: dev-1 stays in targets/alice but is outside its paths now.
        signer.notary("delegation", "remove", gun, "targets/alice", "--paths", "dev-", "-y", "-p")
        save(
            server,
            gun,
            "outside-paths",
            {"prod-1": "targets/alice", "dev-1": "targets/alice"},
            {"targets/alice": alice.cert_pem.decode()},
        )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
