"""Why an image was allowed or denied, and what the admission answers: one module.

An image is denied for one of these reasons, each built here: its reference does not parse
(`unparseable`), no policy covers it (`no_policy`), its policy needs a verifier that is not
installed (`verifiers_missing`), a verifier refused it or failed, the verifiers disagree on
the digest or the verified digest is not the one asked for (`combine`), or it was not
verified within the budget (`unfinished`). An admission is denied with every denied
image's reasons (`answer`), or as a whole when its object cannot be checked (`deny`).
Every answer is logged as one line on the `portieris_webhook.decision` logger.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from portieris_webhook.admission.request import AdmissionRequest
from portieris_webhook.admission.review import AdmissionResponse, PatchOperation
from portieris_webhook.admission.workloads import PodSpec
from portieris_webhook.errors import DenyKind, PortierisError, VerificationError
from portieris_webhook.images import ImageReference
from portieris_webhook.kits import logs
from portieris_webhook.policy.matching import PolicyMatch, PolicySelection
from portieris_webhook.remote import outbound
from portieris_webhook.verify.contract import Verdict, Verifier

LOG = logging.getLogger("portieris_webhook.decision")


@dataclass(frozen=True)
class ImageDecision:
    image: str
    allowed: bool
    policy: str = ""
    digest: str | None = None
    patched_image: str | None = None
    reasons: tuple[str, ...] = ()
    reason_kind: DenyKind | None = None
    """The category of a deny, for metrics."""

    @functools.cached_property
    def log_fields(self) -> str:
        """How the decision log line names this image: policy, result, digest, reason."""
        result = "allow" if self.allowed else "deny"
        reason = "; ".join(self.reasons)
        return (
            f"image={self.image} policy={self.policy or '-'!r} result={result} "
            f"digest={self.digest or '-'} reason={reason!r}"
        )


@dataclass(frozen=True)
class Decision:
    response: AdmissionResponse
    images: tuple[ImageDecision, ...] = ()
    summary: str = ""
    reason_kinds: tuple[DenyKind, ...] = field(default_factory=tuple)


# --- one image, from the cluster state alone ---------------------------------------------


def unparseable(image: str, error: PortierisError) -> ImageDecision:
    return ImageDecision(image, False, reasons=(str(error),), reason_kind=error.deny_kind)


def no_policy(image: str, selection: PolicySelection) -> ImageDecision:
    return ImageDecision(
        image, False, reasons=(selection.describe(),), reason_kind=DenyKind.NO_POLICY
    )


def needs_no_checks(image: str, policy_name: str) -> ImageDecision:
    return ImageDecision(image, True, policy=policy_name, reasons=("policy requires no checks",))


def verifiers_missing(image: str, policy_name: str, missing: Sequence[str]) -> ImageDecision:
    reasons = tuple(
        f"the policy requires {name} verification, but the {name} verifier is not installed"
        for name in missing
    )
    return ImageDecision(
        image, False, policy_name, reasons=reasons, reason_kind=DenyKind.VERIFIER_MISSING
    )


# --- one image, from its verifiers -------------------------------------------------------


def unfinished(image: str, timeout: float, waiting: outbound.Waiting) -> ImageDecision:
    """The deny of an image whose verification was still running when the budget ran out,
    naming what it was waiting for."""
    message = f"verification did not finish within {timeout:g}s"
    pending = waiting.describe()
    reason = f"{message}; it was waiting for {pending}" if pending else message
    return ImageDecision(image, False, reasons=(reason,), reason_kind=DenyKind.TIMEOUT)


def combine(
    image: str,
    check_image: ImageReference,
    match: PolicyMatch,
    active: Sequence[Verifier],
    outcomes: Sequence[Verdict | BaseException],
) -> ImageDecision:
    """The decision the verifiers' outcomes make: every verifier must pass, and all must
    agree on the digest, which must be the one the image asks for (if it names one)."""
    policy_name = match.describe()
    reasons: list[str] = []
    verdicts: list[Verdict] = []
    for verifier, outcome in zip(active, outcomes, strict=True):
        if isinstance(outcome, VerificationError):
            reasons.append(f"{verifier.name}: {outcome}")
        elif isinstance(outcome, BaseException):
            LOG.error("verifier %s failed on %s", verifier.name, image, exc_info=outcome)
            reasons.append(f"{verifier.name}: internal error: {outcome!r}")
        else:
            verdicts.append(outcome)
    if reasons:
        return ImageDecision(
            image, False, policy_name, reasons=tuple(reasons), reason_kind=DenyKind.VERIFICATION
        )
    return _agreed(image, check_image, match, policy_name, verdicts)


def _agreed(
    image: str,
    check_image: ImageReference,
    match: PolicyMatch,
    policy_name: str,
    verdicts: Sequence[Verdict],
) -> ImageDecision:
    """The decision of verdicts that all passed: on the one digest they agree on."""
    digests = {v.digest for v in verdicts if v.digest}
    if len(digests) > 1:
        said = ", ".join(f"{v.verifier} verified {v.digest}" for v in verdicts if v.digest)
        return ImageDecision(
            image,
            False,
            policy_name,
            reasons=(f"verifiers disagree on the digest: {said}",),
            reason_kind=DenyKind.DIGEST_DISAGREEMENT,
        )
    digest = digests.pop() if digests else None
    requested_digest = check_image.digest
    if requested_digest and digest and digest != requested_digest:
        return ImageDecision(
            image,
            False,
            policy_name,
            reasons=(f"image asks for {requested_digest} but the verified digest is {digest}",),
            reason_kind=DenyKind.DIGEST_MISMATCH,
        )
    patched = None
    if digest and match.policy.mutate_image:
        patched = check_image.pinned(digest)
    detail = tuple(v.detail for v in verdicts if v.detail)
    return ImageDecision(image, True, policy_name, digest, patched, detail)


# --- the admission -----------------------------------------------------------------------


def answer(
    request: AdmissionRequest, spec: PodSpec, decisions: Mapping[str, ImageDecision]
) -> Decision:
    """The answer made of each distinct image's decision: a deny naming every denied image
    with its reasons, else an allow whose patch pins each image a verifier resolved."""
    images = tuple(decisions.values())
    log_images(request, images, images_text(images))
    denied = [d for d in images if not d.allowed]
    if denied:
        lines = [f"image {d.image}: {'; '.join(d.reasons)}" for d in denied]
        message = (
            f"portieris denied {request.display_name} in namespace {request.namespace}: "
            + " | ".join(lines)
        )
        kinds = tuple(d.reason_kind or DenyKind.OTHER for d in denied)
        return Decision(AdmissionResponse(request.uid, False, message), images, message, kinds)
    patch = tuple(
        PatchOperation(item.pointer, decisions[item.image].patched_image or "")
        for item in spec.images
        if decisions[item.image].patched_image not in (None, item.image)
    )
    return Decision(AdmissionResponse(request.uid, True, patch=patch), images, "all images allowed")


def allow(request: AdmissionRequest, why: str) -> Decision:
    """An allow of the whole object, with no image decided (nothing to check)."""
    LOG.info(
        "namespace=%s object=%s result=allow reason=%r",
        request.namespace,
        request.display_name,
        why,
    )
    return Decision(AdmissionResponse(request.uid, True), (), why)


def deny(
    request: AdmissionRequest,
    why: str,
    images: tuple[ImageDecision, ...],
    kinds: tuple[DenyKind, ...],
) -> Decision:
    """A deny of the whole object (it cannot be checked), saying why."""
    LOG.info(
        "namespace=%s object=%s result=deny reason=%r",
        request.namespace,
        request.display_name,
        why,
    )
    message = f"portieris denied {request.display_name} in namespace {request.namespace}: {why}"
    return Decision(AdmissionResponse(request.uid, False, message), images, message, kinds)


def images_text(images: tuple[ImageDecision, ...]) -> str:
    """How the decision log line names the images (each one's policy, result, digest, reason)."""
    return " | ".join(item.log_fields for item in images)


def log_images(request: AdmissionRequest, images: tuple[ImageDecision, ...], text: str) -> None:
    """One line for the admission, naming each image with its policy, result, digest and
    reason (`text`, images_text): one record, not one per image, as a record costs more
    than the cached check."""
    if not LOG.isEnabledFor(logging.INFO):
        return
    result = "allow" if all(item.allowed for item in images) else "deny"
    logs.info_line(
        LOG,
        f"namespace={request.namespace} object={request.display_name} result={result} "
        f"images={len(images)}: {text}",
    )
