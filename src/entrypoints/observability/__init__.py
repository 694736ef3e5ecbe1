"""Metrics (Prometheus) and tracing (OpenTelemetry, optional) of the service.

metrics: the metric families and how /metrics renders them (one process or several);
http_metrics: the app-level middleware that counts and times every routed request;
repository: decorators of the CounterRepository port that time, count and trace store calls;
store_stats: the stores' own counters (ConfigMap API writes, Redis pipelines) as metrics;
multiprocess: the metrics directory shared by the workers of `counter serve --workers N`;
tracing: OpenTelemetry set up from the standard OTEL_* variables, off unless they ask for it.
"""
