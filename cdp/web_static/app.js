// cdp on-call page (served as /static/app.js; CSP allows no inline scripts).
// Charts come from /static/chart.js (rpoChart, timelineBand, utcClock). Times are UTC.
"use strict";
const POLL_MS = 1000;
const HOUR_S = 3600;
const RPO_REFRESH_EVERY = 60;  // polls between reloads of the target's RPO history
let chosen = null;
let downSince = null;
let lastGroups = [];
let lastTimeS = Date.now() / 1000;  // the target's clock at the newest status
const rpoSeries = new Map();  // group -> [[unix s, rpo s], ...] of the last hour
let rpoCountdown = 0;

function utcTime(iso) {
  return iso ? `${iso.slice(0, 19).replace("T", " ")}` : "-";
}

function fmtBytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function resyncText(g) {
  if (g.state !== "resyncing") return "";
  const total = g.resync_total_bytes, got = g.resync_received_bytes;
  const pct = total ? `${Math.floor(100 * got / total)} %` : "?";
  const eta = g.resync_eta_seconds ? `, ETA ${Math.round(g.resync_eta_seconds)} s` : "";
  return `${pct} of ${fmtBytes(total)}${eta}`;
}

function isoOfNs(ns) {
  return utcTime(new Date(ns / 1e6).toISOString());
}

function detectorText(g) {
  // "training until <UTC>" / "watching since seq N", then the retention lock in force.
  let text = "-";
  if (g.detector_phase === "training") {
    text = g.detector_training_until_unix_ns
      ? `training until ${isoOfNs(g.detector_training_until_unix_ns)}` : "training (no write yet)";
  } else if (g.detector_phase) {
    text = g.detector_phase + (g.detector_watching_from_seq
      ? ` since seq ${g.detector_watching_from_seq.toLocaleString("en")}` : "");
  }
  return text + (g.retention_lock_seconds ? `; lock ${g.retention_lock_seconds} s` : "");
}

function connection(ok, text) {
  const el = document.getElementById("conn");
  el.className = ok ? "ok" : "down";
  el.textContent = text;
  document.getElementById("groups").classList.toggle("stale", !ok);
  document.getElementById("timeline").classList.toggle("stale", !ok);
  document.getElementById("charts").classList.toggle("stale", !ok);
}

function rpoCell(row, g) {
  const over = g.rpo_seconds > g.rpo_threshold_s;
  cell(row, `${g.rpo_seconds.toFixed(1)} s / ${g.rpo_threshold_s.toFixed(0)} s`,
    `num rpo${over ? " breach" : ""}`);
}

function verifiedText(g) {
  if (g.last_verify_result === null) return "never";
  const at = g.last_verified_point ? utcTime(g.last_verified_point) : "no point";
  return g.last_verify_result === "passed" ? at : `${at} (newest run ${g.last_verify_result})`;
}

function showGroups(groups, nowS) {
  const body = document.getElementById("groups");
  body.replaceChildren();
  document.getElementById("empty").hidden = groups.length > 0;
  for (const g of groups) {
    const row = body.insertRow();
    row.dataset.group = g.group_id;
    if (g.group_id === chosen) row.classList.add("chosen");
    cell(row, g.group_id, "group");
    cell(row, g.member_id || "-");
    cell(row, g.state, `state state-${g.state}`);
    const op = (g.failovers || []).find((o) => !o.finished);
    cell(row, g.lifecycle + (g.epoch ? ` (epoch ${g.epoch})` : "") +
      (op ? ` — ${op.kind}: ${op.status}, phase ${op.phase}/${op.phases}` : ""),
      `lifecycle lifecycle-${g.lifecycle}`);
    cell(row, g.durable_seq.toLocaleString("en"), "num durable");
    cell(row, g.applied_seq.toLocaleString("en"), "num applied");
    cell(row, `${g.lag_seconds.toFixed(1)} s`, "num lag");
    rpoCell(row, g);
    const restorable = g.durable_seq > 0 ? (nowS - g.rpo_seconds) * 1000 : null;
    cell(row, restorable ? utcTime(new Date(restorable).toISOString()) : "-", "restorable");
    cell(row, verifiedText(g),
      `verified${g.last_verify_result && g.last_verify_result !== "passed" ? " breach" : ""}`);
    cell(row, fmtBytes(g.journal_bytes), "num journal");
    cell(row, resyncText(g), "resync");
    cell(row, detectorText(g), `detector detector-${g.detector_phase || "none"}`);
    row.addEventListener("click", () => { chosen = g.group_id; pollTimeline(); });
  }
}

