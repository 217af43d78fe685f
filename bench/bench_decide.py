"""CPU per admission decision inside the process, without HTTP: what portieris' own code costs.

Run from the repository root: `.venv/bin/python bench/bench_decide.py [--rounds N] [--profile]`.
It publishes what bench_admission.py publishes (a TLS registry, a notary server, a
lookaside signature store, signed images, the same policies), builds the Enforcer the way
`serve --manifests` does, and for each warm scenario (1-image trust, 1-image trust+simple,
10-image pod) times N times: parse the AdmissionReview body, decide, count the metrics,
encode the answer, with the decision log written to a file as `serve` writes it to stderr.
Then the cold 1-image and 10-image pods: a fresh Enforcer for each first decision.

bench_admission.py measures the whole server against the ceiling; this isolates the part
the webhook adds to an aiohttp server, and `--profile` prints where it goes (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_admission as fixtures

from portieris_webhook.admission.review import dump_json, parse_review_body
from portieris_webhook.cluster.manifests import load_manifests
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.kits import logs
from portieris_webhook.serving.metrics import Metrics
from portieris_webhook.wiring import enforcer_for


async def answer(enforcer: Enforcer, metrics: Metrics, body: bytes) -> bytes:
    """What the /admit handler does with a body, HTTP aside."""
    started = time.perf_counter()
    decision = await enforcer.decide(parse_review_body(body))
    metrics.record(decision.response.allowed, time.perf_counter() - started, decision.reason_kinds)
    if not decision.response.allowed:
        raise SystemExit(f"denied: {decision.summary}")
    return dump_json(decision.response.to_review())


async def warm(
    settings: Settings, manifests: Path, bodies: Mapping[str, bytes], args: argparse.Namespace
) -> None:
    state = load_manifests([str(manifests)])
    metrics = Metrics()
    async with enforcer_for(state, settings) as enforcer:
        for name, body in bodies.items():
            for _ in range(2):  # caches, connections
                await answer(enforcer, metrics, body)
            profile = cProfile.Profile() if args.profile else None
            started = time.process_time()
            if profile:
                profile.enable()
            for _ in range(args.rounds):
                await answer(enforcer, metrics, body)
            if profile:
                profile.disable()
            used = (time.process_time() - started) / args.rounds
            print(f"warm {name:24} {used * 1e6:7.1f} us CPU per decision", flush=True)
            if profile:
                print_profile(profile)


async def cold(
    settings: Settings, manifests: Path, body: bytes, profile: cProfile.Profile | None
) -> tuple[float, float]:
    """(wall ms, CPU ms) of a fresh Enforcer's first decision of `body`."""
    state = load_manifests([str(manifests)])
    async with enforcer_for(state, settings) as enforcer:
        wall, cpu = time.perf_counter(), time.process_time()
        if profile:
            profile.enable()
        await answer(enforcer, Metrics(), body)
        if profile:
            profile.disable()
        return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def print_profile(profile: cProfile.Profile) -> None:
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
    print(text.getvalue())


async def measure(
    settings: Settings, manifests: Path, bodies: dict[str, bytes], args: argparse.Namespace
) -> None:
    if not args.cold_only:
        await warm(settings, manifests, bodies, args)
    for name in ("1-image trust", f"{fixtures.POD_IMAGES}-image pod"):
        profile = cProfile.Profile() if args.profile else None
        runs = [
            await cold(settings, manifests, bodies[name], profile) for _ in range(args.cold_rounds)
        ]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"cold {name:24} {wall:7.1f} ms wall, {cpu:5.1f} ms CPU (median)", flush=True)
        if profile:
            print_profile(profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000, help="decisions per warm scenario")
    parser.add_argument("--cold-rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each")
    parser.add_argument("--cold-only", action="store_true", help="only the cold pods")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-decide-"))
    try:
        # What `serve` logs to standard error, written to a file with the same handler.
        with open(work / "decisions.log", "w") as log_file, logs.logging_to(log_file):
            ca = fixtures.TestCA.create("portieris bench CA")
            ca_file = ca.write(work / "ca")
            with fixtures.services(work, ca) as (registry, notary, store):
                gpg = fixtures.GpgHome(work / "gpg")
                try:
                    images, key, cosign_key = fixtures.publish(work, registry, notary, store, gpg)
                finally:
                    gpg.close()
                manifests = fixtures.write_manifests(
                    work / "manifests", registry.host, notary, store, key, cosign_key
                )
                refs = [image.ref for image in images.trust]
                bodies = {
                    name: json.dumps(fixtures.review(images_of)).encode()
                    for name, images_of in (
                        ("1-image trust", refs[:1]),
                        ("1-image trust+simple", [images.both.ref]),
                        (f"{fixtures.POD_IMAGES}-image pod", refs),
                    )
                }
                # On uvloop, as `serve` runs.
                uvloop.run(measure(Settings(ca_file=str(ca_file)), manifests, bodies, args))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
