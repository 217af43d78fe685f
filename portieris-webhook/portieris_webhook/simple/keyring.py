"""GPG verification against the keys of one key secret, in a keyring of its own.

Every distinct `key` value gets its own GnuPG home (cached by the sha256 of the
key data), so a key in one secret can never vouch for a requirement that names
another secret, and the user's keyring is never read. A signature counts only
if gpg reports exactly one good signature (GOODSIG + VALIDSIG, nothing bad) and
the key that made it is a primary key imported from that secret: containers/
image (skopeo) accepts no subkey signatures, and we answer as it does.

python-gnupg calls block, so they run in threads (asyncio.to_thread). What gpg said
about a signature depends only on the key data and the signature bytes, so it is
remembered by exactly those (the sha256 of each) in one table shared by every ring,
bounded in entries, bytes and age: a warm admission runs no gpg at all, a key secret
rotated to other keys gets a ring of its own and verifies afresh, and concurrent
verifications of the same signature with the same keys share one gpg run. Which
manifest, requirement and identity the payload must match is checked by the caller
each time (it is pure and cheap), so the memo never answers for another of those.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gnupg

from portieris_webhook.errors import SecretError, VerificationError
from portieris_webhook.kits.bounded import BoundedDict
from portieris_webhook.remote.shared_answers import FreshnessLimits, SharedAnswers

LOG = logging.getLogger(__name__)
MAX_PAYLOAD_BYTES = 1024 * 1024
VERIFY_CACHE_SECONDS = 300.0
VERIFY_CACHE_ENTRIES = 4096
VERIFY_CACHE_BYTES = 16 * 1024 * 1024
"""Bytes of verified payloads remembered over all rings (a payload is a few hundred bytes)."""
MAX_RINGS = 128
RING_MAX_AGE = 24 * 3600.0
"""Seconds a ring is kept before its key data is imported again (into the same home)."""
GPG_OPTIONS = ["--no-auto-key-retrieve", "--no-auto-key-locate", "--no-permission-warning"]
BAD_STATUSES = {
    "BADSIG": "signature bad",
    "EXPSIG": "signature expired",
    "EXPKEYSIG": "signing key has expired",
    "REVKEYSIG": "signing key was revoked",
    "NO_PUBKEY": "no public key",
    "ERRSIG": "signature cannot be checked",
}


class SignatureRejected(VerificationError):
    """A signature that does not verify with the key secret's keys."""


@dataclass(frozen=True)
class VerifiedSignature:
    """Bytes that a key of the ring signed, and the fingerprint of that key."""

    payload: bytes
    fingerprint: str


Outcome = VerifiedSignature | str
"""What gpg said about one signature with one ring: verified, or why not."""
MemoKey = tuple[str, str]
"""(sha256 of the key data, sha256 of the signature bytes)."""


def _outcome_size(outcome: Outcome) -> int:
    return len(outcome) if isinstance(outcome, str) else len(outcome.payload) + 64


def verification_memo(
    monotonic: Callable[[], float] = time.monotonic,
) -> SharedAnswers[MemoKey, Outcome]:
    """The table of what gpg said, bounded in entries, bytes and age; errors that are not a
    verdict on the signature (gpg missing, a crash) are never remembered."""
    limits = FreshnessLimits(
        VERIFY_CACHE_SECONDS,
        failure_ttl=0,
        max_entries=VERIFY_CACHE_ENTRIES,
        max_bytes=VERIFY_CACHE_BYTES,
    )
    return SharedAnswers(limits, size=_outcome_size, monotonic=monotonic)


def _status_lines(stderr: str) -> list[tuple[str, list[str]]]:
    lines = []
    for line in stderr.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, *args = line[len("[GNUPG:] ") :].split()
            lines.append((keyword, args))
    return lines


def judge(result: Any, primary_fingerprints: frozenset[str]) -> VerifiedSignature:
    """Turn python-gnupg's result of `--decrypt` on a signed message into a verdict.

    `result.valid` alone is not enough: with several signatures in one message it
    describes the last one, and the data comes back even when the signature is bad.
    """
    statuses = _status_lines(getattr(result, "stderr", "") or "")
    keywords = [keyword for keyword, _ in statuses]
    _require_one_signature(keywords)
    _require_good_signature(keywords, result)
    signer = _primary_signer(statuses, primary_fingerprints)
    return VerifiedSignature(bytes(result.data or b""), signer)


def _require_one_signature(keywords: list[str]) -> None:
    """The message is a signed message holding exactly one signature."""
    signatures = keywords.count("NEWSIG") or keywords.count("SIG_ID")
    if "NODATA" in keywords or (signatures == 0 and "GOODSIG" not in keywords):
        raise SignatureRejected("not an OpenPGP signed message")
    if signatures != 1 or keywords.count("GOODSIG") > 1:
        raise SignatureRejected(f"holds {signatures} signatures; exactly one is allowed")


def _require_good_signature(keywords: list[str], result: Any) -> None:
    """gpg reports the signature good, and nothing bad about it."""
    bad = [k for k in keywords if k in BAD_STATUSES]
    if bad or not result.valid or "GOODSIG" not in keywords:
        # The most specific reason gpg gave; python-gnupg's `status` is only the last line's.
        known = [BAD_STATUSES[k] for k in BAD_STATUSES if k in bad]
        status = known[0] if known else getattr(result, "status", None) or "no good signature"
        key = getattr(result, "key_id", None)
        by = f" by key {key}" if key else ""
        raise SignatureRejected(f"signature{by} does not verify with the secret's keys: {status}")


