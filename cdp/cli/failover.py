"""``cdp failover``: check, test, stop-test, run, commit, rollback, status, failback.

``verify``, ``datastore``/``relocate`` and ``promote`` are modules of their own
(:mod:`cdp.cli.verify`, :mod:`cdp.cli.failover_datastore`,
:mod:`cdp.cli.failover_promote`), registered here.

Wires a plan file to the orchestrator: the vCenter connector (``cdp.failover.vsphere``)
and the target (:class:`cdp.failover.remote.TargetReplication` over a gRPC client). Prints
steps as they finish and the final RTO; ``--json`` prints one JSON object on stdout (the
progress lines then go to stderr). Exit codes: 0 done, 1 a check or step failed,
2 bad plan or flags, 3 vCenter or the target unreachable or answering an error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from cdp.cli import (
    common,
    failover_datastore,
    failover_detach,
    failover_promote,
    verify,
    verify_scheduler,
)
from cdp.cli.failover_common import (
    Session,
    connector,
    print_dry_run,
    render_checks,
    say,
    with_session,
)
from cdp.errors import (
    ConfigError,
)
from cdp.failover import guards
from cdp.failover import steps as st
from cdp.failover.checks import FAIL
from cdp.failover.orchestrator import Orchestrator
from cdp.failover.plan import load_plan
from cdp.failover.remote import TargetReplication
from cdp.restore.spec import format_ns
from cdp.rpc.client import ReplicationClient
from cdp.tls import load_client_tls

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    """Register ``failover`` and its subcommands."""
    p = sub.add_parser("failover", help="recover protected VMs on vSphere from a restore point")
    fsub = p.add_subparsers(dest="failover_command", required=True, metavar="SUBCOMMAND")
    commands: list[tuple[str, str, Callable[[argparse.Namespace], Any], tuple[str, ...]]] = [
        ("check", "print the readiness table of a plan", _check, ()),
        (
            "test",
            "test failover: boot point-in-time copies on the isolated network",
            _test,
            ("at", "dry"),
        ),
        ("stop-test", "remove every trace of the test failover", _stop_test, ("dry",)),
        (
            "run",
            "live failover: bring the VMs up on the recovery site",
            _run,
            ("at", "dry", "planned", "wait", "overwrite", "detach"),
        ),
        ("commit", "make the recovered VMs production", _commit, ()),
        (
            "rollback",
            "undo the live failover; replication goes on as before",
            _rollback,
            ("dry", "recovered"),
        ),
        ("status", "show the plan's active operation and its steps", _status, ()),
        (
            "failback",
            "reverse-protect the recovered VMs to the original site and fail over back",
            _failback,
            ("dry",),
        ),
    ]
    for name, help_text, handler, extra in commands:
        c = fsub.add_parser(name, help=help_text)
        c.add_argument("--plan", required=True, help="recovery plan file (YAML)")
        if "at" in extra:
            c.add_argument(
                "--at",
                default=None,
                help="restore point: latest, last-clean (newest point with a clean verdict), "
                "a seq, an ISO-8601 time or a bookmark name "
                "(default latest; on a resume, the point the first run fixed)",
            )
        if "planned" in extra:
            c.add_argument(
                "--planned",
                action="store_true",
                help="stop the source VMs, drain, fail over at the final point (zero data loss)",
            )
            c.add_argument(
                "--force-split-brain",
                action="store_true",
                help="fail over unplanned although a source is still connected (two copies "
                "of the VMs may run; the target fences the old source either way)",
            )
            c.add_argument(
                "--fence-protected",
                action="store_true",
                help="before an unplanned failover, power off the protected VMs through "
                "the plan's protected_site vCenter",
            )
        if "wait" in extra:
            c.add_argument(
                "--no-wait",
                action="store_true",
                help="return once the VMs are up instead of waiting for commit/rollback",
            )
        if "overwrite" in extra:
            c.add_argument(
                "--overwrite-recovered",
                action="store_true",
                help="export over <vm>-dr/ folders that hold recovered VMs' data (it is lost)",
            )
        if "detach" in extra:
            c.add_argument(
                "--detach",
                action="store_true",
                help="run on in a background process that owns the commit deadline; "
                "return once it started (follow with `cdp failover status`)",
            )
            c.add_argument("--deadline-owner", action="store_true", help=argparse.SUPPRESS)
        if "recovered" in extra:
            _add_recovered(c)
        if "dry" in extra:
            c.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        c.add_argument("--json", action="store_true", help="print one JSON object")
        c.set_defaults(handler=handler)
    verify.add_parser(fsub)
    verify_scheduler.add_parser(fsub)
    failover_datastore.add_parser(fsub)
    failover_promote.add_parser(fsub)


def _add_recovered(c: argparse.ArgumentParser) -> None:
    """Rollback's choice for ``<vm>-dr/`` folders holding data written since the failover."""
    g = c.add_mutually_exclusive_group()
    g.add_argument(
        "--keep-recovered-data",
        dest="recovered",
        action="store_const",
        const=guards.KEEP,
        help="remove the recovered VMs but leave their <vm>-dr/ folders and data in place",
    )
    g.add_argument(
        "--discard-recovered-data",
        dest="recovered",
        action="store_const",
        const=guards.DISCARD,
        help="delete the recovered VMs' folders and what they wrote since the failover",
    )
    c.set_defaults(recovered=guards.REFUSE)


