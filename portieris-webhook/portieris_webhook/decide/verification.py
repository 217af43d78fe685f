"""Verifying the images an admission left to verify, and keeping their allows for reuse.

Each image the plans and the decision cache could not answer for (evaluation.py) gets a
task; all run concurrently under one deadline and one read budget for the request, which
each image's own budget is a part of, and an image still running when the time is up is
denied, naming what it was waiting for. An allow is kept in the decision cache for as long
as its verifiers' answers hold, unless what it read changed while it was verified.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from portieris_webhook.config.settings import Settings
from portieris_webhook.decide import outcome
from portieris_webhook.decide.cache import CachedAllow, DecisionCache, DecisionKey, decision_key
from portieris_webhook.decide.memo import Plan
from portieris_webhook.decide.outcome import ImageDecision
from portieris_webhook.policy.matching import PolicyMatch
from portieris_webhook.remote import outbound
from portieris_webhook.remote.outbound import IMAGE_READ_BYTES, REQUEST_READ_BYTES, ReadBudget
from portieris_webhook.verify.contract import ImageCheck, Verdict, Verifier

LOG = logging.getLogger("portieris_webhook.decision")


@dataclass(frozen=True)
class ToVerify:
    """An image whose policy needs verifiers the decision cache could not answer for."""

    image: str
    check: ImageCheck
    match: PolicyMatch
    active: tuple[Verifier, ...]
    key: DecisionKey | None


def key_of(
    decisions: DecisionCache, check: ImageCheck, active: Sequence[Verifier]
) -> DecisionKey | None:
    """The decision cache key of `check`, or None if it is off or a verifier is opaque."""
    if not decisions.enabled:
        return None
    try:
        read = [(v.name, v.inputs(check)) for v in active]
    except Exception:  # a plugin's bug must not turn into a deny: verify without the cache
        LOG.exception("cannot tell what %s reads: not cached", check.image.raw)
        return None
    return decision_key(check.image.raw, check.policy, read)


class Verification:
    """Runs the verifiers of planned images under the request's budget. Holds no
    per-request state."""

    def __init__(self, settings: Settings, decisions: DecisionCache) -> None:
        self.settings = settings
        self.decisions = decisions

    async def verify_planned(
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

    async def _verify(self, item: ToVerify) -> ImageDecision:
        """Run the verifiers of `item` and combine their verdicts; keep an allow for reuse."""
        check, active = item.check, list(item.active)
        outcomes = await asyncio.gather(*(v.verify(check) for v in active), return_exceptions=True)
        decision = outcome.combine(item.image, check.image, item.match, active, outcomes)
        if item.key is not None and decision.allowed:
            self._remember(item.key, decision, check, active, outcomes)
        return decision

    def _remember(
        self,
        key: DecisionKey,
        decision: ImageDecision,
        check: ImageCheck,
        active: list[Verifier],
        outcomes: list[Verdict | BaseException],
    ) -> None:
        """Keep an allow for reuse, unless what it read changed while it was verified."""
        if key_of(self.decisions, check, active) != key:
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
