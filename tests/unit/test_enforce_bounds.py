"""One admission cannot hold the webhook or its memory: its images are bounded in number, its
planning gives the others their turn, and what the memos keep of it is bounded by its text."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from portieris_webhook import cli
from portieris_webhook.admission.workloads import PodImage, PodSpec
from portieris_webhook.cluster.state import MODIFIED
from portieris_webhook.config import options
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide import evaluation
from portieris_webhook.decide import memo as memos
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.decide.memo import MEMO_MAX_NAMES_CHARS
from portieris_webhook.errors import DenyKind, UncheckableObject

from tests.builders import cluster_policy, memory_state, pod_spec, request_for, workload
from tests.unit.test_cli import run
from tests.unit.test_enforce_decisions import make, state_with

LIMIT = Settings().max_images_per_admission
NO_CHECKS = cluster_policy("c", ("reg.io/*", {}))


def count_plans(enforcer: Enforcer) -> list[str]:
    """The images `enforcer` looks a policy up for, from now on."""
    planned: list[str] = []
    select = enforcer.evaluation.select_policy

    def counting(image: str, namespace: str) -> Any:
        planned.append(image)
        return select(image, namespace)

    enforcer.evaluation.select_policy = counting  # type: ignore[method-assign]
    return planned


def pod(*images: str, **kwargs: Any) -> dict[str, Any]:
    return workload("Pod", pod_spec(*images, **kwargs))


# --- at most --max-images-per-admission distinct images ---------------------------------


async def test_a_pod_naming_more_distinct_images_than_the_limit_is_denied_unplanned():
    enforcer, verifier, _ = make(state_with())
    planned = count_plans(enforcer)
    images = [f"reg.io/app{n}:1" for n in range(LIMIT + 1)]
    decision = await enforcer.decide(request_for(pod(*images)))
    assert not decision.response.allowed
    assert (
        f"names {LIMIT + 1} distinct images, more than the {LIMIT} one admission may name "
        "(--max-images-per-admission)"
    ) in decision.response.message
    assert decision.reason_kinds == (DenyKind.UNSUPPORTED_OBJECT,)
    assert planned == [] and verifier.checks == 0


@pytest.mark.parametrize(
    ("images", "allowed"),
    [
        (("reg.io/a:1", "reg.io/b:1"), True),
        (("reg.io/a:1", "reg.io/b:1", "reg.io/a:1", "reg.io/b:1"), True),
        (("reg.io/a:1", "reg.io/b:1", "reg.io/c:1"), False),
    ],
    ids=["at-the-limit", "repeated-images-count-once", "over-the-limit"],
)
async def test_the_limit_counts_distinct_images(images: tuple[str, ...], allowed: bool):
    enforcer, _, _ = make(memory_state(NO_CHECKS), Settings(max_images_per_admission=2))
    obj = workload("Pod", pod_spec(*images[:-1], init=images[-1:]))
    assert (await enforcer.decide(request_for(obj))).response.allowed is allowed


async def test_verifying_a_spec_outside_an_admission_keeps_the_limit():
    """`verify` (evaluate_images) plans nothing for a spec naming too many images either."""
    enforcer, _, _ = make(memory_state(NO_CHECKS), Settings(max_images_per_admission=2))
    planned = count_plans(enforcer)
    images = tuple(PodImage(f"reg.io/app{n}:1", f"/spec/containers/{n}/image") for n in range(3))
    with pytest.raises(UncheckableObject, match="names 3 distinct images, more than the 2"):
        await enforcer.evaluate_images("default", PodSpec(images, (), None))
    assert planned == []


@pytest.mark.parametrize(("args", "limit"), [((), 256), (("--max-images-per-admission", "9"), 9)])
def test_the_image_limit_is_an_option(args: tuple[str, ...], limit: int):
    conf = cli._parse("verify", ["reg.io/app:1", *args], options.VERIFY_OPTS, options.IMAGE_OPTS)
    assert options.settings_from(conf).max_images_per_admission == limit


def test_an_image_limit_below_one_is_refused():
    result = run("verify", "reg.io/app:1", "--max-images-per-admission", "0")
    assert result.returncode == 2
    assert "max_images_per_admission: Invalid Integer(min=1) value: 0" in result.stderr


async def test_a_warm_admission_is_answered_while_a_maximal_one_is_being_planned():
    """Planning is synchronous: without turns given to the event loop, every admission that
    arrives meanwhile would wait for all of a maximal pod's images to be planned."""
    enforcer, _, _ = make(memory_state(NO_CHECKS))
    planned = count_plans(enforcer)
    warm = pod("reg.io/warm:1")
    await enforcer.decide(request_for(warm))
    heavy = pod(*[f"reg.io/app{n}:1" for n in range(LIMIT)])
    finished: list[tuple[str, int]] = []

    async def admit(name: str, obj: dict[str, Any]) -> None:
        assert (await enforcer.decide(request_for(obj))).response.allowed
        finished.append((name, len(planned) - 1))  # the heavy pod's images planned so far

    await asyncio.gather(admit("heavy", heavy), admit("warm", warm))
    assert [name for name, _ in finished] == ["warm", "heavy"]
    assert finished[0][1] <= evaluation.YIELD_EVERY
    assert finished[1][1] == LIMIT


