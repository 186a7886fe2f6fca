// A schedule's recent runs on a time axis (inline SVG): one mark per fire time, coloured by what became of it,
// a bar from start to end for runs that ran, and the next fire time as an open mark.
import { el } from "./util.js";

export const KINDS = {
  started: "started",
  running: "started",
  starting: "started",
  completed: "completed",
  failed: "failed",
  failedToStart: "failed",
  "failed to start": "failed",
  missed: "missed",
  skipped: "skipped",
  removed: "removed",
};
const kindOf = (run) => KINDS[run.status] || (run.uid ? "started" : "skipped");

const W = 640;
const H = 58;
const PAD = 14;
const AXIS = 38;

function label(ms, span) {
  const d = new Date(ms);
  const opts = span > 2 * 86400000 ? { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  return d.toLocaleString(undefined, opts);
}

export function timeline(runs, nextFire) {
  const times = runs.map((r) => Date.parse(r.scheduled)).filter((t) => !Number.isNaN(t));
  const next = nextFire ? Date.parse(nextFire) : NaN;
  const ends = runs.map((r) => Date.parse(r.ended)).filter((t) => !Number.isNaN(t));
  const all = [...times, ...ends, ...(Number.isNaN(next) ? [] : [next])];
  if (!all.length) return el("p", { class: "muted" }, "no runs yet");
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (hi - lo < 60000) { lo -= 30000; hi += 30000; }
  const x = (t) => PAD + ((t - lo) / (hi - lo)) * (W - 2 * PAD);
  const svg = el("svg", { class: "timeline", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "recent runs" });
  svg.append(el("line", { x1: PAD, x2: W - PAD, y1: AXIS, y2: AXIS, class: "axis" }));
  for (const f of [0, 0.5, 1]) {
    const t = lo + f * (hi - lo);
    svg.append(el("line", { x1: x(t), x2: x(t), y1: AXIS, y2: AXIS + 4, class: "axis" }));
    svg.append(el("text", { x: x(t), y: H - 2, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle", class: "tick" }, label(t, hi - lo)));
  }
  for (const run of runs) {
    const t = Date.parse(run.scheduled);
    if (Number.isNaN(t)) continue;
    const kind = kindOf(run);
    const tip = `${run.status || kind} · scheduled ${run.scheduled}${run.started ? ` · started ${run.started}` : ""}${run.ended ? ` · ended ${run.ended}` : ""}${run.reason ? ` · ${run.reason}` : ""}`;
    const g = el("g", { class: `run run-${kind}`, "data-kind": kind, "data-scheduled": run.scheduled }, el("title", {}, tip));
    const s = Date.parse(run.started);
    const e = Date.parse(run.ended);
    if (!Number.isNaN(s) && !Number.isNaN(e) && e > s) {
      g.append(el("rect", { x: x(s), y: AXIS - 17, width: Math.max(2, x(e) - x(s)), height: 4, rx: 2, class: "bar" }));
    }
    g.append(el("circle", { cx: x(t), cy: AXIS - 8, r: 5 }));
    svg.append(g);
  }
  if (!Number.isNaN(next)) {
    svg.append(el("g", { class: "run run-next", "data-kind": "next" }, el("title", {}, `next fire ${nextFire}`),
      el("circle", { cx: x(next), cy: AXIS - 8, r: 5 })));
  }
  return svg;
}

export function legend() {
  return el("div", { class: "legend" }, ["started", "completed", "failed", "missed", "skipped", "removed", "next"].map((k) =>
    el("span", {}, el("svg", { width: 12, height: 12, viewBox: "0 0 12 12", class: `run run-${k}` }, el("circle", { cx: 6, cy: 6, r: 5 })), ` ${k}`)));
}
