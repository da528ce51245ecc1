"""``cdp target serve``: run a replication target until SIGTERM; SIGHUP reloads its config."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from typing import Any

from aiohttp import web

from cdp import audit
from cdp.cli import common, journal_keys, scrub, target_config
from cdp.cli.target_config import DEFAULT_LISTEN, RESTART_KEYS, ServeSettings
from cdp.errors import CdpError, InvalidInputError
from cdp.fsutil import write_atomic
from cdp.journal.store.rocksdb import RocksIndex
from cdp.rpc.server import start_server
from cdp.sdnotify import Notifier
from cdp.target.target import Target
from cdp.tls import ServerTLS, load_server_tls
from cdp.web import parse_http_address, start_web

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    """Register ``target serve``."""
    p = sub.add_parser("target", help="run the replication target")
    tsub = p.add_subparsers(dest="target_command", required=True, metavar="SUBCOMMAND")
    s = tsub.add_parser("serve", help="serve the journal API until SIGTERM or Ctrl-C")
    s.add_argument(
        "--config", metavar="FILE",
        help="YAML config file (docs/OPERATIONS.md): data dir, listen address, TLS and "
        "per-group policies; the flags below override it; SIGHUP reloads the policies",
    )  # fmt: skip
    s.add_argument("--data-dir", help="journal, index and replica VMs live here")
    s.add_argument(
        "--data-group", metavar="NAME",
        help="an existing group that may read the data at rest (files 0640, folders 2750 "
        "owned by it; e.g. for backup or monitoring tools); without it only the target's "
        "user can (0600, 0700)",
    )  # fmt: skip
    s.add_argument(
        "--listen", help=f"HOST:PORT; port 0 picks a free one (default {DEFAULT_LISTEN})"
    )
    s.add_argument(
        "--history-window", metavar="DURATION",
        help="how far back restore points reach, e.g. 0, 90s, 15m, 1h, 30d (default 1h, "
        "at most 30d); 0 applies every write to the replica as soon as it is durable",
    )  # fmt: skip
    s.add_argument(
        "--journal-limit", metavar="SIZE",
        help="hard size limit of each group's journal (default 16GiB); past it the oldest "
        "history is applied early and the timeline says so",
    )  # fmt: skip
    s.add_argument(
        "--retention-lock", metavar="DURATION",
        help="compliance mode: history no config, CLI or API may shorten, e.g. 24h (at most "
        "the history window); stored at first use, it can only be lengthened later",
    )  # fmt: skip
    s.add_argument(
        "--checkpoint-interval", type=float, metavar="SECONDS",
        help="cadence of checkpoint restore points on the timeline (default 1)",
    )  # fmt: skip
    s.add_argument(
        "--scrub-interval", metavar="DURATION",
        help="check every replica against its checksums this often while running, e.g. "
        "6h (default 24h; 0 never); SIGUSR1 starts one at once; damaged regions are "
        "refused to readers and repaired by a resync from the source",
    )  # fmt: skip
    s.add_argument(
        "--detect-training", metavar="DURATION",
        help="trusted time each group's encryption detector learns its baseline before it "
        "judges writes, e.g. 30s for a demo (default 10m; docs/ARCHITECTURE.md, Ransomware "
        "detection)",
    )  # fmt: skip
    s.add_argument(
        "--http", metavar="HOST:PORT",
        help="also serve the on-call web page (/), a read-only JSON API (/api/v1/status, "
        "/api/v1/groups/GROUP/timeline) and Prometheus /metrics here; plain HTTP without "
        "authentication, off unless given (a non-loopback HOST is logged as a warning)",
    )  # fmt: skip
    s.add_argument(
        "--http-allow-host", action="append", metavar="NAME",
        help="a host name the web page may be reached by besides this machine's and "
        "localhost (e.g. a reverse proxy's); other Host headers get 421 (DNS rebinding)",
    )  # fmt: skip
    s.add_argument(
        "--ready-file", help="write {address, pid, http_address} as JSON here once serving"
    )
    journal_keys.add_flag(s)
    common.add_tls_flags(s, "DIR/target from `cdp certs init DIR`, with authz.yaml")
    s.set_defaults(handler=serve)
    scrub.add_parser(tsub)
    target_config.add_parser(tsub)


def settings_of(args: argparse.Namespace) -> ServeSettings:
    """The config file (if --config) with the flags as overrides."""
    if args.config:
        return target_config.load_config(args.config, args)
    if not args.data_dir:
        raise InvalidInputError("--data-dir", "required (or give --config FILE with data_dir)")
    return target_config.parse_config({}, args)


async def serve(args: argparse.Namespace) -> int:
    """Run the target and its server until a signal."""
    settings = settings_of(args)
    config = settings.target
    http = parse_http_address(settings.http) if settings.http else None
    tls = server_tls(settings)
    # RocksDB's own files too: data at rest is for the target's user (and its data group)
    os.umask(0o077 if config.data_gid is None else 0o027)
    notifier = Notifier.from_env()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Target(config, RocksIndex) as target:
        loop.add_signal_handler(signal.SIGUSR1, target.request_scrub)
        reloader = Reloader(args.config, args, settings, target, notifier)
        loop.add_signal_handler(signal.SIGHUP, reloader.reload)
        web_runner, http_address = await _start_http(target, http, settings.http_allow_hosts)
        watchdog = asyncio.create_task(_watchdog(notifier))
        try:
            server, port = await start_server(target, settings.listen, tls)
            address = f"{settings.listen.rpartition(':')[0]}:{port}"
            if args.ready_file:
                info = {"address": address, "pid": os.getpid(), "http_address": http_address}
                write_atomic(args.ready_file, json.dumps(info).encode())
            mode = f"mTLS, {settings.tls_dir}" if tls else "PLAIN TEXT, --insecure"
            print(f"cdp target: serving on {address} ({mode}), data in {config.data_dir}",
                  file=sys.stderr)  # fmt: skip
            notifier.ready(f"serving on {address}")
            await stop.wait()
            notifier.stopping()
            print("cdp target: stopping", file=sys.stderr)
            await server.stop(grace=2.0)
        finally:
            watchdog.cancel()
            if web_runner:
                await web_runner.cleanup()
    print("cdp target: stopped cleanly", file=sys.stderr)
    return common.EXIT_OK


async def _watchdog(notifier: Notifier) -> None:
    """Tell systemd the target is alive, every WatchdogSec/2 (nothing without a watchdog)."""
    interval = notifier.watchdog_interval_s
    while interval > 0:
        notifier.watchdog()
        await asyncio.sleep(interval)


class Reloader:
    """SIGHUP: read the config file again and apply what can change live."""

    def __init__(
        self, path: str | None, flags: argparse.Namespace, running: ServeSettings,
        target: Target, notifier: Notifier,
    ) -> None:  # fmt: skip
        self.path, self.flags, self.running = path, flags, running
        self.target, self.notifier = target, notifier

    def reload(self) -> None:
        """Apply the file's policies to the live groups; a bad file keeps the old config."""
        if not self.path:
            log.warning("SIGHUP: the target was started without --config; nothing to reload")
            return
        self.notifier.reloading()
        try:
            new = target_config.load_config(self.path, self.flags)
            self.target.check_config(new.target)  # e.g. a shorter retention lock
        except CdpError as exc:
            log.error("reload of %s failed; the running config stays: %s", self.path, exc)
            self._audit(self.path, audit.outcome_of(exc))
            return
        finally:
            self.notifier.ready()
        live, restart = target_config.describe_reload(self.running, new)
        kept = {key: getattr(self.running, key) for key in RESTART_KEYS if key != "data_dir"}
        target = dataclasses.replace(
            new.target, data_dir=self.running.data_dir, data_gid=self.running.target.data_gid
        )
        self.running = dataclasses.replace(new, target=target, **kept)
        self.target.reconfigure(target)
        for line in live:
            log.warning("reload of %s: %s", self.path, line)
        for line in restart:
            log.warning("reload of %s: %s", self.path, line)
        if not live and not restart:
            log.warning("reload of %s: nothing changed", self.path)
        self._audit(f"{self.path}: " + ("; ".join(live + restart) or "nothing changed"), audit.OK)

    def _audit(self, changed: str, outcome: str) -> None:
        """Record the reload in the target's audit log (a failure to is logged, not raised)."""
        try:
            audit.record_config_reload(self.running.data_dir, "signal", changed, outcome)
        except CdpError as exc:
            log.error("reload of %s not audited: %s", self.path, exc)


async def _start_http(
    target: Target, http: tuple[str, int] | None, allow_hosts: tuple[str, ...]
) -> tuple[web.AppRunner | None, str]:
    """The web page and metrics server if --http was given, and its HOST:PORT ("" if not)."""
    if http is None:
        return None, ""
    host = http[0]
    runner, port = await start_web(target, *http, allow_hosts=allow_hosts)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    print(f"cdp target: web page and /metrics on http://{address}/ "
          "(read-only, plain HTTP, no authentication)", file=sys.stderr)  # fmt: skip
    return runner, address


def server_tls(settings: ServeSettings) -> ServerTLS | None:
    """The target's certificate and authz.yaml from tls_dir; None if insecure (warned)."""
    if settings.insecure:
        log.warning(
            "--insecure: serving %s in plain text, without encryption or authentication: "
            "anyone who can reach it may write journals and read every disk image",
            settings.listen,
        )
        return None
    if not settings.tls_dir:
        raise InvalidInputError(
            "--tls-dir", "required: the target's folder from `cdp certs init DIR`",
            hint="or pass --insecure (insecure: true in --config) to serve plain text "
            "without authentication",
        )  # fmt: skip
    return load_server_tls(settings.tls_dir)
