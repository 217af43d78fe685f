"""Prometheus metrics, in a registry of our own (no process-global collectors).

The two decision counters keep Portieris' exact names (no `_total` suffix), so
existing dashboards and alerts keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from portieris_webhook.decide.cache import DecisionCacheStats
from portieris_webhook.decide.policy_writes import PolicyCheck
from portieris_webhook.errors import DenyKind

ALLOW_COUNT = "portieris_pod_admission_decision_allow_count"
DENY_COUNT = "portieris_pod_admission_decision_deny_count"


class _DecisionCounters(Collector):
    def __init__(self) -> None:
        self.allowed = 0
        self.denied = 0

    def collect(self) -> Iterator[Metric]:
        for name, value, text in (
            (ALLOW_COUNT, self.allowed, "Admission requests allowed"),
            (DENY_COUNT, self.denied, "Admission requests denied"),
        ):
            metric = Metric(name, text, "counter")
            metric.add_sample(name, {}, float(value))
            yield metric


class DecisionCacheMetrics(Collector):
    """Hits and misses of the decision cache (decide/cache.py), and how many entries it holds."""

    def __init__(self, stats: Callable[[], DecisionCacheStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        for name, value, text in (
            ("portieris_decision_cache_hits", stats.hits, "Image checks answered from cache"),
            (
                "portieris_decision_cache_misses",
                stats.misses,
                "Image checks the decision cache could not answer (verified again)",
            ),
        ):
            metric = Metric(name, text, "counter")
            metric.add_sample(f"{name}_total", {}, float(value))
            yield metric
        entries = Metric("portieris_decision_cache_entries", "Decisions cached", "gauge")
        entries.add_sample("portieris_decision_cache_entries", {}, float(stats.entries))
        yield entries


class UnusableObjectMetrics(Collector):
    """Objects the informers could not use (recorded as unusable: a policy as invalid, any
    other object forgotten), by kind; the log names each one."""

    NAME = "portieris_informer_unusable_objects"

    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.NAME, "Listed or watched objects that could not be used", "counter")
        for kind, count in sorted(self.counts.items()):
            metric.add_sample(f"{self.NAME}_total", {"kind": kind}, float(count))
        yield metric


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._decisions = _DecisionCounters()
        self.registry.register(self._decisions)
        self.latency = Histogram(
            "portieris_admission_duration_seconds",
            "Time to decide one admission request",
            ["result"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.deny_reasons = Counter(
            "portieris_admission_deny_reasons",
            "Denied images by reason category",
            ["reason"],
            registry=self.registry,
        )
        self._latency_by_result: dict[bool, Histogram] = {}
        """The latency histogram's child per result, looked up once (labels() takes a lock
        and builds a key on every call); made on first use, so /metrics shows the same."""
        self.bad_requests = Counter(
            "portieris_admission_bad_requests",
            "Requests rejected before a decision (malformed or too large)",
            registry=self.registry,
        )
        self.policy_validations = Counter(
            "portieris_policy_validations",
            "Writes to ImagePolicies and ClusterImagePolicies validated (/validate-policy), "
            "by result",
            ["result"],
            registry=self.registry,
        )
        for check in PolicyCheck:  # every result shown from the start, 0 until it happens
            self.policy_validations.labels(result=check.value)

    def record(self, allowed: bool, seconds: float, reason_kinds: Sequence[DenyKind] = ()) -> None:
        if allowed:
            self._decisions.allowed += 1
        else:
            self._decisions.denied += 1
            for kind in reason_kinds or (DenyKind.OTHER,):
                self.deny_reasons.labels(reason=kind.value).inc()
        latency = self._latency_by_result.get(allowed)
        if latency is None:
            latency = self.latency.labels(result="allow" if allowed else "deny")
            self._latency_by_result[allowed] = latency
        latency.observe(seconds)

    def record_policy_validation(self, check: PolicyCheck) -> None:
        self.policy_validations.labels(result=check.value).inc()

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
