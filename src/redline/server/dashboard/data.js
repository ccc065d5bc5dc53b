// Polling the API into S: agents (with the kill that covers each, as the server says), the
// fleet's metrics, firing alerts and Redline's own stats.

import { api, ApiError } from "./api.js";
import { invalidate, S, SERIES_SECONDS } from "./state.js";

export function every(ms, fn) {
  const tick = async () => {
    if (!S.me) return;
    try { await fn(); } catch (err) { if (!(err instanceof ApiError)) console.warn(err); }
    if (S.me) S.timers.push(setTimeout(tick, ms));
  };
  tick();
}

let refreshSoonTimer = 0;

export function refreshSoon() {
  if (refreshSoonTimer) return;
  refreshSoonTimer = setTimeout(() => {
    refreshSoonTimer = 0;
    loadAgents().catch(() => {});
  }, 250);
}

export async function loadAgents() {
  const asked = Date.now();
  const body = await api(`/v1/agents?window=${S.window}`);
  const seen = new Set();
  for (const row of body.agents) {
    seen.add(row.agent);
    S.agents.set(row.agent, { ...row, idle: false });
  }
  for (const [name, row] of S.agents) {
    // A row the stream touched after this request left is newer than the answer: keep it.
    if (!seen.has(name) && !row.idle && !(row.touched > asked)) {
      // Revived (its windows start afresh) or idle long enough to be evicted: keep the row.
      // The server lists every agent with a kill of its own, so only a fleet-wide kill can
      // cover one it no longer lists.
      S.agents.set(name, {
        agent: name, state: body.global_kill ? "killed" : "running", kill: body.global_kill,
        idle: true,
        events_per_minute: 0, cost_per_minute: 0, error_rate: 0, p95_latency_ms: 0,
        last_event_at: row.last_event_at,
      });
    }
  }
  S.globalKill = body.global_kill;
  invalidate("table", "kpi", "banner");
}

export async function loadFleet() {
  const snap = await api(`/v1/metrics?window=${S.window}`);
  S.fleet = snap;
  const t = snap.timestamp;
  for (const [key, value] of [["events", snap.events_per_minute], ["cost", snap.cost_per_minute]]) {
    const series = S.series[key];
    series.push([t, value || 0]);
    while (series.length && series[0][0] < t - SERIES_SECONDS) series.shift();
  }
  invalidate("kpi", "charts");
}

export async function loadAlerts() {
  const body = await api("/v1/alerts?state=firing&limit=1000");
  S.alerts = body.alerts;
  S.alertsTruncated = Boolean(body.truncated);
  invalidate("alerts", "kpi");
}

export async function loadStats() {
  S.stats = await api("/v1/stats");
  invalidate("footer", "kpi");
}

// Budgets: each key's spend and holds in its current period, from the store's ledger. A server
// without budgets answers with an empty list (the panel stays hidden).
export async function loadBudgets() {
  const body = await api("/v1/budgets");
  S.budgets = body.budgets || [];
  invalidate("budgets");
}
