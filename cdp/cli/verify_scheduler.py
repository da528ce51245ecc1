"""``cdp failover verify-scheduler --config FILE``: run each plan's verification on a cadence.

The target must never hold vCenter credentials, so the target does not verify: this
long-running process, on the host that runs ``cdp failover`` (it has the plans and
their credentials), reads the ``verify:`` list of the target's config file and starts
``cdp failover verify --plan P --every S`` as a child process for each plan that is
due. The child records its result in the plan's state folder and at the target (the
group's last verified point, and the audit); the scheduler then keeps only the newest
``keep`` records. It holds no state of its own: a plan is due when its newest record
started ``every`` ago (or it has none), so a restart or a manual verify moves the
cadence, and a verification missed while the scheduler was down runs at once.
Plans run one at a time (each boots VMs at the recovery site). ``--once`` runs what is
due and exits (for a systemd timer, or cron). Exit codes: 0, 2 bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cdp.cli import common
from cdp.cli.target_config import VerifySchedule, load_config
from cdp.errors import CdpError
from cdp.failover.plan import load_plan
from cdp.failover.steplog import StepLog
from cdp.failover.verify import last_started, prune_records

log = logging.getLogger(__name__)

MAX_SLEEP_S = 60.0
"""Longest sleep between two looks at the schedule (a changed clock is noticed)."""
Runner = Callable[[VerifySchedule], Awaitable[int]]
"""Runs one verification to its end and returns its exit code."""


def add_parser(fsub: Any) -> None:
    """Register ``failover verify-scheduler``."""
    c = fsub.add_parser(
        "verify-scheduler",
        help="run the verify: list of a target config file on its cadence (long-running)",
    )
    c.add_argument("--config", required=True, help="the target's config file (its verify: list)")
    c.add_argument("--once", action="store_true", help="run what is due now, then exit")
    c.set_defaults(handler=run)


class Scheduler:
    """Which plans are due, and running them: :meth:`run_due` is the deterministic step."""

    def __init__(self, schedules: tuple[VerifySchedule, ...], runner: Runner) -> None:
        self.schedules, self.runner = schedules, runner

    def next_due(self, s: VerifySchedule) -> float:
        """Unix time the plan is next due (0: now; an unreadable plan is retried later)."""
        plan = load_plan(s.plan)
        started = last_started(StepLog(plan.state_dir, plan.name).folder)
        return 0.0 if started is None else started + s.every_s

    async def run_due(self, now: float) -> list[tuple[VerifySchedule, int]]:
        """Verify every plan due at ``now``, one after another; prune their records."""
        done = []
        for s in self.schedules:
            try:
                if self.next_due(s) > now:
                    continue
            except CdpError as exc:
                log.error("verify %s: cannot read the plan, skipped: %s", s.plan, exc)
                continue
            code = await self.runner(s)
            log.warning("verify %s: exit %d", s.plan, code)
            plan = load_plan(s.plan)
            prune_records(StepLog(plan.state_dir, plan.name).folder, s.keep)
            done.append((s, code))
        return done

    def sleep_s(self, now: float) -> float:
        """How long until the next plan is due (at most :data:`MAX_SLEEP_S`)."""
        wait = MAX_SLEEP_S
        for s in self.schedules:
            try:
                wait = min(wait, self.next_due(s) - now)
            except CdpError:
                continue
        return max(1.0, wait)


async def run_child(s: VerifySchedule) -> int:
    """``cdp failover verify --plan P --every S`` as a child process (output to our log)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdp", "failover", "verify", "--plan", s.plan,
        "--every", f"{s.every_s:g}", stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await proc.wait()


async def run(args: argparse.Namespace) -> int:
    """Load the schedule, then run what is due until stopped (or once)."""
    schedules = load_config(args.config).verify
    if not schedules:
        print(f"{args.config}: no verify: entries; nothing to schedule", file=sys.stderr)
        return common.EXIT_OK
    scheduler = Scheduler(schedules, run_child)
    while True:
        await scheduler.run_due(time.time())
        if args.once:
            return common.EXIT_OK
        await asyncio.sleep(scheduler.sleep_s(time.time()))
