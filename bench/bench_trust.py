"""Cold and warm trust verification time of one image against a real notary-server and registry.

Run from the repository root: `.venv/bin/python bench/bench_trust.py [--rounds N]`.
Starts a TLS docker-registry and notary-server (the test fixtures), pushes an
image, signs its tag with the notary CLI in targets/releases, then times:
  cold      a fresh verifier: token-less fetch of root, timestamp, snapshot, targets,
            targets/releases and full verification (median of N fresh verifiers)
  refresh   cached data older than the refresh interval: timestamp re-checked
  warm      answered from the verified cache
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portieris_webhook.config.settings import Settings
from portieris_webhook.wiring import enforcer_for

from tests.builders import memory_state
from tests.fixtures.notary import NotaryServer, NotarySigner
from tests.fixtures.pki import TestCA
from tests.fixtures.registry import Registry
from tests.fixtures.trust_helpers import pod_request, trust_policy


async def timed_decisions(settings: Settings, state, image: str, count: int) -> list[float]:
    times = []
    async with enforcer_for(state, settings) as enforcer:
        for _ in range(count):
            started = time.perf_counter()
            decision = await enforcer.decide(pod_request([image]))
            times.append(time.perf_counter() - started)
            if not decision.response.allowed:
                raise SystemExit(f"not allowed: {decision.summary}")
    return times


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.2f} ms, min {min(values) * 1000:.2f} ms (n={len(values)})"


async def bench(registry: Registry, notary: NotaryServer, rounds: int) -> None:
    image = registry.push_image("bench/app", "v1")
    signer = NotarySigner(notary, Path(tempfile.mkdtemp(prefix="bench-trust-")))
    signer.sign(image.name, image.tag, image.size, image.hex)
    state = memory_state(trust_policy(f"{image.host}/*", notary.url))
    settings = Settings(ca_file=str(notary.ca_file))

    cold = [(await timed_decisions(settings, state, image.ref, 1))[0] for _ in range(rounds)]
    warm = (await timed_decisions(settings, state, image.ref, rounds + 1))[1:]
    refresh_settings = Settings(ca_file=str(notary.ca_file), trust_refresh_interval=0.0)
    refresh = (await timed_decisions(refresh_settings, state, image.ref, rounds + 1))[1:]

    print(f"image   {image.ref} -> {image.digest}")
    print(f"cold    {ms(cold)}")
    print(f"refresh {ms(refresh)}")
    print(f"warm    {ms(warm)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-trust-servers-"))
    ca = TestCA.create()
    ca.write(work / "ca")
    registry = Registry(work / "registry", ca).start()
    notary = NotaryServer(work / "notary", ca).start()
    try:
        asyncio.run(bench(registry, notary, args.rounds))
    finally:
        notary.stop()
        registry.stop()


if __name__ == "__main__":
    main()
