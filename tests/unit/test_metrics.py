"""Deny categories are counted under the reason labels dashboards and alerts rely on."""

from __future__ import annotations

import pytest

from portieris_webhook.errors import DenyKind
from portieris_webhook.serving.metrics import Metrics

LABELS = {
    DenyKind.UNSUPPORTED_OBJECT: "unsupported-object",
    DenyKind.INVALID_IMAGE: "invalid-image",
    DenyKind.NO_POLICY: "no-policy",
    DenyKind.VERIFIER_MISSING: "verifier-missing",
    DenyKind.VERIFICATION: "verification",
    DenyKind.DIGEST_DISAGREEMENT: "digest-disagreement",
    DenyKind.DIGEST_MISMATCH: "digest-mismatch",
    DenyKind.TIMEOUT: "timeout",
    DenyKind.INTERNAL_ERROR: "internal-error",
    DenyKind.OTHER: "other",
}


def deny_reason_samples(metrics: Metrics) -> dict[str, float]:
    prefix = 'portieris_admission_deny_reasons_total{reason="'
    return {
        line[len(prefix) :].partition('"')[0]: float(line.rpartition(" ")[2])
        for line in metrics.exposition().decode().splitlines()
        if line.startswith(prefix)
    }


def test_every_deny_kind_has_a_label():
    assert set(LABELS) == set(DenyKind)


@pytest.mark.parametrize(("kind", "label"), LABELS.items(), ids=LABELS.values())
def test_a_deny_is_counted_under_the_label_of_its_kind(kind, label):
    metrics = Metrics()
    metrics.record(False, 0.01, (kind, kind))
    assert deny_reason_samples(metrics) == {label: 2.0}


def test_a_deny_of_no_kind_is_counted_as_other():
    metrics = Metrics()
    metrics.record(False, 0.01)
    assert deny_reason_samples(metrics) == {"other": 1.0}
