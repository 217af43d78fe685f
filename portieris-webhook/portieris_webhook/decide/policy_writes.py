"""Whether a write to an ImagePolicy or ClusterImagePolicy may be stored (/validate-policy).

The judge is the parser the informers use (`policy.model.parse_policy_object`), so a policy
is refused at `kubectl apply` exactly when, stored, it would deny every image it governs: a
CREATE or UPDATE of a portieris.cloud.ibm.com/v1 policy the parser refuses is refused with the
parser's message, which names the object and the field.

An UPDATE that leaves everything but `metadata` as it was is allowed whatever the policy
holds, with the parser's message as a warning when it is invalid (as the apiserver ratchets
its own validation of unchanged fields): a policy stored invalid before validation was on, or
while the webhook did not answer, can still be labelled, annotated and deleted through its
finalizers, and keeps denying the images it governs until it is fixed. Anything else (DELETE,
CONNECT, another kind or version, a subresource) is allowed unchecked.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portieris_webhook.admission.policy_write import PolicyWrite
from portieris_webhook.admission.request import CHECKED_OPERATIONS, AdmissionRequest
from portieris_webhook.errors import InvalidPolicy
from portieris_webhook.policy.model import (
    CLUSTER_IMAGE_POLICY,
    GROUP,
    IMAGE_POLICY,
    POLICY_KINDS,
    VERSION,
    parse_policy_object,
)

LOG = logging.getLogger("portieris_webhook.decision")
"""The decision log: one line per policy write, as per admission."""


class PolicyCheck(enum.Enum):
    """What the validation found; the value labels the metric."""

    VALID = "valid"
    INVALID = "invalid"
    """Refused: the parser's message says why."""
    KEPT_INVALID = "kept_invalid"
    """An invalid policy whose update changes only its metadata: allowed, with a warning."""
    UNCHECKED = "unchecked"
    """Not a create or update of a policy: allowed."""
    ERROR = "error"
    """The webhook failed while judging (a bug): refused as an internal error, never
    returned by judge_policy_write."""


@dataclass(frozen=True)
class PolicyVerdict:
    check: PolicyCheck
    message: str = ""
    """The parser's message (INVALID, KEPT_INVALID), or why nothing was checked (UNCHECKED)."""

    @property
    def allowed(self) -> bool:
        return self.check not in (PolicyCheck.INVALID, PolicyCheck.ERROR)

    @property
    def refusal(self) -> str | None:
        """The message the client sees when the write is refused; None when it is allowed."""
        return None if self.allowed else self.message

    @property
    def warnings(self) -> tuple[str, ...]:
        if self.check is not PolicyCheck.KEPT_INVALID:
            return ()
        return (
            f"{self.message} (kept: the update changes only metadata; the policy denies "
            "every image it governs until it is fixed)",
        )


def judge_policy_write(write: PolicyWrite) -> PolicyVerdict:
    """The verdict on one write (pure: no I/O, no logging)."""
    request = write.request
    if request.operation not in CHECKED_OPERATIONS:
        return PolicyVerdict(PolicyCheck.UNCHECKED, f"operation {request.operation} not checked")
    if (
        request.group != GROUP
        or request.version != VERSION
        or request.kind not in POLICY_KINDS
        or request.sub_resource
    ):
        return PolicyVerdict(PolicyCheck.UNCHECKED, f"{_resource(request)} is not a policy")
    assert request.object is not None  # the reader requires one for CREATE and UPDATE
    try:
        parse_policy_object(_identified(request.object, request))
    except InvalidPolicy as exc:
        if _only_metadata_changed(request, write.old_object):
            return PolicyVerdict(PolicyCheck.KEPT_INVALID, str(exc))
        return PolicyVerdict(PolicyCheck.INVALID, str(exc))
    return PolicyVerdict(PolicyCheck.VALID)


def log_verdict(write: PolicyWrite, verdict: PolicyVerdict) -> None:
    """One line on the decision log, as a pod decision's: `namespace=... object=Kind/name`
    (namespace `-` for a ClusterImagePolicy), then the operation, result and reason."""
    request = write.request
    LOG.info(
        "namespace=%s object=%s operation=%s result=%s reason=%r",
        "-" if request.kind == CLUSTER_IMAGE_POLICY else request.namespace,
        request.display_name,
        request.operation,
        verdict.check.value,
        verdict.message,
    )


def _identified(obj: Mapping[str, Any], request: AdmissionRequest) -> Mapping[str, Any]:
    """`obj` with the name and (for an ImagePolicy) namespace the request gives, where its
    metadata lacks them: the apiserver fills both in before validating webhooks run, but a
    message should name the object whatever sent the review."""
    metadata = obj.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        return obj  # the parser names the problem
    missing = {}
    if not metadata.get("name") and request.name:
        missing["name"] = request.name
    if request.kind == IMAGE_POLICY and not metadata.get("namespace"):
        missing["namespace"] = request.namespace
    if not missing:
        return obj
    return {**obj, "metadata": {**metadata, **missing}}


def _only_metadata_changed(request: AdmissionRequest, old: Mapping[str, Any] | None) -> bool:
    if request.operation != "UPDATE" or old is None or request.object is None:
        return False
    return _content(request.object) == _content(old)


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key != "metadata"}


def _resource(request: AdmissionRequest) -> str:
    gvk = f"{request.group + '/' if request.group else ''}{request.version} {request.kind}"
    return f"{gvk} subresource {request.sub_resource}" if request.sub_resource else gvk
