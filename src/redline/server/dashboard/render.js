// Drawing S into the page, batched into one animation frame and throttled per part.

import { ackAlert, killAgent, reviveAgent } from "./actions.js";
import { drawChart } from "./chart.js";
import { FEED_MAX, PAGE_SIZE, S, setRenderer, THROTTLE, invalidate } from "./state.js";
import { $, ago, clock, el, fmtMoney, fmtMs, fmtPct, fmtRate } from "./util.js";

export function render() {
  S.frame = 0;
  const dirty = S.dirty;
  S.dirty = new Set();
  const now = performance.now();
  for (const [part, draw] of [
    ["table", renderTable], ["kpi", renderKpis], ["banner", renderBanner], ["alerts", renderAlerts], ["budgets", renderBudgets],
    ["charts", renderCharts], ["footer", renderFooter], ["feed", renderFeed],
  ]) {
    if (!dirty.has(part)) continue;
    const wait = (THROTTLE[part] || 0) - (now - (S.lastRender[part] || 0));
    if (wait > 0) {
      if (!S.dirty.has(part)) setTimeout(() => invalidate(part), wait);
      S.dirty.add(part);
      continue;
    }
    S.lastRender[part] = now;
    draw();
  }
}

export function effectiveState(row) {
  if (row.state === "killed") return "killed";
  return row.idle ? "idle" : "running";
}

export function visibleRows() {
  const filter = S.filter.toLowerCase();
  const rows = [];
  for (const row of S.agents.values()) {
    if (filter && !row.agent.toLowerCase().includes(filter)) continue;
    if (S.stateFilter) {
      const state = effectiveState(row);
      if (S.stateFilter === "killed" ? state !== "killed" : state === "killed") continue;
    }
    rows.push(row);
  }
  const { key, asc } = S.sort;
  const dir = asc ? 1 : -1;
  rows.sort((a, b) => {
    let x = key === "state" ? effectiveState(a) : a[key];
    let y = key === "state" ? effectiveState(b) : b[key];
    if (x === y) return a.agent < b.agent ? -1 : 1;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * dir;
  });
  return rows;
}

export function renderTable() {
  const rows = visibleRows();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  S.page = Math.min(S.page, pages - 1);
  const start = S.page * PAGE_SIZE;
  const slice = rows.slice(start, start + PAGE_SIZE);
  const admin = S.me && S.me.role === "admin";
  const body = $("fleet-body");
  const fragment = document.createDocumentFragment();
  for (const row of slice) {
    const state = effectiveState(row);
    const kill = row.kill;
    const fleetWide = !!kill && kill.scope === "global";
    const stateTitle = kill ? `${kill.scope} kill by ${kill.actor || "?"}: ${kill.reason || "no reason given"}` : "";
    const label = state === "killed" ? (fleetWide ? "KILLED · ALL" : "KILLED") : state === "idle" ? "IDLE" : "RUNNING";
    let action = null;
    if (admin) {
      if (state !== "killed") {
        action = el("button", { class: "btn btn-danger btn-sm kill", type: "button", onclick: () => killAgent(row.agent) }, "Kill");
      } else if (kill && kill.scope === "agent") {  // only the agent's own kill is its to lift
        action = el("button", { class: "btn btn-ok btn-sm revive", type: "button", onclick: () => reviveAgent(row.agent) }, "Revive");
      }
    }
    const err = row.error_rate || 0;
    fragment.append(
      el("tr", { dataset: { agent: row.agent }, class: state === "killed" ? "killed" : "" },
        el("td", { class: "agent", title: row.agent, text: row.agent }),
        el("td", {}, el("span", { class: `state state-${state}`, title: stateTitle, text: label })),
        el("td", { class: "num", text: fmtRate(row.events_per_minute) }),
        el("td", { class: "num", text: fmtMoney(row.cost_per_minute) }),
        el("td", { class: `num ${err >= 0.1 ? "bad" : err >= 0.02 ? "hot" : ""}`, text: fmtPct(err) }),
        el("td", { class: "num", text: fmtMs(row.p95_latency_ms) }),
        el("td", { class: "num muted", text: ago(row.last_event_at) }),
        el("td", { class: "actions admin-only" }, action),
      ),
    );
  }
  body.replaceChildren(fragment);
  $("fleet-empty").hidden = rows.length > 0;
  $("fleet-count").textContent = `${S.agents.size} agent${S.agents.size === 1 ? "" : "s"}`;
  $("pager-info").textContent = rows.length
    ? `${start + 1}–${start + slice.length} of ${rows.length}`
    : "";
  $("page-prev").disabled = S.page === 0;
  $("page-next").disabled = S.page >= pages - 1;
  for (const th of document.querySelectorAll("th.sortable")) {
    th.classList.toggle("sorted", th.dataset.sort === S.sort.key);
    th.classList.toggle("asc", th.dataset.sort === S.sort.key && S.sort.asc);
  }
}

