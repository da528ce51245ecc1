// cdp on-call page (served as /static/app.js; CSP allows no inline scripts).
"use strict";
const POLL_MS = 1000;
let chosen = null;
let downSince = null;

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

function connection(ok, text) {
  const el = document.getElementById("conn");
  el.className = ok ? "ok" : "down";
  el.textContent = text;
  document.getElementById("groups").classList.toggle("stale", !ok);
  document.getElementById("timeline").classList.toggle("stale", !ok);
}

function showGroups(groups) {
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
    cell(row, g.lifecycle + (g.epoch ? ` (epoch ${g.epoch})` : ""),
      `lifecycle lifecycle-${g.lifecycle}`);
    cell(row, g.durable_seq.toLocaleString("en"), "num durable");
    cell(row, g.applied_seq.toLocaleString("en"), "num applied");
    cell(row, `${g.lag_seconds.toFixed(1)} s`, "num lag");
    cell(row, `${(g.rpo_seconds || 0).toFixed(1)} s`, "num rpo");
    cell(row, fmtBytes(g.journal_bytes), "num journal");
    cell(row, resyncText(g), "resync");
    row.addEventListener("click", () => { chosen = g.group_id; pollTimeline(); });
  }
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
  const body = document.getElementById("timeline");
  body.replaceChildren();
  for (const s of t.spans) {
    const row = body.insertRow();
    row.className = s.restorable ? "interval" : "gap";
    cell(row, s.start || "-");
    cell(row, s.end || "-");
    cell(row, `${s.start_seq}-${s.end_seq}`);
    cell(row, s.restorable ? `${s.points.toLocaleString("en")} restore points`
                           : `NO RESTORE POINTS (${s.cause})`);
  }
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
    cell(row, e.time);
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

async function poll() {
  try {
    const data = await getJson("/api/v1/status");
    downSince = null;
    showGroups(data.groups);
    connection(true, `connected; updated ${new Date(data.time * 1000).toLocaleTimeString()}`);
    await pollTimeline();
    await pollAudit();
  } catch (err) {
    downSince = downSince || new Date();
    connection(false, `TARGET UNREACHABLE since ${downSince.toLocaleTimeString()}: the ` +
      `numbers below are stale (last good update shown greyed out) — ${err}`);
  }
  setTimeout(poll, POLL_MS);
}
poll();
