"""Admissions per second of `portieris-webhook serve` over HTTPS, against a Python ceiling.

Run from the repository root: `.venv/bin/python bench/bench_admission.py [--duration S]`
(`make bench` runs it). It starts what the tests start (tests/fixtures): a TLS registry,
a notary server, a lookaside signature store and a GnuPG key; pushes tiny images and signs
them as publishers do (the notary CLI, `skopeo --sign-by`, `cosign sign --key`); writes
policies (trust only; trust and simple signing; cosign with a key) for `serve --manifests`,
and runs, as separate processes:

  webhook   portieris-webhook serve (HTTPS, default options unless a row says otherwise)
  ceiling   bench/ceiling_webhook.py: plain aiohttp + json, same TLS settings, parses the
            AdmissionReview and answers allowed
  client    wrk (one thread, 8 keep-alive connections, fixed duration) posting the same
            AdmissionReview to either; an answer that is not HTTP 200 with `"allowed": true`
            is counted as an error

For each scenario it prints the rate (admissions/s), p50 and p99 latency, the ratio to
the ceiling's rate for the same body, the server's CPU per admission (utime + stime from
/proc/PID/stat) and its RSS; then the cold pods (a fresh webhook each time, its first
admission timed), the RSS after 100,000 admissions, and a table of the targets.

Warm rows run with the caches on, then with the webhook's caches turned off where
`serve --help` shows an option for it (`--trust-refresh-interval 0`, and
`--simple-refresh-interval 0` / `--decision-cache-max-entries 0` when they exist).
`--profile FILE` also writes a cProfile of the server answering warm 1-image admissions.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import math
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.fixtures.cosign import Cosign, sigstore_tools  # noqa: E402
from tests.fixtures.gpg import GpgHome, LookasideStore, SimpleSigner  # noqa: E402
from tests.fixtures.notary import NotaryServer, NotarySigner  # noqa: E402
from tests.fixtures.pki import TestCA  # noqa: E402
from tests.fixtures.procs import ManagedProcess, start_on_free_port  # noqa: E402
from tests.fixtures.registry import PushedImage, Registry  # noqa: E402
from tests.fixtures.serve import pod_review  # noqa: E402

CONCURRENCY = 8
POD_IMAGES = 10
LONG_RUN_ADMISSIONS = 100_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CEILING = Path(__file__).resolve().parent / "ceiling_webhook.py"

WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = file:read("*a")
file:close()
bad = 0
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"allowed":%s*true') then
    bad = bad + 1
  end
end
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local rejected = 0
  for _, thread in ipairs(threads) do
    rejected = rejected + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %f, "bad": %d, "errors": %d, "p50": %d, "p99": %d}\n',
    summary.requests, summary.duration / 1e6, rejected,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


# --------------------------------------------------------------------------- measuring


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    failed: int
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    """Server CPU per admission."""
    rss_mb: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def drive(url: str, pid: int, body: Path, seconds: float, work: Path) -> Run:
    """wrk against `url` for `seconds`; the server's CPU and RSS read around it."""
    script = work / "admit.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT)
    command = [
        "wrk", "-t1", f"-c{CONCURRENCY}", f"-d{math.ceil(seconds)}s", "--timeout", "10s",
        "-s", str(script), f"{url}/admit",
    ]  # fmt: skip
    before = cpu_seconds(pid)
    done = subprocess.run(
        command,
        env={**os.environ, "BENCH_BODY": str(body)},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    used = cpu_seconds(pid) - before
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    result = json.loads(line.removeprefix("BENCH "))
    requests = max(1, result["requests"])
    return Run(
        requests=result["requests"],
        seconds=result["seconds"],
        failed=result["bad"] + result["errors"],
        p50_ms=result["p50"] / 1000,
        p99_ms=result["p99"] / 1000,
        cpu_ms=used * 1000 / requests,
        rss_mb=rss_mb(pid),
    )


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Tls:
    ca_file: Path
    cert: Path
    key: Path


class Server:
    """A webhook process (portieris or the ceiling) on a free port, stopped on exit."""

    def __init__(self, name: str, argv: Sequence[str | os.PathLike[str]], work: Path, tls: Tls):
        self.name, self.argv, self.work, self.tls = name, list(argv), work, tls
        self.process: ManagedProcess | None = None
        self.url = ""

    def __enter__(self) -> Server:
        def launch(port: int) -> ManagedProcess:
            argv = [*self.argv, "--host", "127.0.0.1", "--port", str(port)]
            return ManagedProcess(self.name, argv, self.work / "logs" / f"{self.name}.log")

        def wait(process: ManagedProcess, port: int) -> None:
            url = f"https://127.0.0.1:{port}/health/readiness"
            process.wait_for_url(url, ca_file=self.tls.ca_file, timeout=60)

        self.process, port = start_on_free_port(launch, wait)
        self.url = f"https://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None and self.process.pid is not None
        return self.process.pid


def webhook_argv(manifests: Path, tls: Tls, options: Sequence[str], profile: Path | None):
    python = [sys.executable]
    if profile is not None:
        python += ["-m", "cProfile", "-o", str(profile)]
    return [
        *python, "-m", "portieris_webhook.cli", "serve", "--manifests", manifests,
        "--ca-file", tls.ca_file, "--tls-cert-file", tls.cert, "--tls-key-file", tls.key,
        "--metrics-port", "0", *options,
    ]  # fmt: skip


def ceiling_argv(tls: Tls) -> list[str | os.PathLike[str]]:
    return [sys.executable, CEILING, "--tls-cert-file", tls.cert, "--tls-key-file", tls.key]


def serve_options() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "portieris_webhook.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


# --------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Images:
    trust: list[PushedImage]
    """POD_IMAGES images, each in a repository of its own, signed with notary."""
    both: PushedImage
    """Signed with notary and with simple signing."""
    cosign: PushedImage
    """Signed with the real cosign and a key (tag schema)."""


def publish(
    work: Path, registry: Registry, notary: NotaryServer, store: LookasideStore, gpg: GpgHome
) -> tuple[Images, str, str]:
    trust = [registry.push_image(f"bench/trust/app{n}", "v1") for n in range(POD_IMAGES)]
    both = registry.push_image("bench/both/app", "v1")

    def sign(job: tuple[int, PushedImage]) -> None:
        index, image = job
        signer = NotarySigner(notary, work / f"notary-trust-{index}")
        signer.sign(image.name, image.tag, image.size, image.hex)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(sign, enumerate([*trust, both])))
    key = gpg.new_key("bench publisher")
    SimpleSigner(gpg, store, registry, work / "skopeo").sign(both, key.fingerprint)
    cosigned = registry.push_image("bench/cosign/app", "v1")
    cosign = Cosign(sigstore_tools().cosign, work / "cosign", registry.ca_file)
    pair = cosign.generate_key_pair(work / "cosign-key")
    cosign.sign(cosigned.digest_ref, pair.private_path)
    return Images(trust, both, cosigned), key.public_armored, pair.public_pem.decode()