function groupRpo(groups) {
  // One value per group: the worst member's RPO (a group is as old as its oldest member).
  const out = new Map();
  for (const g of groups) {
    const old = out.get(g.group_id);
    if (!old || g.rpo_seconds > old.rpo_seconds) out.set(g.group_id, g);
  }
  return out;
}

async function loadRpoHistory(group) {
  const h = await getJson(`/api/v1/groups/${encodeURIComponent(group)}/rpo`);
  rpoSeries.set(group, h.samples.slice());
}

async function showCharts(groups, nowS) {
  const worst = groupRpo(groups);
  if (rpoCountdown-- <= 0) {
    rpoCountdown = RPO_REFRESH_EVERY;
    for (const group of worst.keys()) {
      try { await loadRpoHistory(group); } catch (err) { rpoCountdown = 0; }
    }
  }
  const box = document.getElementById("charts");
  box.replaceChildren();
  for (const [group, g] of worst) {
    const series = rpoSeries.get(group) || [];
    series.push([nowS, g.rpo_seconds]);
    while (series.length > 0 && series[0][0] < nowS - HOUR_S) series.shift();
    rpoSeries.set(group, series);
    const fig = document.createElement("figure");
    fig.className = "chart-card";
    fig.dataset.group = group;
    fig.appendChild(rpoChart(series, g.rpo_threshold_s, nowS, HOUR_S));
    const cap = document.createElement("figcaption");
    const over = g.rpo_seconds > g.rpo_threshold_s;
    cap.textContent = `${group}: RPO ${g.rpo_seconds.toFixed(1)} s of ${g.rpo_threshold_s} s` +
      (over ? " — OVER THRESHOLD" : "");
    if (over) cap.className = "breach";
    fig.appendChild(cap);
    box.appendChild(fig);
  }
  document.getElementById("charts-section").hidden = worst.size === 0;
}

function showTimeline(t) {
  document.getElementById("timeline-section").hidden = false;
  document.getElementById("timeline-group").textContent = t.group;
  const health = document.getElementById("timeline-health");
  health.className = `health-${t.history_health}`;
  health.textContent = `history: ${Math.round(t.available_history_s)} s available of a ` +
    `${Math.round(t.history_window_s)} s window (${t.history_health}); journal ` +
    `${fmtBytes(t.journal_bytes)} of ${fmtBytes(t.journal_limit_bytes)}` +
    (t.history_message ? ` — ${t.history_message}` : "");
  const g = lastGroups.find((x) => x.group_id === t.group);
  document.getElementById("band").replaceChildren(
    timelineBand(t.spans, t.marks || [], g ? g.last_verified_point_unix_ns : null, lastTimeS * 1000,
                 t.suspect_bands || []));
  const body = document.getElementById("timeline");
  body.replaceChildren();
  for (const s of t.spans) {
    const row = body.insertRow();
    row.className = s.restorable ? "interval" : "gap";
    cell(row, utcTime(s.start));
    cell(row, utcTime(s.end));
    cell(row, `${s.start_seq}-${s.end_seq}`);
    cell(row, s.restorable ? `${s.points.toLocaleString("en")} restore points`
                           : `NO RESTORE POINTS (${s.cause})`);
  }
  for (const b of t.suspect_bands || []) {
    const row = body.insertRow();
    row.className = "suspect";
    cell(row, b.start ? utcTime(b.start) : "-");
    cell(row, b.open ? "now (open)" : (b.end ? utcTime(b.end) : "-"));
    cell(row, `${b.start_seq}-${b.end_seq}`);
    cell(row, `SUSPECT (${b.suspicion_id}${b.member_id ? "@" + b.member_id : ""}: ${b.signal})`);
  }
}

