"""The metrics an operator's dashboard is built on, from a real gateway: latency by route,
upstream and status class; upstream connect errors and retries; the key ring's size and reloads;
and docs/grafana-dashboard.json, whose every query names only metrics the gateway exports.

Both ways of serving are run (the listener's fast path and the ASGI app): each counts its own
connect errors and retries."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.helpers import ADMIN_TOKEN, REPO, free_port
from tests.upstreams import within

DASHBOARD = REPO / "docs" / "grafana-dashboard.json"


@pytest.fixture(scope="module")
def dead() -> str:
    """An address nothing listens on: every connection to it is refused."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module", params=["fast_path", "asgi"])
def gw(request, gateways, dead):
    """A gateway whose one read replica and whose functions upstream are down."""
    return gateways(GATEWAY_UPSTREAMS__REST_REPLICAS=json.dumps([dead]), GATEWAY_UPSTREAMS__FUNCTIONS=dead,
                    GATEWAY_UPSTREAMS__REPLICA_RETRY_SECONDS="0.05",
                    GATEWAY_SERVER__FAST_PATH="true" if request.param == "fast_path" else "false")


def scrape(gw) -> dict[str, float]:
    """Every sample of ``/metrics``: ``name{labels}`` -> value."""
    r = httpx.get(gw.admin_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert r.status_code == 200
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def exported(samples: dict[str, float]) -> set[str]:
    return {series.partition("{")[0] for series in samples}


def run_everything(gw, pub: str) -> None:
    """A request of every kind the dashboard shows."""
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        for _ in range(6):  # reads: some go to the dead replica first, then on to the primary
            assert c.get("/rest/v1/todos", headers={"apikey": pub}).status_code == 200
        assert c.post("/rest/v1/todos", headers={"apikey": pub}, json={"a": 1}).status_code in (200, 201)
        assert c.get("/functions/v1/hello", headers={"apikey": pub}).status_code == 502
        assert c.post("/functions/v1/hello", headers={"apikey": pub}, content=b"x" * 10).status_code == 502
        assert c.get("/rest/v1/todos", headers={"apikey": "sb_publishable_nope"}).status_code == 401
        limited = gw.create_key("publishable", limits={"per_key": "1/m"})["api_key"]
        assert [c.get("/rest/v1/todos", headers={"apikey": limited}).status_code for _ in range(2)] == [200, 429]
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={pub}&vsn=1.0.0", open_timeout=10) as ws:
        ws.send("info")
        ws.recv(timeout=10)
    time.sleep(1.2)  # request counts reach prometheus-client once a second


def test_latency_by_route_upstream_and_status_class(gw, pub):
    run_everything(gw, pub)
    samples = scrape(gw)
    buckets = [s for s in samples if s.startswith("gateway_request_duration_seconds_bucket{")]
    assert buckets and all(set(re.findall(r'(\w+)="', s)) == {"le", "service", "upstream", "status_class"}
                           for s in buckets)
    count = 'gateway_request_duration_seconds_count{service="%s",status_class="%s",upstream="%s"}'
    assert samples[count % ("rest", "2xx", "rest")] >= 7
    assert samples[count % ("rest", "4xx", "none")] >= 2  # 401 and 429, answered by the gateway
    assert samples[count % ("functions", "5xx", "functions")] >= 2  # the upstream it was sent to
    assert {re.search(r'status_class="(\w+)"', s).group(1) for s in buckets} <= {"1xx", "2xx", "3xx", "4xx", "5xx"}
    for series in samples:  # a bounded label set: no path, key or address
        labels = series.partition("{")[2]
        assert "/" not in labels and "sb_" not in labels and "127.0.0.1" not in labels, series


def test_upstream_connect_errors_and_retries_by_upstream(gw, pub):
    run_everything(gw, pub)
    samples = scrape(gw)
    retries = samples.get('gateway_upstream_retries_total{upstream="rest_replica_1"}', 0)
    assert retries >= 1  # a read that met the dead replica went on to the primary
    assert 'gateway_upstream_retries_total{upstream="rest"}' not in samples
    errors = samples.get('gateway_upstream_connect_errors_total{upstream="functions"}', 0)
    assert errors >= 2
    # both ways of serving count a connect error under the target that refused (one forwarding core)
    assert samples.get('gateway_upstream_connect_errors_total{upstream="rest_replica_1"}', 0) >= 1
    assert 'gateway_upstream_connect_errors_total{upstream="rest"}' not in samples


def test_key_ring_size_and_reload_time(gw):
    started = time.time()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    url = f"{gw.admin_url}/v1/projects/default/api-keys"

    def in_memory() -> float:
        return scrape(gw)["gateway_key_ring_keys"]

    def stored() -> int:
        return sum(1 for k in httpx.get(url, headers=admin).json() if k["id"] not in ("anon", "service_role"))

    within(5, lambda: in_memory() == stored())
    made = gw.create_key("secret")
    within(5, lambda: in_memory() == stored())  # a key arrives by notification, and counts at once
    httpx.delete(f"{url}/{made['id']}", headers=admin)
    within(5, lambda: in_memory() == stored())
    samples = scrape(gw)
    reloaded = samples["gateway_key_ring_last_reload_timestamp_seconds"]
    checked = samples["gateway_key_ring_last_check_timestamp_seconds"]
    assert started - 600 < reloaded <= checked <= time.time()


# --- the Grafana dashboard ---------------------------------------------------------------------


# PromQL words that are not metric names (aggregations and functions are followed by "(").
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
             "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (or a Grafana ``label_values(metric, label)``)."""
    found = re.fullmatch(r"\s*label_values\(\s*(?:([a-zA-Z_:][\w:]*)\s*,\s*)?\w+\s*\)\s*", expr)
    if found:
        return {found.group(1)} if found.group(1) else set()
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana's variables
    names = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", expr):
        if expr[m.end():].lstrip().startswith("(") or m.group().lower() in _KEYWORDS:
            continue
        names.add(m.group())
    return names


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (service) (rate(gateway_requests_total{status=~"5..", instance=~"$instance"}[$__rate_interval]))',
     {"gateway_requests_total"}),
    ("histogram_quantile(0.95, sum by (le, upstream) (rate(x_bucket[5m]))) / on (a) group_left y_sum offset 1h",
     {"x_bucket", "y_sum"}),
    ("time() - min by (instance) (gateway_key_ring_last_reload_timestamp_seconds)",
     {"gateway_key_ring_last_reload_timestamp_seconds"}),
    ("label_values(gateway_requests_total, instance)", {"gateway_requests_total"}),
    ("label_values(instance)", set()),
    ("up == bool 1 and process_cpu_seconds_total > 1e3", {"up", "process_cpu_seconds_total"}),
])
def test_metric_names_of_a_query(expr, names):
    assert metric_names(expr) == names


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        out += [t["expr"] for t in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            out.append(query["query"] if isinstance(query, dict) else query)
    return out


def test_every_dashboard_query_names_only_metrics_the_gateway_exports(gw, pub):
    """On both ways of serving: a metric only one of them exported would leave a panel empty."""
    run_everything(gw, pub)
    names = exported(scrape(gw))
    queries = dashboard_queries()
    used = set().union(*(metric_names(q) for q in queries))
    assert used and not used - names, f"the dashboard reads metrics the gateway does not export: {used - names}"
    # what an operator needs is on it
    for needed in ("gateway_requests_total", "gateway_request_duration_seconds_bucket",
                   "gateway_request_duration_seconds_sum", "gateway_request_duration_seconds_count",
                   "gateway_rate_limited_total", "gateway_upstream_connect_errors_total",
                   "gateway_upstream_retries_total", "gateway_key_ring_keys",
                   "gateway_key_ring_last_reload_timestamp_seconds", "gateway_websocket_sessions_total"):
        assert needed in used, needed


def test_the_dashboard_is_importable():
    """What Grafana's import needs: panels with ids, places and queries, and a Prometheus data
    source chosen on import (a variable, not a uid of someone else's Grafana)."""
    board = json.loads(DASHBOARD.read_text())
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    [source] = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys() and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": f"${{{source['name']}}}"}
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])
