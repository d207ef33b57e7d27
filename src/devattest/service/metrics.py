"""Prometheus metrics, one registry per application (no module-level collectors).

With several uvicorn workers, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``devattest serve``
and ``/metrics`` aggregates every worker's samples.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector


class Metrics:
    """The service's collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("devattest_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "devattest_http_request_seconds", "HTTP request latency", ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry)
        self.appraisals = Counter("devattest_appraisals_total", "Evidence appraisals",
                                  ["status", "outcome"], registry=self.registry)
        self.appraisal_seconds = Histogram(
            "devattest_appraisal_seconds", "Appraisal and signing time",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=self.registry)
        self.challenges = Counter("devattest_challenges_total", "Challenges issued",
                                  registry=self.registry)
        self.webhooks = Counter("devattest_webhook_deliveries_total",
                                "Webhook delivery attempts", ["result"],
                                registry=self.registry)
        # MQTT bridge (issue 13): refused messages by reason, and workers restarted.
        self.mqtt_dead_letters = Counter(
            "devattest_mqtt_dead_letters_total",
            "MQTT messages refused, acknowledged and dead-lettered", ["reason"],
            registry=self.registry)
        self.mqtt_worker_restarts = Counter(
            "devattest_mqtt_worker_restarts_total",
            "MQTT bridge worker threads found dead and restarted", registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
