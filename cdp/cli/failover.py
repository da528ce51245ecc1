"""``cdp failover``: check, test, stop-test, run, commit, rollback, status, failback.

``verify`` is its own module (:mod:`cdp.cli.verify`), registered here.

Wires a plan file to the orchestrator: the vCenter connector (``cdp.failover.vsphere``)
and the target (:class:`cdp.failover.remote.TargetReplication` over a gRPC client). Prints
steps as they finish and the final RTO; ``--json`` prints one JSON object on stdout (the
progress lines then go to stderr). Exit codes: 0 done, 1 a check or step failed,
2 bad plan or flags, 3 vCenter or the target unreachable or answering an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from cdp.cli import common, verify
from cdp.cli.failover_common import (
    Session,
    connector,
    print_dry_run,
    render_checks,
    with_session,
)
from cdp.errors import (
    ConfigError,
)
from cdp.failover import steps as st
from cdp.failover.checks import FAIL
from cdp.failover.orchestrator import Orchestrator
from cdp.failover.plan import load_plan
from cdp.failover.remote import TargetReplication
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
            ("at", "dry", "planned", "wait"),
        ),
        ("commit", "make the recovered VMs production", _commit, ()),
        ("rollback", "undo the live failover; replication goes on as before", _rollback, ("dry",)),
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
                default="latest",
                help="restore point: latest, a seq, an "
                "ISO-8601 time or a bookmark name (default latest)",
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
        if "dry" in extra:
            c.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        c.add_argument("--json", action="store_true", help="print one JSON object")
        c.set_defaults(handler=handler)
    verify.add_parser(fsub)


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
    return await _failover(args, st.MODE_LIVE, planned=args.planned)


async def _failover(args: argparse.Namespace, mode: str, planned: bool) -> int:
    async def body(s: Session) -> int:
        if args.dry_run:
            return print_dry_run(s, await s.orch.dry_run(mode, args.at, planned))
        result = await s.orch.failover(
            mode,
            args.at,
            planned,
            force_split_brain=getattr(args, "force_split_brain", False),
            fence_protected=getattr(args, "fence_protected", False),
        )
        _print_rto(s, result)
        if mode == st.MODE_LIVE and not getattr(args, "no_wait", False):
            result = await _wait_for_decision(s)
        if s.json:
            common.emit_json(result)
        return common.EXIT_OK

    return await with_session(args, body)


async def _wait_for_decision(s: Session) -> dict[str, Any]:
    c = s.plan.commit
    print(
        f"waiting up to {c.timeout_s:g} s for `cdp failover commit` or `rollback` "
        f"(then: {c.default_action})",
        file=s.out,
        flush=True,
    )
    result = await s.orch.await_decision()
    by = f" by {result['decided_by']}" if result.get("decided_by") else ""
    print(f"decision: {result.get('status')}{by}", file=s.out, flush=True)
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
        call = s.orch.stop_test if kind == st.UNDO_STOP_TEST else s.orch.rollback
        result = await call()
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
    from cdp.failover.failback import Failback, describe  # only this command needs it

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
                print(f"failback of plan {s.plan.name!r} (failover: {plan.get('failover')})")
                for step in plan["steps"]:
                    print(f"  phase {step['phase']}: {describe(step)}")
                print("dry run: nothing was changed")
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
    print(
        f"RTO {result['rto_s']:.2f} s: every {what} of plan {result['plan']!r} powered on "
        f"(this run {result.get('run_s', 0):.2f} s; estimate {result['rto_estimate_s']:.1f} s)\n"
        f"time by step: {split}",
        file=s.out,
        flush=True,
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
        return f"plan {status['plan']!r}: no active operation (last finished: {last})"
    lines = [
        f"plan {status['plan']!r}: {status['operation']} failover, {status['status']}, "
        f"{status['steps_done']}/{status['steps']} steps done"
    ]
    if status.get("rto_s") is not None:
        lines.append(f"RTO {status['rto_s']:.2f} s")
    if status.get("commit_deadline_unix"):
        left = status["commit_deadline_unix"] - time.time()
        when = f"in {left:.0f} s" if left > 0 else f"passed {-left:.0f} s ago"
        lines.append(
            f"commit deadline {when} (default action: {status['commit_default']}; "
            "applied by a waiting `cdp failover run`, or when it is run again)"
        )
    rows = [[v["vm"], v["name"], v["host"], v["ref"] or "-"] for v in status["vms"]]
    lines.append(common.table(["VM", "REGISTERED AS", "HOST", "REF"], rows))
    return "\n".join(lines)


def _step_fields(step: dict[str, Any]) -> dict[str, Any]:
    return {k: step[k] for k in ("id", "kind", "phase", "vm", "group", "args")}
