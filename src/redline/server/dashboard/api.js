// The API: JSON calls carrying the token in the Authorization header.

import { hooks, S } from "./state.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, { method = "GET", body } = {}) {
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
    if (r.status === 401 && S.me) hooks.signOut("The server no longer accepts this token.");
    throw new ApiError(r.status, message);
  }
  return data;
}
