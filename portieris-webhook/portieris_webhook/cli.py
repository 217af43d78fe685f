"""portieris-webhook serve | admit | verify."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from oslo_config import cfg

from portieris_webhook import __version__, logs, options
from portieris_webhook.admission.review import load_json, parse_review
from portieris_webhook.admission.workloads import PodImage, PodSpec
from portieris_webhook.errors import PortierisError
from portieris_webhook.kube import cluster_state
from portieris_webhook.manifests import load_manifests
from portieris_webhook.metrics import Metrics
from portieris_webhook.server import WebhookApp, running
from portieris_webhook.state import StateView
from portieris_webhook.tls import ReloadingTLS
from portieris_webhook.wiring import enforcer_for, wait_for_signal

USAGE = """usage: portieris-webhook COMMAND [options]

commands:
  serve    run the HTTPS admission webhook (cluster mode, or offline with --manifests)
  admit    decide one AdmissionReview offline and print the response
  verify   decide one image offline and explain the decision

Run `portieris-webhook COMMAND --help` for the options of a command.
"""


def _parse(command: str, argv: Sequence[str], *groups: Sequence[cfg.Opt]) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for opts in groups:
        conf.register_cli_opts(opts)
    conf(
        list(argv),
        project="portieris-webhook",
        prog=f"portieris-webhook {command}",
        version=__version__,
        default_config_files=[],
    )
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


async def _admit(conf: cfg.ConfigOpts) -> int:
    state = _offline_state(conf)
    source = conf.review
    try:
        data = await asyncio.to_thread(_read_bytes, source)
    except OSError as exc:
        raise PortierisError(f"cannot read {source}: {exc}") from exc
    request = parse_review(load_json(data, source))
    async with enforcer_for(state, options.settings_from(conf)) as enforcer:
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
    async with enforcer_for(state, options.settings_from(conf)) as enforcer:
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
        if conf.manifests:
            state: StateView = _offline_state(conf)
        else:
            state = await stack.enter_async_context(cluster_state(conf.kubeconfig))
        enforcer = await stack.enter_async_context(enforcer_for(state, options.settings_from(conf)))
        webhook = WebhookApp(enforcer, state, Metrics(), conf.max_body_bytes)
        urls = await stack.enter_async_context(
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
        print(f"portieris-webhook serving {' and '.join(urls)}", flush=True)
        await wait_for_signal()
    return 0


Handler = Callable[[cfg.ConfigOpts], Coroutine[Any, Any, int]]
COMMANDS: dict[str, tuple[Handler, tuple[Sequence[cfg.Opt], ...]]] = {
    "serve": (_serve, (options.MANIFEST_OPTS, options.VERIFY_OPTS, options.SERVE_OPTS)),
    "admit": (_admit, (options.MANIFEST_OPTS, options.VERIFY_OPTS, options.ADMIT_OPTS)),
    "verify": (_verify, (options.MANIFEST_OPTS, options.VERIFY_OPTS, options.IMAGE_OPTS)),
}


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
        conf = _parse(command, rest, *groups)
        result = asyncio.run(handler(conf))
    except (cfg.Error, PortierisError) as exc:
        print(f"portieris-webhook {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
