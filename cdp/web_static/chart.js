// cdp on-call page charts: plain SVG built here, served with the page (/static/chart.js).
// No library, no CDN: a line chart of RPO against its threshold and a timeline band.
// Colours come from app.css classes (CSP forbids inline styles); data is only ever
// put into the page as text or as numeric attributes.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, cls) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (cls) el.setAttribute("class", cls);
  return el;
}

function svgText(x, y, text, cls, anchor) {
  const t = svgEl("text", { x, y, "text-anchor": anchor || "start" }, cls);
  t.textContent = text;
  return t;
}

function titled(el, text) {
  const t = svgEl("title");
  t.textContent = text;
  el.appendChild(t);
  return el;
}

function utcClock(ms) {
  return new Date(ms).toISOString().slice(11, 19);
}

function fmtSeconds(s) {
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(0)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// RPO over [now - spanS, now] against a threshold; samples are [unix s, rpo s] pairs.
function rpoChart(samples, thresholdS, nowS, spanS) {
  const W = 360, H = 120, L = 44, R = 8, T = 8, B = 20;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H,
                             role: "img" }, "chart rpo-chart");
  const shown = samples.filter(([t]) => t >= nowS - spanS);
  const top = Math.max(thresholdS * 1.25, ...shown.map(([, v]) => v), 1);
  const x = (t) => L + (W - L - R) * (1 - (nowS - t) / spanS);
  const y = (v) => T + (H - T - B) * (1 - v / top);
  svg.appendChild(svgEl("rect", { x: L, y: T, width: W - L - R, height: H - T - B }, "plot"));
  for (const v of [0, top / 2, top]) {
    svg.appendChild(svgText(L - 4, y(v) + 4, fmtSeconds(v), "axis", "end"));
  }
  for (const ago of [spanS, spanS / 2, 0]) {
    const label = ago === 0 ? "now" : `-${fmtSeconds(ago)}`;
    const anchor = ago === 0 ? "end" : ago === spanS ? "start" : "middle";
    svg.appendChild(svgText(x(nowS - ago), H - 6, label, "axis", anchor));
  }
  const over = svgEl("rect", { x: L, y: T, width: W - L - R, height: Math.max(0, y(thresholdS) - T) },
                     "over-zone");
  svg.appendChild(over);
  svg.appendChild(titled(svgEl("line", { x1: L, x2: W - R, y1: y(thresholdS), y2: y(thresholdS) },
                               "threshold"), `RPO threshold ${fmtSeconds(thresholdS)}`));
  if (shown.length > 0) {
    const pts = shown.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const breached = shown[shown.length - 1][1] > thresholdS;
    svg.appendChild(svgEl("polyline", { points: pts }, breached ? "rpo-line breach" : "rpo-line"));
    const [lt, lv] = shown[shown.length - 1];
    svg.appendChild(titled(svgEl("circle", { cx: x(lt), cy: y(lv), r: 3 },
                                 breached ? "rpo-dot breach" : "rpo-dot"), `RPO now ${fmtSeconds(lv)}`));
  }
  return svg;
}

function gapClass(cause) {
  const c = (cause || "").split(" ")[0].replace(/[^a-z_-]/g, "");
  return ["retention", "resync", "resync_required", "damage", "lost"].includes(c)
    ? `band-gap gap-${c}` : "band-gap gap-other";
}

// The timeline as a band: restorable intervals, gaps coloured by cause, labelled points,
// suspect bands (red) over standing suspicions, the last verified point, up to now (the stretch after the newest point is the RPO).
// Times are ISO strings (UTC) or Unix ns; nowMs is the target's clock.
function timelineBand(spans, marks, verifiedNs, nowMs, suspect) {
  const W = 720, H = 64, R = 8, T = 18, BH = 22;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img" },
                    "chart band");
  const timed = spans.filter((s) => s.start && s.end);
  const older = spans.filter((s) => !s.start && !s.restorable);  // cut before the timed part
  const L = older.length > 0 ? 56 : 8;
  for (const s of older) {
    svg.appendChild(titled(svgEl("rect", { x: 8, y: T, width: L - 12, height: BH }, gapClass(s.cause)),
                           `seqs ${s.start_seq}-${s.end_seq}: no restore points (${s.cause})`));
    svg.appendChild(svgText(8, T + BH + 14, s.cause.split(" ")[0], "axis"));
  }
  if (timed.length === 0) {
    svg.appendChild(svgText(L, T + 14, "no restorable history yet", "axis"));
    return svg;
  }
  const t1 = Math.max(Date.parse(timed[timed.length - 1].end), nowMs);
  const t0 = Math.min(Date.parse(timed[0].start), t1 - 10_000);  // at least 10 s wide
  const x = (ms) => L + (W - L - R) * ((ms - t0) / (t1 - t0));
  for (const s of timed) {
    const a = x(Date.parse(s.start)), b = x(Date.parse(s.end));
    const cls = s.restorable ? "band-ok" : gapClass(s.cause);
    const what = s.restorable ? `${s.points} restore points` : `no restore points (${s.cause})`;
    const rect = svgEl("rect", { x: a, y: T, width: Math.max(b - a, 2), height: BH }, cls);
    svg.appendChild(titled(rect, `${s.start} – ${s.end}: seqs ${s.start_seq}-${s.end_seq}, ${what}`));
  }
  for (const b of suspect || []) {  // standing suspicions: every point from the onset on
    if (!b.start) continue;
    const a = Math.max(x(Date.parse(b.start)), L);
    const e = b.open || !b.end ? W - R : x(Date.parse(b.end));
    const rect = svgEl("rect", { x: a, y: T - 4, width: Math.max(e - a, 3), height: BH + 8 },
                       "band-suspect");
    svg.appendChild(titled(rect, `SUSPECT from ${b.start} (seq ${b.start_seq}, ` +
                                 `${b.suspicion_id}: ${b.signal})${b.open ? ", open" : ""}`));
  }
  const newest = Date.parse(timed[timed.length - 1].end);
  if (t1 > newest) {  // the RPO: nothing restorable yet after the newest point
    const rect = svgEl("rect", { x: x(newest), y: T + 4, width: x(t1) - x(newest), height: BH - 8 },
                       "band-rpo");
    svg.appendChild(titled(rect, `since ${timed[timed.length - 1].end}: no newer restore point`));
  }
  for (const m of marks) {
    const mx = x(m.time_unix_ns / 1e6);
    if (mx < L || mx > W - R) continue;
    const line = svgEl("line", { x1: mx, x2: mx, y1: T - 6, y2: T + BH }, `mark mark-${m.kind}`);
    svg.appendChild(titled(line, `${m.kind} ${m.label} (seq ${m.seq}, ${m.time}` +
                                 `${m.verdict ? ", " + m.verdict : ""})`));
  }
  if (verifiedNs) {
    const vx = Math.min(Math.max(x(verifiedNs / 1e6), L), W - R);
    const d = `M${vx - 5},${T + BH + 10} L${vx},${T + BH} L${vx + 5},${T + BH + 10} Z`;
    svg.appendChild(titled(svgEl("path", { d }, "verified-mark"), "last verified point"));
  }
  svg.appendChild(svgText(L, 12, `${new Date(t0).toISOString().slice(0, 19)}Z`, "axis"));
  svg.appendChild(svgText(W - R, 12, `now ${new Date(t1).toISOString().slice(0, 19)}Z`, "axis", "end"));
  return svg;
}
