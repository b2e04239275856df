"""Prometheus metrics of one app, in its own registry (several apps in one process, as in tests, never clash)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# From a cached single article (milliseconds) to a full batch of long texts (minutes on two cores).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "newsclf_http_requests", "HTTP requests by route template, method and status code",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "newsclf_http_request_duration_seconds", "Time from receiving a request to the end of its response",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.predictions = Counter(
            "newsclf_predictions", "Predicted labels by head (sector, region, topic)", ["head", "label"],
            registry=self.registry,
        )
        self.articles = Counter(
            "newsclf_articles_classified", "Articles classified, by endpoint", ["endpoint"], registry=self.registry,
        )
        self.warned = Counter(
            "newsclf_articles_with_warnings", "Articles whose result carries at least one warning",
            registry=self.registry,
        )
        self.ready = Gauge("newsclf_model_ready", "1 once the model is loaded and serving", registry=self.registry)
        self.model_info = Gauge(
            "newsclf_model_info", "The model being served (value 1)", ["name", "version", "run_id"],
            registry=self.registry,
        )

        self.overloaded = Counter(
            "newsclf_requests_overloaded", "Requests refused with 503 because NEWSCLF_MAX_IN_FLIGHT articles were "
            "in flight", registry=self.registry,
        )
        self.client_gone = Counter(
            "newsclf_requests_abandoned", "Requests dropped because their client disconnected before the answer",
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def observe_result(self, endpoint: str, result: dict) -> None:
        self.articles.labels(endpoint).inc()
        self.predictions.labels("sector", result["sector"]["label"]).inc()
        self.predictions.labels("region", result["region"]["label"]).inc()
        for topic in result["topics"]:
            self.predictions.labels("topic", topic["label"]).inc()
        if result["warnings"]:
            self.warned.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
