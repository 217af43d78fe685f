"""Cold and warm simple-signing verification time of one image, against real components.

Starts the TLS docker-registry, a GnuPG home and the lookaside store from
tests/fixtures, pushes one image, signs it with `skopeo --sign-by`, then asks
the Enforcer (real SimpleVerifier, in-memory cluster state) about it:

- cold: a fresh verifier (key secret imported into a new keyring, no caches);
- warm: the same verifier again (keyring and verified signatures cached; the
  tag is still resolved and the signatures still fetched every time).

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

from tests.fixtures.gpg import GpgHome, LookasideStore, SimpleSigner  # noqa: E402
from tests.fixtures.pki import TestCA  # noqa: E402
from tests.fixtures.registry import Registry  # noqa: E402
from tests.fixtures.simple_helpers import (  # noqa: E402
    NAMESPACE,
    cluster_policy,
    decide_image,
    secret,
    signed_by,
    simple_enforcer,
    state_with,
)


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def measure(registry: Registry, store_url: str, armored: str, ref: str, rounds: int) -> None:
    policy = {"simple": {"requirements": [signed_by("signer")], "storeURL": store_url}}
    state = state_with(cluster_policy(policy), secret("signer", {"key": armored}))
    colds: list[float] = []
    warms: list[float] = []
    for _ in range(rounds):
        async with simple_enforcer(state, registry.ca_file) as enforcer:
            started = time.perf_counter()
            decision = await decide_image(enforcer, ref, NAMESPACE)
            colds.append(time.perf_counter() - started)
            assert decision.allowed, decision.reasons
            for _ in range(10):
                started = time.perf_counter()
                decision = await decide_image(enforcer, ref, NAMESPACE)
                warms.append(time.perf_counter() - started)
                assert decision.allowed, decision.reasons
    print(f"image: {ref}")
    print(f"cold verification: median {milliseconds(statistics.median(colds))} over {len(colds)}")
    print(f"warm verification: median {milliseconds(statistics.median(warms))} over {len(warms)}")


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
            asyncio.run(measure(registry, store.url, key.public_armored, image.ref, args.rounds))
        finally:
            gpg.close()
            store.stop()
            registry.stop()


if __name__ == "__main__":
    main()