def _primary_signer(
    statuses: list[tuple[str, list[str]]], primary_fingerprints: frozenset[str]
) -> str:
    """The fingerprint of the key that made the good signature: a primary key of the ring."""
    valid = [args for keyword, args in statuses if keyword == "VALIDSIG"]
    if len(valid) != 1 or not valid[0]:
        raise SignatureRejected("gpg reported no VALIDSIG for a good signature")
    signer = valid[0][0].upper()
    primary = valid[0][9].upper() if len(valid[0]) >= 10 else signer
    if signer not in primary_fingerprints:
        if primary in primary_fingerprints:
            raise SignatureRejected(
                f"signed by subkey {signer} of key {primary}; only signatures made "
                "by the primary key are accepted (as containers/image does)"
            )
        raise SignatureRejected(f"signed by key {signer}, which the secret does not hold")
    return signer


class KeyRing:
    """The public keys of one key secret in a GnuPG home of their own."""

    def __init__(
        self,
        home: Path,
        digest: str = "",
        memo: SharedAnswers[MemoKey, Outcome] | None = None,
    ) -> None:
        self.home = home
        self.digest = digest
        """sha256 of the key data this ring was imported from."""
        self.fingerprints: frozenset[str] = frozenset()
        self._gpg: Any = None
        self._memo = memo if memo is not None else verification_memo()

    def load(self, armored: bytes) -> None:
        """Import `armored` (blocking); SecretError if it holds no public key, or a private one."""
        if b"PRIVATE KEY BLOCK" in armored:
            raise SecretError("`key` holds a private key; give only the public key")
        self._gpg = gnupg.GPG(gnupghome=str(self.home), options=GPG_OPTIONS)
        imported = self._gpg.import_keys(armored)
        keys = self._gpg.list_keys()
        if self._gpg.list_keys(secret=True):
            raise SecretError("`key` holds a private key; give only the public key")
        fingerprints = frozenset(str(k["fingerprint"]).upper() for k in keys)
        if not fingerprints or not imported.fingerprints:
            raise SecretError("`key` does not hold an ASCII-armoured OpenPGP public key")
        self.fingerprints = fingerprints

    def verify_blocking(self, signature: bytes) -> VerifiedSignature:
        result = self._gpg.decrypt(
            signature,
            always_trust=True,
            extra_args=["--max-output", str(MAX_PAYLOAD_BYTES)],
        )
        return judge(result, self.fingerprints)

    async def verify(self, signature: bytes) -> VerifiedSignature:
        """Verify `signature` in a thread, once for all concurrent callers; what gpg said
        (good or not) is remembered for a while by key data and signature content."""

        async def run_gpg() -> Outcome:
            try:
                return await asyncio.to_thread(self.verify_blocking, signature)
            except SignatureRejected as exc:
                return str(exc)

        key = (self.digest, hashlib.sha256(signature).hexdigest())
        outcome = await self._memo.get(key, run_gpg)
        if isinstance(outcome, str):
            raise SignatureRejected(outcome)
        return outcome


class KeyRings:
    """Key rings by content: the same key data in two secrets shares one (read-only) home."""

    def __init__(
        self,
        root: Path | None = None,
        max_rings: int = MAX_RINGS,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = root
        self._rings: BoundedDict[str, KeyRing] = BoundedDict(
            max_rings, max_age=RING_MAX_AGE, clock=monotonic
        )
        self._loading: dict[str, asyncio.Future[KeyRing]] = {}
        self.memo = verification_memo(monotonic)
        """What gpg said, by (key data, signature), shared by every ring."""

    @property
    def gpg_runs(self) -> int:
        """Signatures gpg verified, over every ring (for tests and benchmarks)."""
        return self.memo.loads

    def _base(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="portieris-gpg-"))
        return self._root

    async def ring(self, armored: bytes, source: str) -> KeyRing:
        """The ring of `armored`, imported on first use; `source` names the secret in messages."""
        digest = hashlib.sha256(armored).hexdigest()
        ring = self._rings.get(digest)
        if ring is not None:
            return ring
        pending = self._loading.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._load(digest, armored, source))
            self._loading[digest] = pending
            pending.add_done_callback(lambda _: self._loading.pop(digest, None))
        return await asyncio.shield(pending)

    async def _load(self, digest: str, armored: bytes, source: str) -> KeyRing:
        home = self._base() / digest[:32]
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        ring = KeyRing(home, digest, self.memo)
        try:
            await asyncio.to_thread(ring.load, armored)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, home, True)
            raise
        for old in self._rings.put(digest, ring):
            await asyncio.to_thread(shutil.rmtree, old.home, True)
        LOG.info("imported keys %s from %s", ", ".join(sorted(ring.fingerprints)), source)
        return ring

    async def close(self) -> None:
        await self.memo.close()
        self._rings.clear()
        if self._root is not None:
            await asyncio.to_thread(shutil.rmtree, self._root, True)
            self._root = None
