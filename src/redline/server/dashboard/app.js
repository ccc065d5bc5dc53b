// Redline dashboard: a live view of the fleet, hand-written, no dependencies, no build step.
//
// Data: GET /v1/agents, /v1/metrics, /v1/alerts, /v1/stats (polled), and /v1/stream (Server-Sent
// Events read with fetch() and a stream reader, so the token stays in the Authorization header
// and never appears in a URL). Every DOM update is batched into one animation frame.
//
// Kill state is the server's: each row of /v1/agents carries `state` and `kill`, the kill that
// covers the agent as the monitor decides it (Monitor.kill_for: global, then agent, then
// session). This file never ranks kills itself; after a kill or revive it asks again.

const POLL_MS = 2000;
const SLOW_POLL_MS = 5000;
const PAGE_SIZE = 50;
const FEED_MAX = 200;
const SERIES_SECONDS = 600;
const TOKEN_KEY = "redline.token";

const $ = (id) => document.getElementById(id);

const S = {
  token: "",
  me: null,
  window: 300,
  agents: new Map(),
  globalKill: null,
  sort: { key: "agent", asc: true },
  filter: "",
  stateFilter: "",
  page: 0,
  alerts: [],
  fleet: null,
  stats: null,
  series: { events: [], cost: [] },
  feed: [],
  pending: [],
  feedPaused: false,
  feedTimes: [],
  dropped: 0,
  streamCtrl: null,
  timers: [],
  dirty: new Set(),
  frame: 0,
  lastRender: {},
};

// Parts redrawn at most this often (ms): live events can arrive thousands a second.
const THROTTLE = { feed: 200, table: 250 };

// -- small helpers ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function fmtRate(v) {
  if (!v) return "0";
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function fmtMoney(v) {
  if (!v) return "$0";
  if (v >= 100) return `$${v.toFixed(0)}`;
  if (v >= 1) return `$${v.toFixed(2)}`;
  if (v >= 0.01) return `$${v.toFixed(3)}`;
  return `$${v.toFixed(4)}`;
}

const fmtPct = (v) => (v ? `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%` : "0%");

function fmtMs(v) {
  if (!v) return "–";
  if (v < 1000) return `${v.toFixed(0)} ms`;
  return `${(v / 1000).toFixed(v < 10000 ? 2 : 1)} s`;
}

function ago(ts) {
  if (!ts) return "–";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 1) return "just now";
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

function clock(ts) {
  const d = new Date(ts * 1000);
  return d.toTimeString().slice(0, 8);
}

function toast(message, bad = false) {
  const t = $("toast");
  t.textContent = message;
  t.classList.toggle("bad", bad);
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 3500);
}

function invalidate(...parts) {
  for (const part of parts) S.dirty.add(part);
  if (!S.frame) S.frame = requestAnimationFrame(render);
}

// -- the API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${S.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (!r.ok) {
    const message = (data && data.message) || `${r.status} ${r.statusText}`;
    if (r.status === 401 && S.me) signOut("The server no longer accepts this token.");
    throw new ApiError(r.status, message);
  }
  return data;
}

// -- signing in and out -----------------------------------------------------------------------

async function connect(token) {
  S.token = token;
  const me = await api("/v1/whoami");
  if (me.role === "ingest") {
    S.token = "";
    throw new ApiError(403, `The token "${me.name}" has role ingest; the dashboard needs read or admin.`);
  }
  S.me = me;
  sessionStorage.setItem(TOKEN_KEY, token);
  document.body.classList.toggle("role-read", me.role !== "admin");
  $("whoami").replaceChildren(el("strong", { text: me.name }), ` · ${me.role}`);
  $("signin").hidden = true;
  $("app").hidden = false;
  start();
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  S.token = "";
  S.me = null;
  if (S.streamCtrl) S.streamCtrl.abort();
  for (const t of S.timers) clearTimeout(t);
  S.timers = [];
  S.agents.clear();
  S.feed = [];
  S.pending = [];
  S.series = { events: [], cost: [] };
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("token-input").value = "";
  $("token-input").focus();
}

// -- polling ------------------------------------------------------------------------------------

function every(ms, fn) {
  const tick = async () => {
    if (!S.me) return;
    try { await fn(); } catch (err) { if (!(err instanceof ApiError)) console.warn(err); }
    if (S.me) S.timers.push(setTimeout(tick, ms));
  };
  tick();
}

let refreshSoonTimer = 0;
function refreshSoon() {
  if (refreshSoonTimer) return;
  refreshSoonTimer = setTimeout(() => {
    refreshSoonTimer = 0;
    loadAgents().catch(() => {});
  }, 250);
}

