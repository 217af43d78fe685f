"""Typed settings handed to the request path (built from oslo.config options in options.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    ca_file: str | None = None
    verify_timeout: float = 8.0
    """Seconds one admission request may spend verifying images (keep below the webhook timeout)."""
    remote_timeout: float = 5.0
    """Seconds one outbound call (registry, notary, signature store) may take."""
    default_trust_server: str | None = None
    trust_refresh_interval: float = 30.0
    pinned_trust_roots: tuple[str, ...] = ()
    """`server=keyid-or-certificate-file` pairs: roots trusted without first use."""
    trust_cache_max_entries: int = 1000
    """Repositories whose verified trust data is kept (least recently used go first)."""
    trust_cache_max_bytes: int = 32 * 1024 * 1024
    """Raw notary metadata bytes kept over all repositories."""
    trust_cache_max_age: float = 24 * 3600.0
    """Seconds a repository's trust data may go unused before it is forgotten."""
    trust_failure_ttl: float = 5.0
    """Seconds a failed trust lookup is answered from memory (0: never)."""
    decision_cache_max_entries: int = 4096
    """Passed verifications (image, policy, what the verifiers read) reused while fresh
    (0: none)."""
    max_images_per_admission: int = 256
    """Distinct images one admission may name; an object naming more is denied before any
    of them is looked at (a real pod names a handful)."""
    simple_refresh_interval: float | None = None
    """Seconds a tag's digest and a signature store's answer are reused (0: never);
    None follows trust_refresh_interval."""
    simple_failure_ttl: float = 5.0
    """Seconds a failed registry or signature store read for simple signing is answered
    from memory (0: never)."""

    @property
    def simple_refresh(self) -> float:
        """The simple-signing freshness window in effect."""
        if self.simple_refresh_interval is None:
            return self.trust_refresh_interval
        return self.simple_refresh_interval
