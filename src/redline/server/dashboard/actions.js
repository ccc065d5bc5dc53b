// What an admin can do from the dashboard: kill, revive, kill all, acknowledge. Each asks for
// confirmation, calls the API, then reloads what changed from the server.

import { api } from "./api.js";
import { loadAgents } from "./data.js";
import { invalidate, S } from "./state.js";
import { $, toast } from "./util.js";

export function confirmDialog({ title, text, confirm, reason = false, ttl = false, typed = "" }) {
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

export async function killAgent(name) {
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

export async function reviveAgent(name) {
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

export async function toggleGlobal() {
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

export async function ackAlert(id) {
  try {
    await api(`/v1/alerts/${encodeURIComponent(id)}/ack`, { method: "POST" });
    S.alerts = S.alerts.filter((a) => a.id !== id);
    invalidate("alerts", "kpi");
  } catch (err) { toast(`Acknowledge failed: ${err.message}`, true); }
}

export async function ackAllAlerts() {
  try {
    const body = await api("/v1/alerts/ack", { method: "POST", body: {} });
    const done = new Set(body.alerts.map((a) => a.id));
    S.alerts = S.alerts.filter((a) => !done.has(a.id));
    invalidate("alerts", "kpi");
    toast(`Acknowledged ${done.size} alert${done.size === 1 ? "" : "s"}`);
  } catch (err) { toast(`Acknowledge failed: ${err.message}`, true); }
}
