"""The canary judgement: Traefik's per-service counters read as Prometheus text, a window's
differences, the p95 from histogram buckets, agreement of predictions and the verdict."""

from __future__ import annotations

import pytest

from modelyard.contract.config import CanaryThresholds
from modelyard.quality.canary import ServiceCounts, agreement, judge, traefik_counts

CANARY = "modelyard-modelyard-serve-churn-canary-80@kubernetescrd"
STABLE = "modelyard-modelyard-serve-churn-stable-80@kubernetescrd"


def scrape(ok: int, failed: int, fast: int, service: str = CANARY) -> str:
    """Traefik's exposition of one service: `ok` 200s and `failed` 500s, `fast` of all under 0.1 s."""
    total = ok + failed
    labels = f'method="POST",protocol="http",service="{service}"'
    return f"""# HELP traefik_service_requests_total How many HTTP requests processed on a service, partitioned by status code, protocol, and method.
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{{code="200",{labels}}} {ok}
traefik_service_requests_total{{code="500",{labels}}} {failed}
traefik_service_requests_total{{code="200",method="POST",protocol="http",service="other-80@kubernetescrd"}} 1000
# HELP traefik_service_request_duration_seconds How long it took to process the request on a service, partitioned by status code, protocol, and method.
# TYPE traefik_service_request_duration_seconds histogram
traefik_service_request_duration_seconds_bucket{{code="200",{labels},le="0.1"}} {fast}
traefik_service_request_duration_seconds_bucket{{code="200",{labels},le="0.3"}} {total}
traefik_service_request_duration_seconds_bucket{{code="200",{labels},le="1.2"}} {total}
traefik_service_request_duration_seconds_bucket{{code="200",{labels},le="+Inf"}} {total}
traefik_service_request_duration_seconds_sum{{code="200",{labels}}} 1.5
traefik_service_request_duration_seconds_count{{code="200",{labels}}} {total}
"""


def test_a_window_is_the_difference_of_two_scrapes_of_the_named_service_only() -> None:
    before = traefik_counts(scrape(ok=10, failed=0, fast=10), "serve-churn-canary-")
    after = traefik_counts(scrape(ok=110, failed=2, fast=102), "serve-churn-canary-")
    window = after.minus(before)
    assert (window.requests, window.errors) == (102, 2)
    assert window.buckets[0.1] == 92
    # 95% of 102 is the 96.9th request: 4.9 of the 10 between 0.1 s and 0.3 s, by interpolation.
    assert window.p95() == pytest.approx(0.1 + 0.2 * 4.9 / 10)
    assert traefik_counts(scrape(1, 0, 1), "serve-churn-stable-").requests == 0


def test_agreement_counts_equal_labels_or_numbers_within_ten_percent() -> None:
    assert agreement(["yes", "no", "no", "yes"], ["yes", "no", "yes", "no"], numeric=False) == 0.5
    assert agreement([100.0, 10.0], [109.0, 12.0], numeric=True) == 0.5
    assert agreement([], [], numeric=False) == 1.0


def test_the_verdict_names_each_failed_check_and_skips_traffic_checks_on_too_few_requests() -> None:
    limits = CanaryThresholds()
    fast = ServiceCounts(requests=100, errors=0, buckets={0.1: 100, float("inf"): 100})
    slow_and_failing = ServiceCounts(requests=100, errors=5, buckets={0.1: 0, 1.2: 100, float("inf"): 100})
    failed, _ = judge(limits, slow_and_failing, fast, agreed=0.5, metric_drop=0.2)
    assert len(failed) == 4, failed
    assert any("5.0% of its requests" in reason for reason in failed)
    assert any("p95 latency" in reason for reason in failed)
    assert any("only 50% of the rows" in reason for reason in failed)
    assert any("labelled rows" in reason for reason in failed)

    failed, seen = judge(limits, ServiceCounts(requests=3, errors=3), fast, agreed=1.0, metric_drop=None)
    assert failed == []
    assert any("too few" in line for line in seen)
    assert judge(limits, fast, fast, agreed=0.95, metric_drop=0.0)[0] == []
