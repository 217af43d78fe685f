"""Checks of the operator's user overrides, run before an apply (pure functions).

Each returns the problems it finds as messages that say which value is wrong and what to do.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography import x509

from k8sapp_portieris.common import certificates, constants, trust_roots
from k8sapp_portieris.common.errors import OverridesError

_PERCENT = re.compile(r"^(\d+)%$")
_KEY_ID = re.compile(r"^[0-9a-fA-F]{64}$")
_PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\s*[A-Za-z0-9+/=\s]*?-----END (?P=label)-----"
)
PIN_FIELDS = ("server", "keyID", "certificate")


def parse_user_overrides(text: str | None) -> dict[str, Any]:
    """The user overrides as sysinv stores them (YAML text, or None)."""
    if not text:
        return {}
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OverridesError(f"the user overrides are not valid YAML: {exc}") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise OverridesError("the user overrides must be a mapping of chart values")
    return values


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Values merged as helm merges values files: maps merge, null removes, the rest replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def user_override_problems(user: Mapping[str, Any]) -> list[str]:
    """What is wrong with the operator's overrides, before the chart's own schema is asked."""
    problems = []
    try:
        certificates.parse_trusted_ca_cert(user.get("TrustedCACert"))
    except OverridesError as exc:
        problems.append(str(exc))
    problems.extend(trust_server_problems(user.get("defaultTrustServer")))
    problems.extend(pinned_trust_root_problems(user.get("pinnedTrustRoots")))
    problems.extend(sigstore_problems(user.get("sigstore")))
    problems.extend(component_problems(user.get(constants.HELM_COMPONENT_LABEL_PORTIERIS)))
    if "platform" in user:
        problems.append(
            "platform.* values are written by the application from the platform's facts: "
            "remove them from the user overrides and set TrustedCACert, "
            "webHooks.excludedNamespaces or webHooks.failurePolicy instead"
        )
    return problems


def sigstore_problems(value: object) -> list[str]:
    """sigstore: only trustRoots, each entry public PEM (null removes a platform entry)."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [f"sigstore must be a map (with trustRoots), not {type(value).__name__}"]
    problems = [
        f"sigstore.{key} is not a value of the chart: the chart takes sigstore.trustRoots"
        for key in sorted(set(map(str, value)) - {"trustRoots"})
    ]
    return problems + trust_roots.user_trust_root_problems(value.get("trustRoots"))


