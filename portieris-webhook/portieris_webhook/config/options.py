"""Every command-line and config-file option, in one place (oslo.config).

Defaults that the request path also uses come from the Settings and ConnectionLimits
dataclasses, so each is written once.

Each subcommand registers only the options it uses, so `--help` shows exactly those.
Options can also come from an INI file given with --config-file ([DEFAULT] section).
"""

from __future__ import annotations

import copy

from oslo_config import cfg

from portieris_webhook.cluster.kube import (
    OWNER_CACHE_MAX_BYTES,
    OWNER_CACHE_MAX_ENTRIES,
    OWNER_CACHE_SECONDS,
)
from portieris_webhook.config.settings import Settings
from portieris_webhook.serving.listener import ConnectionLimits
from portieris_webhook.trust.persisted import StateLimits
from portieris_webhook.trust.state_store import StoreSettings

MANIFEST_OPTS = [
    cfg.MultiStrOpt(
        "manifests",
        default=[],
        help="Directory or file of Kubernetes manifests (ImagePolicy, ClusterImagePolicy, Secret, "
        "ServiceAccount, Namespace, workloads) that stands in for the cluster. Repeatable.",
    ),
]

LOG_LEVEL_OPT = cfg.StrOpt(
    "log-level",
    default="INFO",
    choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    help="Log level.",
)
LOG_OPTS = [LOG_LEVEL_OPT]

VERIFY_OPTS = [
    cfg.StrOpt(
        "ca-file",
        help="PEM bundle added to the trusted roots for every outbound TLS "
        "connection (registries, notary servers, signature stores).",
    ),
    cfg.FloatOpt(
        "verify-timeout",
        default=Settings.verify_timeout,
        min=0.1,
        help="Seconds one admission request may spend verifying images; keep it below "
        "the webhook's timeoutSeconds.",
    ),
    cfg.FloatOpt(
        "remote-timeout",
        default=Settings.remote_timeout,
        min=0.1,
        help="Seconds one outbound call to a registry, notary server or store may take.",
    ),
    cfg.StrOpt(
        "default-trust-server",
        help="Notary server used when a policy enables trust without trustServer.",
    ),
    cfg.FloatOpt(
        "trust-refresh-interval",
        default=Settings.trust_refresh_interval,
        min=0,
        help="Seconds cached notary metadata is used before the timestamp is re-checked.",
    ),
    cfg.FloatOpt(
        "simple-refresh-interval",
        min=0,
        help="Seconds a tag's digest and the signatures read for it are reused, for simple "
        "signing and for cosign (sigstore) signatures, before the registry and signature "
        "store are asked again (0: ask every time). Default: the value of "
        "--trust-refresh-interval.",
    ),
    cfg.FloatOpt(
        "simple-failure-ttl",
        default=Settings.simple_failure_ttl,
        min=0,
        help="Seconds a failed registry or signature store read for simple signing or cosign "
        "(sigstore) signatures is answered from memory before asking again (0: always ask "
        "again).",
    ),
    cfg.MultiStrOpt(
        "pinned-trust-root",
        default=[],
        help="SERVER=ROOT: trust only this root key ID or certificate file for the "
        "notary server SERVER instead of trusting the first root seen. Repeatable.",
    ),
    LOG_LEVEL_OPT,
    # --- trust cache bounds -----------------------------------------------------------
    cfg.IntOpt(
        "trust-cache-max-entries",
        default=Settings.trust_cache_max_entries,
        min=1,
        help="Repositories whose verified notary trust data is kept in memory (least recently "
        "used forgotten first); failed lookups are kept separately, as many at most.",
    ),
    cfg.IntOpt(
        "trust-cache-max-bytes",
        default=Settings.trust_cache_max_bytes,
        min=1024 * 1024,
        help="Raw notary metadata bytes kept in memory over all repositories (parsed, they "
        "take about five times as much).",
    ),
    cfg.FloatOpt(
        "trust-cache-max-age",
        default=Settings.trust_cache_max_age,
        min=1,
        help="Seconds a repository's trust data may go unused before it is forgotten (its "
        "first-use root and the versions seen are then learnt again, as after a restart).",
    ),
    cfg.FloatOpt(
        "trust-failure-ttl",
        default=Settings.trust_failure_ttl,
        min=0,
        help="Seconds a failed trust lookup is answered from memory before the notary server "
        "is asked again (0: always ask again).",
    ),
    cfg.IntOpt(
        "decision-cache-max-entries",
        default=Settings.decision_cache_max_entries,
        min=0,
        help="Passed image verifications reused without running the verifiers again, while "
        "the image, its policy and every secret they read are unchanged and for at most the "
        "verifiers' refresh interval (least recently used forgotten first; 0: off).",
    ),
    cfg.IntOpt(
        "max-images-per-admission",
        default=Settings.max_images_per_admission,
        min=1,
        help="Distinct images one admitted object may name (containers, init and ephemeral "
        "containers, image volumes); an object naming more is denied before any of them is "
        "looked at, so one request cannot hold the webhook for the others.",
    ),
]