async def test_an_admission_whose_planning_saw_the_state_change_is_not_remembered():
    """Images planned on both sides of a turn given to the event loop may have been decided
    under two generations of the state: such an answer is not kept under either."""
    state = memory_state(NO_CHECKS)
    enforcer, _, _ = make(state)
    images = [f"reg.io/app{n}:1" for n in range(evaluation.YIELD_EVERY + 1)]

    async def edit_policy() -> None:
        state.apply(MODIFIED, cluster_policy("c", ("reg.io/*", {}), ("other.io/*", {})))

    await asyncio.gather(enforcer.decide(request_for(pod(*images))), edit_policy())
    assert enforcer.answers is not None and len(enforcer.answers) == 0
    await enforcer.decide(request_for(pod(*images)))
    assert len(enforcer.answers) == 1


# --- what the memos keep of a request is bounded by its text ----------------------------

NAME_CHARS = 64 * 1024


async def memory_growth(enforcer: Enforcer, specs: Callable[[], Iterator[dict[str, Any]]]) -> int:
    """Bytes still allocated after `enforcer` allowed each spec (a warm signed image)."""
    for _ in range(2):  # verified, then answered from the decision cache and remembered
        await enforcer.decide(request_for(pod("reg.io/app:1")))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for spec in specs():
            assert (await enforcer.decide(request_for(workload("Pod", spec)))).response.allowed
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


async def test_distinct_huge_service_account_names_do_not_grow_the_memos():
    enforcer, verifier, _ = make(state_with())

    def specs() -> Iterator[dict[str, Any]]:
        for n in range(24):
            yield pod_spec("reg.io/app:1", service_account=f"{n}-" + "s" * NAME_CHARS)

    assert await memory_growth(enforcer, specs) < 4 * NAME_CHARS  # 24 would be kept: 1.6 MB
    assert verifier.checks == 1


async def test_distinct_huge_pull_secret_lists_do_not_grow_the_memos():
    enforcer, _, _ = make(state_with())

    def specs() -> Iterator[dict[str, Any]]:
        for n in range(24):
            names = tuple(f"{n}-{i}-" + "p" * 250 for i in range(NAME_CHARS // 256))
            yield pod_spec("reg.io/app:1", pull_secrets=names)

    assert await memory_growth(enforcer, specs) < 4 * NAME_CHARS  # 24 would be kept: 2.1 MB


TOO_MANY = MEMO_MAX_NAMES_CHARS + 200
"""Characters of names more than a memo key may hold."""


@pytest.mark.parametrize(
    ("names", "plans_kept"),
    [
        ({"service_account": "s" * TOO_MANY}, 1),  # a plan's key has no account
        ({"pull_secrets": tuple(f"{n}-" + "p" * 200 for n in range(TOO_MANY // 200))}, 0),
    ],
    ids=["service-account", "pull-secrets"],
)
async def test_a_request_naming_more_than_a_memo_key_may_hold_is_decided_not_remembered(
    names: dict[str, Any], plans_kept: int
):
    enforcer, verifier, _ = make(state_with())
    for _ in range(3):
        assert (await enforcer.decide(request_for(pod("reg.io/app:1", **names)))).response.allowed
    assert enforcer.plans is not None and len(enforcer.plans) == plans_kept
    assert enforcer.answers is not None and len(enforcer.answers) == 0
    assert verifier.checks == 1  # the decision cache still answers


@pytest.mark.parametrize("memo", ["plans", "answers"])
async def test_the_memos_count_their_keys_against_their_text_bound(monkeypatch, memo: str):
    """Names under the per-entry bound still add up: each memo counts its keys' text."""
    monkeypatch.setattr(memos, "PLANS_MAX_CHARS", 50_000)
    monkeypatch.setattr(memos, "ANSWERS_MAX_CHARS", 50_000)
    enforcer, _, _ = make(state_with())
    names = 3000
    for n in range(40):
        secrets = (f"{n}-" + "p" * names,)
        obj = pod("reg.io/app:1", service_account=f"{n}-" + "s" * 50, pull_secrets=secrets)
        assert (await enforcer.decide(request_for(obj))).response.allowed
    kept = getattr(enforcer, memo)
    assert 0 < len(kept) < 40
    assert len(kept) * names <= kept.bytes <= 50_000
