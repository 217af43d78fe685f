"""The command line: admit, verify, serve, --help; exit codes and messages for people."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
        curl = [
            "curl",
            "-sS",
            "--cacert",
            str(tmp_path / "ca.crt"),
            "-H",
            "Content-Type: application/json",
        ]
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
