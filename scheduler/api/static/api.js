// The API client: JSON in and out, the Authorization header, and a login prompt on 401.
import { authHeaders } from "./auth.js";

let onUnauthorized = () => {};

export function whenUnauthorized(callback) { onUnauthorized = callback; }

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export async function api(method, path, body) {
  const headers = {Accept: "application/json", ...authHeaders()};
  const init = {method, headers, credentials: "omit"};   // "omit": a 401 must not open the browser's own prompt
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = {message: text}; }
  if (response.status === 401) onUnauthorized();
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = path => api("GET", path);

/** GET of a text resource (e.g. the HAProxy configuration); null when it is not there (404/503). */
export async function getText(path) {
  const response = await fetch(path, {credentials: "omit", headers: {Accept: "text/plain", ...authHeaders()}});
  if (response.status === 401) onUnauthorized();
  return response.ok ? response.text() : null;
}

/** The path of an app id below /v2/apps (or another prefix): "/a/b" -> "/a/b", each part encoded. */
export function idPath(id) {
  return "/" + id.split("/").filter(Boolean).map(encodeURIComponent).join("/");
}

/** GET that answers null on 404 (an optional resource, e.g. a sub-API not running here). */
export async function getOptional(path) {
  try {
    return await get(path);
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}
