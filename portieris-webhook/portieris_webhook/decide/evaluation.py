"""Deciding each distinct image of an admission: plan, decision cache, verify.

For each image: its plan (policy, verifiers, decision cache key) comes from the plan memo
or is derived from the cluster state; a plan the decision cache holds a passed check for
is answered at once; only the images left get a task each, verified concurrently under
the request's verification budget (time and bytes read), and an image still running when
the time is up is denied, naming what it was waiting for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from portieris_webhook.cluster.state import StateView
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide import outcome
from portieris_webhook.decide.cache import CachedAllow, DecisionCache, DecisionKey, decision_key
from portieris_webhook.decide.memo import Plan, plan_memo, plan_rememberable
from portieris_webhook.decide.outcome import ImageDecision
from portieris_webhook.errors import PortierisError
from portieris_webhook.images import parse_image
from portieris_webhook.policy.matching import PolicyMatch, PolicySelection, find_policy
from portieris_webhook.remote import outbound
from portieris_webhook.remote.outbound import IMAGE_READ_BYTES, REQUEST_READ_BYTES, ReadBudget
from portieris_webhook.verify.contract import ImageCheck, Verdict, Verifier, required_verifiers

LOG = logging.getLogger("portieris_webhook.decision")

YIELD_EVERY = 16
"""Images planned between two turns given to the event loop: one admission naming many
images (each planned synchronously) does not hold up the admissions that arrive meanwhile."""

Used = list[tuple[DecisionKey, CachedAllow]]
"""The decision cache's allows a set of decisions was made of."""


@dataclass
class Sources:
    """Where the decisions on a pod spec's images came from."""

    cached: Used = field(default_factory=list)
    """The decision cache's allows used."""
    verified: bool = False
    """Whether any image was verified (or left to verify)."""
    generation: int | None = None
    """The state generation when the first image was decided: the decisions can be kept
    under it only if it is still the generation once the last was."""


@dataclass(frozen=True)
class ToVerify:
    """An image whose policy needs verifiers the decision cache could not answer for."""

    image: str
    check: ImageCheck
    match: PolicyMatch
    active: tuple[Verifier, ...]
    key: DecisionKey | None


