"""Per-request orchestration: which images, which policy, which verifiers, what answer.

For one AdmissionRequest: find the pod spec, dedupe the images (at most
--max-images-per-admission of them), evaluate each distinct image concurrently
under the verification budget, and turn the results into one allow (with a
JSON patch pinning digests, except for the child of an owner that really exists
and runs only its owner's template images) or one deny listing every failing image.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from portieris_webhook import logs, outbound
from portieris_webhook.admission.request import CHECKED_OPERATIONS, AdmissionRequest
from portieris_webhook.admission.review import AdmissionResponse, PatchOperation
from portieris_webhook.admission.workloads import OWNER_KINDS, PodSpec, pod_spec, workload_kind
from portieris_webhook.bounded import GenerationMemo
from portieris_webhook.decisions import CachedAllow, DecisionCache, DecisionKey, decision_key
from portieris_webhook.errors import (
    DenyKind,
    PortierisError,
    UncheckableObject,
    VerificationError,
)
from portieris_webhook.images import ImageReference, parse_image
from portieris_webhook.outbound import IMAGE_READ_BYTES, REQUEST_READ_BYTES, ReadBudget
from portieris_webhook.policy.matching import PolicyMatch, PolicySelection, find_policy
from portieris_webhook.registry.credentials import pull_secret_names
from portieris_webhook.settings import Settings
from portieris_webhook.state import StateView
from portieris_webhook.verifiers import ImageCheck, Verdict, Verifier, required_verifiers

LOG = logging.getLogger("portieris_webhook.decision")

PlanKey = tuple[str, str, tuple[str, ...]]
"""(image as written, namespace, pull secret names)."""
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
YIELD_EVERY = 16
"""Images planned between two turns given to the event loop: one admission naming many
images (each planned synchronously) does not hold up the admissions that arrive meanwhile."""


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


@dataclass(eq=False)
class _Plan:
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

    def to_verify(
        self,
        image: str,
        namespace: str,
        pull_secrets: tuple[str, ...],
        deadline: float,
        reads: ReadBudget,
    ) -> _ToVerify:
        check = ImageCheck(
            self.reference, self.match.policy, namespace, pull_secrets, deadline, reads
        )
        return _ToVerify(image, check, self.match, self.active, self.key)


@dataclass(frozen=True)
class _Answer:
    """The allow of a pod spec whose every image was decided without verifying: from the
    cluster state alone, or from an allow the decision cache held."""

    images: tuple[ImageDecision, ...]
    patch: tuple[PatchOperation, ...]
    encoded_patch: str
    log_images: str
    """How the decision log line names the images (_log_images)."""
    cached: tuple[tuple[DecisionKey, CachedAllow], ...]
    """The decision cache's allows it was made of: it holds while each is still the one the
    decision cache answers with."""

    def chars(self) -> int:
        """The text this answer holds, what ANSWERS_MAX_CHARS bounds with its key's."""
        images = sum(map(_decision_chars, self.images))
        pointers = sum(len(op.path) + len(op.value) for op in self.patch)
        return images + pointers + len(self.encoded_patch) + len(self.log_images)


@dataclass
class _Sources:
    """Where the decisions on a pod spec's images came from."""

    cached: list[tuple[DecisionKey, CachedAllow]] = field(default_factory=list)
    """The decision cache's allows used."""
    verified: bool = False
    """Whether any image was verified (or left to verify)."""
    generation: int | None = None
    """The state generation when the first image was decided: the decisions can be kept
    under it only if it is still the generation once the last was."""


@dataclass(frozen=True)
class _ToVerify:
    """An image whose policy needs verifiers the decision cache could not answer for."""

    image: str
    check: ImageCheck
    match: PolicyMatch
    active: tuple[Verifier, ...]
    key: DecisionKey | None


