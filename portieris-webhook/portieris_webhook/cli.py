"""portieris-webhook serve | admit | verify | trust-state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from oslo_config import cfg

from portieris_webhook import __version__
from portieris_webhook.admission.review import load_json, parse_review
from portieris_webhook.admission.workloads import PodImage, PodSpec
from portieris_webhook.cluster.kube import (
    ClusterState,
    cluster_state,
    connect,
    parse_object_name,
)
from portieris_webhook.cluster.manifests import load_manifests
from portieris_webhook.cluster.state import StateView
from portieris_webhook.cluster.trust_state_backends import ConfigMapBackend, FileBackend
from portieris_webhook.config import config_file, options
from portieris_webhook.errors import ConfigurationError, PortierisError
from portieris_webhook.kits import logs
from portieris_webhook.serving.metrics import Metrics, UnusableObjectMetrics
from portieris_webhook.serving.server import WebhookApp, running
from portieris_webhook.serving.tls import ReloadingTLS
from portieris_webhook.trust import persisted, state_store
from portieris_webhook.trust.client import normalise_server
from portieris_webhook.trust.state_store import Backend, TrustStateStore
from portieris_webhook.wiring import enforcer_for, wait_for_signal

LOG = logging.getLogger(__name__)

USAGE = """usage: portieris-webhook COMMAND [options]

commands:
  serve    run the HTTPS admission webhook (cluster mode, or offline with --manifests)
  admit    decide one AdmissionReview offline and print the response
  verify   decide one image offline and explain the decision
  trust-state show|reset
           show the persisted trust on first use, or reset one repository's entry

