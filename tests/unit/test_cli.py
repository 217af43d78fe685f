"""The command line: admit, verify, serve, --help; exit codes and messages for people."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portieris_webhook import cli
from portieris_webhook.config import options
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.errors import InvalidAdmissionReview

from tests.fixtures.pki import TestCA
from tests.fixtures.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CLI = [sys.executable, "-m", "portieris_webhook.cli"]


def run(*args, stdin=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, input=stdin, timeout=60)


@pytest.mark.parametrize("command", ["serve", "admit", "verify"])
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.returncode == 0 and f"portieris-webhook {command}" in result.stdout
    assert "--manifests" in result.stdout and "--ca-file" in result.stdout


COMMANDS = ["serve", "admit", "verify", "trust-state"]


def option_help(command: str) -> dict[str, str]:
    """Each option of `command --help` and its (unwrapped) help text."""
    text = run(command, "--help").stdout.split("options:", 1)[1]
    found: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        match = re.match(r"^  (--[\w-]+)(?: \S+)?\s*(.*)$", line)
        if match:
            name = match.group(1)
            found[name] = match.group(2)
        elif name:
            found[name] += " " + line.strip()
    return found


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_spelled_with_dashes_and_shows_its_default(command):
    shown = option_help(command)
    assert not [name for name in shown if "_" in name]
    for opt in {opt.dest: opt for opts in cli.COMMANDS[command][1] for opt in opts}.values():
        if opt.default not in (None, [], "") and not opt.positional:
            assert f"Default: {opt.default}." in " ".join(shown[f"--{opt.name}"].split())


@pytest.mark.parametrize("command", ["admit", "verify"])
def test_one_shot_commands_say_which_options_only_a_running_serve_uses(command):
    shown = option_help(command)
    for dest in options.LONG_RUNNING:
        assert (
            "No effect on this command, which decides once" in shown[f"--{dest.replace('_', '-')}"]
        )
    assert "No effect" not in shown["--ca-file"]
    assert "No effect" not in option_help("serve")["--decision-cache-max-entries"]


def test_trust_state_help_names_no_option_it_lacks():
    shown = option_help("trust-state")
    assert "--manifests" not in " ".join(shown.values())


def test_oslo_shell_completion_is_not_offered():
    result = run("verify", "--shell_completion", "bash", "reg.io/app:1")
    assert result.returncode == 2 and "unrecognized option --shell_completion" in result.stderr


def test_no_command_prints_usage_and_fails():
    result = run()
    assert result.returncode == 2 and "commands:" in result.stdout


def test_unknown_command_is_named():
    result = run("frobnicate")
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr


@pytest.mark.parametrize(
    ("review", "allowed"),
    [("pod-allowed.json", True), ("pod-denied.json", False), ("pod-team-a.json", True)],
)
def test_admit_prints_the_response_for_the_examples(review, allowed):
    result = run(
        "admit", "--manifests", str(EXAMPLES / "manifests"), str(EXAMPLES / "reviews" / review)
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)["response"]
    assert response["allowed"] is allowed
    assert (
        response["uid"] == json.loads((EXAMPLES / "reviews" / review).read_text())["request"]["uid"]
    )
    assert "result=allow" in result.stderr if allowed else "result=deny" in result.stderr


def test_admit_reads_standard_input():
    text = (EXAMPLES / "reviews" / "pod-denied.json").read_text()
    result = run("admit", "--manifests", str(EXAMPLES / "manifests"), "-", stdin=text)
    assert result.returncode == 0 and json.loads(result.stdout)["response"]["allowed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["admit", "--manifests", str(EXAMPLES / "manifests"), "/nonexistent.json"], "cannot read"),
        (
            ["admit", "--manifests", str(EXAMPLES / "manifests"), str(ROOT / "pyproject.toml")],
            "is not JSON",
        ),
        (["admit", str(EXAMPLES / "reviews" / "pod-denied.json")], "--manifests DIR is required"),
        (
            ["admit", "--manifests", "/nonexistent", str(EXAMPLES / "reviews" / "pod-denied.json")],
            "no such file or directory",
        ),
        (["admit"], "review"),
        (
            [
                "verify",
                "nginx",
                "--manifests",
                str(EXAMPLES / "manifests"),
                "--verify-timeout",
                "x",
            ],
            "verify_timeout",
        ),
    ],
)
def test_unusable_input_exits_non_zero_with_a_message(args, message):
    result = run(*args)
    assert result.returncode != 0 and message in result.stderr


def _unusable_review(tmp_path, kind):
    path = tmp_path / "review.json"
    if kind == "missing":
        return tmp_path / "absent.json"
    if kind == "directory":
        return tmp_path
    if kind == "deep-nesting":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "deep-nesting-in-review":
        text = (EXAMPLES / "reviews" / "pod-denied.json").read_text()
        document = json.loads(text)
        document["request"]["object"]["metadata"]["labels"] = {"x": "PLACEHOLDER"}
        path.write_text(json.dumps(document).replace('"PLACEHOLDER"', "[" * 50_000 + "]" * 50_000))
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "bad-utf8":
        path.write_bytes(b'{"apiVersion": "admission.k8s.io/v1", "kind": "\xff\xfe"}')
    elif kind == "utf16":
        path.write_bytes((EXAMPLES / "reviews" / "pod-denied.json").read_text().encode("utf-16"))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "nul-bytes":
        path.write_bytes(b"\0" * 100)
    elif kind == "huge-number":
        path.write_text("1" * 10_000)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "cannot read"),
        ("directory", "cannot read"),
        ("deep-nesting", "nested deeper than 100 levels"),
        ("deep-nesting-in-review", "nested deeper than 100 levels"),
        ("binary", "is not"),
        ("bad-utf8", "is not"),
        ("utf16", "is not"),
        ("empty", "is not JSON"),
        ("nul-bytes", "is not JSON"),
        ("huge-number", "is not JSON"),
    ],
)
def test_admit_exits_2_with_a_message_on_an_unusable_file(tmp_path, kind, message):
    path = _unusable_review(tmp_path, kind)
    result = run("admit", "--manifests", str(EXAMPLES / "manifests"), str(path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("portieris-webhook admit: error: ")
    assert message in result.stderr


@pytest.mark.parametrize("operation", ["create", "PATCH"])
def test_admit_exits_2_on_an_unknown_operation(tmp_path, operation):
    document = json.loads((EXAMPLES / "reviews" / "pod-denied.json").read_text())
    document["request"]["operation"] = operation
    path = tmp_path / "r.json"
    path.write_text(json.dumps(document))
    result = run("admit", "--manifests", str(EXAMPLES / "manifests"), str(path))
    assert result.returncode == 2 and "request.operation" in result.stderr
    assert result.stdout == ""


def test_admit_exits_2_when_the_object_is_found_malformed_while_deciding(monkeypatch, capsys):
    async def malformed(_self, _request):
        raise InvalidAdmissionReview("spec.imagePullSecrets must be a list")

    monkeypatch.setattr(Enforcer, "decide", malformed)
    review = str(EXAMPLES / "reviews" / "pod-denied.json")
    assert cli.main(["admit", "--manifests", str(EXAMPLES / "manifests"), review]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "admit: error: spec.imagePullSecrets must be a list" in err


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "x\n2026-01-01 00:00:00,000 INFO portieris_webhook.decision: forged"),
        ("name", "x\r\n\u2028\u0085\x1b[2Kforged"),
        ("image", "quay.io/x:1\n2026-01-01 00:00:00,000 INFO forged"),
        ("namespace", "ns\nINFO forged"),
    ],
)
def test_request_data_cannot_forge_a_log_line(tmp_path, field, value):
    document = json.loads((EXAMPLES / "reviews" / "pod-denied.json").read_text())
    request = document["request"]
    if field == "image":
        request["object"]["spec"]["containers"][0]["image"] = value
    else:
        request[field] = value
        request["object"]["metadata"][field] = value
    path = tmp_path / "r.json"
    path.write_text(json.dumps(document))
    result = run("admit", "--manifests", str(EXAMPLES / "manifests"), str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), result.stderr
    logged = [line for line in lines if "forged" in line]
    assert len(logged) == 1
    assert value.encode("unicode_escape").decode() in logged[0]


def test_admit_rejects_a_json_that_is_not_a_review(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"kind": "Pod"}')
    result = run("admit", "--manifests", str(EXAMPLES / "manifests"), str(path))
    assert result.returncode == 2 and "expected apiVersion admission.k8s.io/v1" in result.stderr


def test_verify_explains_allow_and_deny():
    allowed = run(
        "verify",
        "registry.example.com/team-a/api:1",
        "--namespace",
        "team-a",
        "--manifests",
        str(EXAMPLES / "manifests"),
    )
    assert allowed.returncode == 0 and allowed.stdout.startswith("ALLOW")
    assert "ImagePolicy team-a/team-a" in allowed.stdout
    denied = run("verify", "quay.io/x/y:1", "--manifests", str(EXAMPLES / "manifests"))
    assert denied.returncode == 1 and denied.stdout.startswith("DENY")
    assert "reason: simple: simple signing requirement 1 is 'reject'" in denied.stdout


def _curl(ca_dir):
    """curl trusting the test CA written in `ca_dir`, sending JSON."""
    return [
        "curl",
        "-sS",
        "--cacert",
        str(ca_dir / "ca.crt"),
        "-H",
        "Content-Type: application/json",
    ]


def test_serve_runs_on_the_examples_and_stops_on_sigterm(tmp_path):
    ca = TestCA.create()
    ca.write(tmp_path)
    cert, key = ca.write_leaf(tmp_path, "serving")
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            *CLI,
            "serve",
            "--manifests",
            str(EXAMPLES / "manifests"),
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        curl = _curl(tmp_path)
        deadline = time.monotonic() + 30
        while True:
            probe = subprocess.run(
                [*curl, f"https://127.0.0.1:{port}/health/readiness"],
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert json.loads(probe.stdout) == {"status": "ready"}
        answer = subprocess.run(
            [
                *curl,
                "--data-binary",
                f"@{EXAMPLES / 'reviews' / 'pod-denied.json'}",
                f"https://127.0.0.1:{port}/admit",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(answer.stdout)["response"]["allowed"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopping: signal received" in err


def test_serve_keeps_answering_for_the_shutdown_delay_while_saying_it_is_not_ready(tmp_path):
    """Pods are removed from a Service's endpoints while they stop: a webhook that stopped
    listening at SIGTERM would refuse the admissions still routed to it."""
    ca = TestCA.create()
    ca.write(tmp_path)
    cert, key = ca.write_leaf(tmp_path, "serving")
    port = free_port()
    proc = subprocess.Popen(
        [
            *CLI, "serve", "--manifests", str(EXAMPLES / "manifests"),
            "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--host", "127.0.0.1",
            "--port", str(port), "--metrics-port", "0", "--shutdown-delay", "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    curl = _curl(tmp_path)
    readiness = [*curl, f"https://127.0.0.1:{port}/health/readiness"]
    admit = [
        *curl, "--data-binary", f"@{EXAMPLES / 'reviews' / 'pod-denied.json'}",
        f"https://127.0.0.1:{port}/admit",
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(readiness, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "serve never became ready"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        stopping = subprocess.run(readiness, capture_output=True, text=True)
        answer = subprocess.run(admit, capture_output=True, text=True)
        still_running = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert json.loads(stopping.stdout) == {"status": "shutting down"}
    assert json.loads(answer.stdout)["response"]["allowed"] is False
    assert still_running
    assert proc.returncode == 0, err


def test_serve_with_unloadable_certificate_fails_clearly(tmp_path):
    (tmp_path / "c.pem").write_text("not a certificate")
    result = run(
        "serve",
        "--manifests",
        str(EXAMPLES / "manifests"),
        "--tls-cert-file",
        str(tmp_path / "c.pem"),
        "--tls-key-file",
        str(tmp_path / "c.pem"),
    )
    assert result.returncode == 2 and "cannot load TLS certificate" in result.stderr


@pytest.mark.parametrize(
    ("args", "entries"), [((), 4096), (("--decision-cache-max-entries", "0"), 0)]
)
def test_the_decision_cache_size_is_an_option(args, entries):
    conf = cli._parse("verify", ["reg.io/app:1", *args], options.VERIFY_OPTS, options.IMAGE_OPTS)
    assert options.settings_from(conf).decision_cache_max_entries == entries


def test_a_negative_decision_cache_size_is_refused():
    result = run("verify", "reg.io/app:1", "--decision-cache-max-entries", "-1")
    assert result.returncode == 2
    assert "decision_cache_max_entries: Invalid Integer(min=0) value: -1" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("verify", "reg.io/app:1", "--verify-timeout", "abc"),
        ("verify", "reg.io/app:1", "--no-such-option"),
        ("admit", "--log-level", "LOUD", "-"),
    ],
)
def test_an_unusable_option_exits_2_not_1_which_verify_uses_for_denied(args):
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr


DEEP_TRUST_STATE = '{"format": 1, "repositories": [' + "[" * 3000 + "]" * 3000 + "]}"


@pytest.mark.parametrize(
    ("unreadable", "why"),
    [('{"format": 99}', "format 99"), (DEEP_TRUST_STATE, "nested deeper than 100 levels")],
    ids=["other-format", "deep-nesting"],
)
def test_serve_is_not_ready_until_its_trust_state_is_read(tmp_path, unreadable, why):
    """A cold process must hold what earlier ones trusted before it answers: a trust state it
    cannot read keeps it unready (and is never overwritten) until it can; the task that
    reads it never stops over what it reads."""
    ca = TestCA.create()
    ca.write(tmp_path)
    cert, key = ca.write_leaf(tmp_path, "serving")
    state_file = tmp_path / "trust-state.json"
    state_file.write_text(unreadable)
    port = free_port()
    proc = subprocess.Popen(
        [
            *CLI, "serve", "--manifests", str(EXAMPLES / "manifests"),
            "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--host", "127.0.0.1",
            "--port", str(port), "--metrics-port", "0", "--trust-state-file", str(state_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    readiness = [
        "curl", "-sS", "--cacert", str(tmp_path / "ca.crt"),
        f"https://127.0.0.1:{port}/health/readiness",
    ]  # fmt: skip

    def probe(wanted: str) -> str:
        deadline = time.monotonic() + 30
        while True:
            answer = subprocess.run(readiness, capture_output=True, text=True).stdout
            if wanted in answer or time.monotonic() > deadline:
                return answer
            time.sleep(0.2)

    try:
        unready = probe("not loaded")
        assert state_file.read_text() == unreadable
        state_file.write_text("")
        ready = probe('"ready"')
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert json.loads(unready) == {"status": "trust state not loaded yet"}
    assert json.loads(ready) == {"status": "ready"}
    assert why in err and "Traceback" not in err


@pytest.mark.parametrize(
    "command", [["admit", str(EXAMPLES / "reviews" / "pod-allowed.json")], ["trust-state", "show"]]
)
def test_a_deeply_nested_trust_state_file_exits_2_naming_the_limit(tmp_path, command):
    state_file = tmp_path / "trust-state.json"
    state_file.write_text(DEEP_TRUST_STATE)
    manifests = ["--manifests", str(EXAMPLES / "manifests")] if command[0] == "admit" else []
    result = run(*command, *manifests, "--trust-state-file", str(state_file))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "trust state is nested deeper than 100 levels" in result.stderr
