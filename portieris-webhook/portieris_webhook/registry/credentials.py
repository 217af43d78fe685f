"""Registry credentials from image pull secrets (kubernetes.io/dockerconfigjson, dockercfg)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from portieris_webhook.cluster.state import Secret, StateView
from portieris_webhook.errors import SecretError
from portieris_webhook.images import normalise_registry_host
from portieris_webhook.kits.nesting import check_depth

DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
DOCKER_CFG = "kubernetes.io/dockercfg"


@dataclass(frozen=True)
class RegistryCredential:
    registry: str
    username: str
    password: str
    source: str

    def __repr__(self) -> str:  # never print a password in a log line
        return f"RegistryCredential({self.registry!r}, {self.username!r}, source={self.source!r})"


def credentials_from_secret(secret: Secret) -> list[RegistryCredential]:
    """Parse a docker config secret; raise SecretError saying what is wrong."""
    where = f"Secret {secret.namespace}/{secret.name}"
    if secret.type == DOCKER_CONFIG_JSON or ".dockerconfigjson" in secret.data:
        raw, nested = secret.data.get(".dockerconfigjson"), True
    elif secret.type == DOCKER_CFG or ".dockercfg" in secret.data:
        raw, nested = secret.data.get(".dockercfg"), False
    else:
        raise SecretError(f"{where} is not an image pull secret (type {secret.type})")
    check_depth(raw or b"", f"{where}: docker config", SecretError)
    try:
        document = json.loads(raw or b"")
    except ValueError as exc:
        raise SecretError(f"{where}: docker config is not valid JSON") from exc
    auths = document.get("auths", {}) if nested and isinstance(document, dict) else document
    if not isinstance(auths, dict):
        raise SecretError(f"{where}: docker config has no auths object")
    result = []
    for host, entry in auths.items():
        if isinstance(entry, dict):
            username, password = _user_and_password(where, host, entry)
            if username or password:
                result.append(
                    RegistryCredential(normalise_registry_host(host), username, password, where)
                )
    return result


def _user_and_password(where: str, host: str, entry: dict[str, Any]) -> tuple[str, str]:
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if not username and entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise SecretError(f"{where}: auth of {host} is not base64 user:password") from exc
        username, _, password = decoded.partition(":")
    return username, password


def credential_identity(pairs: Iterable[tuple[str, str]]) -> str:
    """A digest naming a sequence of (username, password) pairs, for cache keys: answers
    fetched with one set of credentials are never handed to a request with another, and
    no password is kept in a key."""
    encoded = json.dumps([[user, password] for user, password in pairs]).encode()
    return hashlib.sha256(encoded).hexdigest()


def credentials_identity(credentials: Iterable[RegistryCredential]) -> str:
    """A digest naming these credentials (usernames and passwords, in the order tried), for
    cache keys: what one set of credentials read is never handed to another."""
    return credential_identity((c.username, c.password) for c in credentials)


def pull_secret_names(
    state: StateView, namespace: str, pod_secrets: Iterable[str], service_account: str | None
) -> list[str]:
    """The pod's imagePullSecrets, then its service account's, without repeats."""
    names = list(pod_secrets)
    account = state.service_account(namespace, service_account or "default")
    if account is not None:
        names.extend(account.image_pull_secrets)
    return list(dict.fromkeys(names))


def credentials_for_host(
    state: StateView, namespace: str, secret_names: Iterable[str], host: str
) -> list[RegistryCredential]:
    """Credentials of the named secrets that are for `host` (normalised, with port), in order.

    Missing or malformed pull secrets are skipped here: a pull secret for another
    registry must not block this one, and anonymous access is tried first anyway.
    """
    wanted = normalise_registry_host(host)
    result: list[RegistryCredential] = []
    for name in secret_names:
        secret = state.secret(namespace, name)
        if secret is None:
            continue
        try:
            creds = credentials_from_secret(secret)
        except SecretError:
            continue
        result.extend(c for c in creds if c.registry == wanted)
    return result
