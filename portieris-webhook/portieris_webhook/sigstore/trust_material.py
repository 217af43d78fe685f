"""Loading what an authority trusts (keys, certificate authorities, log keys, timestamp
chains) from the policy or from Secrets, into authority.AuthorityTrust.

A Secret entry is named by `secretRef.key`, or is the Secret's only entry. Loaded
material is remembered by its text, so a warm admission parses no PEM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from portieris_webhook.cluster.state import StateView
from portieris_webhook.errors import SecretError, VerificationError
from portieris_webhook.kits.bounded import BoundedDict
from portieris_webhook.policy.sigstore_part import Authority, Material
from portieris_webhook.sigstore.authority import AuthorityTrust
from portieris_webhook.sigstore.certificates import certificate_authority
from portieris_webhook.sigstore.keys import PublicKey, load_public_keys
from portieris_webhook.sigstore.timestamps import timestamp_chain

T = TypeVar("T")
MAX_PEM_BYTES = 256 * 1024
REMEMBERED = 256
"""Parsed trust material kept, by its text (least recently used dropped first)."""
REMEMBERED_BYTES = 8 * 1024 * 1024
"""Text of the parsed trust material kept, over all entries."""


class TrustLoader:
    """Turns an authority into its loaded trust, reading Secrets from the cluster state."""

    def __init__(self, state: StateView) -> None:
        self.state = state
        self._parsed: BoundedDict[tuple[str, str], object] = BoundedDict(
            REMEMBERED, max_bytes=REMEMBERED_BYTES, key_size=lambda key: len(key[1])
        )

    def load(self, authority: Authority, namespace: str) -> AuthorityTrust:
        """Raises SecretError or VerificationError naming the authority and what is wrong."""
        label = f"authority {authority.name}"
        try:
            return self._load(authority, namespace)
        except VerificationError as exc:
            raise type(exc)(f"{label}: {exc}") from exc

    def _load(self, authority: Authority, namespace: str) -> AuthorityTrust:
        keys: tuple[PublicKey, ...] = ()
        if authority.key is not None:
            keys = self._parsed_as("key", authority.key.key, namespace, load_public_keys)
        ca = None
        if authority.keyless is not None:
            ca = self._parsed_as(
                "ca-cert", authority.keyless.ca_cert, namespace, certificate_authority
            )
        log_keys: tuple[PublicKey, ...] = ()
        if authority.ctlog.enabled and authority.ctlog.key is not None:
            log_keys = self._parsed_as(
                "ctlog.publicKey", authority.ctlog.key, namespace, load_public_keys
            )
        stamps = None
        if authority.timestamp is not None:
            stamps = self._parsed_as(
                "rfc3161timestamp.certChain",
                authority.timestamp.cert_chain,
                namespace,
                timestamp_chain,
            )
        return AuthorityTrust(authority, keys, ca, log_keys, stamps)

    def _parsed_as(
        self, what: str, material: Material, namespace: str, parse: Callable[[str, str], T]
    ) -> T:
        text = self.text(material, namespace, what)
        key = (parse.__name__, text)
        found = self._parsed.get(key)
        if found is None:
            found = parse(text, f"{what} ({material.describe()})")
            self._parsed.put(key, found)
        return found  # type: ignore[return-value]

    def text(self, material: Material, namespace: str, what: str) -> str:
        """The PEM text `material` names."""
        if material.data is not None:
            return material.data
        where = f"{what}: Secret {material.secret_namespace or namespace}/{material.secret_name}"
        secret = self.state.secret(
            material.secret_namespace or namespace, material.secret_name or ""
        )
        if secret is None:
            raise SecretError(f"{where} does not exist")
        if material.secret_key:
            raw = secret.data.get(material.secret_key)
            if raw is None:
                raise SecretError(f"{where} has no entry {material.secret_key!r}")
        elif len(secret.data) == 1:
            raw = next(iter(secret.data.values()))
        else:
            raise SecretError(f"{where} holds {len(secret.data)} entries: name one (secretRef.key)")
        if len(raw) > MAX_PEM_BYTES:
            raise SecretError(f"{where}: more than {MAX_PEM_BYTES} bytes")
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise SecretError(f"{where} is not PEM text") from None