# ---------------------------------------------------------------- commands


async def _check(args: argparse.Namespace) -> int:
    async def body(s: Session) -> int:
        survey = await s.orch.check()
        failed = any(r.status == FAIL for r in survey.rows)
        if s.json:
            common.emit_json(
                {
                    "plan": s.plan.name,
                    "ready": not failed,
                    "checks": [dataclasses.asdict(r) for r in survey.rows],
                }
            )
        else:
            print(render_checks(survey.rows))
            print(f"\nplan {s.plan.name!r}: {'NOT READY' if failed else 'ready'}")
        return common.EXIT_FAILED if failed else common.EXIT_OK

    return await with_session(args, body)


async def _test(args: argparse.Namespace) -> int:
    return await _failover(args, st.MODE_TEST, planned=False)


async def _run(args: argparse.Namespace) -> int:
    if args.detach:
        if args.dry_run or args.no_wait or args.json:
            raise ConfigError(
                "--detach",
                "cannot be combined with --dry-run, --no-wait or --json",
                hint="the detached process waits for the decision and writes to its log",
            )
        return await failover_detach.detach(args, sys.stdout)
    return await _failover(args, st.MODE_LIVE, planned=args.planned)


async def _failover(args: argparse.Namespace, mode: str, planned: bool) -> int:
    async def body(s: Session) -> int:
        if args.dry_run:
            return print_dry_run(s, await s.orch.dry_run(mode, args.at or "latest", planned))
        if getattr(args, "deadline_owner", False):  # the process `run --detach` started
            with s.orch.log.locked(failover_detach.OWNER_LOCK):
                return await operate(s)
        return await operate(s)

    async def operate(s: Session) -> int:
        overwrite = getattr(args, "overwrite_recovered", False)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped SSH session: keep going
        try:
            result = await s.orch.failover(
                mode,
                args.at,
                planned,
                overwrite_recovered=overwrite,
                force_split_brain=getattr(args, "force_split_brain", False),
                fence_protected=getattr(args, "fence_protected", False),
            )
            _print_rto(s, result)
            if mode == st.MODE_LIVE and not getattr(args, "no_wait", False):
                result = await _wait_for_decision(s)
        except asyncio.CancelledError:  # Ctrl-C: say what is left and how to go on
            _say_interrupted(s, mode, planned)
            raise
        if s.json:
            common.emit_json(result)
        return common.EXIT_OK

    return await with_session(args, body)


def _say_interrupted(s: Session, mode: str, planned: bool) -> None:
    status = s.orch.status()
    verb = "test" if mode == st.MODE_TEST else "run" + (" --planned" if planned else "")
    state = status.get("status", "no active operation")
    lines = [
        f"interrupted: plan {s.plan.name!r} is {state}",
        f"resume with: cdp failover {verb} --plan {s.plan.source_path}",
    ]
    if state == "awaiting-commit":
        lines.append(f"or decide: cdp failover commit --plan {s.plan.source_path} (or rollback)")
    for line in lines:
        say(line, sys.stderr)


async def _wait_for_decision(s: Session) -> dict[str, Any]:
    c = s.plan.commit
    say(
        f"waiting up to {c.timeout_s:g} s for `cdp failover commit` or `rollback` "
        f"(then: {c.default_action})",
        s.out,
    )
    result = await s.orch.await_decision()
    by = f" by {result['decided_by']}" if result.get("decided_by") else ""
    say(f"decision: {result.get('status')}{by}", s.out)
    return result


