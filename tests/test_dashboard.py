"""The dashboard in a real browser (Playwright driving Debian's chromium) against a real server.

Skipped when ``/usr/bin/chromium`` is absent (``apt-get install -y chromium``); Playwright's own
browser download is never used.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

pytest.importorskip("starlette")

from redline import AgentEvent, Monitor, parse_config
from redline.server import RedlineServer, ServerConfig, TokenConfig, create_app

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="browser test needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
)
sync_api = pytest.importorskip("playwright.sync_api")

ADMIN = "dashboard-admin-0123456789abcdef"
READ = "dashboard-read-0123456789abcdef"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Monitor]]:
    monitor = Monitor(parse_config({"storage": {"path": str(tmp_path / "events.db")}}))
    config = ServerConfig(
        port=0,
        tokens=[
            TokenConfig(name="oncall-alice", role="admin", token=ADMIN),
            TokenConfig(name="wallboard", role="read", token=READ),
        ],
        heartbeat_seconds=2.0,
    )
    server = RedlineServer(create_app(monitor, config, admin_token=""), port=0).start()
    yield server.url, monitor
    server.stop()
    monitor.close()


@pytest.fixture
def page(served: tuple[str, Monitor]) -> Iterator[Any]:
    """A chromium page that may talk to the server only; anything else is refused and noted."""
    url, _ = served
    origin = urlparse(url).netloc
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.outside: list[str] = []  # type: ignore[attr-defined]
        page.problems: list[str] = []  # type: ignore[attr-defined]

        def guard(route: Any) -> None:
            target = urlparse(route.request.url)
            if target.scheme in ("data", "blob") or target.netloc == origin:
                route.continue_()
            else:
                page.outside.append(route.request.url)  # type: ignore[attr-defined]
                route.abort()

        page.route("**/*", guard)
        page.on(
            "console",
            lambda msg: msg.type == "error" and page.problems.append(msg.text),  # type: ignore[attr-defined]
        )
        page.on("pageerror", lambda exc: page.problems.append(str(exc)))  # type: ignore[attr-defined]
        yield page
        context.close()
        browser.close()


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(url + "/")
    page.fill("#token-input", token)
    page.click("#connect")
    page.wait_for_selector("#app:not([hidden])")


def traffic(monitor: Monitor, agents: list[str], n: int, rng: random.Random) -> None:
    """Plausible events: LLM and tool calls with cost and latency, the odd error."""
    now = time.time()
    for i in range(n):
        agent = agents[i % len(agents)]
        kind = rng.choice(["llm_call", "llm_call", "tool_call", "action", "error"])
        monitor.record(
            AgentEvent(
                timestamp=now - rng.random() * 2,
                agent=agent,
                event_type=kind,
                session_id=f"{agent}-s{rng.randint(1, 3)}",
                cost_usd=round(rng.uniform(0.001, 0.03), 4) if kind == "llm_call" else None,
                latency_ms=rng.uniform(80, 2400),
                model="gpt-4o" if kind == "llm_call" else None,
                tool=rng.choice(["search", "crm.update", "send_email"])
                if kind == "tool_call"
                else None,
                status="ok" if kind != "error" else "error",
            )
        )


def test_live_fleet_kill_and_screenshot(page: Any, served: tuple[str, Monitor]) -> None:
    """Sign in, watch agents arrive live, kill one through the dialog, see it KILLED."""
    url, monitor = served
    rng = random.Random(7)
    sign_in(page, url, ADMIN)
    assert page.inner_text("#whoami").startswith("oncall-alice")
    page.wait_for_selector("#conn.pill-live")

    agents = ["billing-agent", "support-bot", "research-agent", "sales-agent", "ops-copilot"]
    traffic(monitor, agents, 60, rng)
    for agent in agents:
        page.wait_for_selector(f'tr[data-agent="{agent}"]', timeout=5000)
    page.wait_for_selector(".feed-item")

    row = page.locator('tr[data-agent="billing-agent"]')
    assert row.locator(".state").inner_text() == "RUNNING"
    row.locator("button.kill").click()
    page.wait_for_selector("#confirm-dialog[open]")
    page.fill("#confirm-reason", "Cost spike: $40/min")
    page.click("#confirm-ok")
    page.wait_for_function(
        """() => document.querySelector('tr[data-agent="billing-agent"] .state')
                 ?.textContent === 'KILLED'""",
        timeout=5000,
    )
    assert monitor.is_killed("billing-agent")
    kill = next(k for k in monitor.kills() if k.target == "billing-agent")
    assert (kill.actor, kill.reason) == ("oncall-alice", "Cost spike: $40/min")
    assert page.locator('tr[data-agent="support-bot"] .state').inner_text() == "RUNNING"

    # Keep traffic flowing so the charts, feed and alerts have something to show.
    for _ in range(4):
        traffic(monitor, agents, 40, rng)
        time.sleep(1.0)
    page.wait_for_selector("#alerts-list .alert")
    page.wait_for_function("() => !document.querySelector('#feed-empty:not([hidden])')")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    assert page.outside == []  # type: ignore[attr-defined]  # no external network
    assert page.problems == []  # type: ignore[attr-defined]  # no console errors, no CSP violations


def test_global_kill_needs_typed_confirmation(page: Any, served: tuple[str, Monitor]) -> None:
    """The fleet-wide kill asks for KILL ALL; cancelling kills nothing."""
    url, monitor = served
    monitor.record(AgentEvent(agent="a"))
    sign_in(page, url, ADMIN)
    page.wait_for_selector('tr[data-agent="a"]')
    page.click("#global-kill")
    page.fill("#confirm-reason", "incident 42")
    page.click("#confirm-ok")
    assert "KILL ALL" in page.inner_text("#confirm-error")
    assert not monitor.kills()
    page.fill("#confirm-typed", "kill all")
    page.click("#confirm-ok")
    page.wait_for_selector("#global-banner:not([hidden])")
    assert monitor.is_killed("anyone")
    page.wait_for_function(
        "() => document.querySelector('tr[data-agent=\"a\"] .state')?.textContent === 'KILLED · ALL'"
    )
    page.click("#global-kill")
    page.click("#confirm-ok")
    page.wait_for_selector("#global-banner[hidden]", state="attached")
    assert not monitor.kills()


def test_rows_show_the_kill_the_server_says_covers_them(
    page: Any, served: tuple[str, Monitor]
) -> None:
    """Each row shows the kill the monitor says covers it: the fleet's over the agent's own."""
    url, monitor = served
    monitor.record(AgentEvent(agent="a"))
    monitor.record(AgentEvent(agent="b"))
    sign_in(page, url, ADMIN)
    page.wait_for_selector('tr[data-agent="b"]')

    def shows(agent: str, *labels: str) -> None:
        page.wait_for_function(
            f"() => {list(labels)}.includes("
            f"document.querySelector('tr[data-agent=\"{agent}\"] .state')?.textContent)",
            timeout=5000,
        )

    monitor.kill_agent("a", reason="its own", actor="ops")  # from elsewhere: seen on the stream
    shows("a", "KILLED")
    shows("b", "RUNNING")
    monitor.kill_global(reason="incident", actor="ops")
    shows("a", "KILLED · ALL")
    shows("b", "KILLED · ALL")
    assert page.locator('tr[data-agent="a"] button.revive').count() == 0  # not its kill to lift
    monitor.revive_global(actor="ops")
    shows("b", "RUNNING", "IDLE")  # its windows start afresh after a revive
    shows("a", "KILLED")
    assert page.locator('tr[data-agent="a"] button.revive').count() == 1
    assert page.problems == []  # type: ignore[attr-defined]


def test_read_token_sees_no_controls(page: Any, served: tuple[str, Monitor]) -> None:
    """A read token gets the view without kill, revive or acknowledge controls."""
    url, monitor = served
    monitor.record(AgentEvent(agent="a"))
    sign_in(page, url, READ)
    page.wait_for_selector('tr[data-agent="a"]')
    assert page.locator("button.kill").count() == 0
    assert not page.locator("#global-kill").is_visible()


def test_bad_token_is_refused_and_nothing_is_kept(page: Any, served: tuple[str, Monitor]) -> None:
    """A wrong token shows an error; nothing is stored in the tab."""
    url, _ = served
    page.goto(url + "/")
    page.fill("#token-input", "not-a-token-0123456789")
    page.click("#connect")
    page.wait_for_function("() => document.querySelector('#signin-error').textContent !== ''")
    assert "not valid" in page.inner_text("#signin-error")
    assert page.evaluate("() => sessionStorage.length") == 0
    assert page.locator("#app").is_hidden()
    page.problems.clear()  # type: ignore[attr-defined]  # the 401 is logged by the browser


def test_a_thousand_agents_stay_responsive(page: Any, served: tuple[str, Monitor]) -> None:
    """With 1,000 agents the table shows one page of 50 and a render stays cheap."""
    url, monitor = served
    now = time.time()
    for i in range(1000):
        monitor.record(AgentEvent(timestamp=now, agent=f"agent-{i:04d}", cost_usd=0.001 * i))
    sign_in(page, url, ADMIN)
    page.wait_for_function(
        "() => document.querySelector('#pager-info').textContent.endsWith('of 1000')",
        timeout=10000,
    )
    assert page.locator("#fleet-body tr").count() == 50
    started = time.perf_counter()
    page.click('th[data-sort="cost_per_minute"]')  # sorted by cost, highest first
    page.wait_for_function(
        "() => document.querySelector('#fleet-body tr')?.dataset.agent === 'agent-0999'"
    )
    assert time.perf_counter() - started < 1.0
    render_ms = page.evaluate(
        """() => {
            const t = performance.now();
            for (let i = 0; i < 10; i += 1) document.querySelector('#page-next').click();
            return performance.now() - t;
        }"""
    )
    assert render_ms < 500  # the clicks only mark the table dirty: one render per frame
    page.click("#page-prev")
    page.wait_for_function(
        "() => document.querySelector('#pager-info').textContent.startsWith('451–500')"
    )


def test_alerts_panel_shows_groups_and_acks_them_all(
    page: Any, served: tuple[str, Monitor]
) -> None:
    """300 send_email calls are one alert with ×300, not 300 entries; Ack all clears the panel."""
    url, monitor = served
    now = time.time()
    for agent, n in (("mailer", 300), ("other", 3)):
        for _ in range(n):
            monitor.record(
                AgentEvent(timestamp=now, agent=agent, event_type="tool_call", tool="send_email")
            )
    monitor.run_duties()  # the groups' counts, stored
    monitor.flush()
    sign_in(page, url, ADMIN)
    page.wait_for_selector("#alerts-list .alert-count")
    titles = page.locator("#alerts-list .alert").all_inner_texts()
    assert len(titles) == 3, titles  # mailer's suspicious and stuck groups, other's suspicious
    assert any("×300" in t for t in titles)
    assert any("×3" in t and "other" in t for t in titles)
    page.click("#alerts-ack-all")
    page.wait_for_selector("#alerts-empty:not([hidden])", timeout=5000)
    assert all(a.state == "acknowledged" for a in monitor.active_alerts())
    assert page.problems == []  # type: ignore[attr-defined]


def test_budgets_panel_shows_burn_near_and_over_the_limit(tmp_path: Path) -> None:
    """Each budget key's spent and held against its limit; near (>= 80 %) and over highlighted."""
    config = parse_config(
        {
            "storage": {"path": str(tmp_path / "events.db")},
            "budgets": [
                {"name": "daily", "scope": "agent", "limit_usd": 1.0, "period": "day"},
            ],
        }
    )
    monitor = Monitor(config)
    server_config = ServerConfig(
        port=0, tokens=[TokenConfig(name="oncall-alice", role="admin", token=ADMIN)]
    )
    server = RedlineServer(create_app(monitor, server_config, admin_token=""), port=0).start()
    try:
        for agent, spent in (("calm", 0.2), ("warm", 0.85), ("hot", 1.0)):
            monitor.reserve(agent=agent, estimate_usd=spent).commit(spent)
        held = monitor.reserve(agent="calm", estimate_usd=0.1)  # a hold: striped, not spent
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
            )
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
            sign_in(page, server.url, ADMIN)
            page.wait_for_selector("#budgets-list .budget", timeout=10_000)
            keys = page.eval_on_selector_all(
                "#budgets-list .budget", "els => els.map(e => [e.dataset.key, e.className])"
            )
            assert [k for k, _ in keys] == ["hot", "warm", "calm"]  # most burnt first
            assert dict(keys) == {"hot": "budget over", "warm": "budget near", "calm": "budget ok"}
            calm = page.locator('#budgets-list .budget[data-key="calm"]')
            assert "held" in calm.inner_text()
            assert calm.locator(".budget-spent").evaluate("e => e.style.width") == "20%"
            assert calm.locator(".budget-held").evaluate("e => e.style.width") == "10%"
            assert problems == []  # no CSP violation from the bars' widths
            browser.close()
        held.release()
    finally:
        server.stop()
        monitor.close()
