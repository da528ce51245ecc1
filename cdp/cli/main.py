"""The ``cdp`` entry point: parse the subcommand and hand over to its module."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence

from cdp import logs
from cdp.cli import (
    audit,
    certs,
    common,
    demo,
    failover,
    image,
    journal,
    points,
    sim,
    status,
    suspicions,
    target,
    timeline,
)
from cdp.errors import CdpError

_HEAVY = {"target", "sim", "demo"}
"""Commands that move much data: they run with the malloc settings of DESIGN.md."""
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "268435456"}


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(
        prog="cdp",
        description="Continuous data protection for vSphere: journal every write, "
        "restore any point in time.",
    )
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        demo, target, sim, status, points, timeline, suspicions, image, certs, failover, audit,
        journal,
    ):  # fmt: skip
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line; exits with the command's code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    _reexec_with_malloc_settings(args_list)
    args = build_parser().parse_args(args_list)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logs.install(logging.root.handlers)
    handler: Callable[[argparse.Namespace], object] = args.handler
    try:
        result = handler(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except CdpError as exc:
        sys.exit(common.fail(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(int(result) if isinstance(result, int) else 0)


def _reexec_with_malloc_settings(argv: list[str]) -> None:
    """Re-run a heavy command with glibc malloc tuned for 1 MiB buffers (DESIGN.md)."""
    command = next((a for a in argv if not a.startswith("-")), "")
    if command not in _HEAVY or "--help" in argv or "-h" in argv:
        return
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    env = {**os.environ, **MALLOC_ENV}
    os.execve(sys.executable, [sys.executable, "-m", "cdp", *argv], env)


if __name__ == "__main__":
    main()
