"""``cdp status``: the replication state of every group at a target."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from cdp.cli import common
from cdp.errors import CdpError
from cdp.restore.spec import format_ns
from cdp.rpc.client import ReplicationClient
from cdp.rpc.convert import audit_from_pb
from cdp.rpc.convert import status_to_dict as to_dict
from cdp.verified import PASSED, GroupVerified, latest

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    """Register ``status``."""
    p = sub.add_parser("status", help="show each group's replication state at a target")
    p.add_argument("--target", required=True, help="HOST:PORT of the target")
    p.add_argument("--group", default="", help="only this group")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    common.add_tls_flags(p, "an operator's folder from `cdp certs init`, e.g. DIR/operators/admin")
    p.set_defaults(handler=run)


async def fetch(client: ReplicationClient, group: str = "") -> list[dict[str, Any]]:
    """Status of the groups as plain dicts, with their last verified point (closes the client)."""
    async with client:
        resp = await client.status(group)
        verified = await _verified(client)
    out = [to_dict(g) for g in resp.groups]
    for g in out:
        v = verified.get(g["group_id"])
        g["last_verified"] = v.to_json() if v else None
    return out


async def _verified(client: ReplicationClient) -> dict[str, GroupVerified]:
    """Verification facts from the target's audit log ({} when the caller may not read it)."""
    try:
        entries = [audit_from_pb(e) for e in await client.list_audit()]
    except CdpError as exc:  # e.g. a source's certificate: the audit is for operators
        log.info("no verification facts: %s", exc)
        return {}
    return latest(entries)


SKEW_SHOWN_S = 2.0
"""A source clock this far from the target's is shown under the table (trusted time
decides retention and expiry whatever the skew; docs/PROTOCOL.md)."""


async def run(args: argparse.Namespace) -> int:
    """Print the status table (or JSON)."""
    groups = await fetch(common.connect(args), args.group)
    if args.json:
        common.emit_json({"target": args.target, "time": time.time(), "groups": groups})
        return common.EXIT_OK
    print(render(groups))
    return common.EXIT_OK


def render(groups: list[dict[str, Any]]) -> str:
    """A table, one line per group."""
    if not groups:
        return "no groups at this target yet"
    rows = [("GROUP", "STATE", "DURABLE SEQ", "APPLIED SEQ", "LAG", "RPO", "JOURNAL", "SOURCE",
             "LIFECYCLE")]  # fmt: skip
    for g in groups:
        rows.append((
            g["group_id"], g["state"], f"{g['durable_seq']:,}", f"{g['applied_seq']:,}",
            f"{g['lag_seconds']:.1f} s", f"{g['rpo_seconds']:.1f} s",
            common.fmt_bytes(g["journal_bytes"]), _source(g), _lifecycle(g),
        ))  # fmt: skip
    for g in groups:
        if g["state"] == "resyncing":
            total, got = g["resync_total_bytes"], g["resync_received_bytes"]
            pct = f"{100 * got / total:.0f} %" if total else "?"
            eta = f", ETA {g['resync_eta_seconds']:.0f} s" if g["resync_eta_seconds"] else ""
            rows.append((f"  resync {g['group_id']}", f"{pct} of {common.fmt_bytes(total)}{eta}",
                         "", "", "", "", "", "", ""))  # fmt: skip
            if g.get("resync_stalled_reason"):
                rows.append((f"  stalled {g['group_id']}", g["resync_stalled_reason"],
                             "", "", "", "", "", "", ""))  # fmt: skip
    for g in groups:
        if g.get("last_verified"):
            rows.append((f"  verified {g['group_id']}", _verified_text(g["last_verified"]),
                         "", "", "", "", "", "", ""))  # fmt: skip
    for g in groups:
        skew = float(g.get("source_clock_skew_seconds", 0.0))
        if abs(skew) >= SKEW_SHOWN_S:
            side = "ahead of" if skew > 0 else "behind"
            rows.append((f"  clock {g['group_id']}", f"source {abs(skew):.1f} s {side} target",
                         "", "", "", "", "", "", ""))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines + _errors(groups) + _alerts(groups) + _guard_alerts(groups)
                     + _failed_back(groups) + _detectors(groups))  # fmt: skip


