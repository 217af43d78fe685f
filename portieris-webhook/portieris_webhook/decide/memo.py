"""What the enforcer remembers besides the decision cache, and the bounds that keep it small.

Two memos, each valid for one generation of the cluster state (any change to a policy,
secret or service account forgets them): `plans`, what the cluster state says about an
image in a namespace with a list of pull secrets (its policy, verifiers and decision cache
key); and `PodAnswers`, the allow of a whole pod spec whose every image was decided without
verifying. Both are bounded in entries, age and the text they hold, and a request naming
longer strings than a memo entry may hold is decided each time, never remembered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from portieris_webhook.admission.review import PatchOperation
from portieris_webhook.admission.workloads import PodSpec
from portieris_webhook.cluster.state import StateView
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.cache import CachedAllow, DecisionCache, DecisionKey
from portieris_webhook.decide.outcome import Decision, ImageDecision, images_text
from portieris_webhook.images import ImageReference
from portieris_webhook.kits.bounded import GenerationMemo
from portieris_webhook.policy.matching import PolicyMatch
from portieris_webhook.verify.contract import Verdict, Verifier

PlanKey = tuple[str, str, tuple[str, ...]]
"""(image as written, namespace, pull secret names)."""
AnswerKey = tuple[str, PodSpec]
"""(namespace, pod spec)."""
PLAN_MAX_AGE = 3600.0
"""Seconds a plan is kept at most, though it is exact while the cluster state is unchanged."""
PLAN_MAX_IMAGE_CHARS = 1024
"""Longer image strings (no valid reference is) are decided each time, never remembered, so
the memo holds at most this much text per entry whatever a request carries."""
MEMO_MAX_NAMES_CHARS = 4096
"""The namespace, pull secret names and service account name a memo key may hold together
(Kubernetes names have at most 253 characters, and a pod names a few): a request naming more
is decided each time, never remembered, so it can neither grow a memo nor push out others."""
PLANS_MAX_CHARS = 16 * 1024 * 1024
"""The text every remembered plan holds together, its key included (_plan_key_chars)."""
POD_MAX_IMAGES = 64
"""Pod specs naming more images are answered image by image, never remembered whole, so an
entry of `answers` holds at most this many images (each under PLAN_MAX_IMAGE_CHARS)."""
ANSWERS_MAX_CHARS = 16 * 1024 * 1024
"""The text every remembered pod answer holds together, its key included (namespace, images,
pointers, pull secret names, service account; then patch and log text): pods that each name
many long strings cannot make the memo grow past this."""


@dataclass(eq=False)
class Plan:
    """What the cluster state says about an image that needs verifiers, in one namespace
    with one list of pull secrets: its policy, the verifiers it needs and its decision
    cache key. Derived from the state alone (never from one request's deadline)."""

    image: str
    reference: ImageReference
    match: PolicyMatch
    policy_name: str
    active: tuple[Verifier, ...]
    key: DecisionKey | None
    _answered: tuple[CachedAllow, ImageDecision] | None = None
    """The last cached allow this plan was answered with, and the decision made of it."""

    def chars(self) -> int:
        """The text this plan holds of its own (its policy belongs to the cluster state): the
        image as written and parsed, the policy's name, and room for the decision it last
        made (the pinned image, the verifiers' notes)."""
        return 3 * len(self.image) + len(self.policy_name) + 256

    def allowed_by(self, allow: CachedAllow) -> ImageDecision:
        """The decision a cached allow makes for this image (the same object while the
        decision cache answers with the same allow)."""
        if self._answered is not None and self._answered[0] is allow:
            return self._answered[1]
        decision = ImageDecision(
            self.image, True, self.policy_name, allow.digest, allow.patched_image, allow.reasons
        )
        self._answered = (allow, decision)
        return decision


def plan_memo(settings: Settings) -> GenerationMemo[PlanKey, ImageDecision | Plan] | None:
    """The memo of plans (and of decisions the cluster state alone makes), or None when the
    decision cache is off."""
    if settings.decision_cache_max_entries <= 0:
        return None
    return GenerationMemo(
        settings.decision_cache_max_entries,
        max_age=PLAN_MAX_AGE,
        max_bytes=PLANS_MAX_CHARS,
        size=_plan_chars,
        key_size=_plan_key_chars,
    )


def plan_rememberable(image: str, namespace: str, pull_secrets: tuple[str, ...]) -> bool:
    """Whether the plan of `image` may be remembered (and so is worth looking up)."""
    return (
        len(image) <= PLAN_MAX_IMAGE_CHARS
        and _names_chars(namespace, pull_secrets) <= MEMO_MAX_NAMES_CHARS
    )


@dataclass(frozen=True)
class PodAnswer:
    """The allow of a pod spec whose every image was decided without verifying: from the
    cluster state alone, or from an allow the decision cache held."""

    images: tuple[ImageDecision, ...]
    patch: tuple[PatchOperation, ...]
    encoded_patch: str
    log_images: str
    """How the decision log line names the images (outcome.images_text)."""
    cached: tuple[tuple[DecisionKey, CachedAllow], ...]
    """The decision cache's allows it was made of: it holds while each is still the one the
    decision cache answers with."""

    def chars(self) -> int:
        """The text this answer holds, what ANSWERS_MAX_CHARS bounds with its key's."""
        images = sum(map(_decision_chars, self.images))
        pointers = sum(len(op.path) + len(op.value) for op in self.patch)
        return images + pointers + len(self.encoded_patch) + len(self.log_images)


class PodAnswers:
    """The allows of pod specs decided without verifying, as of one generation of the
    cluster state; each is used while its cached allows are still answered."""

    def __init__(
        self,
        settings: Settings,
        state: StateView,
        decisions: DecisionCache,
        holds: Callable[[Verdict], bool],
    ) -> None:
        self.state = state
        self.decisions = decisions
        self.holds = holds
        self.memo: GenerationMemo[AnswerKey, PodAnswer] | None = (
            GenerationMemo(
                settings.decision_cache_max_entries,
                max_age=PLAN_MAX_AGE,
                max_bytes=ANSWERS_MAX_CHARS,
                size=PodAnswer.chars,
                key_size=_answer_key_chars,
            )
            if settings.decision_cache_max_entries > 0
            else None
        )

    def recall(self, namespace: str, spec: PodSpec) -> PodAnswer | None:
        """The allow remembered for `spec` in `namespace`, if each cached allow it was made
        of is still the one the decision cache answers with."""
        if self.memo is None or not _rememberable(namespace, spec):
            return None
        answer = self.memo.get((namespace, spec), self.state.generation())
        if answer is None:
            return None
        for key, allow in answer.cached:
            if self.decisions.get(key, self.holds) is not allow:
                return None
        return answer

    def remember(
        self,
        namespace: str,
        spec: PodSpec,
        decision: Decision,
        cached: list[tuple[DecisionKey, CachedAllow]],
    ) -> None:
        """Remember an allow whose every image was decided without verifying."""
        if (
            self.memo is None
            or not decision.response.allowed
            or not _rememberable(namespace, spec)
            or any(len(item.image) > PLAN_MAX_IMAGE_CHARS for item in spec.images)
        ):
            return
        response = decision.response
        answer = PodAnswer(
            decision.images,
            tuple(response.patch),
            response.encoded_patch_text(),
            images_text(decision.images),
            tuple(cached),
        )
        self.memo.put((namespace, spec), answer, self.state.generation())


def _names_chars(namespace: str, names: Iterable[str], account: str | None = None) -> int:
    """The text of the names a memo key holds besides its images."""
    return len(namespace) + sum(map(len, names)) + len(account or "")


def _rememberable(namespace: str, spec: PodSpec) -> bool:
    """Whether the answer for `spec` may be remembered (and so is worth looking up)."""
    return (
        len(spec.images) <= POD_MAX_IMAGES
        and _names_chars(namespace, spec.image_pull_secrets, spec.service_account)
        <= MEMO_MAX_NAMES_CHARS
    )


def _plan_key_chars(key: PlanKey) -> int:
    image, namespace, pull_secrets = key
    return len(image) + _names_chars(namespace, pull_secrets)


def _plan_chars(plan: ImageDecision | Plan) -> int:
    return plan.chars() if isinstance(plan, Plan) else _decision_chars(plan)


def _decision_chars(decision: ImageDecision) -> int:
    return (
        len(decision.image)
        + len(decision.policy)
        + len(decision.digest or "")
        + len(decision.patched_image or "")
        + sum(map(len, decision.reasons))
    )


def _answer_key_chars(key: AnswerKey) -> int:
    """The text of a remembered pod answer's key (its images also appear in the answer, and
    are counted twice: the bound errs on the safe side)."""
    namespace, spec = key
    images = sum(len(item.image) + len(item.pointer) for item in spec.images)
    return images + _names_chars(namespace, spec.image_pull_secrets, spec.service_account)
