"""Cold and warm simple-signing verification time of one image, against real components.

Starts the TLS docker-registry, a GnuPG home and the lookaside store from
tests/fixtures, pushes one image, signs it with `skopeo --sign-by`, then asks
the Enforcer (real SimpleVerifier, in-memory cluster state) about it:

- cold: a fresh verifier (key secret imported into a new keyring, no caches);
- warm: the same verifier again, within --simple-refresh-interval (the tag's digest,
  the store's signatures and gpg's verdicts are remembered: no request leaves the
  webhook);
- warm, concurrent: 20 checks of the image at a time, as admissions per second.

Each is measured with the enforcer's decision cache off (the verifier's own reuse answers)
and on (the decision cache answers). It also prints how many registry reads, store reads
and gpg runs the warm checks cost.

Run: .venv/bin/python bench/bench_simple.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portieris_webhook.cluster.state import MemoryState  # noqa: E402
from portieris_webhook.config.settings import Settings  # noqa: E402
from portieris_webhook.decide.enforcer import Enforcer  # noqa: E402
from portieris_webhook.remote.http_client import HttpClient  # noqa: E402
from portieris_webhook.simple.verifier import SimpleVerifier  # noqa: E402
from portieris_webhook.verify.contract import VerifierContext  # noqa: E402

from tests.builders import memory_state  # noqa: E402
from tests.fixtures.gpg import GpgHome, LookasideStore, SimpleSigner  # noqa: E402
from tests.fixtures.pki import TestCA  # noqa: E402
from tests.fixtures.registry import Registry  # noqa: E402
from tests.fixtures.simple_helpers import (  # noqa: E402
    NAMESPACE,
    cluster_policy,
    decide_image,
    secret,
    signed_by,
)

CONCURRENCY = 20


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def counters(verifier: SimpleVerifier) -> tuple[int, int, int]:
    """(registry reads, store reads, gpg runs) so far; zeros where the code has no counters."""
    manifests = getattr(verifier, "manifests", None)
    lists = getattr(verifier, "signature_lists", None)
    return (
        getattr(manifests, "loads", 0),
        getattr(lists, "loads", 0),
        getattr(verifier.keyrings, "gpg_runs", 0),
    )


async def measure(
    registry: Registry, store_url: str, armored: str, ref: str, rounds: int, decisions: int
) -> None:
    policy = {"simple": {"requirements": [signed_by("signer")], "storeURL": store_url}}
    state: MemoryState = memory_state(cluster_policy(policy), secret("signer", {"key": armored}))
    settings = Settings(
        ca_file=str(registry.ca_file), verify_timeout=20.0, decision_cache_max_entries=decisions
    )
    colds: list[float] = []
    warms: list[float] = []
    rates: list[float] = []
    warm_cost = [0, 0, 0]
    for _ in range(rounds):
        http = HttpClient(settings.ca_file)
        verifier = SimpleVerifier(VerifierContext(settings, state, http))
        enforcer = Enforcer(state, {verifier.name: verifier}, settings)
        try:
            started = time.perf_counter()
            decision = await decide_image(enforcer, ref, NAMESPACE)
            colds.append(time.perf_counter() - started)
            assert decision.allowed, decision.reasons
            before = counters(verifier)
            for _ in range(10):
                started = time.perf_counter()
                decision = await decide_image(enforcer, ref, NAMESPACE)
                warms.append(time.perf_counter() - started)
                assert decision.allowed, decision.reasons
            started = time.perf_counter()
            for _ in range(10):
                batch = [decide_image(enforcer, ref, NAMESPACE) for _ in range(CONCURRENCY)]
                assert all(d.allowed for d in await asyncio.gather(*batch))
            rates.append(10 * CONCURRENCY / (time.perf_counter() - started))
            after = counters(verifier)
            warm_cost = [a + w - b for a, b, w in zip(after, before, warm_cost, strict=True)]
        finally:
            await verifier.close()
            await http.close()
    warm_checks = rounds * (10 + 10 * CONCURRENCY)
    print(f"image: {ref}; decision cache {'on' if decisions else 'off'}")
    print(f"cold verification: median {milliseconds(statistics.median(colds))} over {len(colds)}")
    print(f"warm verification: median {milliseconds(statistics.median(warms))} over {len(warms)}")
    print(
        f"warm, {CONCURRENCY} at a time: median {statistics.median(rates):.0f} checks/s "
        f"over {len(rates)} rounds"
    )
    print(
        f"warm checks: {warm_checks}; registry reads {warm_cost[0]}, store reads "
        f"{warm_cost[1]}, gpg runs {warm_cost[2]} (0 0 0 where the code does not count)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="cold runs (each followed by 10 warm)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-simple-") as tmp:
        work = Path(tmp)
        ca = TestCA.create()
        registry = Registry(work / "registry", ca).start()
        store = LookasideStore(work / "lookaside", work / "logs").start()
        gpg = GpgHome(work / "gpg")
        try:
            key = gpg.new_key("bench signer")
            image = registry.push_image("bench/app", "v1")
            SimpleSigner(gpg, store, registry, work / "signer").sign(image, key.fingerprint)
            for decisions in (0, Settings.decision_cache_max_entries):
                asyncio.run(
                    measure(
                        registry, store.url, key.public_armored, image.ref, args.rounds, decisions
                    )
                )
        finally:
            gpg.close()
            store.stop()
            registry.stop()


if __name__ == "__main__":
    main()
