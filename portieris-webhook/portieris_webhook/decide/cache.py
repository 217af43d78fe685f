"""The decision cache: a passed verification reused while nothing it depended on changed.

A decision about one image depends on the image as written, the content of the policy
selected for it, the settings (fixed for the process), the cluster state the verifiers
read (each says what in `Verifier.inputs`: secrets and pull credentials, by content) and
time. The key holds everything but time, so a policy edit or a secret rotation changes the
key of exactly the decisions that read it, and they are verified again; time is the entry's
age (at most what is left of the shortest `Verifier.max_age` of the verifiers used once the
age of the answers they relied on, `Verdict.age`, is taken off) and the expiry of what they
relied on (`Verdict.valid_until`, such as notary metadata).

Only allows are kept. A deny is not: the user who signs the image or fixes the secret
should see the next request pass, and denies must not push allows out of the bounded
table; the verifiers already remember briefly what is expensive to ask again (a failed
notary lookup, for --trust-failure-ttl).

Pure: no I/O, clocks injected; the enforcer builds the keys and asks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from portieris_webhook.kits.bounded import BoundedDict
from portieris_webhook.policy.model import Policy
from portieris_webhook.verify.contract import StateInput, Verdict


def policy_fingerprint(policy: Policy) -> str:
    """sha256 (hex) of the parsed policy's content: equal for equal policies, whatever the
    object or rule that holds them is called (Policy.fingerprint, computed once per policy)."""
    return policy.fingerprint


@dataclass(frozen=True)
class DecisionKey:
    image: str
    """As written in the pod spec (the patch and the digest check depend on it)."""
    policy: str
    """policy_fingerprint of the selected policy."""
    verifiers: tuple[str, ...]
    inputs: tuple[StateInput, ...]
    """What the verifiers read, sorted and without repeats."""
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Hashed once: a key is looked up for every image of every admission.
        object.__setattr__(
            self, "_hash", hash((self.image, self.policy, self.verifiers, self.inputs))
        )

    def __hash__(self) -> int:
        return self._hash


def decision_key(
    image: str,
    policy: Policy,
    inputs: Iterable[tuple[str, tuple[StateInput, ...] | None]],
) -> DecisionKey | None:
    """The key of `image` under `policy` checked by verifiers (name, what it reads), or None
    when a verifier does not say what it reads (its verdicts are never reused)."""
    names: list[str] = []
    read: set[StateInput] = set()
    for name, verifier_inputs in inputs:
        if verifier_inputs is None:
            return None
        names.append(name)
        read.update(verifier_inputs)
    return DecisionKey(image, policy_fingerprint(policy), tuple(names), tuple(sorted(read)))


@dataclass(frozen=True)
class CachedAllow:
    """What an allow decided: the verified digest, the pinned image, the verifiers' notes."""

    digest: str | None
    patched_image: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class _Entry:
    allow: CachedAllow
    fresh_until: float
    """Monotonic time after which the entry is not used."""
    verdicts: tuple[Verdict, ...]
    """The verdicts the allow was made of, each to hold whenever the entry is used."""


def _always(_verdict: Verdict) -> bool:
    return True


@dataclass(frozen=True)
class DecisionCacheStats:
    entries: int
    hits: int
    misses: int


class DecisionCache:
    """Allows by DecisionKey, bounded in number (least recently used dropped) and age.

    `max_entries` 0 turns the cache off: nothing is kept and nothing counted.
    """

    def __init__(
        self,
        max_entries: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: BoundedDict[DecisionKey, _Entry] | None = (
            BoundedDict(max_entries) if max_entries > 0 else None
        )
        self.monotonic = monotonic
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self._entries is not None

    def stats(self) -> DecisionCacheStats:
        entries = len(self._entries) if self._entries is not None else 0
        return DecisionCacheStats(entries, self.hits, self.misses)

    def get(
        self, key: DecisionKey, holds: Callable[[Verdict], bool] = _always
    ) -> CachedAllow | None:
        """The allow stored under `key` while it is fresh and `holds` for each of its
        verdicts, else None (counted)."""
        if self._entries is None:
            return None
        entry = self._entries.get(key)
        if entry is not None and not (
            self.monotonic() < entry.fresh_until and all(map(holds, entry.verdicts))
        ):
            self._entries.pop(key)
            entry = None
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        return entry.allow

    def put(
        self,
        key: DecisionKey,
        allow: CachedAllow,
        max_age: float,
        verdicts: Iterable[Verdict] = (),
    ) -> None:
        """Keep `allow`, made of `verdicts`, for at most `max_age` seconds."""
        if self._entries is None or max_age <= 0:
            return
        self._entries.put(key, _Entry(allow, self.monotonic() + max_age, tuple(verdicts)))
