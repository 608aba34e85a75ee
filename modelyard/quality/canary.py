"""A canary against the stable version over one window: what Traefik's per-service metrics say of
its errors and latency, how often it predicts what the stable version does on the same rows, and
its score on labelled rows. Pure judgement: the analyze step fetches the figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modelyard.contract.config import CanaryThresholds

REQUESTS = "traefik_service_requests"  # a counter: the family name drops _total
DURATION = "traefik_service_request_duration_seconds"
LATENCY_SLACK_SECONDS = 0.05
RELATIVE_AGREEMENT = 0.1  # regression: predictions within 10% of each other agree


@dataclass
class ServiceCounts:
    """Cumulative counters of one Traefik service at one scrape."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx answers
    buckets: dict[float, float] = field(default_factory=dict)  # le -> requests at most that long

    def minus(self, earlier: ServiceCounts) -> ServiceCounts:
        return ServiceCounts(
            self.requests - earlier.requests,
            self.errors - earlier.errors,
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
        )

    def p95(self) -> float | None:
        """The 95th percentile latency, as Prometheus' histogram_quantile reads buckets (seconds)."""
        if self.requests <= 0 or not self.buckets:
            return None
        rank, lower, below = 0.95 * self.requests, 0.0, 0.0
        for le, count in sorted(self.buckets.items()):
            if count >= rank:
                if math.isinf(le):
                    return lower
                return lower + (le - lower) * (rank - below) / max(count - below, 1e-9)
            lower, below = le, count
        return lower


def traefik_counts(text: str, service_part: str) -> ServiceCounts:
    """Summed over codes and methods: the counters of the Traefik services whose name contains
    `service_part` (a Kubernetes Service is `<namespace>-<name>-<port>@kubernetescrd` there)."""
    counts = ServiceCounts()
    for family in text_string_to_metric_families(text):
        if family.name not in (REQUESTS, DURATION):
            continue
        for sample in family.samples:
            if service_part not in sample.labels.get("service", ""):
                continue
            if sample.name == f"{REQUESTS}_total":
                counts.requests += sample.value
                counts.errors += sample.value if sample.labels.get("code", "").startswith("5") else 0.0
            elif sample.name == f"{DURATION}_bucket":
                le = float(sample.labels["le"])
                counts.buckets[le] = counts.buckets.get(le, 0.0) + sample.value
    return counts


def agreement(stable: Sequence[Any], canary: Sequence[Any], numeric: bool) -> float:
    """The share of rows both versions predict alike (numbers: within RELATIVE_AGREEMENT)."""
    if not stable:
        return 1.0
    if numeric:
        alike = [
            abs(float(c) - float(s)) <= RELATIVE_AGREEMENT * abs(float(s)) + 1e-9
            for s, c in zip(stable, canary, strict=True)
        ]
    else:
        alike = [s == c for s, c in zip(stable, canary, strict=True)]
    return sum(alike) / len(alike)


def judge(
    limits: CanaryThresholds,
    canary: ServiceCounts,
    stable: ServiceCounts,
    agreed: float,
    metric_drop: float | None,
) -> tuple[list[str], list[str]]:
    """(reasons to abort, what was measured), in words."""
    failed: list[str] = []
    seen = [f"agreement {agreed:.0%} on the same rows (at least {limits.min_agreement:.0%})"]
    if agreed < limits.min_agreement:
        failed.append(
            f"the canary predicts as the stable version on only {agreed:.0%} of the rows (< {limits.min_agreement:.0%})"
        )
    if canary.requests >= limits.min_requests:
        rate = canary.errors / canary.requests
        seen.append(f"{canary.requests:.0f} canary requests, {rate:.1%} errors")
        if rate > limits.max_error_rate:
            failed.append(
                f"the canary answered {rate:.1%} of its requests with an error (> {limits.max_error_rate:.1%})"
            )
        mine, theirs = canary.p95(), stable.p95()
        if mine is not None and theirs is not None:
            seen.append(f"p95 {mine * 1000:.0f} ms against {theirs * 1000:.0f} ms")
            if mine > theirs * limits.max_latency_ratio + LATENCY_SLACK_SECONDS:
                failed.append(
                    f"the canary's p95 latency {mine * 1000:.0f} ms is over {limits.max_latency_ratio:g}x the stable's {theirs * 1000:.0f} ms"
                )
    else:
        seen.append(
            f"{canary.requests:.0f} canary requests: too few for the error and latency checks (< {limits.min_requests})"
        )
    if metric_drop is not None:
        seen.append(f"labelled rows: the canary scores {metric_drop:+.3f} worse")
        if metric_drop > limits.max_metric_drop:
            failed.append(
                f"on labelled rows the canary scores {metric_drop:.3f} worse than the stable version (> {limits.max_metric_drop})"
            )
    return failed, seen