def _failed_back(groups: list[dict[str, Any]]) -> list[str]:
    """A line per member failed back and not yet protected again from the original site."""
    out = []
    for g in groups:
        back = int(g.get("lifecycle_failed_back_unix_ns", 0))
        if not back or g["lifecycle"] != "protecting":
            continue
        behind = int(g["durable_source_time_unix_ns"]) < back
        if behind or g["state"] in ("resync_required", "resyncing"):
            out.append(
                f"failed back {_name(g)}: at {format_ns(back)}; not protected again yet: start "
                f"the original site's source with epoch {g['epoch']} (`cdp sim run --epoch "
                f"{g['epoch']}`), it resyncs in full; until then a failover is refused"
            )
    return out


def _name(g: dict[str, Any]) -> str:
    return str(g["group_id"]) + ("@" + g["member_id"] if g.get("member_id") else "")


def _guard_alerts(groups: list[dict[str, Any]]) -> list[str]:
    """An ALERT per member that refuses writes to keep history or whose clock jumped."""
    out = []
    for g in groups:
        if g.get("intake_refused_by"):
            out.append(f"ALERT {_name(g)}: intake refused ({g['intake_refused_by']}): "
                       f"{g['intake_refused_reason']}")  # fmt: skip
        jump = float(g.get("clock_jump_seconds", 0.0))
        if jump:
            out.append(
                f"ALERT {_name(g)}: the target's clock jumped {jump:+.0f} s against its boot "
                "clock; nothing leaves the history by time until the clock is set right"
            )
    return out


def _detectors(groups: list[dict[str, Any]]) -> list[str]:
    """The encryption detector and retention lock of each open member, under the table."""
    out = []
    for g in groups:
        phase = g.get("detector_phase", "")
        if not phase:
            continue
        if phase == "training":
            until = int(g["detector_training_until_unix_ns"])
            what = f"training until {format_ns(until)}" if until else "training (no write yet)"
        else:
            seq = int(g["detector_watching_from_seq"])
            since = f"watching since seq {seq:,}" if seq else "watching"
            what = since if phase == "watching" else f"{phase} ({since})"
        lock = float(g.get("retention_lock_seconds", 0.0))
        out.append(f"detector {_name(g)}: {what}"
                   + (f"; retention lock {lock:g} s" if lock else ""))  # fmt: skip
    return out


def _alerts(groups: list[dict[str, Any]]) -> list[str]:
    """One line per member with standing suspicions: the onset and the last clean point."""
    out = []
    for g in groups:
        n = int(g.get("standing_suspicions", 0))
        if not n:
            continue
        name = g["group_id"] + ("@" + g["member_id"] if g.get("member_id") else "")
        onset = g["suspicion_onset_unix_ns"]
        seq, at = g["last_clean_seq"], g["last_clean_time_unix_ns"]
        clean = f"last clean point seq {seq} ({format_ns(at)})" if seq else "NO clean point"
        out.append(
            f"ALERT {name}: {n} standing suspicion{'s' if n > 1 else ''} (possible ransomware) "
            f"since {format_ns(onset) if onset else '?'}; {clean}; see `cdp suspicions list "
            f"--group {g['group_id']}`, recover with --at last-clean"
        )
    return out


def _errors(groups: list[dict[str, Any]]) -> list[str]:
    """One line per group in ERROR, under the table: the cause the target reports."""
    return [
        f"error {g['group_id']}{'@' + g['member_id'] if g.get('member_id') else ''}: {g['error']}"
        for g in groups
        if g.get("error")
    ]


def _verified_text(v: dict[str, Any]) -> str:
    """The last verified point and, when it is not the newest run, how that run ended."""
    at = v["last_verified_point_unix_ns"]
    text = (
        f"point seq {v['last_verified_seq']} ({format_ns(at)})" if at else "no point verified yet"
    )
    if v["last_verify_result"] != PASSED:
        when = format_ns(v["last_verify_unix_ns"])
        text += f"; newest run {v['last_verify_result'].upper()} at {when}"
    return text


def _lifecycle(g: dict[str, Any]) -> str:
    """The failover lifecycle, with the fencing epoch once a failover raised it."""
    epoch = int(g["epoch"])
    return str(g["lifecycle"]) + (f" (epoch {epoch})" if epoch else "")


def _source(g: dict[str, Any]) -> str:
    """Who writes the group: the certificate identity under mTLS, else the source's id."""
    if not g["source_connected"]:
        return f"{g['source_id']} (gone)" if g["source_id"] else "-"
    return str(g.get("source_identity") or g["source_id"])