KUBECONFIG_OPT = cfg.StrOpt(
    "kubeconfig",
    help="Kubeconfig to reach the cluster with (unset: the in-cluster service account).",
)
TRUST_STATE_FILE_OPT = cfg.StrOpt(
    "trust-state-file",
    help="File that keeps the trust on first use (first root and highest versions seen per "
    "notary repository) across runs in offline mode, replaced atomically. Default: memory only.",
)
TRUST_STATE_CONFIGMAP_OPT = cfg.StrOpt(
    "trust-state-configmap",
    help="NAMESPACE/NAME of the ConfigMap that keeps the trust on first use shared by every "
    "replica and across restarts in cluster mode (the chart creates it). Default: memory only.",
)

TRUST_STATE_OPTS = [
    TRUST_STATE_FILE_OPT,
    cfg.IntOpt(
        "trust-state-max-entries",
        default=StateLimits.max_entries,
        min=1,
        help="Repositories the trust state keeps at most (least recently used dropped first; "
        "they are trusted on first use again).",
    ),
    cfg.IntOpt(
        "trust-state-max-bytes",
        default=StateLimits.max_bytes,
        min=16 * 1024,
        max=1000 * 1000,
        help="Bytes the trust state document may have (a ConfigMap holds at most 1 MiB).",
    ),
    cfg.FloatOpt(
        "trust-state-write-delay",
        default=StoreSettings.write_delay,
        min=0,
        help="Seconds newly verified trust is gathered before it is written (one write for all).",
    ),
    cfg.FloatOpt(
        "trust-state-sync-interval",
        default=StoreSettings.sync_interval,
        min=0.1,
        help="Seconds between reads of the shared trust state (what other replicas trusted).",
    ),
]

SERVE_OPTS = [
    cfg.StrOpt("tls-cert-file", required=True, help="PEM certificate (chain) the webhook serves."),
    cfg.StrOpt("tls-key-file", required=True, help="PEM private key of --tls-cert-file."),
    cfg.HostAddressOpt("host", default="0.0.0.0", help="Address to listen on."),
    cfg.PortOpt("port", default=8000, help="HTTPS port of /admit, /validate-policy and /health/*."),
    cfg.PortOpt("metrics-port", default=8080, help="Plain HTTP port of /metrics (0 disables)."),
    cfg.IntOpt(
        "max-body-bytes",
        default=3 * 1024 * 1024,
        min=1024,
        help="Largest AdmissionReview body accepted; larger bodies get HTTP 400.",
    ),
    cfg.FloatOpt(
        "handshake-timeout",
        default=ConnectionLimits.handshake_timeout,
        min=0.1,
        help="Seconds a client has to finish the TLS handshake after connecting.",
    ),
    cfg.FloatOpt(
        "request-read-timeout",
        default=ConnectionLimits.request_read_timeout,
        min=0.1,
        help="Seconds a client has to send a whole request (headers and body), from its "
        "first byte.",
    ),
    cfg.FloatOpt(
        "idle-timeout",
        default=ConnectionLimits.idle_timeout,
        min=0.1,
        help="Seconds a connection may stay open without a request. Keep it above the "
        "90 s after which kube-apiserver closes its idle connections.",
    ),
    cfg.IntOpt(
        "max-connections",
        default=ConnectionLimits.max_connections,
        min=1,
        help="Open connections (TLS handshakes included) across the HTTPS and metrics "
        "ports; more are closed at once. Never more than half the open-file limit.",
    ),
    cfg.StrOpt(
        "event-loop",
        default="uvloop",
        choices=["uvloop", "asyncio"],
        help="Event loop to serve with: uvloop (libuv; TLS and sockets in compiled code, "
        "about a tenth more admissions a second here) or the standard library's asyncio.",
    ),
    cfg.FloatOpt(
        "shutdown-delay",
        default=0.0,
        min=0,
        help="Seconds to keep answering after SIGTERM (readiness then says 503) before "
        "stopping, so admissions routed here while the endpoint is being removed are still "
        "answered; each answer then closes its connection (Connection: close), so clients "
        "move to other replicas without racing the final close. The chart sets 5.",
    ),
    cfg.FloatOpt(
        "log-summary-interval",
        default=60.0,
        min=0.1,
        help="Seconds between the log lines that summarise dropped connections and "
        "rejected requests (which are not logged one by one).",
    ),
    cfg.FloatOpt(
        "cert-reload-interval",
        default=10.0,
        min=0.05,
        help="Seconds between checks of the certificate files for rotation.",
    ),
    cfg.IntOpt(
        "owner-cache-max-entries",
        default=OWNER_CACHE_MAX_ENTRIES,
        min=1,
        help="Cluster mode: owners (ReplicaSets, Jobs, ...) whose pod template images are kept "
        f"for {OWNER_CACHE_SECONDS:g} s after a lookup (least recently used forgotten first; "
        f"{OWNER_CACHE_MAX_BYTES // (1024 * 1024)} MiB of image names at most).",
    ),
    KUBECONFIG_OPT,
    TRUST_STATE_CONFIGMAP_OPT,
]