class Enforcer:
    """Decides AdmissionRequests. Holds no per-request state.

    Passed verifications are reused from `decisions` while nothing they depended on
    changed (see decisions.py).
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
        self.plans: GenerationMemo[PlanKey, ImageDecision | _Plan] | None = (
            GenerationMemo(
                settings.decision_cache_max_entries,
                max_age=PLAN_MAX_AGE,
                max_bytes=PLANS_MAX_CHARS,
                size=_plan_chars,
                key_size=_plan_key_chars,
            )
            if settings.decision_cache_max_entries > 0
            else None
        )
        """Each image's policy, verifiers and decision key by (image, namespace, pull
        secrets), as of one generation of the cluster state."""
        self.answers: GenerationMemo[tuple[str, PodSpec], _Answer] | None = (
            GenerationMemo(
                settings.decision_cache_max_entries,
                max_age=PLAN_MAX_AGE,
                max_bytes=ANSWERS_MAX_CHARS,
                size=_Answer.chars,
                key_size=_answer_key_chars,
            )
            if settings.decision_cache_max_entries > 0
            else None
        )
        """The allow of each pod spec (in a namespace) decided without verifying, as of one
        generation of the cluster state; used while its cached allows are still answered."""

    # --- request level -------------------------------------------------------
    async def decide(self, request: AdmissionRequest) -> Decision:
        """The answer to `request`; InvalidAdmissionReview if its object is malformed."""
        if request.operation not in CHECKED_OPERATIONS or request.object is None:
            return self._allow(request, f"operation {request.operation} is not checked")
        # A malformed pod spec raises InvalidAdmissionReview out of here (HTTP 400): only
        # a document that did not come from an API server has one. A well-formed object
        # that cannot be checked (a kind portieris does not know, too many images) is
        # denied, saying why.
        try:
            spec = request.spec or pod_spec(
                request.object, workload_kind(request.group, request.version, request.kind)
            )
            distinct = self._distinct_images(spec)
        except UncheckableObject as exc:
            return self._deny(request, str(exc), (), (exc.deny_kind,))
        if not distinct:
            # Nothing would run; the API server's own validation refuses an empty pod.
            return self._allow(request, "it names no images")
        remembered = self._remembered_answer(request.namespace, spec)
        if remembered is not None:
            _log_images(request, remembered.images, remembered.log_images)
            response = AdmissionResponse(
                request.uid, True, patch=remembered.patch, encoded_patch=remembered.encoded_patch
            )
            decision = Decision(response, remembered.images, "all images allowed")
        else:
            sources = _Sources()
            decisions = await self._evaluate(request.namespace, distinct, spec, sources)
            decision = self._answer(request, spec, decisions)
            if not sources.verified and sources.generation == self.state.generation():
                # Every image was decided at this generation (the state did not change
                # while the planning loop gave the event loop its turns).
                self._remember_answer(request.namespace, spec, decision, sources.cached)
        return await self._unmutated_child(request, spec, decision)

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

    def _remembered_answer(self, namespace: str, spec: PodSpec) -> _Answer | None:
        """The allow remembered for `spec` in `namespace`, if each cached allow it was made
        of is still the one the decision cache answers with."""
        if self.answers is None or not _rememberable(namespace, spec):
            return None
        answer = self.answers.get((namespace, spec), self.state.generation())
        if answer is None:
            return None
        for key, allow in answer.cached:
            if self.decisions.get(key, self._holds) is not allow:
                return None
        return answer

    def _remember_answer(
        self,
        namespace: str,
        spec: PodSpec,
        decision: Decision,
        cached: list[tuple[DecisionKey, CachedAllow]],
    ) -> None:
        """Remember an allow whose every image was decided without verifying."""
        if (
            self.answers is None
            or not decision.response.allowed
            or not _rememberable(namespace, spec)
            or any(len(item.image) > PLAN_MAX_IMAGE_CHARS for item in spec.images)
        ):
            return
        response = decision.response
        answer = _Answer(
            decision.images,
            tuple(response.patch),
            response.encoded_patch_text(),
            _images_text(decision.images),
            tuple(cached),
        )
        self.answers.put((namespace, spec), answer, self.state.generation())

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

    def _answer(
        self, request: AdmissionRequest, spec: PodSpec, decisions: Mapping[str, ImageDecision]
    ) -> Decision:
        images = tuple(decisions.values())
        _log_images(request, images, _images_text(images))
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
        return Decision(
            AdmissionResponse(request.uid, True, patch=patch), images, "all images allowed"
        )

    def _allow(self, request: AdmissionRequest, why: str) -> Decision:
        LOG.info(
            "namespace=%s object=%s result=allow reason=%r",
            request.namespace,
            request.display_name,
            why,
        )
        return Decision(AdmissionResponse(request.uid, True), (), why)

    def _deny(
        self,
        request: AdmissionRequest,
        why: str,
        images: tuple[ImageDecision, ...],
        kinds: tuple[DenyKind, ...],
    ) -> Decision:
        LOG.info(
            "namespace=%s object=%s result=deny reason=%r",
            request.namespace,
            request.display_name,
            why,
        )
        message = f"portieris denied {request.display_name} in namespace {request.namespace}: {why}"
        return Decision(AdmissionResponse(request.uid, False, message), images, message, kinds)

    # --- image level ---------------------------------------------------------
    async def evaluate_images(self, namespace: str, spec: PodSpec) -> dict[str, ImageDecision]:
        """Evaluate each distinct image of `spec` concurrently, within the verification budget;
        UncheckableObject if it names more than --max-images-per-admission."""
        return await self._evaluate(namespace, self._distinct_images(spec), spec, _Sources())

    async def _evaluate(
        self, namespace: str, distinct: Sequence[str], spec: PodSpec, sources: _Sources
    ) -> dict[str, ImageDecision]:
        """Evaluate the images `distinct` of `spec` (_distinct_images).

        What can be decided without waiting (no policy, nothing to check, a decision the
        cache holds) is decided at once, giving the event loop a turn every YIELD_EVERY
        images; only the images left to verify get a task each. `sources` learns the state
        generation, which cached allows were used and whether any image was verified.
        """
        sources.generation = self.state.generation()
        secrets = tuple(
            pull_secret_names(self.state, namespace, spec.image_pull_secrets, spec.service_account)
        )
        decided: dict[str, ImageDecision] = {}
        planned: dict[str, _Plan] = {}
        for index, image in enumerate(distinct):
            if index and index % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            prepared = self._prepare(image, namespace, secrets, sources.cached)
            if isinstance(prepared, ImageDecision):
                decided[image] = prepared
            else:
                planned[image] = prepared
        if planned:
            sources.verified = True
            deadline = asyncio.get_running_loop().time() + self.settings.verify_timeout
            request_reads = ReadBudget(REQUEST_READ_BYTES, "one admission request")
            to_verify = {
                image: plan.to_verify(
                    image,
                    namespace,
                    secrets,
                    deadline,
                    request_reads.child(IMAGE_READ_BYTES, f"image {image}"),
                )
                for image, plan in planned.items()
            }
            decided.update(await self._verify_all(to_verify))
        return {image: decided[image] for image in distinct}

    async def _verify_all(self, to_verify: Mapping[str, _ToVerify]) -> dict[str, ImageDecision]:
        """Verify the images concurrently; those still running at the budget are denied."""
        waiting = {image: outbound.Waiting() for image in to_verify}
        tasks = {
            image: asyncio.ensure_future(self._tracked(waiting[image], item))
            for image, item in to_verify.items()
        }
        done, pending = await asyncio.wait(tasks.values(), timeout=self.settings.verify_timeout)
        for task in pending:
            task.cancel()
        results: dict[str, ImageDecision] = {}
        for image, task in tasks.items():
            if task in done:
                results[image] = task.result()
            else:
                results[image] = ImageDecision(
                    image,
                    False,
                    reasons=(self._unfinished(waiting[image]),),
                    reason_kind=DenyKind.TIMEOUT,
                )
        return results

    async def _tracked(self, waiting: outbound.Waiting, item: _ToVerify) -> ImageDecision:
        """_verify, its outbound calls recorded in `waiting` (runs in the image's task)."""
        outbound.record_into(waiting)
        return await self._verify(item)

    def _unfinished(self, waiting: outbound.Waiting) -> str:
        message = f"verification did not finish within {self.settings.verify_timeout:g}s"
        pending = waiting.describe()
        return f"{message}; it was waiting for {pending}" if pending else message

    def select_policy(self, image: str, namespace: str) -> PolicySelection:
        """The policy for `image` in `namespace`, or why there is none."""
        state = self.state
        return find_policy(
            image,
            namespace,
            state.image_policies(),
            state.cluster_image_policies(),
            state.invalid_policies(),
        )

    async def evaluate_image(
        self,
        image: str,
        namespace: str,
        pull_secrets: tuple[str, ...],
        deadline: float,
        reads: ReadBudget | None = None,
    ) -> ImageDecision:
        """The decision on one image (policy, verifiers, decision cache)."""
        prepared = self._prepare(image, namespace, pull_secrets)
        if isinstance(prepared, ImageDecision):
            return prepared
        reads = reads or ReadBudget(IMAGE_READ_BYTES, f"image {image}")
        return await self._verify(
            prepared.to_verify(image, namespace, pull_secrets, deadline, reads)
        )

    def _prepare(
        self,
        image: str,
        namespace: str,
        pull_secrets: tuple[str, ...],
        used: list[tuple[DecisionKey, CachedAllow]] | None = None,
    ) -> ImageDecision | _Plan:
        """Everything decided without waiting: the decision if that settles it (the cluster
        state alone, or a passed check the decision cache holds, added to `used`), else
        what to verify."""
        plan = self._plan(image, namespace, pull_secrets)
        if isinstance(plan, ImageDecision):
            return plan
        if plan.key is not None:
            cached = self.decisions.get(plan.key, self._holds)
            if cached is not None:
                if used is not None:
                    used.append((plan.key, cached))
                return plan.allowed_by(cached)
        return plan

    def _plan(
        self, image: str, namespace: str, pull_secrets: tuple[str, ...]
    ) -> ImageDecision | _Plan:
        """What the cluster state says about `image`, remembered while the state's generation
        stays (`plans`): a change to any policy, secret or service account forgets it all."""
        if (
            self.plans is None
            or len(image) > PLAN_MAX_IMAGE_CHARS
            or _names_chars(namespace, pull_secrets) > MEMO_MAX_NAMES_CHARS
        ):
            return self._derive_plan(image, namespace, pull_secrets)
        generation = self.state.generation()
        memo_key = (image, namespace, pull_secrets)
        remembered = self.plans.get(memo_key, generation)
        if remembered is not None:
            return remembered
        plan = self._derive_plan(image, namespace, pull_secrets)
        self.plans.put(memo_key, plan, generation)
        return plan

    def _derive_plan(
        self, image: str, namespace: str, pull_secrets: tuple[str, ...]
    ) -> ImageDecision | _Plan:
        try:
            reference = parse_image(image)
        except PortierisError as exc:
            return ImageDecision(image, False, reasons=(str(exc),), reason_kind=exc.deny_kind)
        match = self.select_policy(image, namespace)
        if not isinstance(match, PolicyMatch):
            return ImageDecision(
                image, False, reasons=(match.describe(),), reason_kind=DenyKind.NO_POLICY
            )
        policy_name = match.describe()
        required = required_verifiers(match.policy)
        if not required:
            return ImageDecision(
                image, True, policy=policy_name, reasons=("policy requires no checks",)
            )
        missing = [name for name in required if name not in self.verifiers]
        if missing:
            reasons = tuple(
                f"the policy requires {name} verification, but the {name} verifier is not installed"
                for name in missing
            )
            return ImageDecision(
                image, False, policy_name, reasons=reasons, reason_kind=DenyKind.VERIFIER_MISSING
            )
        active = tuple(self.verifiers[name] for name in sorted(required))
        # What the verifiers read depends on the image, policy, namespace and pull secrets
        # and the cluster state, never on the deadline or the read budget of one request.
        check = ImageCheck(reference, match.policy, namespace, pull_secrets, deadline=0.0)
        key = self._decision_key(check, active)
        return _Plan(image, reference, match, policy_name, active, key)

    async def _verify(self, item: _ToVerify) -> ImageDecision:
        """Run the verifiers of `item` and combine their verdicts; keep an allow for reuse."""
        check, active = item.check, list(item.active)
        outcomes = await asyncio.gather(*(v.verify(check) for v in active), return_exceptions=True)
        decision = self._combine(item.image, check.image, item.match, active, outcomes)
        if item.key is not None and decision.allowed:
            self._remember(item.key, decision, check, active, outcomes)
        return decision

    def _decision_key(self, check: ImageCheck, active: Sequence[Verifier]) -> DecisionKey | None:
        """The decision cache key of `check`, or None if it is off or a verifier is opaque."""
        if not self.decisions.enabled:
            return None
        try:
            read = [(v.name, v.inputs(check)) for v in active]
        except Exception:  # a plugin's bug must not turn into a deny: verify without the cache
            LOG.exception("cannot tell what %s reads: not cached", check.image.raw)
            return None
        return decision_key(check.image.raw, check.policy, read)

    def _remember(
        self,
        key: DecisionKey,
        decision: ImageDecision,
        check: ImageCheck,
        active: list[Verifier],
        outcomes: list[Verdict | BaseException],
    ) -> None:
        """Keep an allow for reuse, unless what it read changed while it was verified."""
        if self._decision_key(check, active) != key:
            return  # a secret changed mid-check: the verdict may belong to either version
        verdicts = [o for o in outcomes if isinstance(o, Verdict)]
        # What is left of each verifier's window once the age of the answers it used is
        # taken off: the decision is never reused past the point its verifiers would ask
        # their servers again.
        max_age = min(
            verifier.max_age() - (outcome.age if isinstance(outcome, Verdict) else 0.0)
            for verifier, outcome in zip(active, outcomes, strict=True)
        )
        allow = CachedAllow(decision.digest, decision.patched_image, decision.reasons)
        self.decisions.put(key, allow, max_age, verdicts)

    def _holds(self, verdict: Verdict) -> bool:
        verifier = self.verifiers.get(verdict.verifier)
        return verifier is not None and verifier.holds(verdict)

    def _combine(
        self,
        image: str,
        check_image: ImageReference,
        match: PolicyMatch,
        active: list[Verifier],
        outcomes: list[Verdict | BaseException],
    ) -> ImageDecision:
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
                image,
                False,
                policy_name,
                reasons=tuple(reasons),
                reason_kind=DenyKind.VERIFICATION,
            )
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


