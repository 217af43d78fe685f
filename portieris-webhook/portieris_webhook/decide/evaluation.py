"""Deciding each distinct image of an admission: plan, decision cache, verify.

For each image: its plan (policy, verifiers, decision cache key) comes from the plan memo
or is derived from the cluster state; a plan the decision cache holds a passed check for
is answered at once; only the images left are verified (verification.py: a task each,
concurrently under the request's verification budget of time and bytes read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from portieris_webhook.cluster.state import StateView
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide import outcome
from portieris_webhook.decide.cache import CachedAllow, DecisionCache, DecisionKey
from portieris_webhook.decide.memo import Plan, plan_memo, plan_rememberable
from portieris_webhook.decide.outcome import ImageDecision
from portieris_webhook.decide.verification import Verification, key_of
from portieris_webhook.errors import PortierisError
from portieris_webhook.images import parse_image
from portieris_webhook.policy.matching import PolicyMatch, PolicySelection, find_policy
from portieris_webhook.verify.contract import ImageCheck, Verdict, Verifier, required_verifiers

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


class Evaluation:
    """Decides images: from the cluster state, the decision cache, or the verifiers (through
    `verification`). Holds no per-request state."""

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
        self.verification = Verification(settings, decisions)

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
            verified = await self.verification.verify_planned(planned, namespace, pull_secrets)
            decided.update(verified)
        return {image: decided[image] for image in distinct}

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
        key = key_of(self.decisions, check, active)
        return Plan(image, reference, match, policy_name, active, key)

    def holds(self, verdict: Verdict) -> bool:
        """Whether a cached verdict still holds, as its verifier says."""
        verifier = self.verifiers.get(verdict.verifier)
        return verifier is not None and verifier.holds(verdict)