ADMIT_OPTS = [
    cfg.StrOpt(
        "review",
        positional=True,
        required=True,
        help="AdmissionReview JSON file, or - for standard input.",
    ),
]

IMAGE_OPTS = [
    cfg.StrOpt("image", positional=True, required=True, help="Image reference to check."),
    cfg.StrOpt("namespace", default="default", help="Namespace the image would run in."),
    cfg.StrOpt("service-account", default="default", help="Service account of the would-be pod."),
    cfg.MultiStrOpt("pull-secret", default=[], help="Image pull secret name of the would-be pod."),
]


TRUST_STATE_COMMAND_OPTS = [
    cfg.StrOpt(
        "action",
        positional=True,
        required=True,
        choices=["show", "reset"],
        help="show: print the stored entries; reset: forget one repository's trusted root and "
        "versions, so that it is trusted on first use again.",
    ),
    cfg.StrOpt("server", help="Notary server URL of the entry (required by reset)."),
    cfg.StrOpt("gun", help="Repository (GUN) of the entry, e.g. registry.example.com/team/app."),
    TRUST_STATE_FILE_OPT,
    TRUST_STATE_CONFIGMAP_OPT,
    KUBECONFIG_OPT,
]


LONG_RUNNING = frozenset(
    {
        "trust_refresh_interval",
        "simple_refresh_interval",
        "simple_failure_ttl",
        "trust_cache_max_entries",
        "trust_cache_max_bytes",
        "trust_cache_max_age",
        "trust_failure_ttl",
        "decision_cache_max_entries",
        "trust_state_write_delay",
        "trust_state_sync_interval",
    }
)
"""Options that only change what a running `serve` does over many admissions (caches,
windows, shared-state timing). `admit` and `verify` decide once, but accept them so that
one config file serves every command; their --help says so."""


def shown_in_help(opt: cfg.Opt, command: str) -> cfg.Opt:
    """`opt` as `command --help` shows it: with its default, and for a one-shot command
    saying when it has no effect there."""
    text = opt.help or ""
    if command != "serve" and opt.dest in LONG_RUNNING:
        text += (
            " No effect on this command, which decides once (accepted for a shared config file)."
        )
    if opt.default not in (None, [], "") and not opt.positional:
        text += f" Default: {opt.default}."
    shown = copy.copy(opt)
    shown.help = text
    return shown


def store_settings_from(conf: cfg.ConfigOpts) -> StoreSettings:
    return StoreSettings(
        write_delay=conf.trust_state_write_delay,
        sync_interval=conf.trust_state_sync_interval,
        limits=StateLimits(conf.trust_state_max_entries, conf.trust_state_max_bytes),
    )


def settings_from(conf: cfg.ConfigOpts) -> Settings:
    return Settings(
        ca_file=conf.ca_file,
        verify_timeout=conf.verify_timeout,
        remote_timeout=conf.remote_timeout,
        default_trust_server=conf.default_trust_server,
        trust_refresh_interval=conf.trust_refresh_interval,
        pinned_trust_roots=tuple(conf.pinned_trust_root),
        trust_cache_max_entries=conf.trust_cache_max_entries,
        trust_cache_max_bytes=conf.trust_cache_max_bytes,
        trust_cache_max_age=conf.trust_cache_max_age,
        trust_failure_ttl=conf.trust_failure_ttl,
        decision_cache_max_entries=conf.decision_cache_max_entries,
        max_images_per_admission=conf.max_images_per_admission,
        simple_refresh_interval=conf.simple_refresh_interval,
        simple_failure_ttl=conf.simple_failure_ttl,
    )


def connection_limits_from(conf: cfg.ConfigOpts) -> ConnectionLimits:
    return ConnectionLimits(
        handshake_timeout=conf.handshake_timeout,
        request_read_timeout=conf.request_read_timeout,
        idle_timeout=conf.idle_timeout,
        max_connections=conf.max_connections,
    )