def _plan_chars(plan: ImageDecision | _Plan) -> int:
    return plan.chars() if isinstance(plan, _Plan) else _decision_chars(plan)


def _decision_chars(decision: ImageDecision) -> int:
    return (
        len(decision.image)
        + len(decision.policy)
        + len(decision.digest or "")
        + len(decision.patched_image or "")
        + sum(map(len, decision.reasons))
    )


def _answer_key_chars(key: tuple[str, PodSpec]) -> int:
    """The text of a remembered pod answer's key (its images also appear in the answer, and
    are counted twice: the bound errs on the safe side)."""
    namespace, spec = key
    images = sum(len(item.image) + len(item.pointer) for item in spec.images)
    return images + _names_chars(namespace, spec.image_pull_secrets, spec.service_account)


def _images_text(images: tuple[ImageDecision, ...]) -> str:
    """How the decision log line names the images (each one's policy, result, digest, reason)."""
    return " | ".join(item.log_fields for item in images)


def _log_images(request: AdmissionRequest, images: tuple[ImageDecision, ...], text: str) -> None:
    """One line for the admission, naming each image with its policy, result, digest and
    reason (`text`, _images_text): one record, not one per image, as a record costs more
    than the cached check."""
    if not LOG.isEnabledFor(logging.INFO):
        return
    result = "allow" if all(item.allowed for item in images) else "deny"
    logs.info_line(
        LOG,
        f"namespace={request.namespace} object={request.display_name} result={result} "
        f"images={len(images)}: {text}",
    )
