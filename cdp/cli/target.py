"""``cdp target serve``: run a replication target until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

from aiohttp import web

from cdp.cli import common, scrub
from cdp.errors import InvalidInputError
from cdp.fsutil import write_atomic
from cdp.journal.store.rocksdb import RocksIndex
from cdp.restore.catalog import MAX_HISTORY_WINDOW_S
from cdp.rpc.server import start_server
from cdp.target.config import TargetConfig
from cdp.target.target import Target
from cdp.tls import ServerTLS, load_server_tls
from cdp.web import parse_http_address, start_web

log = logging.getLogger(__name__)
DEFAULT_LISTEN = "127.0.0.1:7711"


def add_parser(sub: Any) -> None:
    """Register ``target serve``."""
    p = sub.add_parser("target", help="run the replication target")
    tsub = p.add_subparsers(dest="target_command", required=True, metavar="SUBCOMMAND")
    s = tsub.add_parser("serve", help="serve the journal API until SIGTERM or Ctrl-C")
    s.add_argument("--data-dir", required=True, help="journal, index and replica VMs live here")
    s.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT; port 0 picks a free one")
    s.add_argument(
        "--history-window", default="1h", metavar="DURATION",
        help="how far back restore points reach, e.g. 0, 90s, 15m, 1h, 30d (default 1h, "
        "at most 30d); 0 applies every write to the replica as soon as it is durable",
    )  # fmt: skip
    s.add_argument(
        "--journal-limit", default="16GiB", metavar="SIZE",
        help="hard size limit of each group's journal (default 16GiB); past it the oldest "
        "history is applied early and the timeline says so",
    )  # fmt: skip
    s.add_argument(
        "--checkpoint-interval", type=float, default=1.0, metavar="SECONDS",
        help="cadence of checkpoint restore points on the timeline (default 1)",
    )  # fmt: skip
    s.add_argument(
        "--scrub-interval", default="24h", metavar="DURATION",
        help="check every replica against its checksums this often while running, e.g. "
        "6h (default 24h; 0 never); SIGUSR1 starts one at once; damaged regions are "
        "refused to readers and repaired by a resync from the source",
    )  # fmt: skip
    s.add_argument(
        "--http", metavar="HOST:PORT",
        help="also serve the on-call web page (/), a read-only JSON API (/api/v1/status, "
        "/api/v1/groups/GROUP/timeline) and Prometheus /metrics here; plain HTTP without "
        "authentication, off unless given (a non-loopback HOST is logged as a warning)",
    )  # fmt: skip
    s.add_argument(
        "--http-allow-host", action="append", default=[], metavar="NAME",
        help="a host name the web page may be reached by besides this machine's and "
        "localhost (e.g. a reverse proxy's); other Host headers get 421 (DNS rebinding)",
    )  # fmt: skip
    s.add_argument(
        "--ready-file", help="write {address, pid, http_address} as JSON here once serving"
    )
    common.add_tls_flags(s, "DIR/target from `cdp certs init DIR`, with authz.yaml")
    s.set_defaults(handler=serve)
    scrub.add_parser(tsub)


async def serve(args: argparse.Namespace) -> int:
    """Run the target and its server until a signal."""
    window = common.parse_duration("--history-window", args.history_window)
    if window > MAX_HISTORY_WINDOW_S:
        raise InvalidInputError("--history-window", "at most 30 days (30d)")
    if not 0.05 <= args.checkpoint_interval <= 3600:
        raise InvalidInputError("--checkpoint-interval", "must be between 0.05 and 3600 seconds")
    config = TargetConfig(
        os.path.abspath(args.data_dir),
        history_window_s=window,
        journal_limit_bytes=common.parse_size("--journal-limit", args.journal_limit),
        checkpoint_interval_s=args.checkpoint_interval,
        scrub_interval_s=common.parse_duration("--scrub-interval", args.scrub_interval),
    )
    http = parse_http_address(args.http) if args.http else None
    tls = server_tls(args)
    os.umask(0o077)  # RocksDB's own files too: data at rest is for the target's user only
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Target(config, RocksIndex) as target:
        loop.add_signal_handler(signal.SIGUSR1, target.request_scrub)
        web_runner, http_address = await _start_http(target, http, args.http_allow_host)
        try:
            server, port = await start_server(target, args.listen, tls)
            address = f"{args.listen.rpartition(':')[0]}:{port}"
            if args.ready_file:
                info = {"address": address, "pid": os.getpid(), "http_address": http_address}
                write_atomic(args.ready_file, json.dumps(info).encode())
            mode = f"mTLS, {args.tls_dir}" if tls else "PLAIN TEXT, --insecure"
            print(f"cdp target: serving on {address} ({mode}), data in {config.data_dir}",
                  file=sys.stderr)  # fmt: skip
            await stop.wait()
            print("cdp target: stopping", file=sys.stderr)
            await server.stop(grace=2.0)
        finally:
            if web_runner:
                await web_runner.cleanup()
    print("cdp target: stopped cleanly", file=sys.stderr)
    return common.EXIT_OK


async def _start_http(
    target: Target, http: tuple[str, int] | None, allow_hosts: list[str]
) -> tuple[web.AppRunner | None, str]:
    """The web page and metrics server if --http was given, and its HOST:PORT ("" if not)."""
    if http is None:
        return None, ""
    host = http[0]
    runner, port = await start_web(target, *http, allow_hosts=tuple(allow_hosts))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    print(f"cdp target: web page and /metrics on http://{address}/ "
          "(read-only, plain HTTP, no authentication)", file=sys.stderr)  # fmt: skip
    return runner, address


def server_tls(args: argparse.Namespace) -> ServerTLS | None:
    """The target's certificate and authz.yaml from --tls-dir; None with --insecure (warned)."""
    if args.insecure:
        log.warning(
            "--insecure: serving %s in plain text, without encryption or authentication: "
            "anyone who can reach it may write journals and read every disk image",
            args.listen,
        )
        return None
    if not args.tls_dir:
        raise InvalidInputError(
            "--tls-dir", "required: the target's folder from `cdp certs init DIR`",
            hint="or pass --insecure to serve plain text without authentication",
        )  # fmt: skip
    return load_server_tls(args.tls_dir)