function showAlerts(groups) {
  // Standing suspicions (possible ransomware): the onset and the last clean point.
  const box = document.getElementById("alerts");
  box.replaceChildren();
  for (const g of groups.filter((x) => x.standing_suspicions > 0)) {
    const p = document.createElement("p");
    p.className = "alert";
    const onset = g.suspicion_onset_unix_ns
      ? utcTime(new Date(g.suspicion_onset_unix_ns / 1e6).toISOString()) : "?";
    const clean = g.last_clean_seq
      ? `last clean point seq ${g.last_clean_seq} ` +
        `(${utcTime(new Date(g.last_clean_time_unix_ns / 1e6).toISOString())})`
      : "NO clean point";
    p.textContent = `ALERT ${g.group_id}${g.member_id ? "@" + g.member_id : ""}: ` +
      `${g.standing_suspicions} standing suspicion(s), possible ransomware, since ${onset}; ` +
      `${clean}; recover with --at last-clean`;
    box.appendChild(p);
  }
  for (const g of groups) {
    // Intake refused to keep history, and an unexplained jump of the target's clock.
    const name = `${g.group_id}${g.member_id ? "@" + g.member_id : ""}`;
    const lines = [];
    if (g.intake_refused_by) {
      lines.push(`ALERT ${name}: intake refused (${g.intake_refused_by}): ` +
        g.intake_refused_reason);
    }
    if (g.clock_jump_seconds) {
      const jump = Math.round(g.clock_jump_seconds);
      lines.push(`ALERT ${name}: the target's clock jumped ${jump > 0 ? "+" : ""}${jump} s ` +
        "against its boot clock; nothing leaves the history by time until it is set right");
    }
    for (const text of lines) {
      const p = document.createElement("p");
      p.className = "alert guard";
      p.textContent = text;
      box.appendChild(p);
    }
  }
  box.hidden = box.childElementCount === 0;
}

const KIND_TEXT = {
  test: "test failover", live: "live failover", planned: "planned failover",
  "stop-test": "stop-test", rollback: "rollback", failback: "failback", verify: "verification",
};

function operations(groups) {
  // Each reported operation once (a plan spans groups), active ones first.
  const seen = new Map();
  for (const g of groups) {
    for (const op of g.failovers || []) {
      if (!seen.has(op.plan)) seen.set(op.plan, op);
    }
  }
  return [...seen.values()].sort((a, b) => a.finished - b.finished);
}

function operationCard(op, nowS) {
  const card = document.createElement("div");
  card.className = `failover${op.finished ? " finished" : ""}${op.status === "failed" ? " failed" : ""}`;
  card.dataset.plan = op.plan;
  const head = document.createElement("h3");
  const ago = Math.max(0, Math.round(nowS - op.started_unix));
  head.textContent = `${KIND_TEXT[op.kind] || op.kind} of plan ${op.plan}: ${op.status}, ` +
    `phase ${op.phase} of ${op.phases}` + (op.finished ? " (finished)" : "");
  const who = document.createElement("p");
  who.className = "failover-who";
  who.textContent = `groups ${op.groups.join(", ")}; started by ${op.started_by || "?"} at ` +
    `${utcTime(op.started)} UTC (${ago} s ago); reported by ${op.reported_by}, last at ` +
    `${utcTime(op.updated)} UTC; steps: ${op.counts.ok} ok, ${op.counts.running} running, ` +
    `${op.counts.failed} failed, ${op.counts.pending} pending`;
  const table = document.createElement("table");
  const hrow = table.createTHead().insertRow();
  for (const h of ["phase", "step", "state", "time", "error"]) {
    const th = document.createElement("th");
    th.textContent = h;
    hrow.appendChild(th);
  }
  const body = table.createTBody();
  for (const s of op.steps) {
    const row = body.insertRow();
    row.dataset.step = s.id;
    cell(row, String(s.phase), "num");
    cell(row, s.description);
    cell(row, s.state, `step-state step-${s.state}`);
    cell(row, s.state === "ok" || s.state === "running" ? `${s.seconds.toFixed(1)} s` : "", "num");
    cell(row, s.error, s.error ? "gap" : "");
  }
  card.append(head, who, table);
  return card;
}

