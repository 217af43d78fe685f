"""Background tasks never stop silently: one that stops makes the process not ready, saying
which and why; the trust state's task keeps going past whatever one round raises."""

import asyncio
import json
import logging

import pytest

from portieris_webhook.cluster.state import MemoryState
from portieris_webhook.kits.background import BackgroundTasks
from portieris_webhook.serving.metrics import Metrics
from portieris_webhook.serving.server import WebhookApp
from portieris_webhook.trust.state_store import Stored, TrustStateStore, running


async def test_a_task_that_raises_is_reported_with_its_reason_and_logged(caplog):
    tasks = BackgroundTasks()

    async def broken() -> None:
        raise RuntimeError("a bug")

    tasks.start("informer-Secret", broken())
    await asyncio.sleep(0.01)
    assert tasks.problem() == "informer-Secret stopped: RuntimeError: a bug"
    assert "informer-Secret stopped" in caplog.text and "a bug" in caplog.text
    await tasks.cancel()


async def test_a_task_that_returns_is_reported_too():
    tasks = BackgroundTasks()

    async def finished() -> None:
        return None

    tasks.start("trust-state", finished())
    await asyncio.sleep(0.01)
    assert tasks.problem() == "trust-state stopped: it returned"


async def test_cancelled_tasks_are_no_problem():
    tasks = BackgroundTasks()
    tasks.start("sleeper", asyncio.sleep(60))
    await tasks.cancel()
    assert tasks.problem() is None


class FlakyBackend:
    """A backend whose loads fail with errors no rule foresaw, then work."""

    where = "test backend"

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.loads = 0

    async def load(self) -> Stored:
        self.loads += 1
        if self.failures:
            raise self.failures.pop(0)
        return Stored(None, None)

    async def save(self, text: str, version: str | None) -> str:
        return "1"


@pytest.mark.parametrize(
    "failure",
    [RecursionError("deep"), KeyError("x"), TypeError("no")],
    ids=["recursion", "key", "type"],
)
async def test_the_trust_state_task_outlives_an_unexpected_error(failure, caplog):
    backend = FlakyBackend([failure])
    store = TrustStateStore(backend)
    caplog.set_level(logging.WARNING)
    async with running(store):
        for _ in range(100):
            if store.is_loaded():
                break
            await asyncio.sleep(0.05)
        assert store.is_loaded() and store.not_ready() is None
    assert backend.loads >= 2
    assert type(failure).__name__ in caplog.text


async def test_a_stopped_trust_state_task_makes_the_store_not_ready():
    store = TrustStateStore(FlakyBackend([]))
    store.loaded = True

    async def stops() -> None:
        raise SystemError("interpreter trouble")

    store.background.start("trust-state", stops())
    await asyncio.sleep(0.01)
    assert store.not_ready() == "is stale: trust-state stopped: SystemError: interpreter trouble"


async def test_readiness_says_which_background_task_stopped_and_why():
    state = MemoryState()
    state.mark_ready()
    tasks = BackgroundTasks()

    async def broken() -> None:
        raise RuntimeError("a bug")

    tasks.start("informer-ImagePolicy", broken())
    await asyncio.sleep(0.01)
    webhook = WebhookApp(
        None,  # type: ignore[arg-type]  # readiness never asks the enforcer
        state,
        Metrics(),
        also_ready={"cluster state": lambda: f"is stale: {tasks.problem()}"},
    )
    answer = await webhook.readiness(None)  # type: ignore[arg-type]
    assert answer.status == 503
    assert json.loads(answer.body) == {
        "status": "cluster state is stale: informer-ImagePolicy stopped: RuntimeError: a bug"
    }
