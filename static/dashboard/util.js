// Small DOM and formatting helpers. Text goes in as text (textContent), never as HTML.
export function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "line", "circle", "rect", "text", "title", "g"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.setAttribute("class", v);
    else if (k in node && !svg && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const FINAL = new Set(["completed", "failed", "removed"]);
export const STATUSES = ["registered", "not started", "starting", "running", "failed", "completed", "removed", "unknown"];

// The DM web app's job plugin shows a status as an EDS Chip: failed -> variant "error", completed -> "active",
// anything else -> "default" (equinor/dm-core-packages, packages/dm-core-plugins/src/job/common.tsx getVariant,
// used by JobControl/JobControl.tsx). style.css gives .chip-* the EDS Chip tokens' colours.
export function chipVariant(status) {
  if (status === "failed") return "error";
  if (status === "completed") return "active";
  return "default";
}

export function chip(status) {
  const s = status || "unknown";
  return el("span", { class: `chip chip-${chipVariant(s)}`, "data-status": s }, s);
}

export function shortType(type) {
  if (!type) return "";
  return String(type).split(/[/:]/).filter(Boolean).pop();
}

export function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function timeCell(iso) {
  return iso ? el("time", { datetime: iso, title: iso }, time(iso)) : "";
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

// How long a job ran (or has run so far: then with a trailing "…").
export function jobDuration(job) {
  if (!job || !job.started) return "";
  const start = Date.parse(job.started);
  if (job.ended) return duration((Date.parse(job.ended) - start) / 1000);
  if (FINAL.has(job.status) || job.kind === "recurring") return "";
  return `${duration((Date.now() - start) / 1000)} …`;
}

export function errorBox(error) {
  return el("p", { class: "error", role: "alert" }, error && error.message ? error.message : String(error));
}

// Run `fn` every `ms` while the page shows the view; returns the stop function.
export function every(ms, fn) {
  const id = setInterval(() => {
    if (!document.hidden) fn();
  }, ms);
  return () => clearInterval(id);
}