Run `portieris-webhook COMMAND --help` for the options of a command.
"""


def _parse(command: str, argv: Sequence[str], *groups: Sequence[cfg.Opt]) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    # oslo.config's own --shell_completion (the one option spelled with an underscore) would
    # print a script for oslo's command layout from a template its wheel lacks: not offered.
    conf.unregister_opt(cfg.ConfigOpts._shell_completion_opt)
    if argv and argv[0].startswith("--shell_completion"):
        raise ConfigurationError(f"unrecognized option {argv[0]} (see --help)")
    for opts in groups:
        conf.register_cli_opts([options.shown_in_help(opt, command) for opt in opts])
    # Config files become arguments before oslo.config sees them, so every key is checked
    # (see config_file); and no default files or directories, which it would read unchecked.
    conf(
        config_file.expand(argv, [opt for opts in groups for opt in opts]),
        project="portieris-webhook",
        prog=f"portieris-webhook {command}",
        version=__version__,
        default_config_files=[],
        default_config_dirs=[],
    )
    if conf.config_file or conf.config_dirs:
        # Only an abbreviation argparse accepts (--config-f) gets a file past expand().
        raise ConfigurationError("write --config-file and --config-dir out in full")
    logs.configure(conf.log_level)
    return conf


def _offline_state(conf: cfg.ConfigOpts) -> StateView:
    if not conf.manifests:
        raise PortierisError(
            "--manifests DIR is required (the directory that stands in for the cluster)"
        )
    return load_manifests(conf.manifests)


def _read_bytes(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    with open(source, "rb") as handle:
        return handle.read()


def render(document: object) -> str:
    """A JSON document as `admit` prints it."""
    return json.dumps(document, indent=2, sort_keys=True)


@contextlib.asynccontextmanager
async def _offline_trust_state(conf: cfg.ConfigOpts) -> AsyncIterator[TrustStateStore | None]:
    """The --trust-state-file store, read before deciding and written after (else None)."""
    if not conf.trust_state_file:
        yield None
        return
    store = TrustStateStore(FileBackend(conf.trust_state_file), options.store_settings_from(conf))
    await store.sync()
    yield store
    if store.pending:
        await store.sync()


async def _admit(conf: cfg.ConfigOpts) -> int:
    state = _offline_state(conf)
    source = conf.review
    try:
        data = await asyncio.to_thread(_read_bytes, source)
    except OSError as exc:
        raise PortierisError(f"cannot read {source}: {exc}") from exc
    request = parse_review(load_json(data, source))
    settings = options.settings_from(conf)
    async with (
        _offline_trust_state(conf) as trust_state,
        enforcer_for(state, settings, trust_state) as enforcer,
    ):
        decision = await enforcer.decide(request)
    print(render(decision.response.to_review()))
    return 0


async def _verify(conf: cfg.ConfigOpts) -> int:
    state = _offline_state(conf)
    spec = PodSpec(
        (PodImage(conf.image, "/spec/containers/0/image"),),
        tuple(conf.pull_secret),
        conf.service_account,
    )
    settings = options.settings_from(conf)
    async with (
        _offline_trust_state(conf) as trust_state,
        enforcer_for(state, settings, trust_state) as enforcer,
    ):
        results = await enforcer.evaluate_images(conf.namespace, spec)
    item = results[conf.image]
    verdict = "ALLOW" if item.allowed else "DENY"
    print(f"{verdict} {item.image} in namespace {conf.namespace}")
    print(f"  policy: {item.policy or '-'}")
    if item.digest:
        print(f"  digest: {item.digest}")
    if item.patched_image:
        print(f"  patched image: {item.patched_image}")
    for reason in item.reasons:
        print(f"  reason: {reason}")
    return 0 if item.allowed else 1


async def _serve(conf: cfg.ConfigOpts) -> int:
    tls = ReloadingTLS(conf.tls_cert_file, conf.tls_key_file)
    async with contextlib.AsyncExitStack() as stack:
        also_ready: dict[str, Callable[[], str | None]] = {}
        state, backend = await _state_sources(conf, stack, also_ready)
        trust_state = None
        if backend is not None:
            trust_state = TrustStateStore(backend, options.store_settings_from(conf))
            await stack.enter_async_context(state_store.running(trust_state))
            also_ready["trust state"] = trust_state.not_ready
        enforcer = await stack.enter_async_context(
            enforcer_for(state, options.settings_from(conf), trust_state)
        )
        metrics = Metrics()
        if isinstance(state, ClusterState):
            metrics.registry.register(UnusableObjectMetrics(state.unusable))
        webhook = WebhookApp(enforcer, state, metrics, conf.max_body_bytes, also_ready)
        serving = await stack.enter_async_context(
            running(
                webhook,
                tls,
                conf.host,
                conf.port,
                conf.metrics_port,
                conf.cert_reload_interval,
                options.connection_limits_from(conf),
                conf.log_summary_interval,
            )
        )
        print(f"portieris-webhook serving {' and '.join(serving.urls)}", flush=True)
        await wait_for_signal()
        if conf.shutdown_delay > 0:
            serving.drain()
            LOG.info(
                "still answering for %gs before stopping, closing each connection after "
                "its next answer",
                conf.shutdown_delay,
            )
            await asyncio.sleep(conf.shutdown_delay)
    return 0


async def _state_sources(
    conf: cfg.ConfigOpts,
    stack: contextlib.AsyncExitStack,
    also_ready: dict[str, Callable[[], str | None]],
) -> tuple[StateView, Backend | None]:
    """The cluster state (from --manifests, else from the API server, which must have been
    read before the webhook is ready) and where the trust state is kept, if anywhere."""
    if conf.manifests:
        state = _offline_state(conf)
        return state, FileBackend(conf.trust_state_file) if conf.trust_state_file else None
    cluster = await stack.enter_async_context(
        cluster_state(conf.kubeconfig, owner_cache_max_entries=conf.owner_cache_max_entries)
    )
    also_ready["cluster state"] = cluster.not_ready
    if conf.trust_state_configmap:
        return cluster, _configmap_backend(cluster, conf.trust_state_configmap)
    return cluster, None


def _configmap_backend(cluster: ClusterState, value: str) -> ConfigMapBackend:
    namespace, name = parse_object_name(value, "--trust-state-configmap")
    return ConfigMapBackend(cluster.api, namespace, name)


async def _trust_state(conf: cfg.ConfigOpts) -> int:
    if conf.trust_state_file:
        backend: Backend = FileBackend(conf.trust_state_file)
        api = None
    elif conf.trust_state_configmap:
        namespace, name = parse_object_name(conf.trust_state_configmap, "--trust-state-configmap")
        api = connect(conf.kubeconfig)
        backend = ConfigMapBackend(api, namespace, name)
    else:
        raise PortierisError("give --trust-state-file PATH or --trust-state-configmap NS/NAME")
    try:
        if conf.action == "show":
            return await _show(conf, backend)
        return await _reset(conf, backend)
    finally:
        if api is not None:
            await api.close()


async def _show(conf: cfg.ConfigOpts, backend: Backend) -> int:
    document = persisted.decode((await backend.load()).text)
    server = normalise_server(conf.server) if conf.server else None
    keys = [
        key
        for key in sorted(document.records)
        if server in (None, key[0]) and conf.gun in (None, key[1])
    ]
    print(render(persisted.describe(document, keys)))
    return 0


async def _reset(conf: cfg.ConfigOpts, backend: Backend) -> int:
    if not (conf.server and conf.gun):
        raise PortierisError("reset needs --server and --gun (see `trust-state show`)")
    key = (normalise_server(conf.server), conf.gun)
    before: list[persisted.GunRecord | None] = []
    now = int(time.time())

    def forget(document: persisted.Document) -> persisted.Document:
        before.append(document.records.get(key))
        return persisted.reset(document, key, now)

    await state_store.update(backend, forget)
    had = before[-1] is not None and before[-1].root is not None
    what = "its trusted root and versions are forgotten" if had else "no root was stored"
    print(
        f"reset {key[1]} on {key[0]} in {backend.where}: {what}; the next verification "
        "trusts the root it is served on first use"
    )
    return 0


Handler = Callable[[cfg.ConfigOpts], Coroutine[Any, Any, int]]
OFFLINE = (options.MANIFEST_OPTS, options.VERIFY_OPTS, options.TRUST_STATE_OPTS)
COMMANDS: dict[str, tuple[Handler, tuple[Sequence[cfg.Opt], ...]]] = {
    "serve": (_serve, (*OFFLINE, options.SERVE_OPTS)),
    "admit": (_admit, (*OFFLINE, options.ADMIT_OPTS)),
    "verify": (_verify, (*OFFLINE, options.IMAGE_OPTS)),
    "trust-state": (_trust_state, (options.TRUST_STATE_COMMAND_OPTS, options.LOG_OPTS)),
}


def loop_factory(conf: cfg.ConfigOpts) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a command runs on: uvloop's for `serve --event-loop uvloop` (the
    default), the standard library's for everything else."""
    if "event_loop" not in conf or conf.event_loop != "uvloop":
        return None
    import uvloop

    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] == "--version":
        print(__version__)
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"portieris-webhook: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    handler, groups = COMMANDS[command]
    try:
        try:
            conf = _parse(command, rest, *groups)
        except SystemExit as exc:
            # oslo.config's argument parser exits 1 on a bad option value, which `verify`
            # uses for "denied": unusable input is 2, whoever refuses it (--help exits 0).
            return 0 if exc.code in (0, None) else 2
        with asyncio.Runner(loop_factory=loop_factory(conf)) as runner:
            result = runner.run(handler(conf))
    except (cfg.Error, PortierisError) as exc:
        print(f"portieris-webhook {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