async def _stop_test(args: argparse.Namespace) -> int:
    return await _undo(args, st.UNDO_STOP_TEST)


async def _rollback(args: argparse.Namespace) -> int:
    return await _undo(args, st.UNDO_ROLLBACK)


async def _undo(args: argparse.Namespace, kind: str) -> int:
    async def body(s: Session) -> int:
        if args.dry_run:
            plan = s.orch.undo_plan(kind)
            if s.json:
                common.emit_json(plan)
            else:
                for step in plan["steps"]:
                    print(f"  phase {step['phase']}: {st.Step(**_step_fields(step)).describe()}")
            return common.EXIT_OK
        t0 = time.monotonic()
        if kind == st.UNDO_STOP_TEST:
            result = await s.orch.stop_test()
        else:
            result = await s.orch.rollback(args.recovered)
        _emit(
            s,
            result,
            f"{kind} done in {time.monotonic() - t0:.2f} s; log archived to {result['archived']}",
        )
        return common.EXIT_OK

    return await with_session(args, body)


async def _commit(args: argparse.Namespace) -> int:
    async def body(s: Session) -> int:
        result = await s.orch.commit()
        _emit(
            s,
            result,
            f"committed: the recovered VMs of plan {s.plan.name!r} are production; "
            f"log archived to {result['archived']}",
        )
        return common.EXIT_OK

    return await with_session(args, body)


async def _failback(args: argparse.Namespace) -> int:
    from cdp.failover.failback import Failback  # only this command needs it

    async def body(s: Session) -> int:
        fb = s.plan.failback
        if fb is None:
            raise ConfigError(
                "failback",
                "the plan has no failback section",
                hint="add failback.target, failback.site and failback.seed_path (docs/FAILOVER.md)",
            )
        tls = load_client_tls(fb.target_tls_dir) if fb.target_tls_dir else None
        if tls is None:
            log.warning("plan failback.target.insecure: plain text to the original-site target")
        client = ReplicationClient(fb.target_address, tls)
        try:
            runner = Failback(s.orch, client, TargetReplication(client), report=s.progress)
            if args.dry_run:
                plan = runner.dry_run()
                if s.json:
                    common.emit_json(plan)
                    return common.EXIT_OK
                print(render_failback_dry_run(plan))
                return common.EXIT_OK
            result = await runner.run()
        finally:
            await client.close()
        sent = common.fmt_bytes(result["bytes_sent"])
        _emit(
            s,
            result,
            f"failed back in {result['seconds']:.2f} s: {result['regions_sent']} regions "
            f"({sent}) sent; VMs up at the original site (RTO back "
            f"{result['rto_back_s'] or 0:.2f} s); log archived to {result['archived']}",
        )
        return common.EXIT_OK

    return await with_session(args, body)