export function renderKpis() {
  let killed = 0;
  for (const row of S.agents.values()) if (effectiveState(row) === "killed") killed += 1;
  $("kpi-agents").textContent = String(S.agents.size);
  $("kpi-agents-sub").textContent = `${S.agents.size - killed} running · ${killed} killed`;
  $("kpi-agents").classList.toggle("bad", killed > 0);
  const f = S.fleet;
  if (f) {
    $("kpi-epm").textContent = fmtRate(f.events_per_minute);
    $("kpi-events").textContent = `${f.event_count.toLocaleString()} in ${S.window / 60}m`;
    $("kpi-cpm").textContent = fmtMoney(f.cost_per_minute);
    $("kpi-cost").textContent = `${fmtMoney(f.cost_total)} in ${S.window / 60}m`;
    $("kpi-err").textContent = fmtPct(f.error_rate);
    $("kpi-err").classList.toggle("bad", f.error_rate >= 0.05);
    $("kpi-errors").textContent = `${f.error_count} errors · ${f.denial_count} denials`;
    $("kpi-p95").textContent = fmtMs(f.p95_latency_ms);
    $("kpi-p50").textContent = f.p50_latency_ms ? `p50 ${fmtMs(f.p50_latency_ms)}` : "";
  }
  $("kpi-alerts").textContent = String(S.alerts.length);
  $("kpi-alerts").classList.toggle("bad", S.alerts.length > 0);
  if (S.stats) {
    const st = S.stats;
    $("kpi-health").textContent = st.dropped || st.write_errors
      ? `${st.dropped} dropped · ${st.write_errors} write errors`
      : `writer healthy · ${st.queued} queued`;
  }
}

export function renderBanner() {
  const banner = $("global-banner");
  const button = $("global-kill");
  if (S.globalKill) {
    const k = S.globalKill;
    banner.replaceChildren(
      el("span", { text: `Every agent is killed: ${k.reason || "no reason given"} (by ${k.actor || "?"})` }),
    );
    banner.hidden = false;
    button.textContent = "Revive fleet";
    button.className = "btn btn-ok admin-only";
  } else {
    banner.hidden = true;
    button.textContent = "Kill all agents";
    button.className = "btn btn-danger admin-only";
  }
}

export function renderAlerts() {
  const admin = S.me && S.me.role === "admin";
  const list = $("alerts-list");
  // Each entry is an alert group: one cause (rule, agent, action) with its count and last seen.
  list.replaceChildren(...S.alerts.map((a) =>
    el("li", { class: "alert", dataset: { id: a.id } },
      el("span", { class: `alert-bar ${a.severity}` }),
      el("div", { class: "alert-body" },
        el("div", { class: "alert-title", title: a.message, text: a.title },
          (a.count || 1) > 1 ? el("span", { class: "badge alert-count", text: `×${a.count}` }) : null),
        el("div", { class: "alert-meta", text: `${a.severity} · ${a.agent} · last ${ago(a.last_seen || a.timestamp)}${a.message ? ` · ${a.message}` : ""}` }),
      ),
      admin ? el("button", { class: "btn btn-ghost btn-sm ack", type: "button", onclick: () => ackAlert(a.id) }, "Ack") : null,
    )));
  $("alerts-empty").hidden = S.alerts.length > 0;
  const ackAll = $("alerts-ack-all");
  if (ackAll) ackAll.hidden = !admin || S.alerts.length < 2;
  const count = $("alerts-count");
  count.textContent = S.alertsTruncated ? `${S.alerts.length}+` : String(S.alerts.length);
  count.classList.toggle("hot", S.alerts.length > 0);
}