async function loadAgents() {
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

async function loadFleet() {
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

async function loadAlerts() {
  const body = await api("/v1/alerts?state=firing&limit=100");
  S.alerts = body.alerts;
  invalidate("alerts", "kpi");
}

async function loadStats() {
  S.stats = await api("/v1/stats");
  invalidate("footer", "kpi");
}

function start() {
  every(POLL_MS, async () => { await Promise.all([loadAgents(), loadFleet()]); });
  every(SLOW_POLL_MS, async () => { await Promise.all([loadAlerts(), loadStats()]); });
  stream();
}

// -- the live stream ----------------------------------------------------------------------------

function setConn(state) {
  const pill = $("conn");
  pill.className = `pill pill-${state}`;
  pill.textContent = { live: "Live", wait: "Reconnecting…", down: "Offline" }[state];
}

async function stream() {
  let backoff = 500;
  while (S.me) {
    const ctrl = new AbortController();
    S.streamCtrl = ctrl;
    try {
      const r = await fetch("/v1/stream", {
        headers: { Authorization: `Bearer ${S.token}`, Accept: "text/event-stream" },
        signal: ctrl.signal,
        cache: "no-store",
      });
      if (r.status === 401) { signOut("The server no longer accepts this token."); return; }
      if (!r.ok || !r.body) throw new Error(`stream: ${r.status}`);
      setConn("live");
      backoff = 500;
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          onFrame(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (err) {
      if (ctrl.signal.aborted) return;
    }
    if (!S.me) return;
    setConn("wait");
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 10000);
  }
}

function onFrame(frame) {
  // (event_type is always present; "action" is also the default when a sender omits it.)
  let name = "message";
  let data = "";
  for (const line of frame.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;
  let payload;
  try { payload = JSON.parse(data); } catch { return; }
  switch (name) {
    case "hello":
      setConn("live");
      return;
    case "dropped":
      S.dropped = payload.dropped;
      invalidate("footer");
      return;
    case "kill":
    case "revive":
      applyGovernance();
      break;
    case "alert":
      setTimeout(() => loadAlerts().catch(() => {}), 100);
      break;
    default:
      touchAgent(payload);
  }
  S.feedTimes.push(Date.now());
  if (!S.feedPaused) S.pending.push(payload);
  invalidate("feed");
}

function touchAgent(ev) {
  if (!ev.agent || ev.agent === "*") return;
  const row = S.agents.get(ev.agent);
  if (!row) {
    S.agents.set(ev.agent, {
      agent: ev.agent, state: ev.killed_scope ? "killed" : "running", kill: null, idle: false,
      events_per_minute: 0, cost_per_minute: 0, error_rate: 0, p95_latency_ms: 0,
      last_event_at: ev.timestamp, touched: Date.now(),
    });
    refreshSoon();
  } else {
    row.touched = Date.now();
    if (!row.last_event_at || ev.timestamp > row.last_event_at) row.last_event_at = ev.timestamp;
  }
  invalidate("table");
}

function applyGovernance() {
  // A kill or revive from anywhere: which kill now covers each agent is the server's answer.
  refreshSoon();
}

// -- actions ------------------------------------------------------------------------------------

function confirmDialog({ title, text, confirm, reason = false, ttl = false, typed = "" }) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = confirm;
  $("confirm-error").textContent = "";
  for (const [id, show] of [["confirm-reason", reason], ["confirm-ttl", ttl], ["confirm-typed", !!typed]]) {
    $(id).hidden = !show;
    $(`${id}-label`).hidden = !show;
  }
  $("confirm-reason").value = "";
  $("confirm-ttl").value = "";
  $("confirm-typed").value = "";
  return new Promise((resolve) => {
    const form = $("confirm-form");
    const finish = (value) => {
      form.removeEventListener("submit", onSubmit);
      $("confirm-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      resolve(value);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      if (typed && $("confirm-typed").value.trim().toUpperCase() !== typed) {
        $("confirm-error").textContent = `Type ${typed} to confirm.`;
        return;
      }
      finish({
        reason: $("confirm-reason").value.trim(),
        ttl: $("confirm-ttl").value ? Number($("confirm-ttl").value) : null,
      });
    };
    const onCancel = (event) => { event.preventDefault(); finish(null); };
    form.addEventListener("submit", onSubmit);
    $("confirm-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    (reason ? $("confirm-reason") : $("confirm-ok")).focus();
  });
}

async function killAgent(name) {
  const answer = await confirmDialog({
    title: `Kill ${name}?`,
    text: "The agent is stopped everywhere this store is shared: its next check() fails until it is revived. Its events are still recorded, as evidence.",
    confirm: "Kill agent",
    reason: true,
    ttl: true,
  });
  if (!answer) return;
  try {
    const body = { scope: "agent", target: name, reason: answer.reason || "Killed from the dashboard" };
    if (answer.ttl) body.ttl = answer.ttl;
    await api("/v1/kill", { method: "POST", body });
    await loadAgents();
    toast(`Killed ${name}`);
  } catch (err) {
    toast(`Kill failed: ${err.message}`, true);
  }
}

async function reviveAgent(name) {
  const answer = await confirmDialog({
    title: `Revive ${name}?`,
    text: "Its kill is lifted and its metric windows start afresh.",
    confirm: "Revive",
  });
  if (!answer) return;
  try {
    await api("/v1/revive", { method: "POST", body: { scope: "agent", target: name } });
    await loadAgents();
    toast(`Revived ${name}`);
  } catch (err) {
    toast(`Revive failed: ${err.message}`, true);
  }
}

async function toggleGlobal() {
  if (S.globalKill) {
    const answer = await confirmDialog({
      title: "Revive the whole fleet?",
      text: "The fleet-wide kill is lifted; agents killed one by one stay killed.",
      confirm: "Revive fleet",
    });
    if (!answer) return;
    try {
      await api("/v1/revive", { method: "POST", body: { scope: "global" } });
      await loadAgents();
      toast("Fleet revived");
    } catch (err) { toast(`Revive failed: ${err.message}`, true); }
    return;
  }
  const answer = await confirmDialog({
    title: "Kill every agent?",
    text: "Every agent on this store stops at its next check(). This is recorded with your token's name.",
    confirm: "Kill all agents",
    reason: true,
    ttl: true,
    typed: "KILL ALL",
  });
  if (!answer) return;
  try {
    const body = { scope: "global", reason: answer.reason || "Fleet stopped from the dashboard" };
    if (answer.ttl) body.ttl = answer.ttl;
    await api("/v1/kill", { method: "POST", body });
    await loadAgents();
    toast("All agents killed");
  } catch (err) { toast(`Kill failed: ${err.message}`, true); }
}

async function ackAlert(id) {
  try {
    await api(`/v1/alerts/${encodeURIComponent(id)}/ack`, { method: "POST" });
    S.alerts = S.alerts.filter((a) => a.id !== id);
    invalidate("alerts", "kpi");
  } catch (err) { toast(`Acknowledge failed: ${err.message}`, true); }
}

// -- rendering ----------------------------------------------------------------------------------

function render() {
  S.frame = 0;
  const dirty = S.dirty;
  S.dirty = new Set();
  const now = performance.now();
  for (const [part, draw] of [
    ["table", renderTable], ["kpi", renderKpis], ["banner", renderBanner], ["alerts", renderAlerts],
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

function effectiveState(row) {
  if (row.state === "killed") return "killed";
  return row.idle ? "idle" : "running";
}

function visibleRows() {
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

function renderTable() {
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

function renderKpis() {
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

function renderBanner() {
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

function renderAlerts() {
  const admin = S.me && S.me.role === "admin";
  const list = $("alerts-list");
  list.replaceChildren(...S.alerts.slice(0, 50).map((a) =>
    el("li", { class: "alert", dataset: { id: a.id } },
      el("span", { class: `alert-bar ${a.severity}` }),
      el("div", { class: "alert-body" },
        el("div", { class: "alert-title", title: a.message, text: a.title }),
        el("div", { class: "alert-meta", text: `${a.severity} · ${a.agent} · ${ago(a.timestamp)}${a.message ? ` · ${a.message}` : ""}` }),
      ),
      admin ? el("button", { class: "btn btn-ghost btn-sm ack", type: "button", onclick: () => ackAlert(a.id) }, "Ack") : null,
    )));
  $("alerts-empty").hidden = S.alerts.length > 0;
  const count = $("alerts-count");
  count.textContent = String(S.alerts.length);
  count.classList.toggle("hot", S.alerts.length > 0);
}

function describe(ev) {
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

function renderFeed() {
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

function renderFooter() {
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

function niceMax(v) {
  if (v <= 0) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= v) return m * exp;
  return 10 * exp;
}

function drawChart(canvas, series, color, fmt) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 52, r: 8, t: 8, b: 20 };
  const iw = w - pad.l - pad.r;
  const ih = h - pad.t - pad.b;
  const now = series.length ? series[series.length - 1][0] : Date.now() / 1000;
  // The axis spans what has been seen, from one minute up to ten, so a fresh tab is readable.
  const span = Math.min(SERIES_SECONDS, Math.max(60, series.length ? now - series[0][0] : 60));
  const t0 = now - span;
  const top = niceMax(Math.max(0, ...series.map((p) => p[1])) * 1.1);
  ctx.font = "11px ui-sans-serif, system-ui, sans-serif";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i += 1) {
    const y = pad.t + ih - (ih * i) / 4;
    ctx.strokeStyle = i === 0 ? "#2c3345" : "#1b202c";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad.l, Math.round(y) + 0.5);
    ctx.lineTo(w - pad.r, Math.round(y) + 0.5);
    ctx.stroke();
    ctx.fillStyle = "#5b6478";
    ctx.textAlign = "right";
    ctx.fillText(fmt((top * i) / 4), pad.l - 8, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "alphabetic";
  const spanLabel = (s) => (s >= 60 ? `-${Math.round(s / 60)}m` : `-${Math.round(s)}s`);
  for (const [label, t, align] of [
    [spanLabel(span), t0, "left"], [spanLabel(span / 2), now - span / 2, "center"], ["now", now, "right"],
  ]) {
    ctx.fillStyle = "#5b6478";
    ctx.textAlign = align;
    ctx.fillText(label, pad.l + ((t - t0) / span) * iw, h - 4);
  }
  if (series.length < 2) {
    ctx.fillStyle = "#5b6478";
    ctx.textAlign = "center";
    ctx.fillText("collecting…", pad.l + iw / 2, pad.t + ih / 2);
    return;
  }
  const xy = series.map(([t, v]) => [pad.l + ((t - t0) / span) * iw, pad.t + ih - (v / top) * ih]);
  const gradient = ctx.createLinearGradient(0, pad.t, 0, pad.t + ih);
  gradient.addColorStop(0, `${color}55`);
  gradient.addColorStop(1, `${color}00`);
  ctx.beginPath();
  ctx.moveTo(xy[0][0], pad.t + ih);
  for (const [x, y] of xy) ctx.lineTo(x, y);
  ctx.lineTo(xy[xy.length - 1][0], pad.t + ih);
  ctx.closePath();
  ctx.fillStyle = gradient;
  ctx.fill();
  ctx.beginPath();
  xy.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.lineJoin = "round";
  ctx.stroke();
  const [lx, ly] = xy[xy.length - 1];
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.arc(lx, ly, 3, 0, Math.PI * 2);
  ctx.fill();
}

function renderCharts() {
  drawChart($("chart-events"), S.series.events, "#60a5fa", fmtRate);
  drawChart($("chart-cost"), S.series.cost, "#f59e0b", fmtMoney);
  const last = (s) => (s.length ? s[s.length - 1][1] : 0);
  $("chart-events-now").textContent = `${fmtRate(last(S.series.events))} /min`;
  $("chart-cost-now").textContent = `${fmtMoney(last(S.series.cost))} /min`;
}

// -- wiring -------------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    $("connect").disabled = true;
    $("signin-error").textContent = "";
    try {
      await connect(token);
    } catch (err) {
      S.token = "";
      $("signin-error").textContent = err.status === 401
        ? "This token is not valid for this server."
        : err.message;
    } finally {
      $("connect").disabled = false;
    }
  });
  $("signout").addEventListener("click", () => signOut());
  $("global-kill").addEventListener("click", toggleGlobal);
  $("fleet-filter").addEventListener("input", (event) => {
    S.filter = event.target.value;
    S.page = 0;
    invalidate("table");
  });
  $("fleet-state").addEventListener("change", (event) => {
    S.stateFilter = event.target.value;
    S.page = 0;
    invalidate("table");
  });
  $("page-prev").addEventListener("click", () => { S.page = Math.max(0, S.page - 1); invalidate("table"); });
  $("page-next").addEventListener("click", () => { S.page += 1; invalidate("table"); });
  for (const th of document.querySelectorAll("th.sortable")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      S.sort = S.sort.key === key ? { key, asc: !S.sort.asc } : { key, asc: key === "agent" || key === "state" };
      invalidate("table");
    });
  }
  for (const button of document.querySelectorAll("#window-picker button")) {
    button.addEventListener("click", () => {
      for (const b of document.querySelectorAll("#window-picker button")) b.classList.toggle("active", b === button);
      S.window = Number(button.dataset.window);
      S.series = { events: [], cost: [] };
      loadAgents().catch(() => {});
      loadFleet().catch(() => {});
      invalidate("charts");
    });
  }
  $("feed-pause").addEventListener("click", () => {
    S.feedPaused = !S.feedPaused;
    $("feed-pause").textContent = S.feedPaused ? "Resume" : "Pause";
  });
  window.addEventListener("resize", () => invalidate("charts"));
  // "Last event" columns age even when nothing else changes.
  setInterval(() => { if (S.me) invalidate("table", "alerts"); }, 5000);

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    connect(saved).catch(() => signOut("Your session's token is no longer accepted."));
  } else {
    $("token-input").focus();
  }
}

wire();
