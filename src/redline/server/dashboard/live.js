// The live stream: /v1/stream read with fetch() and a stream reader, so the token stays in the
// Authorization header and never appears in a URL.

import { loadAlerts, refreshSoon } from "./data.js";
import { hooks, invalidate, S } from "./state.js";
import { $, sleep } from "./util.js";

export function setConn(state) {
  const pill = $("conn");
  pill.className = `pill pill-${state}`;
  pill.textContent = { live: "Live", wait: "Reconnecting…", down: "Offline" }[state];
}

export async function stream() {
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
      if (r.status === 401) { hooks.signOut("The server no longer accepts this token."); return; }
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

export function onFrame(frame) {
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

export function touchAgent(ev) {
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

export function applyGovernance() {
  // A kill or revive from anywhere: which kill now covers each agent is the server's answer.
  refreshSoon();
}
