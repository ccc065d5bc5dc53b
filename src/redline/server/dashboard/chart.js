// The events/min and cost/min charts, drawn on a canvas.

import { SERIES_SECONDS } from "./state.js";

function niceMax(v) {
  if (v <= 0) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= v) return m * exp;
  return 10 * exp;
}

export function drawChart(canvas, series, color, fmt) {
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
