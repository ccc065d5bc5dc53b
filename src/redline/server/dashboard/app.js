// Redline dashboard: a live view of the fleet, hand-written, no dependencies, no build step.
//
// Data: GET /v1/agents, /v1/metrics, /v1/alerts, /v1/stats (polled), and /v1/stream (Server-Sent
// Events read with fetch() and a stream reader, so the token stays in the Authorization header
// and never appears in a URL). Every DOM update is batched into one animation frame.
//
// Kill state is the server's: each row of /v1/agents carries `state` and `kill`, the kill that
// covers the agent as the monitor decides it (Monitor.kill_for: global, then agent, then
// session). No module here ranks kills; after a kill or revive it asks again.
//
// Modules: state.js (S, invalidate), util.js, api.js, data.js (polling), live.js (the stream),
// actions.js (kill, revive, ack), render.js and chart.js (drawing); this one signs in and out
// and wires the page.

import { ApiError, api } from "./api.js";
import { every, loadAgents, loadAlerts, loadBudgets, loadFleet, loadStats } from "./data.js";
import { stream } from "./live.js";
import { ackAllAlerts, toggleGlobal } from "./actions.js";
import "./render.js";
import { hooks, invalidate, POLL_MS, S, SLOW_POLL_MS, TOKEN_KEY } from "./state.js";
import { $, el } from "./util.js";

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

function start() {
  every(POLL_MS, async () => { await Promise.all([loadAgents(), loadFleet()]); });
  every(SLOW_POLL_MS, async () => { await Promise.all([loadAlerts(), loadStats(), loadBudgets()]); });
  stream();
}

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
  $("alerts-ack-all").addEventListener("click", ackAllAlerts);
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

hooks.signOut = signOut;
wire();
