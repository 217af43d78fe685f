"""Cold and warm cosign verification of one image, against real signatures in a real registry.

Starts the TLS docker-registry and the real sigstore timestamp authority from
tests/fixtures, pushes images and signs them with the real cosign, then asks the Enforcer
(real SigstoreVerifier, in-memory cluster state) about each:

- keyed: `cosign sign --key` (tag schema), an authority with the public key, no log;
- keyless: a Fulcio-shaped certificate of the tests' CA, a Rekor entry of the tests' log
  stand-in (SET) and an RFC 3161 timestamp of the real TSA: chain, identity, SET, body
  binding and timestamp all checked;

each measured

- cold: a fresh verifier and enforcer (no caches, new TLS connections);
- warm: the same enforcer again (the decision cache answers);
- warm, decision cache off: the verifier's own reuse of registry answers (the tag's
  digest, the signatures found) answers the reads, and every check runs;
- check only: the pure verification of the evidence already read (authority.evaluate),
  the CPU floor of a cold check once the registry has answered.

Run: .venv/bin/python bench/bench_sigstore.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portieris_webhook.config.settings import Settings  # noqa: E402
from portieris_webhook.decide.enforcer import Enforcer  # noqa: E402
from portieris_webhook.images import parse_image  # noqa: E402
from portieris_webhook.registry.oci import Reads  # noqa: E402
from portieris_webhook.remote.http_client import HttpClient  # noqa: E402
from portieris_webhook.sigstore.authority import Subject, evaluate  # noqa: E402
from portieris_webhook.sigstore.discovery import find_evidence  # noqa: E402
from portieris_webhook.sigstore.verifier import SigstoreVerifier  # noqa: E402
from portieris_webhook.verify.contract import VerifierContext  # noqa: E402

from tests.builders import memory_state  # noqa: E402
from tests.fixtures.cosign import Cosign, sigstore_tools  # noqa: E402
from tests.fixtures.pki import TestCA  # noqa: E402
from tests.fixtures.plugin import ImageFactory  # noqa: E402
from tests.fixtures.registry import Registry  # noqa: E402
from tests.fixtures.sigstore_helpers import key_authority, sigstore_policy  # noqa: E402
from tests.fixtures.sigstore_pki import (  # noqa: E402
    FulcioCA,
    TimestampAuthority,
    TransparencyLog,
    keyed_signer,
    keyless_signer,
    sign,
)
from tests.fixtures.simple_helpers import NAMESPACE, decide_image, policy_under_test  # noqa: E402

IDENTITY, ISSUER = "bench@example.com", "https://oidc.example.com"


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def measure(
    name: str, ca_file: Path, policy: Mapping[str, Any], ref: str, rounds: int
) -> None:
    state = memory_state(policy_under_test(policy))
    settings = Settings(ca_file=str(ca_file), verify_timeout=20.0)
    colds, warms, rechecks = [], [], []
    no_decisions = Settings(ca_file=str(ca_file), verify_timeout=20.0, decision_cache_max_entries=0)
    for _ in range(rounds):
        http = HttpClient(settings.ca_file)
        verifier = SigstoreVerifier(VerifierContext(settings, state, http))
        enforcer = Enforcer(state, {verifier.name: verifier}, settings)
        start = time.perf_counter()
        decision = await decide_image(enforcer, ref, NAMESPACE)
        colds.append(time.perf_counter() - start)
        assert decision.allowed, decision.reasons
        for _ in range(20):
            start = time.perf_counter()
            await decide_image(enforcer, ref, NAMESPACE)
            warms.append(time.perf_counter() - start)
        rechecking = Enforcer(state, {verifier.name: verifier}, no_decisions)
        for _ in range(20):
            start = time.perf_counter()
            await decide_image(rechecking, ref, NAMESPACE)
            rechecks.append(time.perf_counter() - start)
        await verifier.close()
        await http.close()
    await measure_check(name, ca_file, state, ref)
    print(
        f"{name:<8} cold {milliseconds(statistics.median(colds))} (median of {rounds}), "
        f"warm {milliseconds(statistics.median(warms))} (decision cache), "
        f"{milliseconds(statistics.median(rechecks))} (decision cache off)"
    )


async def measure_check(name: str, ca_file: Path, state: Any, ref: str) -> None:
    """The pure checks alone, on evidence read once."""
    settings = Settings(ca_file=str(ca_file))
    http = HttpClient(settings.ca_file)
    verifier = SigstoreVerifier(VerifierContext(settings, state, http))
    image = parse_image(ref)
    policy = state.cluster_image_policies()[0].repositories[0].policy
    authority = policy.sigstore.authorities[0]
    manifest = await verifier.registry.resolve(image, timeout=5.0)
    evidence = await find_evidence(verifier.oci, image, manifest.digest, Reads((), 5.0))
    trust = verifier.trust.load(authority, NAMESPACE)
    subject = Subject(image, manifest.digest)
    runs = 200
    start = time.perf_counter()
    for _ in range(runs):
        assert evaluate(trust, evidence, subject).passed
    took = (time.perf_counter() - start) / runs
    print(f"{name:<8} check only {milliseconds(took)} per image ({len(evidence)} signature(s))")
    await http.close()


def keyless_policy(
    fulcio: FulcioCA, log: TransparencyLog, tsa: TimestampAuthority
) -> dict[str, Any]:
    authority = {
        "name": "keyless",
        "keyless": {
            "ca-cert": {"data": fulcio.chain_pem.decode()},
            "identities": [{"issuer": ISSUER, "subject": IDENTITY}],
        },
        "ctlog": {"publicKey": {"data": log.public_key_pem.decode()}},
        "rfc3161timestamp": {"certChain": {"data": tsa.chain_pem.decode()}},
    }
    return sigstore_policy(authority)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="cold rounds per row (default 5)")
    args = parser.parse_args()
    tools = sigstore_tools()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ca = TestCA.create()
        ca_file = work / "ca.pem"
        ca_file.write_bytes(ca.cert_pem)
        registry = Registry(work / "registry", ca).start()
        tsa = TimestampAuthority(tools.timestamp_server, work / "tsa").start()
        try:
            cosign = Cosign(tools.cosign, work / "cosign", ca_file)
            images = ImageFactory(registry, "bench")
            keyed_image = images("v1", repo=images.new_repo("keyed"))
            keyless_image = images("v1", repo=images.new_repo("keyless"))
            pair = cosign.generate_key_pair(work / "keys")
            sign(cosign, keyed_image.digest_ref, keyed_signer(pair))
            fulcio, log = FulcioCA.create(), TransparencyLog()
            leaf = fulcio.issue(IDENTITY, ISSUER)
            signer = keyless_signer(cosign, leaf, work / "leaf")
            sign(cosign, keyless_image.digest_ref, signer, tsa=tsa, rekor=log)
            keyed = sigstore_policy(key_authority(pair.public_pem))
            asyncio.run(measure("keyed", ca_file, keyed, keyed_image.ref, args.rounds))
            keyless = keyless_policy(fulcio, log, tsa)
            asyncio.run(measure("keyless", ca_file, keyless, keyless_image.ref, args.rounds))
        finally:
            tsa.stop()
            registry.stop()


if __name__ == "__main__":
    main()
