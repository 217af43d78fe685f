"""What verified trust data says about a tag or a digest: pure lookups, as Docker does them.

Docker asks notary for a tag in `targets/releases`, then in `targets`
(notary's GetTargetByName with those roles): each is a pre-order walk of the
delegation tree from that role, skipping the other named roles, that only
considers a target if every delegation on the way allows its path.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass

from portieris_webhook.trust.metadata import RELEASES, TARGETS, Delegation, FileMeta, Targets
from portieris_webhook.trust.trusted_set import TrustData

DOCKER_ROLES = (RELEASES, TARGETS)


@dataclass(frozen=True)
class SignedTarget:
    role: str
    name: str
    meta: FileMeta

    @property
    def sha256(self) -> bytes | None:
        return self.meta.hashes.get("sha256")

    @property
    def digest(self) -> str | None:
        """`sha256:<hex>` of the signed manifest, if the target records a sha256 hash."""
        value = self.sha256
        return f"sha256:{value.hex()}" if value is not None else None


def allowed(chain: tuple[Delegation, ...], target: str) -> bool:
    return all(d.allows(target) for d in chain)


def walk(data: TrustData, start: str, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, Targets]]:
    """Verified roles in pre-order from `start`, leaving out the subtrees of `skip`."""
    if start not in data.roles or start in skip:
        return
    yield start, data.roles[start]
    for delegation in data.roles[start].delegations:
        yield from walk(data, delegation.name, skip)


def docker_order(data: TrustData, roles: tuple[str, ...] = DOCKER_ROLES) -> Iterator[str]:
    """Role names in the order Docker consults them, each at most once."""
    visited: set[str] = set()
    for start in roles:
        others = tuple(r for r in roles if r != start)
        for name, _ in walk(data, start, others):
            if name not in visited:
                visited.add(name)
                yield name


def find_tag(data: TrustData, tag: str) -> SignedTarget | None:
    for role in docker_order(data):
        meta = data.roles[role].targets.get(tag)
        if meta is not None and allowed(data.chains[role], tag):
            return SignedTarget(role, tag, meta)
    return None


def find_digest(
    data: TrustData, sha256: bytes, roles: tuple[str, ...] | None = None
) -> list[SignedTarget]:
    """Every target (in Docker's order) whose sha256 is `sha256`, in roles allowed to sign it."""
    found = []
    for role in roles if roles is not None else docker_order(data):
        for name, meta in data.roles[role].targets.items():
            digest = meta.hashes.get("sha256")
            if (
                digest is not None
                and hmac.compare_digest(digest, sha256)
                and allowed(data.chains[role], name)
            ):
                found.append(SignedTarget(role, name, meta))
    return found


def outside_paths(data: TrustData, tag: str) -> list[str]:
    """Why a tag is absent: roles that list it although a delegation does not allow its path."""
    reasons = []
    for role, targets in data.roles.items():
        if tag in targets.targets and not allowed(data.chains[role], tag):
            blocking = next(d for d in data.chains[role] if not d.allows(tag))
            reasons.append(
                f"{role} lists it, but {blocking.name} may only sign {blocking.describe_paths()}"
            )
    return reasons


def delegation_of(data: TrustData, role: str) -> Delegation | None:
    chain = data.chains.get(role)
    if chain:
        return chain[-1]
    parent = role.rsplit("/", 1)[0]
    return data.roles[parent].delegation(role) if parent in data.roles else None


def delegated_keys(data: TrustData, role: str) -> set[bytes]:
    """Public keys (DER SPKI) the parent of `role` delegates to it (empty if not delegated)."""
    delegation = delegation_of(data, role)
    parent = data.roles.get(role.rsplit("/", 1)[0])
    if delegation is None or parent is None:
        return set()
    return {parent.keys[k].spki for k in delegation.keyids if k in parent.keys}
