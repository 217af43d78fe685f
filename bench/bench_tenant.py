"""What one tenant's heavy admissions cost the others, inside the process, without servers.

Run from the repository root: `.venv/bin/python bench/bench_tenant.py [--unbounded] [--uvloop]`.
An Enforcer is built the way `serve --manifests` builds it, over a policy of many rules that
requires no checks (so everything is decided from the cluster state: no network). Then:

- a warm admission (a one-image pod whose allow is remembered) arrives every `--interval`
  ms from another thread, as requests arrive on sockets, and its latency is measured from
  its arrival to its answer: alone, while maximal admissions (--max-images-per-admission
  distinct, never seen images each) are decided back to back, and the same with the
  planning loop's turns to the event loop taken away (what the webhook did before);
- the cost of a pod of 55,000 distinct images (read and decide: it is denied at once), and
  with `--unbounded` what it cost before the limit (the limit lifted).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvloop
import yaml

from portieris_webhook.admission.review import parse_review_body
from portieris_webhook.cluster.manifests import load_manifests
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide import evaluation
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.kits import logs
from portieris_webhook.wiring import enforcer_for

RULES = 100
"""Repository rules of the policy: matching an image looks at each."""
HUGE_POD = 55_000


def review(images: Sequence[str], uid: str = "u") -> bytes:
    containers = [{"name": f"c{n}", "image": image} for n, image in enumerate(images)]
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": "tenant",
                "name": "p",
                "operation": "CREATE",
                "object": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p", "namespace": "tenant"},
                    "spec": {"containers": containers},
                },
            },
        },
        separators=(",", ":"),
    ).encode()


def write_manifests(directory: Path) -> Path:
    rules = [{"name": f"reg.io/team{n}/*", "policy": {}} for n in range(RULES)]
    rules.append({"name": "reg.io/*", "policy": {}})
    policy = {
        "apiVersion": "portieris.cloud.ibm.com/v1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "no-checks"},
        "spec": {"repositories": rules},
    }
    directory.mkdir()
    (directory / "policy.yaml").write_text(yaml.safe_dump(policy))
    return directory


@dataclass
class Latencies:
    seconds: list[float]
    heavy: int
    """Maximal admissions decided meanwhile."""

    def row(self, label: str) -> str:
        ms = sorted(s * 1000 for s in self.seconds)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return f"{label:44} {statistics.median(ms):8.3f} {p99:8.3f} {ms[-1]:8.3f} {self.heavy:7d}"


async def warm_latencies(
    enforcer: Enforcer, warm: bytes, count: int, interval: float, heavy: bool
) -> Latencies:
    """Latency of `count` warm admissions arriving every `interval` s, from their arrival to
    their answer; with `heavy`, while maximal admissions run.

    An arrival is a timer of the event loop, as a readable socket is an event of it: it is
    seen at the loop's next turn, and its latency counts from when it was due."""
    loop = asyncio.get_running_loop()
    seconds: list[float] = []
    done = asyncio.Event()

    async def answer(arrived: float) -> None:
        decision = await enforcer.decide(parse_review_body(warm))
        assert decision.response.allowed
        seconds.append(loop.time() - arrived)
        if len(seconds) == count:
            done.set()

    answering: set[asyncio.Future[None]] = set()

    def arrive(due: float) -> None:
        task = asyncio.ensure_future(answer(due))
        answering.add(task)
        task.add_done_callback(answering.discard)

    decided = 0

    async def maximal() -> None:
        nonlocal decided
        limit = enforcer.settings.max_images_per_admission
        while not done.is_set():
            images = [f"reg.io/team{n % RULES}/app{n}:r{decided}" for n in range(limit)]
            decision = await enforcer.decide(parse_review_body(review(images)))
            assert decision.response.allowed, decision.summary
            decided += 1
            await asyncio.sleep(0)

    await enforcer.decide(parse_review_body(warm))  # remembered from now on
    await enforcer.decide(parse_review_body(warm))
    background = asyncio.ensure_future(maximal()) if heavy else None
    start = loop.time() + interval
    for n in range(count):
        due = start + n * interval
        loop.call_at(due, arrive, due)
    await done.wait()
    if background is not None:
        await background
    return Latencies(seconds, decided)