def trust_server_problems(url: object, what: str = "defaultTrustServer") -> list[str]:
    """defaultTrustServer (or the value `what` names): empty (the webhook's default) or an
    https URL of a notary server."""
    if url is None or url == "":
        return []
    if not isinstance(url, str):
        return [f"{what} must be an https URL, not {type(url).__name__}"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return [f"{what} {url!r} is not a URL: {exc}"]
    if parts.scheme != "https" or not parts.hostname:
        return [
            f"{what} {url!r} is not an https URL: give the notary server as "
            "https://host[:port] (trust data is only fetched over TLS)"
        ]
    if parts.username or parts.password or parts.query or parts.fragment:
        return [
            f"{what} {url!r} must not carry credentials, a query or a fragment: "
            "give https://host[:port][/path]"
        ]
    return []


def pinned_trust_root_problems(value: object) -> list[str]:
    """pinnedTrustRoots: a list of {server, keyID} or {server, certificate} (PEM), each a root
    the webhook trusts for that notary server instead of the first root it is served."""
    if value is None:
        return []
    if not isinstance(value, list):
        return [
            "pinnedTrustRoots must be a list of {server, keyID} or {server, certificate}, "
            f"not {type(value).__name__}"
        ]
    problems = []
    for index, pin in enumerate(value):
        where = f"pinnedTrustRoots[{index}]"
        if not isinstance(pin, Mapping):
            problems.append(f"{where} must be {{server, keyID}} or {{server, certificate}}")
            continue
        unknown = sorted(set(map(str, pin)) - set(PIN_FIELDS))
        if unknown:
            problems.append(
                f"{where}.{unknown[0]} is not a field of a pin: give server and keyID, or "
                "server and certificate"
            )
        if not pin.get("server"):
            problems.append(
                f"{where} needs a server: the notary server as policies name it in "
                "trustServer, https://host[:port]"
            )
        elif "=" in str(pin["server"]):
            problems.append(f"{where}.server must not hold '=': give https://host[:port][/path]")
        else:
            problems.extend(trust_server_problems(pin["server"], f"{where}.server"))
        key_id, certificate = pin.get("keyID"), pin.get("certificate")
        if key_id and certificate:
            problems.append(
                f"{where} gives both keyID and certificate: give one per entry (two entries "
                "for one server pin both)"
            )
        elif key_id:
            problems.extend(_key_id_problems(key_id, f"{where}.keyID"))
        elif certificate:
            problems.extend(_pinned_certificate_problems(certificate, f"{where}.certificate"))
        else:
            problems.append(f"{where} needs a keyID or a certificate")
    return problems


def _key_id_problems(value: object, where: str) -> list[str]:
    if isinstance(value, str) and _KEY_ID.match(value):
        return []
    return [
        f"{where} {value!r} is not a notary key ID (64 hexadecimal digits): take the root's "
        "from `portieris-webhook trust-state show` (root_keyids) or from the publisher's "
        "`notary key list` (the root row's KEY ID)"
    ]


def _pinned_certificate_problems(value: object, where: str) -> list[str]:
    """A root certificate (or the CA that issues root certificates), in PEM."""
    if not isinstance(value, str):
        return [f"{where} must be PEM text, not {type(value).__name__}"]
    blocks = list(_PEM_BLOCK.finditer(value))
    if not blocks:
        return [f"{where} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"]
    labels = sorted({block.group("label") for block in blocks} - {"CERTIFICATE"})
    if labels:
        return [f"{where} holds a {labels[0]} block: give only certificates (public material)"]
    leftover = _PEM_BLOCK.sub("", value).strip()
    if leftover:
        return [f"{where} has text outside its PEM blocks ({leftover[:40]!r}): give only the PEM"]
    problems = []
    for number, block in enumerate(blocks, start=1):
        what = f"{where} certificate {number}" if len(blocks) > 1 else where
        try:
            x509.load_pem_x509_certificate(block.group(0).encode())
        except ValueError as exc:
            problems.append(f"{what} is not a valid X.509 certificate: {exc}")
    return problems


def component_problems(value: object) -> list[str]:
    allowed = (constants.COMPONENT_PLATFORM, constants.COMPONENT_APPLICATION)
    if value is None or value in allowed:
        return []
    return [
        f"{constants.HELM_COMPONENT_LABEL_PORTIERIS} is {value!r}: "
        f"use {allowed[0]} (platform cores, the default) or {allowed[1]}"
    ]


def disruption_problems(values: Mapping[str, Any]) -> list[str]:
    """The PodDisruptionBudget must let at least one of replicaCount pods be evicted, else a
    host lock or a platform upgrade waits on it forever."""
    pdb = values.get("podDisruptionBudget") or {}
    replicas = values.get("replicaCount")
    if not isinstance(pdb, Mapping) or not pdb.get("enabled") or not isinstance(replicas, int):
        return []
    min_available = pdb.get("minAvailable")
    if min_available not in (None, ""):
        kept = _scaled(min_available, replicas)
        if kept is not None and replicas - kept < 1:
            return [
                f"podDisruptionBudget.minAvailable {min_available!r} keeps all {replicas} "
                "replica(s): no pod could be evicted and host locks would hang; "
                f"lower it below {replicas} or raise replicaCount"
            ]
        return []
    max_unavailable = pdb.get("maxUnavailable", 1)
    allowed = _scaled(max_unavailable, replicas)
    if allowed is not None and allowed < 1:
        return [
            f"podDisruptionBudget.maxUnavailable {max_unavailable!r} lets no replica be evicted: "
            "host locks would hang; set it to 1 or more"
        ]
    return []


def _scaled(value: object, replicas: int) -> int | None:
    """An int-or-percent as Kubernetes scales it for a budget (percentages round up)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    match = _PERCENT.match(value) if isinstance(value, str) else None
    if match:
        return math.ceil(int(match.group(1)) * replicas / 100)
    return None  # the chart's schema refuses it


# User overrides the upstream portieris application (IBM Portieris' chart, StarlingX's
# lifecycle) takes and this chart does not: an update from it carries them over
# (maintain_user_overrides), so each is named with what to do before the update.
UPSTREAM_ONLY_OVERRIDES: dict[tuple[str, ...], str] = {
    ("PostUpgradePolicy",): "the upstream lifecycle's copy of webHooks.failurePolicy during "
    "its updates: remove it (set webHooks.failurePolicy if you want another policy)",
    ("ReapplyAdmissionWebhook",): "the upstream lifecycle's backup bookkeeping: remove it",
    ("image", "host"): "the upstream image's registry: remove it (this application's image "
    "is image.repository, pulled from the platform's local registry)",
    ("image", "image"): "the upstream image's name: remove it (this chart takes image.repository)",
    ("image", "pullSecret"): "remove it: this chart takes imagePullSecrets, and the "
    "application sets the platform's",
    ("images",): "the upstream image tags: remove them (this chart takes image.tag)",
    ("SkipSecretCreation",): "remove it: the serving certificate comes from cert-manager "
    "(UseCertManager) or is generated by the chart",
}


def upstream_override_problems(user: Mapping[str, Any]) -> list[str]:
    """The upstream application's user overrides this chart does not take, each named with
    what to do (see UPSTREAM_ONLY_OVERRIDES)."""
    problems = []
    for path, advice in UPSTREAM_ONLY_OVERRIDES.items():
        value: Any = user
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is not None:
            problems.append(
                f"{'.'.join(path)} is an override of the upstream application: {advice}"
            )
    return problems
