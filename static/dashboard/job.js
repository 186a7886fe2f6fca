// One job: status, progress, the log tail following live while it runs (or, asked for, the whole log), the result
// once it has ended, and Stop.
import { call, get } from "./api.js";
import { chip, duration, el, errorBox, every, FINAL, jobDuration, shortType, timeCell } from "./util.js";

let config = null; // the dashboard's config.json: where DMSS is, for links to a DMSS job's entity
const loadConfig = () => (config ??= fetch(new URL("config.json", import.meta.url)).then((r) => r.json()).catch(() => ({})));

function dmssLink(address, dmssUrl) {
  if (!address) return null;
  if (!dmssUrl) return el("span", { class: "mono" }, address);
  const target = `${dmssUrl.replace(/\/$/, "")}/api/documents/${encodeURIComponent(address)}?depth=1`;
  return el("a", { href: target, rel: "noopener noreferrer", target: "_blank", class: "mono" }, address);
}

// A job with a retry policy lists its attempts (GET /api/jobs/{uid}: `attempts`, one entry per attempt).
function attempts(value) {
  if (!Array.isArray(value) || !value.length) return null;
  const head = ["#", "Status", "Started", "Ended", "Exit code", "Reason / message"];
  return el("table", { class: "attempts" },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
    el("tbody", {}, value.map((a) => el("tr", { "data-attempt": a.attempt },
      el("td", {}, a.attempt ?? ""),
      el("td", {}, a.status ? chip(a.status) : el("span", { class: "muted" }, "waiting")),
      el("td", {}, timeCell(a.started)),
      el("td", {}, timeCell(a.ended)),
      el("td", { class: "num" }, a.exitCode ?? ""),
      el("td", {}, [a.reason, a.message].filter(Boolean).join(" · "))))));
}

function facts(job, dmssUrl) {
  const rows = [
    ["Message", job.message],
    ["Runner", job.runner && el("span", { title: job.runner.type }, shortType(job.runner.type))],
    ["Started by", job.triggeredBy],
    ["Started", timeCell(job.started)],
    ["Ended", timeCell(job.ended)],
    ["Duration", jobDuration(job)],
    ["Time limit", job.timeLimitSeconds ? duration(job.timeLimitSeconds) : null],
    ["Attempts", attempts(job.attempts)],
    ["DMSS entity", dmssLink(job.dmssAddress, dmssUrl)],
    ["Output target", job.outputTarget],
    ["Schedule", job.kind === "recurring" ? el("a", { href: "#/schedules" }, "on the schedules page") : null],
  ];
  return el("dl", { class: "facts" }, rows.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => [el("dt", {}, k), el("dd", { "data-fact": k }, v)]));
}

const SOURCES = { stored: "stored when it ended", runner: "read from its runner just now", kept: "as the app keeps it" };

function progress(job) {
  const p = job.percentage;
  if (p === null || p === undefined) {
    return FINAL.has(job.status) || job.kind === "recurring" ? null : el("div", { class: "progress" }, el("progress", { "aria-label": "progress" }), " running");
  }
  return el("div", { class: "progress" }, el("progress", { max: 1, value: p, "aria-label": "progress" }), ` ${Math.round(p * 100)} %`);
}

export function jobView(root, uid) {
  const head = el("div", { class: "jobhead" });
  const body = el("div");
  const logBox = el("pre", { id: "log", class: "log", tabindex: 0 });
  const follow = el("input", { type: "checkbox", name: "follow", checked: true });
  const logNote = el("span", { id: "log-note", class: "muted small" });
  const wholeButton = el("button", { type: "button", name: "whole-log", onclick: () => showWholeLog() }, "Whole log");
  const result = el("div", { id: "result" });
  const message = el("div");
  root.append(el("p", {}, el("a", { href: "#/jobs" }, "‹ all jobs")), head, message, body,
    el("h2", {}, "Log ", el("label", { class: "muted small" }, follow, " follow"), " ", wholeButton, " ", logNote), logBox, result);

  let stopped = false;
  let stopPolling = () => {};
  let shownResult = false;
  let wholeShown = false; // the whole log is on screen: the status's tail no longer replaces it

  function showLines(lines) {
    const atBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 24;
    logBox.textContent = lines.join("\n");
    logBox.dataset.lines = String(lines.length);
    if (follow.checked && atBottom) logBox.scrollTop = logBox.scrollHeight;
  }

  // GET jobs/{uid}/log: stored at the end; while the job runs, read from its runner (one runner call a click)
  async function showWholeLog() {
    try {
      const whole = await get(`jobs/${encodeURIComponent(uid)}/log`);
      wholeShown = true;
      showLines(whole.log || []);
      const shown = whole.truncated ? `, the last ${whole.log.length} shown` : "";
      logNote.textContent = `whole log: ${whole.lines} lines${shown} (${SOURCES[whole.source] || whole.source})`;
      wholeButton.textContent = "Refresh whole log";
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  }

  async function stopJob(job) {
    const what = job.kind === "recurring" ? "Remove this recurring job (no more runs)?" : `Stop job ${job.label || job.uid}?`;
    if (!window.confirm(what)) return;
    try {
      await call("DELETE", `jobs/${encodeURIComponent(job.uid)}`);
      await refresh();
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  }

  function render(job, dmssUrl) {
    const stop = FINAL.has(job.status) ? null
      : el("button", { type: "button", class: "danger", name: "stop", onclick: () => stopJob(job) }, job.kind === "recurring" ? "Remove" : "Stop");
    head.replaceChildren(...[el("h1", {}, job.label || "job", " ", chip(job.status)), el("p", { class: "mono muted" }, job.uid), stop].filter(Boolean));
    body.replaceChildren(...[progress(job), facts(job, dmssUrl)].filter(Boolean));
    if (!wholeShown) showLines(job.log || []);
  }

  async function showResult(job) {
    if (shownResult || !FINAL.has(job.status) || job.kind === "recurring") return;
    shownResult = true;
    try {
      const r = await get(`jobs/${encodeURIComponent(job.uid)}/result`);
      result.replaceChildren(el("h2", {}, "Result"), el("pre", { class: "log result" }, r.result || "(empty)"));
    } catch (error) {
      result.replaceChildren(el("h2", {}, "Result"), errorBox(error));
    }
  }

  async function refresh() {
    try {
      const [job, cfg] = await Promise.all([get(`jobs/${encodeURIComponent(uid)}`), loadConfig()]);
      if (stopped) return;
      message.replaceChildren();
      render(job, cfg.dmssUrl);
      if (FINAL.has(job.status)) {
        stopPolling();
        await showResult(job);
      }
    } catch (error) {
      if (!stopped) message.replaceChildren(errorBox(error));
    }
  }

  refresh();
  stopPolling = every(2000, refresh); // each read also asks a running job's orchestration to look (at most every 5 s)
  return () => { stopped = true; stopPolling(); };
}