async def maximal_ms(enforcer: Enforcer, rounds: int = 20) -> float:
    """Median wall time of one maximal admission of never seen images, alone."""
    limit = enforcer.settings.max_images_per_admission
    times = []
    for r in range(rounds):
        body = review([f"reg.io/team{n % RULES}/app{n}:alone{r}" for n in range(limit)])
        started = time.perf_counter()
        await enforcer.decide(parse_review_body(body))
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def warm_us(enforcer: Enforcer, warm: bytes, rounds: int = 2000) -> float:
    """Median wall time of the warm admission, read and decided, with nothing else running."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await enforcer.decide(parse_review_body(warm))
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


@dataclass
class HugePod:
    read_ms: float
    decide_ms: float
    peak_mb: float
    """Traced Python allocations at their highest while reading and deciding."""
    allowed: bool


async def huge_pod(manifests: Path, settings: Settings, body: bytes) -> HugePod:
    """Reading and deciding `body` on a fresh Enforcer (timed, then traced)."""
    async with enforcer_for(load_manifests([str(manifests)]), settings) as enforcer:
        gc.collect()
        started = time.perf_counter()
        request = parse_review_body(body)
        read = time.perf_counter()
        decision = await enforcer.decide(request)
        decided = time.perf_counter()
        del request
    async with enforcer_for(load_manifests([str(manifests)]), settings) as enforcer:
        gc.collect()
        tracemalloc.start()
        try:
            await enforcer.decide(parse_review_body(body))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return HugePod(
        (read - started) * 1000, (decided - read) * 1000, peak / 1e6, decision.response.allowed
    )


async def measure(manifests: Path, args: argparse.Namespace) -> None:
    settings = Settings()
    yield_every = evaluation.YIELD_EVERY
    warm = review(["reg.io/team7/warm:1"], uid="warm")
    interval = args.interval / 1000
    print(
        f"policy: {RULES + 1} rules requiring no checks; maximal admission: "
        f"{settings.max_images_per_admission} distinct images never seen before; a warm "
        f"admission arrives every {args.interval:g} ms; turns every {evaluation.YIELD_EVERY} "
        f"images planned; {'uvloop' if args.uvloop else 'asyncio'}\n"
    )
    print(f"{'warm admission latency (ms)':44} {'p50':>8} {'p99':>8} {'max':>8} {'maximal':>7}")
    scenarios = [
        ("alone", False, yield_every),
        ("beside maximal admissions", True, yield_every),
        ("beside maximal admissions, no turns (before)", True, 10**9),
    ]
    for label, heavy, every in scenarios:
        evaluation.YIELD_EVERY = every
        async with enforcer_for(load_manifests([str(manifests)]), settings) as enforcer:
            result = await warm_latencies(enforcer, warm, args.warm, interval, heavy)
        print(result.row(label), flush=True)
    evaluation.YIELD_EVERY = yield_every
    async with enforcer_for(load_manifests([str(manifests)]), settings) as enforcer:
        print(f"\none maximal admission alone: {await maximal_ms(enforcer):.1f} ms (median)")
        print(f"one warm admission alone: {await warm_us(enforcer, warm):.1f} us (median, no wait)")
        print("(the warm latencies above count from when each was due: the loop's timers add")
        print(" their own lateness, about half a millisecond with asyncio, 1 ms with uvloop)\n")

    body = review([f"reg.io/a{n}" for n in range(HUGE_POD)])
    print(f"pod of {HUGE_POD:,} distinct images ({len(body) / 1e6:.1f} MB body)")
    print(f"{'':44} {'read ms':>9} {'decide ms':>9} {'peak MB':>8} {'answer':>7}")
    runs = [(f"limit {settings.max_images_per_admission} (now)", settings)]
    if args.unbounded:
        runs.append(("limit lifted (before)", Settings(max_images_per_admission=10**6)))
    for label, chosen in runs:
        result = await huge_pod(manifests, chosen, body)
        answer = "allow" if result.allowed else "deny"
        print(
            f"{label:44} {result.read_ms:9.1f} {result.decide_ms:9.1f} {result.peak_mb:8.1f} "
            f"{answer:>7}",
            flush=True,
        )
    print("(peak MB: traced Python allocations while reading and deciding)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=2000, help="warm admissions per scenario")
    parser.add_argument("--interval", type=float, default=1.0, help="ms between warm arrivals")
    parser.add_argument(
        "--unbounded", action="store_true", help="also the 55,000-image pod with no limit"
    )
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="run on uvloop as `serve` does (its clock counts whole milliseconds: the "
        "standard loop's times arrivals to the microsecond)",
    )
    parser.add_argument(
        "--yield-every", type=int, help="images planned between turns (default: the webhook's)"
    )
    args = parser.parse_args()
    if args.yield_every:
        evaluation.YIELD_EVERY = args.yield_every
    work = Path(tempfile.mkdtemp(prefix="bench-tenant-"))
    try:
        # What `serve` logs to standard error, written to a file with the same handler.
        with open(work / "decisions.log", "w") as log_file, logs.logging_to(log_file):
            run = uvloop.run if args.uvloop else asyncio.run
            run(measure(write_manifests(work / "manifests"), args))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
