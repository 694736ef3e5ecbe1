"""The chart's optional NetworkPolicy and Prometheus scraping, rendered with the Helm SDK: what each
lets through or scrapes. The NetworkPolicy is validated against the Kubernetes schemas (with the
other features in test_chart.py); the ServiceMonitor is a custom resource kubernetes-validate has
no schema for, so its shape is checked here. Every check has a twin that must fail."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import pytest

from tests.deploy.deploy_helpers import (
    CHART,
    FEATURE_VALUES,
    NAMESPACE,
    by_kind,
    container,
    lint_problems,
    manifests,
    one,
    render,
)

pytestmark = pytest.mark.integration

DURATION_RE = re.compile(r"([0-9]+(ms|s|m|h))+")
# The fields of monitoring.coreos.com/v1 ServiceMonitor the chart may render (prometheus-operator's CRD).
SPEC_FIELDS = {"endpoints", "selector", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels"}
ENDPOINT_FIELDS = {"port", "path", "scheme", "interval", "scrapeTimeout", "relabelings", "metricRelabelings"}


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(amount) * units[unit] for amount, unit in re.findall(r"([0-9]+)(ms|s|m|h)", duration))


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) applied to labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def service_monitor_problems(documents: list[dict[str, Any]]) -> list[str]:
    """What a Prometheus Operator would not scrape as intended: wrong shape, wrong target."""
    monitor = one(documents, "ServiceMonitor")
    service = one(documents, "Service")
    problems = []
    if monitor["apiVersion"] != "monitoring.coreos.com/v1":
        problems.append(f"apiVersion {monitor['apiVersion']}")
    spec = monitor["spec"]
    if set(spec) - SPEC_FIELDS:
        problems.append(f"unknown spec fields {sorted(set(spec) - SPEC_FIELDS)}")
    if not matches(spec["selector"], service["metadata"]["labels"]):
        problems.append("the selector does not select the chart's Service")
    if spec.get("namespaceSelector", {}).get("matchNames") != [
        service["metadata"].get("namespace", NAMESPACE)
    ]:
        problems.append(f"namespaceSelector {spec.get('namespaceSelector')} is not the Service's namespace")
    ports = {port["name"] for port in service["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        problems += endpoint_problems(endpoint, ports)
    return problems


def endpoint_problems(endpoint: dict[str, Any], ports: set[str]) -> list[str]:
    problems = []
    if set(endpoint) - ENDPOINT_FIELDS:
        problems.append(f"unknown endpoint fields {sorted(set(endpoint) - ENDPOINT_FIELDS)}")
    if endpoint.get("port") not in ports:
        problems.append(
            f"endpoint port {endpoint.get('port')!r} is not a port of the Service ({sorted(ports)})"
        )
    if endpoint.get("path") != "/metrics":
        problems.append(f"endpoint path {endpoint.get('path')!r}")
    interval, timeout = str(endpoint.get("interval", "")), str(endpoint.get("scrapeTimeout", ""))
    if not (DURATION_RE.fullmatch(interval) and DURATION_RE.fullmatch(timeout)):
        problems.append(f"interval {interval!r} or scrapeTimeout {timeout!r} is not a duration")
    elif seconds(timeout) > seconds(interval):
        problems.append(f"scrapeTimeout {timeout} is longer than interval {interval}")
    return problems


# --------------------------------------------------------------------------- Prometheus


def test_no_scraping_objects_or_annotations_by_default() -> None:
    documents = manifests(CHART, {})
    assert "ServiceMonitor" not in by_kind(documents)
    annotations = one(documents, "Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    assert not [key for key in annotations if key.startswith("prometheus.io/")]


def test_service_monitor_scrapes_metrics_on_the_http_port() -> None:
    documents = manifests(CHART, FEATURE_VALUES["metrics-service-monitor"])
    assert service_monitor_problems(documents) == []
    monitor = one(documents, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "15s")
    assert container(documents)["ports"][0]["name"] == "http", "the Service's http port is the container's"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("port", "endpoint port 'metrics' is not a port of the Service"),
        ("selector", "does not select the chart's Service"),
        ("field", "unknown endpoint fields ['targetPortt']"),
        ("timeout", "scrapeTimeout 1m is longer than interval 15s"),
    ],
)
def test_service_monitor_check_catches(breakage: str, message: str) -> None:
    documents = manifests(CHART, FEATURE_VALUES["metrics-service-monitor"])
    monitor = one(documents, "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    if breakage == "port":
        endpoint["port"] = "metrics"
    elif breakage == "selector":
        monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "other"
    elif breakage == "field":
        endpoint["targetPortt"] = 8000
    elif breakage == "timeout":
        endpoint["scrapeTimeout"] = "1m"
    problems = service_monitor_problems(documents)
    assert any(message in problem for problem in problems), problems or "no problem found"


def test_service_monitor_may_live_in_the_monitoring_namespace() -> None:
    values = {"metrics": {"serviceMonitor": {"enabled": True, "namespace": "monitoring"}}}
    documents = manifests(CHART, values)
    monitor = one(documents, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}, "it still selects our Service"


def test_pod_annotations_tell_prometheus_port_and_path() -> None:
    documents = manifests(CHART, FEATURE_VALUES["metrics-pod-annotations"])
    annotations = one(documents, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "team": "counters",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(container(documents)["ports"][0]["containerPort"]),
        "prometheus.io/path": "/metrics",
    }
    custom = {"metrics": {"podAnnotations": True}, "podAnnotations": {"prometheus.io/path": "/custom"}}
    annotations = one(manifests(CHART, custom), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/custom", "explicit podAnnotations win"


# --------------------------------------------------------------------------- NetworkPolicy


def policy_of(values: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    documents = manifests(CHART, values)
    return one(documents, "NetworkPolicy")["spec"], documents


def rule_ports(rule: dict[str, Any]) -> set[tuple[Any, str]]:
    return {(port["port"], port.get("protocol", "TCP")) for port in rule.get("ports", [])}


def test_no_network_policy_by_default() -> None:
    assert "NetworkPolicy" not in by_kind(manifests(CHART, {}))


def test_network_policy_selects_the_service_pods_and_not_the_helm_test_pod() -> None:
    spec, documents = policy_of({"networkPolicy": {"enabled": True}, "tests": {"enabled": True}})
    pod_labels = one(documents, "Deployment")["spec"]["template"]["metadata"]["labels"]
    test_pod = next(doc for doc in documents if doc["kind"] == "Pod")
    assert matches(spec["podSelector"], pod_labels)
    assert not matches(spec["podSelector"], test_pod["metadata"]["labels"]), (
        "helm test must reach the Service"
    )
    assert spec["policyTypes"] == ["Ingress", "Egress"]


def test_network_policy_for_the_configmap_store() -> None:
    spec, _ = policy_of(FEATURE_VALUES["network-policy"])
    (ingress,) = spec["ingress"]
    assert rule_ports(ingress) == {("http", "TCP")}
    assert "from" not in ingress, "no peers listed: any source, on the http port only"
    dns, api = spec["egress"]
    assert rule_ports(dns) == {(53, "UDP"), (53, "TCP")}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert rule_ports(api) == {(443, "TCP"), (6443, "TCP")}
    assert "to" not in api


def test_network_policy_with_peers_and_api_addresses() -> None:
    spec, _ = policy_of(FEATURE_VALUES["network-policy-peers-and-api-cidrs"])
    (ingress,) = spec["ingress"]
    assert (
        ingress["from"][:2]
        == FEATURE_VALUES["network-policy-peers-and-api-cidrs"]["networkPolicy"]["ingress"]["from"]
    )
    assert ingress["from"][2] == {
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/instance": "counter", "app.kubernetes.io/component": "test"}
        }
    }
    api = spec["egress"][1]
    assert api["to"] == [{"ipBlock": {"cidr": "172.20.0.1/32"}}, {"ipBlock": {"cidr": "10.0.12.0/24"}}]
    assert rule_ports(api) == {(443, "TCP")}


def test_network_policy_for_the_redis_store_opens_redis_not_the_api() -> None:
    spec, _ = policy_of(FEATURE_VALUES["network-policy-redis"])
    dns, redis, extra = spec["egress"]
    assert rule_ports(dns) == {(53, "UDP"), (53, "TCP")}
    assert rule_ports(redis) == {(6380, "TCP")}
    assert redis["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}}]
    assert extra["to"] == [{"ipBlock": {"cidr": "169.254.20.10/32"}}]
    assert not any((443, "TCP") in rule_ports(rule) for rule in spec["egress"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"networkPolicy": {"enabled": True, "ingress": {"from": "everyone"}}}, "networkPolicy"),
        ({"networkPolicy": {"egress": {"kubernetesApi": {"cidrs": ["10.0.0.1"]}}}}, "cidrs"),
        ({"networkPolicy": {"egress": {"dns": {"to": []}}}}, "dns"),
        ({"networkPolicy": {"egress": {"redis": {"port": 70000}}}}, "port"),
        ({"networkPolicy": {"enabledd": True}}, "enabledd"),
        ({"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}, "interval"),
        ({"metrics": {"podAnnotations": "yes"}}, "podAnnotations"),
        ({"metrics": {"path": "metrics"}}, "path"),
    ],
)
def test_schema_refuses_wrong_network_policy_and_metrics_values(values: dict[str, Any], message: str) -> None:
    problems = lint_problems(CHART, values)
    assert any(message in problem for problem in problems), "\n".join(problems) or "lint found nothing"
    with pytest.raises(helm.HelmError, match=message):
        render(CHART, values)