async def _status(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    orch = Orchestrator(plan, connector(plan.vcenter, 1), _NoTarget())
    status = orch.status()
    if plan.failback is not None:
        from cdp.failover.failback import failback_status

        status["failback"] = failback_status(plan)
    if args.json:
        common.emit_json(status)
    else:
        print(render_status(status))
    return common.EXIT_OK


class _NoTarget:
    """Status reads only the step log; the target is never called."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"status must not call the target ({name})")


# ---------------------------------------------------------------- rendering


def _print_rto(s: Session, result: dict[str, Any]) -> None:
    split = ", ".join(f"{k} {v:.2f} s" for k, v in result["time_by_step"].items())
    what = "test VM" if result["operation"] == st.MODE_TEST else "VM"
    say(
        f"RTO {result['rto_s']:.2f} s: every {what} of plan {result['plan']!r} powered on "
        f"(this run {result.get('run_s', 0):.2f} s; estimate {result['rto_estimate_s']:.1f} s)\n"
        f"time by step: {split}",
        s.out,
    )


def _emit(s: Session, result: dict[str, Any], text: str) -> None:
    if s.json:
        common.emit_json(result)
    else:
        print(text)


def render_status(status: dict[str, Any]) -> str:
    """The active operation in a few lines, then the failback's (when the plan has one)."""
    out = _render_operation(status)
    if "failback" in status:
        out += "\n" + render_failback(status["failback"])
    return out


def render_failback_dry_run(plan: dict[str, Any]) -> str:
    """What ``failback --dry-run`` prints: the disks with their seeds, bytes, the steps."""
    if plan.get("resuming"):
        return render_failback({"active": True, **plan}) + "\ndry run: nothing was changed"
    lines = [
        f"failback of plan {plan['plan']!r} (failover: {plan['failover']}) to "
        f"{plan['target']}, groups " + ", ".join(f"{g} -> {b}" for g, b in plan["groups"].items()),
        f"bytes to compare: {common.fmt_bytes(plan['bytes_to_compare'])} "
        "(every region hashed twice: pre-sync and final sync)",
        "disks:",
    ]
    for d in plan["disks"]:
        seed = d["seed"] or "(no failback.seed_path)"
        state = "present" if d["seed_present"] else "MISSING: every region travels"
        lines.append(
            f"  {d['vm']} disk {d['disk']}: {common.fmt_bytes(d['capacity_bytes'])} "
            f"from {d['source']}; seed {seed} ({state})"
        )
    lines.append("steps:")
    lines += [f"  phase {step['phase']}: {step['text']}" for step in plan["steps"]]
    lines.append("dry run: nothing was changed")
    return "\n".join(lines)


def render_failback(fb: dict[str, Any]) -> str:
    """The failback's progress in a line or two."""
    if not fb["active"]:
        return f"failback: none active (last finished: {fb['last'] or 'none'})"
    line = (
        f"failback: {fb['status']}, {fb['steps_done']}/{fb['steps']} steps done, "
        f"{fb['regions_sent']:,} regions / {common.fmt_bytes(fb['bytes_sent'])} sent back"
    )
    if fb.get("rto_back_s") is not None:
        line += f"; RTO back {fb['rto_back_s']:.2f} s"
    return line


def _render_operation(status: dict[str, Any]) -> str:
    if not status["active"]:
        last = status["last"] or "none"
        if status.get("state"):
            return (
                f"plan {status['plan']!r}: {status['state']} (log: {last})\nnext: {status['next']}"
            )
        return f"plan {status['plan']!r}: no active operation (last finished: {last})"
    lines = [_first_line(status)]
    for group, p in status["points"].items():
        label = f", bookmark {p['label']!r}" if p and p.get("label") else ""
        at = f"seq {p['seq']} ({format_ns(p['time_ns'])}{label})" if p else "not fixed yet"
        lines.append(f"restore point of {group}: {at}")
    failed = status.get("failed_step")
    if failed:
        lines.append(f"failed step: {failed['step']}: {failed['error']}")
    if status.get("rto_s") is not None:
        lines.append(f"RTO {status['rto_s']:.2f} s")
    if status.get("commit_deadline_unix"):
        left = status["commit_deadline_unix"] - time.time()
        when = f"in {left:.0f} s" if left > 0 else f"passed {-left:.0f} s ago"
        owner = status.get("deadline_owner") or {}
        by = (
            f"applied by the detached process pid {owner['pid']}"
            if owner.get("alive")
            else "applied by a waiting `cdp failover run`, or when it is run again"
        )
        lines.append(f"commit deadline {when} (default action: {status['commit_default']}; {by})")
    rows = [[v["vm"], v["name"], v["host"], v["ref"] or "-"] for v in status["vms"]]
    lines.append(common.table(["VM", "REGISTERED AS", "HOST", "REF"], rows))
    lines.append(f"next: {status['next']}")
    return "\n".join(lines)


def _first_line(status: dict[str, Any]) -> str:
    """What the operation is, its state (interrupted when its command is gone), progress."""
    what = f"plan {status['plan']!r}: {status['operation']} failover"
    if status.get("production") == "stopped":
        return (
            f"{what}: PRODUCTION IS STOPPED (the source VMs were stopped and not restarted) — "
            f"restart it with: {status['production_restart']}"
        )
    state, holder = status["status"], status.get("holder") or {}
    if state in ("running", "undoing") and not holder.get("alive"):
        pid = holder.get("pid") or "?"
        state = f"interrupted: the CLI (pid {pid}) is gone — resume with: {status['next']}"
    elif state in ("running", "undoing"):
        state = f"{state} (pid {holder.get('pid')})"
    return f"{what}, {state}; {status['steps_done']}/{status['steps']} steps done"


def _step_fields(step: dict[str, Any]) -> dict[str, Any]:
    return {k: step[k] for k in ("id", "kind", "phase", "vm", "group", "args")}
