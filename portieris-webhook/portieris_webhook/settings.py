"""Typed settings handed to the request path (built from oslo.config options in config.py)."""

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
