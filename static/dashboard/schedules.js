// Schedules: each recurring job (listed as `registered`) with its cron, zone, policy, state, next fire times
// (UTC, the schedule's zone, this browser's) and a timeline of its recent runs; Suspend/Resume, and Run now /
// Backfill when the app has those routes (read from its OpenAPI document, so the page works either way).
import { call, get, openapi } from "./api.js";
import { chip, el, errorBox, every, time } from "./util.js";
import { legend, timeline } from "./timeline.js";

const LIST_PAGE = 200;
const LIST_MAX = 2000;

async function recurringJobs() {
  const found = [];
  let token = null;
  let scanned = 0;
  do {
    const body = await get("jobs", { limit: LIST_PAGE, status: "registered", continuationToken: token });
    scanned += body.jobs.length;
    found.push(...body.jobs.filter((j) => j.kind === "recurring"));
    token = body.continuationToken;
  } while (token && scanned < LIST_MAX);
  return found;
}

// The POST operation of a job's sub-route (`run`, `backfill`) when the document has it, else null.
function subRoute(doc, name) {
  for (const [path, item] of Object.entries(doc.paths || {})) {
    if (item.post && new RegExp(`^/jobs/\\{[^}]+\\}/${name}$`).test(path)) return { path, op: item.post };
  }
  return null;
}

function resolve(doc, schema) {
  let s = schema || {};
  for (let i = 0; i < 5 && s.$ref; i++) s = s.$ref.split("/").slice(1).reduce((o, k) => (o || {})[k], doc) || {};
  return s;
}

// Values for a route's query parameters and JSON body, asked one by one (their names and descriptions are the
// document's). Returns null when the user cancels.
function ask(doc, op, title) {
  const query = {};
  for (const p of op.parameters || []) {
    if (p.in !== "query") continue;
    const value = window.prompt(`${title}: ${p.name}${p.description ? ` (${p.description})` : ""}`, "");
    if (value === null) return null;
    if (value) query[p.name] = value;
  }
  const json = (op.requestBody && op.requestBody.content && op.requestBody.content["application/json"]) || {};
  const schema = resolve(doc, json.schema);
  const example = (Object.values(json.examples || {})[0] || {}).value || {};
  let body;
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    const value = window.prompt(`${title}: ${name}${prop.description ? ` (${prop.description})` : ""}`, example[name] ?? "");
    if (value === null) return null;
    if (value) (body ??= {})[name] = ["integer", "number"].includes(resolve(doc, prop).type) ? Number(value) : value;
  }
  return { query, body };
}

function fireTimes(preview) {
  const rows = (preview.fireTimes || []).map((f) =>
    el("tr", {}, el("td", { class: "mono" }, f.utc), el("td", { class: "mono" }, `${f.local} (${f.weekday})`), el("td", {}, time(f.utc))));
  return el("table", { class: "fires" },
    el("thead", {}, el("tr", {}, el("th", {}, "UTC"), el("th", {}, `in ${preview.timezone}`), el("th", {}, "your time"))),
    el("tbody", {}, rows));
}

// What the last Run now / Backfill answered, per schedule, shown on its card after the refresh.
const noted = new Map();
function replyNote(reply) {
  if (reply.message) return reply.message;
  if (reply.backfill) return `backfill: ${Object.entries(reply.backfill).filter(([, v]) => typeof v === "number").map(([k, v]) => `${k} ${v}`).join(" · ")}`;
  return "done";
}

function card(job, preview, doc, refresh) {
  const s = job.schedule || {};
  const uid = encodeURIComponent(job.uid);
  const message = el("div");
  const act = (label, fn) => el("button", { type: "button", name: label.toLowerCase().replace(/\s/g, "-"), onclick: async () => {
    try {
      const reply = await fn();
      if (reply) noted.set(job.uid, replyNote(reply));
      await refresh();
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  } }, label);
  if (noted.has(job.uid)) message.replaceChildren(el("p", { class: "note" }, noted.get(job.uid)));
  const buttons = [];
  if (s.state === "active") buttons.push(act("Suspend", () => call("POST", `jobs/${uid}/suspend`)));
  if (s.state === "suspended") buttons.push(act("Resume", () => call("POST", `jobs/${uid}/resume`)));
  for (const [name, label] of [["run", "Run now"], ["backfill", "Backfill"]]) {
    const found = subRoute(doc, name);
    if (!found) continue;
    buttons.push(act(label, async () => {
      if (name === "run" && !window.confirm(`Start a run of ${job.label || job.uid} now?`)) return null;
      const values = ask(doc, found.op, label);
      return values ? call("POST", `jobs/${uid}/${name}`, values.query, values.body) : null;
    }));
  }
  const counts = Object.entries(s.counts || {}).map(([k, v]) => `${k} ${v}`).join(" · ");
  const numbers = (o) => Object.entries(o || {}).filter(([, v]) => typeof v === "number").map(([k, v]) => `${k} ${v}`).join(" · ");
  return el("section", { class: "schedule", "data-uid": job.uid, "data-state": s.state },
    el("h2", {}, el("a", { href: `#/job/${uid}` }, job.label || job.uid), " ", chip(s.state === "suspended" ? "suspended" : job.status),
      el("span", { class: `state state-${s.state}` }, s.state)),
    el("dl", { class: "facts" },
      el("dt", {}, "Cron"), el("dd", { class: "mono", "data-fact": "cron" }, `${s.cron}${s.weekdayDialect ? ` (${s.weekdayDialect} weekdays)` : ""}`),
      el("dt", {}, "Time zone"), el("dd", {}, s.timezone || "UTC"),
      el("dt", {}, "Policy"), el("dd", {}, s.concurrencyPolicy || ""),
      el("dt", {}, "Runs"), el("dd", {}, counts),
      s.suspendedReason ? [el("dt", {}, "Suspended"), el("dd", {}, s.suspendedReason)] : null,
      s.backfill && numbers(s.backfill) ? [el("dt", {}, "Backfill"), el("dd", { "data-fact": "backfill" }, numbers(s.backfill))] : null),
    el("h3", {}, "Next fire times"), preview ? fireTimes(preview) : el("p", { class: "muted" }, "none"),
    el("h3", {}, "Recent runs"), timeline(s.runs || [], s.nextFire), legend(),
    el("div", { class: "actions" }, buttons), message);
}

export function schedulesView(root) {
  const list = el("div", { id: "schedules" });
  const message = el("div");
  root.append(el("h1", {}, "Schedules"), message, list);
  let stopped = false;
  async function load() {
    try {
      const [jobs, doc] = await Promise.all([recurringJobs(), openapi()]);
      const cards = await Promise.all(jobs.map(async (j) => {
        const path = `jobs/${encodeURIComponent(j.uid)}`;
        const [job, preview] = await Promise.all([get(path), get(`${path}/schedule`, { next: 5 }).catch(() => null)]);
        return card(job, preview, doc, load);
      }));
      if (stopped) return;
      message.replaceChildren();
      list.replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, "no recurring jobs")]));
      list.dataset.ready = "true";
    } catch (error) {
      if (!stopped) message.replaceChildren(errorBox(error));
    }
  }
  load();
  const stop = every(15000, load);
  return () => { stopped = true; stop(); };
}
