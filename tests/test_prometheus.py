"""Specification of the Prometheus exporter: families, values, exemplars, caps, serving."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from redline import AgentEvent, Monitor, parse_config
from redline.export.prometheus import (
    FAMILIES,
    RedlineCollector,
    make_asgi_app,
    reason_kind,
    start_http_server,
)
from redline.testing import ManualClock, RecordingSubscriber
from redline.tracing import CausalTraceId, start_span

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_040.0

QUIET = {
    "detectors": {
        "loop": {"enabled": False},
        "stuck": {"enabled": False},
        "suspicious": {"enabled": False},
        "drift": {"enabled": False},
    },
    "kill_switch": {
        "policies": [
            {
                "name": "too-many-denials",
                "metric": "denial_count",
                "operator": ">=",
                "threshold": 2,
                "action": "kill_agent",
                "agent": "rogue",
            }
        ]
    },
}


def scrape(collector: RedlineCollector) -> dict[str, Any]:
    """The classic text exposition, parsed: family name → family."""
    body, _ = collector.generate()
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def value(fams: dict[str, Any], sample: str, **labels: str) -> float:
    """The value of the one sample named ``sample`` with exactly ``labels``."""
    family = sample
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if family.endswith(suffix) and family[: -len(suffix)] in fams:
            family = family[: -len(suffix)]
            break
    found = [s.value for s in fams[family].samples if s.name == sample and s.labels == labels]
    assert len(found) == 1, f"{sample}{labels}: {found} in {fams[family].samples}"
    return float(found[0])


def has(fams: dict[str, Any], sample: str, **labels: str) -> bool:
    return any(s.name == sample and s.labels == labels for f in fams.values() for s in f.samples)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def monitor(clock: ManualClock) -> Iterator[Monitor]:
    m = Monitor(parse_config(QUIET), clock=clock)
    yield m
    m.close()


def scenario(m: Monitor, clock: ManualClock, trace: CausalTraceId) -> None:
    """Two working agents, one rogue agent a policy kills, a manual agent and session kill."""
    now = clock.time()
    rec = m.record
    rec(
        AgentEvent(
            timestamp=now,
            agent="sales",
            event_type="action",
            cost_usd=0.007,
            latency_ms=350.0,
            data={"model": "gpt-4"},
        )
    )
    rec(
        AgentEvent(
            timestamp=now,
            agent="sales",
            event_type="llm_call",
            model="gpt-4o",
            cost_usd=0.02,
            tokens_in=100,
            tokens_out=50,
            tokens_cached=20,
            latency_ms=1200.0,
            trace_id=trace.trace_id,
            session_id="s-1",
            user="u-1",
        )
    )
    rec(
        AgentEvent(
            timestamp=now,
            agent="sales",
            event_type="tool_call",
            tool="search",
            status="ok",
            latency_ms=200.0,
        )
    )
    rec(
        AgentEvent(
            timestamp=now,
            agent="sales",
            event_type="tool_call",
            tool="search",
            status="error",
            latency_ms=400.0,
        )
    )
    rec(
        AgentEvent(
            timestamp=now,
            agent="sales",
            event_type="tool_call",
            tool="crm",
            status="ok",
            latency_ms=40.0,
        )
    )
    rec(AgentEvent(timestamp=now, agent="sales", event_type="denial"))
    rec(
        AgentEvent(
            timestamp=now, agent="sales", event_type="error", data={"error_type": "RateLimitError"}
        )
    )
    rec(AgentEvent(timestamp=now, agent="support", event_type="action", latency_ms=20.0))
    rec(AgentEvent(timestamp=now, agent="support", event_type="action", latency_ms=20.0))
    rec(AgentEvent(timestamp=now, agent="support", event_type="error"))
    with start_span(trace):
        rec(AgentEvent(timestamp=now, agent="rogue", event_type="denial"))
        rec(AgentEvent(timestamp=now, agent="rogue", event_type="denial"))  # policy kills
    m.kill_agent("support", reason="looks wrong")
    m.kill_session("s-9", reason="user asked")
    rec(AgentEvent(timestamp=now, agent="support", event_type="action"))  # blocked: evidence
    m.flush()


def test_every_family_is_exposed_with_the_scenario_values(
    monitor: Monitor, clock: ManualClock
) -> None:
    """After a scripted scenario, each family is present and every value is the exact count."""
    trace = CausalTraceId()
    collector = RedlineCollector(monitor)  # bus counters count from here on
    scenario(monitor, clock, trace)
    clock.advance(30)
    fams = scrape(collector)
    exposed = {f.name + ("_total" if f.type == "counter" else "") for f in fams.values()}
    assert set(FAMILIES) <= exposed

    assert value(fams, "redline_events_total", agent="sales", event_type="tool_call") == 3
    assert value(fams, "redline_events_total", agent="sales", event_type="llm_call") == 1
    assert value(fams, "redline_events_total", agent="support", event_type="action") == 2
    assert value(fams, "redline_events_total", agent="rogue", event_type="denial") == 2
    assert value(fams, "redline_cost_usd_total", agent="sales", model="gpt-4o") == 0.02
    assert value(fams, "redline_cost_usd_total", agent="sales", model="unknown") == 0.007
    for kind, n in (("input", 100), ("output", 50), ("cached", 20)):
        assert (
            value(fams, "redline_llm_tokens_total", agent="sales", model="gpt-4o", kind=kind) == n
        )
    assert value(fams, "redline_tool_calls_total", agent="sales", tool="search", status="ok") == 1
    assert (
        value(fams, "redline_tool_calls_total", agent="sales", tool="search", status="error") == 1
    )
    assert value(fams, "redline_tool_calls_total", agent="sales", tool="crm", status="error") == 0
    assert value(fams, "redline_tool_duration_seconds_count", agent="sales", tool="search") == 2
    assert value(fams, "redline_tool_duration_seconds_sum", agent="sales", tool="search") == (
        pytest.approx(0.6)
    )
    # The latency sketch re-bucketed: 40 ms, 200 ms, 350 ms, 400 ms, 1.2 s.
    buckets = {"0.025": 0, "0.05": 1, "0.1": 1, "0.25": 2, "0.5": 4, "1.0": 4, "2.5": 5, "+Inf": 5}
    for le, n in buckets.items():
        assert value(fams, "redline_latency_seconds_bucket", agent="sales", le=le) == n, le
    assert value(fams, "redline_latency_seconds_count", agent="sales") == 5
    assert value(fams, "redline_latency_seconds_sum", agent="sales") == pytest.approx(2.19)
    assert value(fams, "redline_errors_total", agent="sales", error_type="RateLimitError") == 1
    assert value(fams, "redline_errors_total", agent="support", error_type="unknown") == 1
    assert value(fams, "redline_denials_total", agent="rogue") == 2
    assert value(fams, "redline_denials_total", agent="sales") == 1

    assert value(fams, "redline_kills_total", scope="agent", reason_kind="policy") == 1
    assert value(fams, "redline_kills_total", scope="agent", reason_kind="manual") == 1
    assert value(fams, "redline_kills_total", scope="session", reason_kind="manual") == 1
    assert value(fams, "redline_killed", scope="agent", target="support") == 1
    assert value(fams, "redline_killed", scope="agent", target="rogue") == 1
    assert value(fams, "redline_killed", scope="session", target="session") == 1
    assert not has(fams, "redline_killed", scope="session", target="s-9")
    assert value(fams, "redline_anomalies_total", rule="too-many-denials", kind="policy") == 1
    assert value(fams, "redline_alerts_total", severity="critical", kind="kill") == 3
    assert value(fams, "redline_alerts_firing") == 3
    assert value(fams, "redline_uptime_seconds") == 30

    assert value(fams, "redline_cost_per_minute", agent="sales") == pytest.approx(0.027 / 5)
    assert value(fams, "redline_error_rate", agent="sales") == pytest.approx(1 / 7)
    assert value(fams, "redline_denial_rate", agent="sales") == 0.5
    assert value(fams, "redline_p95_latency_seconds", agent="sales") == pytest.approx(0.4, rel=0.01)
    assert value(fams, "redline_window_seconds") == 300

    assert value(fams, "redline_events_recorded_total") == 13
    assert value(fams, "redline_events_blocked_total") == 1
    assert value(fams, "redline_queue_depth") == 0
    assert value(fams, "redline_events_dropped_total") == 0
    assert value(fams, "redline_writer_errors_total") == 0
    assert value(fams, "redline_writer_lag_seconds") == 0
    assert "redline_alert_channel_failures" in fams
    assert "redline_events_repaired" in fams
    assert "redline_events_rejected" in fams
    collector.close()


def test_no_session_user_or_trace_id_becomes_a_label(monitor: Monitor, clock: ManualClock) -> None:
    """Sessions, users and trace ids never appear in label values (unbounded cardinality)."""
    trace = CausalTraceId()
    scenario(monitor, clock, trace)
    body, _ = RedlineCollector(monitor).generate()
    text = body.decode()
    for secret in ("s-1", "s-9", "u-1", trace.trace_id):
        assert secret not in text


def test_revive_records_mttr_and_counts_a_reset(monitor: Monitor, clock: ManualClock) -> None:
    """Kill → revive after 30 s: one revive, MTTR sum 30 s; the revived agent starts afresh."""
    collector = RedlineCollector(monitor)
    scenario(monitor, clock, CausalTraceId())
    clock.advance(30)
    monitor.revive(agent="support")
    fams = scrape(collector)
    assert value(fams, "redline_revives_total", scope="agent", reason_kind="manual") == 1
    assert value(fams, "redline_mttr_seconds_count") == 1
    assert value(fams, "redline_mttr_seconds_sum") == pytest.approx(30)
    assert not has(fams, "redline_killed", scope="agent", target="support")
    assert not has(fams, "redline_events_total", agent="support", event_type="action")


def test_ttl_expiry_counts_as_a_ttl_revive(monitor: Monitor, clock: ManualClock) -> None:
    """A kill that runs out its TTL is revived with ``reason_kind="ttl"``."""
    collector = RedlineCollector(monitor)
    revived = RecordingSubscriber()
    monitor.subscribe(revived, "revive")
    monitor.kill_agent("a", reason="cool off", ttl_seconds=10)
    clock.advance(11)
    assert revived.wait_for(1, timeout=10)  # the writer thread's tick expires it
    fams = scrape(collector)
    assert value(fams, "redline_revives_total", scope="agent", reason_kind="ttl") == 1
    assert value(fams, "redline_mttr_seconds_sum") == pytest.approx(11)


def test_reason_kind_reads_the_actor() -> None:
    """Policies, detectors and people map to policy, anomaly and manual."""
    assert reason_kind("policy:cost") == "policy"
    assert reason_kind("zscore:latency") == "anomaly"
    assert reason_kind("loop:loop") == "anomaly"
    assert reason_kind("api") == "manual"
    assert reason_kind("alice") == "manual"
    assert reason_kind("ttl") == "ttl"


def test_openmetrics_carries_trace_exemplars(monitor: Monitor, clock: ManualClock) -> None:
    """OpenMetrics output puts the trace id on the kill and anomaly counters the trace caused."""
    trace = CausalTraceId()
    collector = RedlineCollector(monitor)
    scenario(monitor, clock, trace)
    body, content_type = collector.generate(openmetrics=True)
    assert content_type.startswith("application/openmetrics-text")
    fams = {f.name: f for f in parse_openmetrics(body.decode())}
    kills = [
        s for s in fams["redline_kills"].samples
        if s.labels == {"scope": "agent", "reason_kind": "policy"}
    ]  # fmt: skip
    assert kills[0].exemplar is not None
    assert kills[0].exemplar.labels == {"trace_id": trace.w3c_trace_id}
    anomalies = [s for s in fams["redline_anomalies"].samples if s.name.endswith("_total")]
    assert anomalies[0].exemplar.labels == {"trace_id": trace.w3c_trace_id}
    manual = [
        s for s in fams["redline_kills"].samples
        if s.labels == {"scope": "agent", "reason_kind": "manual"}
    ]  # fmt: skip
    assert manual[0].exemplar is None  # killed outside any trace


def test_cardinality_cap_folds_the_rest_into_other(monitor: Monitor, clock: ManualClock) -> None:
    """Past ``max_agents``/``max_tools`` the rest is summed into ``other``, and stays there."""
    collector = RedlineCollector(monitor, max_agents=2, max_tools=2)
    now = clock.time()
    for agent, n in (("a1", 5), ("a2", 4), ("a3", 3), ("a4", 1)):
        for i in range(n):
            monitor.record(
                AgentEvent(timestamp=now, agent=agent, event_type="tool_call", tool=f"t{i}")
            )
    fams = scrape(collector)
    agents = {s.labels["agent"] for s in fams["redline_events"].samples}
    assert agents == {"a1", "a2", "other"}
    assert value(fams, "redline_events_total", agent="other", event_type="tool_call") == 4
    tools = {s.labels["tool"] for s in fams["redline_tool_calls"].samples}
    assert tools == {"t0", "t1", "other"}
    assert value(fams, "redline_tool_calls_total", agent="a1", tool="other", status="ok") == 3

    # A newcomer, however busy, does not displace an agent that already has its series.
    for _ in range(50):
        monitor.record(AgentEvent(timestamp=now, agent="a5", event_type="action"))
    fams = scrape(collector)
    agents = {s.labels["agent"] for s in fams["redline_events"].samples}
    assert agents == {"a1", "a2", "other"}
    assert value(fams, "redline_events_total", agent="other", event_type="action") == 50


def test_private_registry_allows_two_collectors(monitor: Monitor) -> None:
    """Two collectors in one process never collide: each has its own registry."""
    a = RedlineCollector(monitor)
    b = RedlineCollector(monitor)
    assert a.registry is not b.registry
    from prometheus_client import REGISTRY

    assert a not in getattr(REGISTRY, "_collector_to_names", {})


def test_start_http_server_serves_metrics(monitor: Monitor, clock: ManualClock) -> None:
    """``start_http_server(monitor, 0)`` serves /metrics on loopback until shut down."""
    monitor.record(AgentEvent(timestamp=clock.time(), agent="web", event_type="action"))
    server = start_http_server(monitor, 0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        assert 'redline_events_total{agent="web",event_type="action"} 1.0' in text
    finally:
        server.shutdown()
        server.server_close()


def test_asgi_app_serves_metrics(monitor: Monitor, clock: ManualClock) -> None:
    """``make_asgi_app(monitor)`` answers an ASGI HTTP request with the exposition."""
    monitor.record(AgentEvent(timestamp=clock.time(), agent="asgi", event_type="action"))
    app = make_asgi_app(monitor)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b"",
             "headers": [], "http_version": "1.1"}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    assert 'redline_events_total{agent="asgi",event_type="action"} 1.0' in body


def test_scrape_never_touches_the_hot_path_subscribers(monitor: Monitor) -> None:
    """The collector subscribes to rare governance types only, never to every event."""
    wildcard = monitor.bus._wildcard
    before = {k: len(v) for k, v in monitor.bus._typed.items()}
    collector = RedlineCollector(monitor)
    assert monitor.bus._wildcard == wildcard
    added = {k for k, v in monitor.bus._typed.items() if len(v) > before.get(k, 0)}
    assert added == {"kill", "revive", "anomaly", "alert", "error"}
    collector.close()
    assert {k: len(v) for k, v in monitor.bus._typed.items()} == before


# -- a real Prometheus ------------------------------------------------------------------------

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is not installed (apt-get install prometheus)"
)
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@needs_prometheus
def test_a_real_prometheus_scrapes_and_queries_redline(tmp_path: Path) -> None:
    """Prometheus scrapes ``start_http_server`` and its query API returns the event count."""
    with Monitor(parse_config(QUIET)) as m:
        now = time.time()
        for _ in range(7):
            m.record(AgentEvent(timestamp=now, agent="real", event_type="action"))
        server = start_http_server(m, 0)
        target = f"127.0.0.1:{server.server_address[1]}"
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: redline\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [PROMETHEUS or "prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            query = urllib.parse.urlencode({"query": "redline_events_total"})
            url = f"http://127.0.0.1:{port}/api/v1/query?{query}"
            deadline = time.monotonic() + 30
            result: list[Any] = []
            while time.monotonic() < deadline and not result:
                try:
                    with urllib.request.urlopen(url, timeout=2) as resp:
                        result = json.load(resp)["data"]["result"]
                except OSError:
                    pass
                if not result:
                    time.sleep(0.25)
            assert result, (
                "no redline_events_total within 30 s:\n"
                + (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
            )
            sample = result[0]
            assert sample["metric"]["agent"] == "real"
            assert sample["metric"]["event_type"] == "action"
            assert sample["metric"]["job"] == "redline"
            assert float(sample["value"][1]) == 7
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
            log.close()
            server.shutdown()
            server.server_close()


# -- the deploy kit ---------------------------------------------------------------------------

DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
_NAME = re.compile(r"\bredline_[a-z0-9_]+")  # digits too: redline_p95_latency_seconds
_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$agent": ".*"}


def exported_samples() -> set[str]:
    """Every sample name the collector can write, by family type (suffix rules)."""
    names: set[str] = set()
    for name, (typ, *_rest) in FAMILIES.items():
        if typ == "counter":
            names.add(name)  # FAMILIES spells counters with their _total
        elif typ == "gauge":
            names.add(name)
        elif typ == "summary":
            names.update({f"{name}_sum", f"{name}_count"})
        else:
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names


def panel_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """``(panel title, expr)`` for every target of every panel, rows included."""
    out: list[tuple[str, str]] = []
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        out.extend((panel["title"], t["expr"]) for t in panel.get("targets", []) if "expr" in t)
    return out


def test_counters_in_the_family_table_end_in_total() -> None:
    """Naming: counters end in ``_total``; durations are ``_seconds`` in base units."""
    for name, (typ, _doc, labels, unit) in FAMILIES.items():
        assert name.startswith("redline_")
        assert (typ == "counter") == name.endswith("_total"), name
        assert not unit or name.endswith(f"_{unit}"), name
        assert not {"session_id", "session", "user", "trace_id"} & set(labels), name


def test_three_dashboards_are_shipped() -> None:
    """Overview (SRE), governance and LLM ops dashboards, each with a unique uid."""
    uids = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    assert uids == {"redline-overview", "redline-governance", "redline-llm-ops"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_name_only_exported_metrics(path: Path) -> None:
    """Every ``redline_*`` name a panel queries is a sample the collector writes."""
    dashboard = json.loads(path.read_text())
    valid = exported_samples()
    exprs = panel_exprs(dashboard)
    assert exprs, "a dashboard without queries"
    for title, expr in exprs:
        for name in _NAME.findall(expr):
            assert name in valid, f"{path.name} / {title}: {name} is not exported"
    for variable in dashboard["templating"]["list"]:
        for name in _NAME.findall(variable["definition"]):
            assert name in valid, f"{path.name} variable {variable['name']}: {name}"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "prometheus", panel["title"]


def test_alert_rules_name_only_exported_metrics() -> None:
    """The alert rules query only what the collector writes (and ``up``)."""
    import yaml

    valid = exported_samples()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert len(exprs) >= 5
    for expr in exprs:
        for name in _NAME.findall(expr):
            assert name in valid, f"{name} in {expr!r}"


def test_grafana_provisioning_matches_the_dashboards() -> None:
    """The provisioned Prometheus datasource has the uid the dashboards use; Jaeger too."""
    import yaml

    ds = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text()
    )
    uids = {d["uid"]: d for d in ds["datasources"]}
    assert uids["prometheus"]["type"] == "prometheus"
    assert uids["jaeger"]["type"] == "jaeger"
    links = uids["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert links == [{"name": "trace_id", "datasourceUid": "jaeger"}]
    providers = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_compose_stack_mounts_files_that_exist() -> None:
    """compose.yaml runs Prometheus, Grafana, the OTel collector and Jaeger from this kit."""
    import yaml

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"prometheus", "grafana", "otel-collector", "jaeger"}
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source


def test_otel_collector_pipelines_use_defined_components() -> None:
    """Every receiver, processor and exporter a pipeline names is configured."""
    import yaml

    cfg = yaml.safe_load((DEPLOY / "otel-collector" / "config.yaml").read_text())
    pipelines = cfg["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline[kind]:
                assert name in cfg[kind], f"{kind}: {name}"
    assert cfg["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL or "promtool", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    """``promtool check rules deploy/prometheus/alerts.yml`` passes."""
    result = promtool("check", "rules", str(DEPLOY / "prometheus" / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_scrape_config() -> None:
    """``promtool check config deploy/prometheus/prometheus.yml`` passes."""
    result = promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_unit_tests_pass() -> None:
    """``promtool test rules``: kill spikes, denial rates and drops fire as documented."""
    result = promtool("test", "rules", "alerts_test.yml", cwd=DEPLOY / "prometheus")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each panel's PromQL (Grafana variables filled in) is valid: promtool parses it."""
    import yaml

    rules = []
    for path in DASHBOARDS:
        for i, (_title, query) in enumerate(panel_exprs(json.loads(path.read_text()))):
            expr = query
            for variable, value in _VARIABLES.items():
                expr = expr.replace(variable, value)
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{i}", "expr": expr})
    file = tmp_path / "dashboards.rules.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = promtool("check", "rules", str(file))
    assert result.returncode == 0, result.stdout + result.stderr
