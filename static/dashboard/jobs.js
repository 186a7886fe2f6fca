// Jobs: the caller's own jobs as GET /api/jobs lists them (newest first), a page at a time with the list's
// continuation token; runner, started, duration and who started it come from each job's status (cached once final).
import { get } from "./api.js";
import { chip, el, errorBox, every, FINAL, jobDuration, shortType, STATUSES, timeCell } from "./util.js";

const PAGE = 25;
const SEARCH_PAGE = 200; // the list has no label filter: a search reads pages of this size ...
const SEARCH_SCAN = 5000; // ... up to this many jobs
const details = new Map(); // uid -> status body

const state = { status: "", search: "", tokens: [null], page: 0, auto: true };
let firstTable = true;

async function fetchPage() {
  const token = state.tokens[state.page];
  if (!state.search) {
    const body = await get("jobs", { limit: PAGE, status: state.status, continuationToken: token });
    return { jobs: body.jobs, next: body.continuationToken, scanned: body.jobs.length };
  }
  const needle = state.search.toLowerCase();
  const jobs = [];
  let next = token;
  let scanned = 0;
  do {
    const body = await get("jobs", { limit: SEARCH_PAGE, status: state.status, continuationToken: next });
    scanned += body.jobs.length;
    jobs.push(...body.jobs.filter((j) => (j.label || "").toLowerCase().includes(needle)));
    next = body.continuationToken;
  } while (next && jobs.length < PAGE && scanned < SEARCH_SCAN);
  return { jobs, next, scanned };
}

function row(job) {
  const d = details.get(job.uid);
  return el("tr", { "data-uid": job.uid, "data-status": (d && d.status) || job.status },
    el("td", {}, chip((d && d.status) || job.status)),
    el("td", {}, el("a", { href: `#/job/${encodeURIComponent(job.uid)}` }, job.label || job.uid.slice(0, 8))),
    el("td", {}, job.kind === "recurring" ? "recurring" : "job"),
    el("td", { title: d ? d.runner.type : "" }, d ? shortType(d.runner.type) : ""),
    el("td", {}, timeCell(d ? d.started : job.created)),
    el("td", { class: "num" }, d ? jobDuration(d) : ""),
    el("td", {}, d ? d.triggeredBy || "" : ""),
    el("td", { class: "mono muted", title: job.uid }, job.uid.slice(0, 8)),
  );
}

// Status bodies for the rows shown, a few at a time; a final job's body no longer changes.
async function fill(jobs, tbody) {
  const wanted = jobs.filter((j) => !details.has(j.uid) || !FINAL.has(details.get(j.uid).status));
  const queue = [...wanted];
  const worker = async () => {
    while (queue.length) {
      const job = queue.shift();
      try {
        details.set(job.uid, await get(`jobs/${encodeURIComponent(job.uid)}`));
      } catch {
        continue; // gone or refused meanwhile: the row keeps what the list said
      }
      const old = tbody.querySelector(`tr[data-uid="${job.uid}"]`);
      if (old) old.replaceWith(row(job));
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
}

export function jobsView(root) {
  const status = el("select", { name: "status", "aria-label": "status" },
    el("option", { value: "" }, "all statuses"), STATUSES.map((s) => el("option", { value: s }, s)));
  status.value = state.status;
  const search = el("input", { type: "search", name: "search", placeholder: "search labels", value: state.search, "aria-label": "search labels" });
  const auto = el("input", { type: "checkbox", name: "auto", checked: state.auto });
  const prev = el("button", { type: "button", name: "prev" }, "‹ newer");
  const next = el("button", { type: "button", name: "next" }, "older ›");
  const info = el("span", { class: "muted", id: "info" });
  const tbody = el("tbody");
  const table = el("table", { id: "jobs" },
    el("thead", {}, el("tr", {}, ["Status", "Label", "Kind", "Runner", "Started", "Duration", "Started by", "Uid"].map((h) => el("th", {}, h)))),
    tbody);
  const message = el("div");
  root.append(
    el("h1", {}, "Jobs"),
    el("div", { class: "toolbar" }, status, search, el("label", {}, auto, " auto-refresh"), prev, next, info),
    message, table);

  let seq = 0;
  async function load() {
    const mine = ++seq;
    try {
      const page = await fetchPage();
      if (mine !== seq) return;
      state.tokens[state.page + 1] = page.next || undefined;
      state.tokens.length = state.page + 2;
      tbody.replaceChildren(...(page.jobs.length ? page.jobs.map(row) : [el("tr", {}, el("td", { colspan: 8, class: "muted" }, "no jobs"))]));
      message.replaceChildren();
      prev.disabled = state.page === 0;
      next.disabled = !page.next;
      info.textContent = `page ${state.page + 1}` + (state.search ? ` · ${page.jobs.length} found in ${page.scanned} jobs` : "");
      table.dataset.ready = "true";
      if (firstTable) {
        firstTable = false;
        performance.mark("dmjob:first-table");
      }
      await fill(page.jobs, tbody);
    } catch (error) {
      if (mine === seq) message.replaceChildren(errorBox(error));
    }
  }
  const restart = () => {
    state.tokens = [null];
    state.page = 0;
    load();
  };
  status.addEventListener("change", () => { state.status = status.value; restart(); });
  let typing;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.search = search.value.trim(); restart(); }, 300);
  });
  auto.addEventListener("change", () => { state.auto = auto.checked; });
  prev.addEventListener("click", () => { if (state.page > 0) { state.page -= 1; load(); } });
  next.addEventListener("click", () => { if (state.tokens[state.page + 1]) { state.page += 1; load(); } });
  load();
  const stop = every(5000, () => { if (state.auto) load(); });
  return () => { seq++; stop(); clearTimeout(typing); };
}
