// Shared state of the dashboard tab, and the one way to ask for a redraw.
//
// Every part that changes S marks what to redraw with invalidate(); the renderer (render.js)
// registers itself with setRenderer(), so this module depends on nothing and everything may
// import it.

export const POLL_MS = 2000;

export const SLOW_POLL_MS = 5000;

export const PAGE_SIZE = 50;

export const FEED_MAX = 200;

export const SERIES_SECONDS = 600;

export const TOKEN_KEY = "redline.token";

export const S = {
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
  budgets: [],
  alertsTruncated: false,
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

// Parts redrawn at most this often (ms): live events can arrive thousands a second.
export const THROTTLE = { feed: 200, table: 250 };

// Called when the server stops accepting the token (set by app.js, which owns signing out).
export const hooks = { signOut: (_message) => {} };

let renderer = () => {};
export function setRenderer(fn) {
  renderer = fn;
}

export function invalidate(...parts) {
  for (const part of parts) S.dirty.add(part);
  if (!S.frame) S.frame = requestAnimationFrame(() => renderer());
}