// One bar per budget key: spent (solid) and reserved (striped) against the limit; amber from
// 80 % of the limit, red at or over it.
export function renderBudgets() {
  const rows = [...S.budgets].sort((a, b) => burn(b) - burn(a));
  $("budgets-panel").hidden = rows.length === 0;
  $("budgets-count").textContent = String(rows.length);
  $("budgets-list").replaceChildren(...rows.map((b) => {
    const used = burn(b);
    const level = used >= 1 ? "over" : used >= 0.8 ? "near" : "ok";
    const pct = (x) => `${Math.min(100, Math.max(0, (x / (b.limit_usd || 1)) * 100)).toFixed(1)}%`;
    return el("li", { class: `budget ${level}`, dataset: { name: b.name, key: b.key } },
      el("div", { class: "budget-head" },
        el("span", { class: "budget-name", text: `${b.name} · ${b.scope} ${b.key}` }),
        el("span", { class: "budget-amount", text: `${fmtMoney(b.spent_usd)} + ${fmtMoney(b.reserved_usd)} held / ${fmtMoney(b.limit_usd)}` })),
      el("div", { class: "budget-bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": String(b.limit_usd), "aria-valuenow": String(b.spent_usd + b.reserved_usd) },
        sized(el("span", { class: "budget-spent" }), pct(b.spent_usd)),
        sized(el("span", { class: "budget-held" }), pct(b.reserved_usd))),
      el("div", { class: "budget-meta muted", text: `${(used * 100).toFixed(0)}% · ${b.action} · resets ${new Date(b.resets_at * 1000).toISOString().replace(".000Z", "Z")}` }));
  }));
}

// Widths through the CSSOM: the page's CSP (style-src 'self') refuses style attributes.
function sized(node, width) {
  node.style.width = width;
  return node;
}

function burn(b) {
  return b.limit_usd > 0 ? (b.spent_usd + b.reserved_usd) / b.limit_usd : 0;
}

export function describe(ev) {
  const d = ev.data || {};
  const parts = [];
  if (ev.event_type === "kill" || ev.event_type === "revive") {
    parts.push(`${d.scope} ${d.target}`, d.reason || d.kill_reason || "", d.actor ? `by ${d.actor}` : "");
  } else if (ev.event_type === "alert") {
    parts.push(d.title || "", d.state && d.state !== "firing" ? d.state : "");
  } else {
    if (ev.tool) parts.push(ev.tool);
    if (ev.model) parts.push(ev.model);
    if (ev.cost_usd) parts.push(fmtMoney(ev.cost_usd));
    if (ev.latency_ms) parts.push(fmtMs(ev.latency_ms));
    if (ev.status && ev.status !== "ok") parts.push(ev.status);
    if (ev.killed_scope) parts.push(`while killed (${ev.killed_scope})`);
  }
  return parts.filter(Boolean).join(" · ");
}

export function renderFeed() {
  if (S.pending.length) {
    const fresh = S.pending.splice(0, S.pending.length);
    S.feed = fresh.reverse().concat(S.feed).slice(0, FEED_MAX);
    S.freshCount = Math.min(fresh.length, FEED_MAX);
  } else {
    S.freshCount = 0;
  }
  const list = $("feed-list");
  list.replaceChildren(...S.feed.map((ev, i) =>
    el("li", { class: `feed-item${i < S.freshCount ? " fresh" : ""}` },
      el("span", { class: "feed-time", text: clock(ev.timestamp) }),
      el("span", { class: `feed-type t-${ev.event_type}`, text: ev.event_type }),
      el("span", { class: "feed-text" }, el("span", { class: "agent", text: ev.agent }), " ", describe(ev)),
    )));
  $("feed-empty").hidden = S.feed.length > 0;
  const cutoff = Date.now() - 10000;
  while (S.feedTimes.length && S.feedTimes[0] < cutoff) S.feedTimes.shift();
  $("feed-rate").textContent = S.feedTimes.length ? `${(S.feedTimes.length / 10).toFixed(1)}/s` : "";
}

export function renderFooter() {
  const st = S.stats;
  if (!st) return;
  const server = st.server || {};
  const up = server.uptime_seconds || 0;
  const upText = up >= 3600 ? `${Math.floor(up / 3600)}h ${Math.floor((up % 3600) / 60)}m` : `${Math.floor(up / 60)}m`;
  $("footer").textContent = [
    `store ${st.store}`,
    `${(st.written || 0).toLocaleString()} written`,
    `${st.queued} queued`,
    `${st.dropped} dropped`,
    `${st.repaired} repaired · ${st.rejected} rejected`,
    `${server.stream_clients || 0} live viewer${server.stream_clients === 1 ? "" : "s"}`,
    S.dropped ? `${S.dropped} stream messages dropped (this tab lagged)` : "",
    `up ${upText}`,
  ].filter(Boolean).join("  ·  ");
}

export function renderCharts() {
  drawChart($("chart-events"), S.series.events, "#60a5fa", fmtRate);
  drawChart($("chart-cost"), S.series.cost, "#f59e0b", fmtMoney);
  const last = (s) => (s.length ? s[s.length - 1][1] : 0);
  $("chart-events-now").textContent = `${fmtRate(last(S.series.events))} /min`;
  $("chart-cost-now").textContent = `${fmtMoney(last(S.series.cost))} /min`;
}

setRenderer(render);
