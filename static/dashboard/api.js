// Calls to this app's API, with the caller's own authorization (the page adds nothing of its own):
// - locally: nothing;
// - with function keys: the key typed once, kept in sessionStorage (this tab, until it closes), sent as x-functions-key;
// - with Entra ID (App Service Authentication): the session cookie, sent by the browser (same origin).
const KEY = "dmjob.functionKey";
export const API = new URL("../", import.meta.url); // this file is <app>/api/ui/api.js: the API is <app>/api/

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

const listeners = new Set();
export const onUnauthorized = (fn) => listeners.add(fn);

export const functionKey = () => sessionStorage.getItem(KEY) || "";
export function setFunctionKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export function url(path, params = {}) {
  const u = new URL(path, API);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  return u;
}

export async function call(method, path, params, body) {
  const headers = { Accept: "application/json" };
  const key = functionKey();
  if (key) headers["x-functions-key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(url(path, params), init);
  const text = await response.text();
  let reply = null;
  try {
    reply = text ? JSON.parse(text) : null;
  } catch {
    reply = null;
  }
  if (!response.ok) {
    if (response.status === 401) listeners.forEach((fn) => fn());
    const message = (reply && reply.message) || (response.status === 401 ? "not authorized: a function key or sign-in is needed" : `HTTP ${response.status}`);
    throw new ApiError(response.status, message, reply);
  }
  return reply;
}

export const get = (path, params) => call("GET", path, params);

// The OpenAPI document, once: which routes this app has (Run now and Backfill appear when they exist).
let documentPromise = null;
export function openapi() {
  documentPromise ??= get("openapi.json").catch(() => ({ paths: {} }));
  return documentPromise;
}
