"""``cdp failover run --detach``: the operation and its commit deadline in a background process.

The foreground command starts ``cdp failover run --plan F --deadline-owner`` in a new
session (its own process group: no terminal, Ctrl-C or SIGHUP reaches it; stdin from
/dev/null, stdout and stderr appended to ``<state_dir>/<plan>/detached.log``) and returns
once that process holds the plan's ``owner`` lock. The detached process runs the steps,
waits for ``commit``/``rollback`` from any terminal, and applies ``commit.default_action``
at the deadline; then it exits and the kernel drops its lock. Why a per-operation
process owns the deadline (and not the target service): docs/FAILOVER.md, "The terminal
and deadlines".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from typing import TextIO

from cdp.cli import common
from cdp.cli.failover_common import say
from cdp.errors import PreconditionError
from cdp.failover import steplog as sl
from cdp.failover.plan import load_plan

OWNER_LOCK = sl.OWNER_LOCK
"""Lock file under ``<state_dir>/<plan>/`` held by the process that owns the deadline."""
LOG_NAME = "detached.log"
"""Where the detached process writes its progress lines, under ``<state_dir>/<plan>/``."""
START_TIMEOUT_S = 60.0
"""How long the foreground waits for the detached process to take the owner lock."""


def child_argv(args: argparse.Namespace, plan_path: str) -> list[str]:
    """The command line of the detached process: the same run, owning the deadline."""
    argv = [sys.executable, "-m", "cdp", "--log-level", args.log_level, "failover", "run"]
    argv += ["--plan", plan_path, "--deadline-owner"]
    if args.at is not None:
        argv += ["--at", args.at]
    if args.planned:
        argv.append("--planned")
    for flag in ("overwrite_recovered", "force_split_brain", "fence_protected"):
        if getattr(args, flag, False):
            argv.append("--" + flag.replace("_", "-"))
    return argv


async def detach(args: argparse.Namespace, out: TextIO) -> int:
    """Start the detached owner; return 0 once it holds the lock (its exit code if it died)."""
    plan = load_plan(args.plan)  # a bad plan fails here, in the foreground (exit 2)
    plan_path = os.path.abspath(args.plan)
    log = sl.StepLog(plan.state_dir, plan.name)
    pid, alive = log.holder(OWNER_LOCK)
    if alive:
        raise PreconditionError(
            f"plan {plan.name!r} already has a detached operation (pid {pid})",
            hint=f"follow it with: cdp failover status --plan {plan_path}",
        )
    os.makedirs(log.folder, exist_ok=True)
    log_path = os.path.join(log.folder, LOG_NAME)
    with open(log_path, "ab") as sink:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        sink.write(f"--- {stamp} cdp failover run --detach\n".encode())
        sink.flush()
        proc = subprocess.Popen(
            child_argv(args, plan_path),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no controlling terminal: SIGHUP/Ctrl-C never reach it
            cwd=os.getcwd(),
        )
    give_up = time.monotonic() + START_TIMEOUT_S
    while log.holder(OWNER_LOCK) != (proc.pid, True):
        code = proc.poll()
        if code is not None:
            say(f"the detached operation exited with code {code}; its output: {log_path}", out)
            say(_tail(log_path), out)
            return code or common.EXIT_FAILED
        if time.monotonic() > give_up:
            say(
                f"the detached process (pid {proc.pid}) did not start in time; log: {log_path}", out
            )
            return common.EXIT_FAILED
        await asyncio.sleep(0.05)
    say(f"detached: pid {proc.pid} runs the operation and owns its commit deadline", out)
    say(f"log: {log_path}", out)
    say(f"follow it with: cdp failover status --plan {plan_path}", out)
    say(f"decide with: cdp failover commit --plan {plan_path} (or rollback)", out)
    return common.EXIT_OK


def _tail(path: str, lines: int = 20) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-lines:]).rstrip()
