"""Per-request orchestration: which images, which policy, which verifiers, what answer.

For one AdmissionRequest, which the reader (admission/review.py) hands over with its pod
spec already read: dedupe the images (at most --max-images-per-admission of them), answer
from the pod answers memo when every image was decided before without verifying, else
evaluate each distinct image (evaluation.py) and turn the results into one allow (with a
JSON patch pinning digests, except for the child of an owner that really exists and runs
only its owner's template images) or one deny listing every failing image (outcome.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from portieris_webhook.admission.request import CHECKED_OPERATIONS, AdmissionRequest
from portieris_webhook.admission.review import AdmissionResponse
from portieris_webhook.admission.workloads import OWNER_KINDS, PodSpec
from portieris_webhook.cluster.state import StateView
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide import outcome
from portieris_webhook.decide.cache import DecisionCache
from portieris_webhook.decide.evaluation import Evaluation, Sources
from portieris_webhook.decide.memo import PodAnswers
from portieris_webhook.decide.outcome import Decision, ImageDecision
from portieris_webhook.errors import PortierisError, UncheckableObject
from portieris_webhook.registry.credentials import pull_secret_names
from portieris_webhook.verify.contract import Verifier

LOG = logging.getLogger("portieris_webhook.decision")


class Enforcer:
    """Decides AdmissionRequests. Holds no per-request state.

    Passed verifications are reused from `decisions` while nothing they depended on
    changed (see decide/cache.py); `plans` and `answers` are the memos of decide/memo.py.
    """

    def __init__(
        self,
        state: StateView,
        verifiers: Mapping[str, Verifier],
        settings: Settings,
        decisions: DecisionCache | None = None,
    ) -> None:
        self.state = state
        self.verifiers = dict(verifiers)
        self.settings = settings
        self.decisions = decisions or DecisionCache(settings.decision_cache_max_entries)
        self.evaluation = Evaluation(state, self.verifiers, settings, self.decisions)
        self.plans = self.evaluation.plans
        self._pod_answers = PodAnswers(settings, state, self.decisions, self.evaluation.holds)
        self.answers = self._pod_answers.memo
        """The allow of each pod spec (in a namespace) decided without verifying, as of one
        generation of the cluster state; used while its cached allows are still answered."""

    async def decide(self, request: AdmissionRequest) -> Decision:
        """The answer to `request`, as a reader (admission/review.py) made it."""
        if request.operation not in CHECKED_OPERATIONS or request.object is None:
            return outcome.allow(request, f"operation {request.operation} is not checked")
        # The reader read the pod spec (a malformed one never gets here: HTTP 400). A
        # well-formed object that cannot be checked (a kind portieris does not know, a
        # container without an image, too many images) is denied, saying why.
        spec = request.spec
        if spec is None:
            kinds = (UncheckableObject.deny_kind,)
            return outcome.deny(request, request.uncheckable, (), kinds)
        try:
            distinct = self._distinct_images(spec)
        except UncheckableObject as exc:
            return outcome.deny(request, str(exc), (), (exc.deny_kind,))
        if not distinct:
            # Nothing would run; the API server's own validation refuses an empty pod.
            return outcome.allow(request, "it names no images")
        decision = self._remembered(request, spec) or await self._decided(request, spec, distinct)
        return await self._unmutated_child(request, spec, decision)

    def _remembered(self, request: AdmissionRequest, spec: PodSpec) -> Decision | None:
        """The allow remembered for this pod spec, if it still holds."""
        remembered = self._pod_answers.recall(request.namespace, spec)
        if remembered is None:
            return None
        outcome.log_images(request, remembered.images, remembered.log_images)
        response = AdmissionResponse(
            request.uid, True, patch=remembered.patch, encoded_patch=remembered.encoded_patch
        )
        return Decision(response, remembered.images, "all images allowed")

    async def _decided(
        self, request: AdmissionRequest, spec: PodSpec, distinct: list[str]
    ) -> Decision:
        """The answer made of each image's decision, remembered if no image was verified."""
        sources = Sources()
        decisions = await self._evaluate(request.namespace, distinct, spec, sources)
        decision = outcome.answer(request, spec, decisions)
        if not sources.verified and sources.generation == self.state.generation():
            # Every image was decided at this generation (the state did not change
            # while the planning loop gave the event loop its turns).
            self._pod_answers.remember(request.namespace, spec, decision, sources.cached)
        return decision

    async def evaluate_images(self, namespace: str, spec: PodSpec) -> dict[str, ImageDecision]:
        """Evaluate each distinct image of `spec` concurrently, within the verification budget;
        UncheckableObject if it names more than --max-images-per-admission."""
        return await self._evaluate(namespace, self._distinct_images(spec), spec, Sources())

    async def _evaluate(
        self, namespace: str, distinct: list[str], spec: PodSpec, sources: Sources
    ) -> dict[str, ImageDecision]:
        secrets = tuple(
            pull_secret_names(self.state, namespace, spec.image_pull_secrets, spec.service_account)
        )
        return await self.evaluation.evaluate(namespace, distinct, secrets, sources)

    def _distinct_images(self, spec: PodSpec) -> list[str]:
        """The distinct images `spec` names, in order; UncheckableObject if there are more
        than one admission may name (nothing is planned or verified for such an object)."""
        distinct = list(dict.fromkeys(item.image for item in spec.images))
        limit = self.settings.max_images_per_admission
        if len(distinct) > limit:
            raise UncheckableObject(
                f"it names {len(distinct)} distinct images, more than the {limit} one "
                "admission may name (--max-images-per-admission)"
            )
        return distinct

    async def _unmutated_child(
        self, request: AdmissionRequest, spec: PodSpec, decision: Decision
    ) -> Decision:
        """`decision`, without its patch for the child of an owner that vouches for its
        images: the owner's template was pinned when the owner was admitted, so the child is
        not mutated a second time. Its images were decided under today's policy all the same
        (an allow without a patch needs no owner to be looked up)."""
        response = decision.response
        if not (response.allowed and response.patch and request.owners):
            return decision
        owner = await self._existing_owner(request, spec)
        if owner is None:
            return decision
        why = f"all images allowed; child of {owner}, not mutated again"
        return Decision(AdmissionResponse(request.uid, True), decision.images, why)

    async def _existing_owner(self, request: AdmissionRequest, spec: PodSpec) -> str | None:
        """The owner whose pinned template this object runs, if any.

        Only when the object is being created, its owner exists with the same uid, and
        every image it runs is in the owner's pod template: the template was pinned when
        the owner went through this webhook. The owner vouches for nothing else: the images
        are decided under today's policy whatever the owner (a policy may have been narrowed
        since, or the owner admitted before the webhook was installed); only the mutation
        is skipped. A pod that points at some existing ReplicaSet but runs other images, and
        an UPDATE (an image edited on a ReplicaSet's pod, an added ephemeral container), are
        patched as any other object.
        """
        if request.operation != "CREATE" or request.sub_resource:
            return None
        images = {c.image for c in spec.images}
        for ref in request.owners:
            if (ref.group, ref.kind) not in OWNER_KINDS:
                continue
            try:
                template = await self.state.owner_images(request.namespace, ref)
            except PortierisError as exc:
                LOG.warning(
                    "cannot check owner %s %s: %s; pinning the images", ref.kind, ref.name, exc
                )
                continue
            if template is None:
                LOG.warning(
                    "%s %s/%s names owner %s %s (uid %s), which does not exist: pinning the images",
                    request.kind,
                    request.namespace,
                    request.name,
                    ref.kind,
                    ref.name,
                    ref.uid,
                )
            elif images <= template:
                return f"{ref.kind} {request.namespace}/{ref.name}"
            else:
                LOG.warning(
                    "%s %s/%s runs images its owner %s %s does not (%s): pinning the images",
                    request.kind,
                    request.namespace,
                    request.name,
                    ref.kind,
                    ref.name,
                    ", ".join(sorted(images - template)),
                )
        return None