function showOperations(groups, nowS) {
  const ops = operations(groups);
  document.getElementById("failovers").replaceChildren(...ops.map((op) => operationCard(op, nowS)));
  document.getElementById("failovers-section").hidden = ops.length === 0;
}

async function getJson(url) {
  const resp = await fetch(url, { cache: "no-store" });
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
  return data;
}

async function pollTimeline() {
  if (chosen === null) return;
  const group = chosen;
  try {
    const t = await getJson(`/api/v1/groups/${encodeURIComponent(group)}/timeline`);
    if (group === chosen) showTimeline(t);
  } catch (err) {
    document.getElementById("timeline-health").textContent = `timeline unavailable: ${err}`;
  }
}

const AUDIT_EVERY = 10;  // polls between audit refreshes
let auditCountdown = 0;

function showAudit(entries) {
  const body = document.getElementById("audit");
  body.replaceChildren();
  for (const e of entries.slice().reverse()) {
    const row = body.insertRow();
    cell(row, utcTime(e.time));
    cell(row, e.identity);
    cell(row, e.action);
    cell(row, e.object);
    cell(row, e.outcome, e.outcome === "ok" ? "" : "gap");
  }
  document.getElementById("audit-section").hidden = entries.length === 0;
}

async function pollAudit() {
  if (auditCountdown-- > 0) return;
  auditCountdown = AUDIT_EVERY;
  try {
    showAudit((await getJson("/api/v1/audit")).entries);
  } catch (err) {
    auditCountdown = 0;
  }
}

function badge(groups) {
  const streaming = groups.filter((g) => g.source_connected).length;
  const broken = groups.filter((g) => ["error", "resync_required"].includes(g.state)).length;
  const over = groups.filter((g) => g.rpo_seconds > g.rpo_threshold_s).length;
  const suspect = groups.filter((g) => g.standing_suspicions > 0).length;
  const parts = [`${streaming} of ${groups.length} group members with a connected source`];
  if (over) parts.push(`${over} over the RPO threshold`);
  if (broken) parts.push(`${broken} need attention`);
  if (suspect) parts.push(`${suspect} with a ransomware alert`);
  return { text: parts.join(", "), ok: over === 0 && broken === 0 && suspect === 0 };
}

async function poll() {
  try {
    const data = await getJson("/api/v1/status");
    downSince = null;
    lastGroups = data.groups;
    lastTimeS = data.time;
    showGroups(data.groups, data.time);
    showOperations(data.groups, data.time);
    showAlerts(data.groups);
    const b = badge(data.groups);
    connection(true, `target connected; updated ${utcClock(data.time * 1000)} UTC; ${b.text}`);
    document.getElementById("conn").classList.toggle("warn", !b.ok);
    await showCharts(data.groups, data.time);
    await pollTimeline();
    await pollAudit();
  } catch (err) {
    downSince = downSince || new Date();
    connection(false, `TARGET UNREACHABLE since ${utcClock(downSince.getTime())} UTC: the ` +
      `numbers below are stale (last good update shown greyed out) — ${err}`);
  }
  setTimeout(poll, POLL_MS);
}
poll();