def write_manifests(
    directory: Path, host: str, notary: NotaryServer, store: LookasideStore, key: str, cosign: str
) -> Path:
    trust = {"enabled": True, "trustServer": notary.url}
    simple = {
        "requirements": [{"type": "signedBy", "keySecret": "bench-signer"}],
        "storeURL": store.url,
    }
    authority = {"name": "bench", "key": {"data": cosign}, "ctlog": {"enabled": False}}
    sigstore = {"authorities": [authority]}
    policy = {
        "apiVersion": "portieris.cloud.ibm.com/v1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "bench"},
        "spec": {
            "repositories": [
                {"name": f"{host}/bench/trust/*", "policy": {"trust": trust}},
                {"name": f"{host}/bench/both/*", "policy": {"trust": trust, "simple": simple}},
                {"name": f"{host}/bench/cosign/*", "policy": {"sigstore": sigstore}},
            ]
        },
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bench-signer", "namespace": "default"},
        "type": "Opaque",
        "data": {"key": base64.b64encode(key.encode()).decode()},
    }
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench.yaml").write_text(yaml.safe_dump_all([ns, secret, policy]))
    return directory


def review(images: Sequence[str]) -> dict[str, Any]:
    return pod_review(images, uid="bench")


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    body: Path


def first_admission_ms(url: str, ca_file: Path, body: bytes) -> float:
    """The time of the first admission of a fresh server, on an established connection."""
    context = ssl.create_default_context(cafile=str(ca_file))
    host, port = url.removeprefix("https://").split(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    try:
        connection.request("GET", "/health/liveness")
        connection.getresponse().read()
        started = time.perf_counter()
        connection.request("POST", "/admit", body, {"Content-Type": "application/json"})
        answer = json.loads(connection.getresponse().read())
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if not answer["response"]["allowed"]:
        raise SystemExit(f"cold admission denied: {answer['response']['status']['message']}")
    return elapsed * 1000


def row(label: str, run: Run, ceiling: Run | None) -> str:
    ratio = f"{run.rate / ceiling.rate:5.2f}x" if ceiling else "    - "
    by_cpu = f"{ceiling.cpu_ms / run.cpu_ms:5.2f}x" if ceiling and run.cpu_ms else "    - "
    failed = f"  FAILED {run.failed}" if run.failed else ""
    return (
        f"{label:50} {run.rate:6.0f}/s  p50 {run.p50_ms:6.2f}  p99 {run.p99_ms:7.2f} ms  "
        f"ratio {ratio} (cpu {by_cpu})  cpu {run.cpu_ms:5.2f} ms  rss {run.rss_mb:5.1f} MB{failed}"
    )


def say(text: str = "") -> None:
    print(text, flush=True)


STORE_SERVER = (
    "import functools, http.server, sys\n"
    "http.server.ThreadingHTTPServer.request_queue_size = 1024\n"
    "handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n"
    "http.server.ThreadingHTTPServer((sys.argv[2], int(sys.argv[3])), handler).serve_forever()\n"
)


class BenchStore(LookasideStore):
    """The lookaside store of the tests with a listen backlog for 8 concurrent clients.

    `python -m http.server` listens with a backlog of 5: with more clients connecting at
    once the kernel drops SYNs and the client retries a second later, which would be
    measured as the webhook's latency.
    """

    def start(self) -> BenchStore:
        def launch(port: int) -> ManagedProcess:
            argv = [sys.executable, "-c", STORE_SERVER, self.dir, self.address, str(port)]
            return ManagedProcess("lookaside-http", argv, self.log_dir / "lookaside-http.log")

        def wait(process: ManagedProcess, port: int) -> None:
            process.wait_for_url(f"http://{self.address}:{port}/")

        self.process, self.port = start_on_free_port(launch, wait, host=self.address)
        return self


@contextlib.contextmanager
def services(work: Path, ca: TestCA) -> Iterator[tuple[Registry, NotaryServer, LookasideStore]]:
    registry = Registry(work / "registry", ca).start()
    notary = NotaryServer(work / "notary", ca).start()
    store = BenchStore(work / "lookaside", work / "logs").start()
    try:
        yield registry, notary, store
    finally:
        for server in (store, notary, registry):
            server.stop()


def bench(args: argparse.Namespace, work: Path) -> None:
    began = time.monotonic()
    ca = TestCA.create("portieris bench CA")
    tls = Tls(ca.write(work / "ca"), *ca.write_leaf(work / "tls", "webhook"))
    with services(work, ca) as (registry, notary, store):
        gpg = GpgHome(work / "gpg")
        try:
            images, key, cosign_key = publish(work, registry, notary, store, gpg)
        finally:
            gpg.close()
        manifests = write_manifests(
            work / "manifests", registry.host, notary, store, key, cosign_key
        )
        bodies = work / "bodies"
        bodies.mkdir()

        def body(name: str, refs: Sequence[str]) -> Path:
            path = bodies / f"{name}.json"
            path.write_text(json.dumps(review(refs)))
            return path

        refs = [image.ref for image in images.trust]
        scenarios = [
            Scenario("warm 1-image trust", body("trust", refs[:1])),
            Scenario("warm 1-image trust+simple", body("both", [images.both.ref])),
            Scenario(f"warm {POD_IMAGES}-image pod (trust)", body("pod", refs)),
            Scenario("warm 1-image sigstore (cosign key)", body("cosign", [images.cosign.ref])),
        ]
        say(f"ready in {time.monotonic() - began:.0f} s; {POD_IMAGES + 2} images signed")
        measure(args, work, tls, manifests, scenarios, refs)
    say(f"\nbench_admission done in {time.monotonic() - began:.0f} s")


def cache_off_configs(help_text: str) -> list[tuple[str, list[str]]]:
    """(label, serve options) of the cache-off runs the installed webhook supports."""
    configs: list[tuple[str, list[str]]] = []
    decision_off: list[str] = []
    if "--decision-cache-max-entries" in help_text:
        decision_off = ["--decision-cache-max-entries", "0"]
        configs.append(("decision cache off", decision_off))
    every = [*decision_off, "--trust-refresh-interval", "0"]
    off = ["decision"] if decision_off else []
    off.append("trust")
    if "--simple-refresh-interval" in help_text:
        every += ["--simple-refresh-interval", "0"]
        off.append("simple")
    configs.append((f"{'+'.join(off)} caches off", every))
    return configs


def measure(
    args: argparse.Namespace,
    work: Path,
    tls: Tls,
    manifests: Path,
    scenarios: list[Scenario],
    refs: list[str],
) -> None:
    duration = args.duration
    results: dict[str, Run] = {}
    ceilings: dict[str, Run] = {}
    say(f"\nwarm admissions: wrk, {CONCURRENCY} keep-alive connections, {duration:g} s each")
    say(
        "ratio: the rate over the ceiling's for the same body; (cpu): the ceiling's CPU per\n"
        "admission over the webhook's, the ratio both would reach each with a core of its own\n"
        "(steadier than the rates on a shared machine). cpu: server CPU per admission."
    )
    with Server("ceiling", ceiling_argv(tls), work, tls) as ceiling:
        for scenario in scenarios:
            drive(ceiling.url, ceiling.pid, scenario.body, 1, work)
            ceilings[scenario.name] = drive(ceiling.url, ceiling.pid, scenario.body, duration, work)
            say(row(f"ceiling   {scenario.name}", ceilings[scenario.name], None))
    configs = [("caches on", []), *cache_off_configs(serve_options())]
    for label, options in configs:
        profile = args.profile if label == "caches on" else None
        argv = webhook_argv(manifests, tls, options, profile)
        with Server(f"webhook-{len(results)}", argv, work, tls) as webhook:
            for scenario in scenarios:
                drive(webhook.url, webhook.pid, scenario.body, 1, work)  # caches, connections
                run = drive(webhook.url, webhook.pid, scenario.body, duration, work)
                results[f"{scenario.name}, {label}"] = run
                say(row(f"portieris {scenario.name}, {label}", run, ceilings[scenario.name]))
    if args.profile:
        say(f"cProfile of the server (caches on, every scenario): {args.profile}")

    cold = cold_pods(work, tls, manifests, refs, args.cold_rounds)
    long_run = hundred_thousand(work, tls, manifests, scenarios[0], results)
    targets(scenarios, results, ceilings, cold, long_run)


def cold_pods(
    work: Path, tls: Tls, manifests: Path, refs: list[str], rounds: int
) -> dict[int, float]:
    """Median first-admission time of a fresh webhook for a 1-image and a full pod."""
    say(f"\ncold pods: a fresh webhook for each admission, median of {rounds}")
    bodies = {
        1: json.dumps(review(refs[:1])).encode(),
        len(refs): json.dumps(review(refs)).encode(),
    }
    times: dict[int, list[float]] = {count: [] for count in bodies}
    for _ in range(rounds):
        for count, data in bodies.items():
            argv = webhook_argv(manifests, tls, [], None)
            with Server("webhook-cold", argv, work, tls) as webhook:
                times[count].append(first_admission_ms(webhook.url, tls.ca_file, data))
    medians = {count: statistics.median(values) for count, values in times.items()}
    for count, value in medians.items():
        spread = ", ".join(f"{v:.0f}" for v in times[count])
        say(f"cold {count:2}-image pod: {value:7.1f} ms  ({spread} ms)")
    return medians


def hundred_thousand(
    work: Path, tls: Tls, manifests: Path, scenario: Scenario, results: dict[str, Run]
) -> tuple[int, float, float]:
    """(admissions, RSS after warm-up, RSS after them) of one webhook."""
    warm = results[f"{scenario.name}, caches on"]
    seconds = min(15.0, max(5.0, LONG_RUN_ADMISSIONS / warm.rate))
    say(f"\n{LONG_RUN_ADMISSIONS} admissions ({scenario.name}): one webhook")
    argv = webhook_argv(manifests, tls, [], None)
    with Server("webhook-long", argv, work, tls) as webhook:
        first = drive(webhook.url, webhook.pid, scenario.body, 2, work)
        total = first.requests
        while total < LONG_RUN_ADMISSIONS:
            run = drive(webhook.url, webhook.pid, scenario.body, seconds, work)
            total += run.requests
            seconds = min(15.0, max(1.0, (LONG_RUN_ADMISSIONS - total) / run.rate))
            if run.failed:
                say(f"  {run.failed} failed admissions")
        end = rss_mb(webhook.pid)
    say(f"RSS after warm-up {first.rss_mb:.1f} MB, after {total} admissions {end:.1f} MB")
    return total, first.rss_mb, end


def targets(
    scenarios: list[Scenario],
    results: dict[str, Run],
    ceilings: dict[str, Run],
    cold: dict[int, float],
    long_run: tuple[int, float, float],
) -> None:
    one, both, pod, cosigned = (s.name for s in scenarios)

    def ratio(name: str) -> float:
        return results[f"{name}, caches on"].rate / ceilings[name].rate

    def by_cpu(name: str) -> str:
        return (
            f"(cpu {ceilings[name].cpu_ms / max(results[f'{name}, caches on'].cpu_ms, 1e-9):.2f}x)"
        )

    p99 = results[f"{one}, caches on"].p99_ms
    cold_ratio = cold[POD_IMAGES] / cold[1]
    total, _warm_rss, end_rss = long_run
    rows = [
        (
            "warm 1-image trust",
            ">= 0.80x ceiling",
            f"{ratio(one):.2f}x {by_cpu(one)}",
            ratio(one) >= 0.8,
        ),
        ("warm 1-image trust p99", "< 3 ms", f"{p99:.2f} ms", p99 < 3),
        (
            "warm trust+simple",
            ">= 0.60x ceiling",
            f"{ratio(both):.2f}x {by_cpu(both)}",
            ratio(both) >= 0.6,
        ),
        (
            f"{POD_IMAGES}-image pod",
            ">= 0.50x ceiling",
            f"{ratio(pod):.2f}x {by_cpu(pod)}",
            ratio(pod) >= 0.5,
        ),
        (
            "warm 1-image sigstore",
            ">= 0.80x ceiling",
            f"{ratio(cosigned):.2f}x {by_cpu(cosigned)}",
            ratio(cosigned) >= 0.8,
        ),
        (
            f"cold {POD_IMAGES}-image / cold 1-image",
            "<= 1.5x",
            f"{cold_ratio:.2f}x",
            cold_ratio <= 1.5,
        ),
        (f"RSS after {total} admissions", "< 100 MB", f"{end_rss:.1f} MB", end_rss < 100),
    ]
    say("\ntargets (caches on)")
    say(f"{'':34} {'target':18} {'measured':22}")
    for name, target, measured, met in rows:
        say(f"{name:34} {target:18} {measured:22} {'met' if met else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per warm run")
    parser.add_argument("--cold-rounds", type=int, default=5)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the warm server here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_admission needs wrk (Debian package wrk; make system-deps)")
    work = Path(tempfile.mkdtemp(prefix="bench-admission-"))
    try:
        bench(args, work)
    finally:
        if args.keep:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