class Evaluation:
    """Decides images: from the cluster state, the decision cache, or the verifiers.
    Holds no per-request state."""

    def __init__(
        self,
        state: StateView,
        verifiers: dict[str, Verifier],
        settings: Settings,
        decisions: DecisionCache,
    ) -> None:
        self.state = state
        self.verifiers = verifiers
        """The installed verifiers by name (the enforcer's own dict, not a copy)."""
        self.settings = settings
        self.decisions = decisions
        self.plans = plan_memo(settings)
        """Each image's policy, verifiers and decision key by (image, namespace, pull
        secrets), as of one generation of the cluster state."""

    async def evaluate(
        self,
        namespace: str,
        distinct: Sequence[str],
        pull_secrets: tuple[str, ...],
        sources: Sources,
    ) -> dict[str, ImageDecision]:
        """The decision on each of the images `distinct`, in their order.

        What can be decided without waiting (no policy, nothing to check, a decision the
        cache holds) is decided at once, giving the event loop a turn every YIELD_EVERY
        images; only the images left to verify get a task each. `sources` learns the state
        generation, which cached allows were used and whether any image was verified.
        """
        sources.generation = self.state.generation()
        decided: dict[str, ImageDecision] = {}
        planned: dict[str, Plan] = {}
        for index, image in enumerate(distinct):
            if index and index % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            prepared = self._prepare(image, namespace, pull_secrets, sources.cached)
            if isinstance(prepared, ImageDecision):
                decided[image] = prepared
            else:
                planned[image] = prepared
        if planned:
            sources.verified = True
            decided.update(await self._verify_planned(planned, namespace, pull_secrets))
        return {image: decided[image] for image in distinct}

    async def _verify_planned(
        self, planned: Mapping[str, Plan], namespace: str, pull_secrets: tuple[str, ...]
    ) -> dict[str, ImageDecision]:
        """Verify the planned images under one deadline and one read budget for the request,
        which each image's own budget is a part of."""
        deadline = asyncio.get_running_loop().time() + self.settings.verify_timeout
        request_reads = ReadBudget(REQUEST_READ_BYTES, "one admission request")
        to_verify = {}
        for image, plan in planned.items():
            reads = request_reads.child(IMAGE_READ_BYTES, f"image {image}")
            check = ImageCheck(
                plan.reference, plan.match.policy, namespace, pull_secrets, deadline, reads
            )
            to_verify[image] = ToVerify(image, check, plan.match, plan.active, plan.key)
        return await self._verify_all(to_verify)

    async def _verify_all(self, to_verify: Mapping[str, ToVerify]) -> dict[str, ImageDecision]:
        """Verify the images concurrently; those still running at the budget are denied."""
        waiting = {image: outbound.Waiting() for image in to_verify}
        tasks = {
            image: asyncio.ensure_future(self._tracked(waiting[image], item))
            for image, item in to_verify.items()
        }
        timeout = self.settings.verify_timeout
        done, pending = await asyncio.wait(tasks.values(), timeout=timeout)
        for task in pending:
            task.cancel()
        return {
            image: task.result()
            if task in done
            else outcome.unfinished(image, timeout, waiting[image])
            for image, task in tasks.items()
        }

    async def _tracked(self, waiting: outbound.Waiting, item: ToVerify) -> ImageDecision:
        """_verify, its outbound calls recorded in `waiting` (runs in the image's task)."""
        outbound.record_into(waiting)
        return await self._verify(item)

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

    def _prepare(
        self, image: str, namespace: str, pull_secrets: tuple[str, ...], used: Used
    ) -> ImageDecision | Plan:
        """Everything decided without waiting: the decision if that settles it (the cluster
        state alone, or a passed check the decision cache holds, added to `used`), else
        what to verify."""
        plan = self._plan(image, namespace, pull_secrets)
        if isinstance(plan, ImageDecision):
            return plan
        if plan.key is not None:
            cached = self.decisions.get(plan.key, self.holds)
            if cached is not None:
                used.append((plan.key, cached))
                return plan.allowed_by(cached)
        return plan

    def _plan(
        self, image: str, namespace: str, pull_secrets: tuple[str, ...]
    ) -> ImageDecision | Plan:
        """What the cluster state says about `image`, remembered while the state's generation
        stays (`plans`): a change to any policy, secret or service account forgets it all."""
        if self.plans is None or not plan_rememberable(image, namespace, pull_secrets):
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
    ) -> ImageDecision | Plan:
        try:
            reference = parse_image(image)
        except PortierisError as exc:
            return outcome.unparseable(image, exc)
        match = self.select_policy(image, namespace)
        if not isinstance(match, PolicyMatch):
            return outcome.no_policy(image, match)
        policy_name = match.describe()
        required = required_verifiers(match.policy)
        if not required:
            return outcome.needs_no_checks(image, policy_name)
        missing = [name for name in required if name not in self.verifiers]
        if missing:
            return outcome.verifiers_missing(image, policy_name, missing)
        active = tuple(self.verifiers[name] for name in sorted(required))
        # What the verifiers read depends on the image, policy, namespace and pull secrets
        # and the cluster state, never on the deadline or the read budget of one request.
        check = ImageCheck(reference, match.policy, namespace, pull_secrets, deadline=0.0)
        key = self._decision_key(check, active)
        return Plan(image, reference, match, policy_name, active, key)

    async def _verify(self, item: ToVerify) -> ImageDecision:
        """Run the verifiers of `item` and combine their verdicts; keep an allow for reuse."""
        check, active = item.check, list(item.active)
        outcomes = await asyncio.gather(*(v.verify(check) for v in active), return_exceptions=True)
        decision = outcome.combine(item.image, check.image, item.match, active, outcomes)
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
            verifier.max_age() - (result.age if isinstance(result, Verdict) else 0.0)
            for verifier, result in zip(active, outcomes, strict=True)
        )
        allow = CachedAllow(decision.digest, decision.patched_image, decision.reasons)
        self.decisions.put(key, allow, max_age, verdicts)

    def holds(self, verdict: Verdict) -> bool:
        """Whether a cached verdict still holds, as its verifier says."""
        verifier = self.verifiers.get(verdict.verifier)
        return verifier is not None and verifier.holds(verdict)
