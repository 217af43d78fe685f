"""Read budgets and the record of pending calls (pure bookkeeping, no servers)."""

from __future__ import annotations

import asyncio

import pytest

from portieris_webhook.errors import RemoteError
from portieris_webhook.remote import outbound
from portieris_webhook.remote.outbound import ReadBudget, Waiting


def test_a_charge_past_the_image_budget_names_the_limit_the_image_and_the_server() -> None:
    request = ReadBudget(100, "one admission request")
    image = request.child(10, "image reg.io/x:1")
    image.charge(10, "reg.io")
    with pytest.raises(
        RemoteError,
        match=r"^evil.io: stopped reading at the limit of 10 bytes that remote servers may "
        r"send for image reg.io/x:1$",
    ):
        image.charge(1, "evil.io")


def test_images_draw_from_the_request_budget_together() -> None:
    request = ReadBudget(15, "one admission request")
    first, second = request.child(10, "image a"), request.child(10, "image b")
    first.charge(10, "reg.io")
    assert second.remaining() == 5
    with pytest.raises(RemoteError, match=r"limit of 15 bytes .* for one admission request"):
        second.charge(6, "reg.io")


def test_a_refused_charge_counts_nothing() -> None:
    request = ReadBudget(15, "one admission request")
    image = request.child(10, "image a")
    with pytest.raises(RemoteError):
        image.charge(11, "reg.io")
    assert (image.used, request.used) == (0, 0)


async def test_calls_are_recorded_only_while_they_run() -> None:
    waiting = Waiting()
    outbound.record_into(waiting)
    with outbound.waiting_for("reg.io", "https://reg.io/v2/x/manifests/1"):
        assert waiting.describe() == "reg.io (GET https://reg.io/v2/x/manifests/1)"
    assert waiting.describe() == ""


async def test_calls_to_one_server_are_described_together() -> None:
    waiting = Waiting()
    outbound.record_into(waiting)
    with (
        outbound.waiting_for("notary.io", "https://notary.io/a"),
        outbound.waiting_for("notary.io", "https://notary.io/b"),
        outbound.waiting_for("store.io", "http://store.io/s"),
    ):
        assert waiting.describe() == (
            "notary.io (GET https://notary.io/a and 1 more), store.io (GET http://store.io/s)"
        )


@pytest.mark.parametrize("error", [TimeoutError, asyncio.CancelledError])
async def test_a_call_that_timed_out_or_was_cancelled_stays_recorded(
    error: type[BaseException],
) -> None:
    waiting = Waiting()
    outbound.record_into(waiting)
    with pytest.raises(error), outbound.waiting_for("reg.io", "https://reg.io/v2/"):
        raise error()
    assert waiting.describe() == "reg.io (GET https://reg.io/v2/)"


async def test_a_call_that_failed_otherwise_is_forgotten() -> None:
    waiting = Waiting()
    outbound.record_into(waiting)
    with pytest.raises(RemoteError), outbound.waiting_for("reg.io", "https://reg.io/v2/"):
        raise RemoteError("refused")
    assert waiting.describe() == ""


async def test_the_record_follows_tasks_started_by_the_image_check() -> None:
    waiting = Waiting()

    async def call() -> None:
        with outbound.waiting_for("reg.io", "https://reg.io/v2/"):
            await asyncio.sleep(30)

    async def image_check() -> None:
        outbound.record_into(waiting)
        await asyncio.gather(call())

    task = asyncio.ensure_future(image_check())
    await asyncio.sleep(0.05)
    assert waiting.describe() == "reg.io (GET https://reg.io/v2/)"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
