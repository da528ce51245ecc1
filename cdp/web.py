"""The on-call web page, a read-only JSON API and Prometheus metrics, served by the target.

Owns the aiohttp app (:func:`create_app`: route table, one error middleware), the
``--http`` address rule and the metrics, declared here and nowhere else. It runs in the
target's process and event loop and reads the target at request or scrape time.

It must never change anything at the target: every route is a GET. It serves plain
HTTP without authentication (docs/SECURITY.md), so it shows only what ``cdp status``
and ``cdp timeline`` show, never journal or image data.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cdp.errors import CdpError, InvalidInputError, NotFoundError, PreconditionError
from cdp.group import check_name
from cdp.rpc.convert import status_to_dict, status_to_pb, timeline_to_dict, timeline_to_pb
from cdp.status import GroupState, GroupStatus
from cdp.target.target import Target

log = logging.getLogger(__name__)

TARGET: web.AppKey[Target] = web.AppKey("target", Target)
REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry", CollectorRegistry)
STATES = (
    GroupState.REPLICATING,
    GroupState.DISCONNECTED,
    GroupState.RESYNC_REQUIRED,
    GroupState.RESYNCING,
    GroupState.ERROR,
)
"""Every value of the ``state`` label of ``cdp_group_state``."""
LABELS = ["group", "member"]
"""Labels of every per-group metric; ``member`` is "" for a group streamed by one source."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- address ------------------------------------------------------------------------------


def parse_http_address(text: str) -> tuple[str, int]:
    """(host, port) of ``--http HOST:PORT``; port 0 picks a free one."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidInputError("--http", f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True if ``host`` reaches only this machine (``localhost`` or a loopback IP)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- metrics ------------------------------------------------------------------------------


class TargetCollector(Collector):
    """Per-group gauges read from :meth:`Target.status` at scrape time."""

    def __init__(self, target: Target) -> None:
        self._target = target

    def collect(self) -> Iterator[Metric]:
        """One family per metric, one sample per group member."""
        statuses = self._target.status()
        yield from _gauges(statuses)
        received = CounterMetricFamily(
            "cdp_group_received_bytes",
            "Bytes of guest writes (uncompressed) accepted from the source since the "
            "target started",
            labels=LABELS,
        )
        state = GaugeMetricFamily(
            "cdp_group_state",
            "Replication state of the group: 1 for the current state, 0 for the others",
            labels=[*LABELS, "state"],
        )
        for s in statuses:
            received.add_metric([s.group_id, s.member_id], s.received_bytes)
            for name in STATES:
                state.add_metric([s.group_id, s.member_id, name], float(s.state == name))
        yield received
        yield state


_GAUGES: list[tuple[str, str, Callable[[GroupStatus], float]]] = [
    ("cdp_group_durable_seq",
     "Newest seq durable (fsync'd) at the target; every seq up to it is durable",
     lambda s: s.durable_seq),
    ("cdp_group_applied_seq",
     "Newest seq applied to the base replica (the oldest restorable point)",
     lambda s: s.applied_seq),
    ("cdp_group_lag_seconds",
     "Seconds from the source time of the newest durable write to now (0 before any write)",
     lambda s: s.lag_s),
    ("cdp_group_journal_bytes",
     "Bytes of journal segments on disk for the group",
     lambda s: s.journal_bytes),
    ("cdp_group_resync_remaining_bytes",
     "Bytes a running resync still has to send (0 when no resync runs)",
     lambda s: s.resync.remaining_bytes),
    ("cdp_group_resync_eta_seconds",
     "Seconds a running resync needs at its rate so far (0 when unknown or not running)",
     lambda s: s.resync.eta_s),
]  # fmt: skip
"""Name, help (with units) and value of every per-group gauge."""


def _gauges(statuses: list[GroupStatus]) -> Iterator[Metric]:
    for name, help_text, value in _GAUGES:
        family = GaugeMetricFamily(name, help_text, labels=LABELS)
        for s in statuses:
            family.add_metric([s.group_id, s.member_id], float(value(s)))
        yield family


# -- handlers -----------------------------------------------------------------------------


async def get_status(request: web.Request) -> web.Response:
    """Every group's status, as ``cdp status --json`` prints it."""
    statuses = request.app[TARGET].status()
    groups = [status_to_dict(status_to_pb(s)) for s in statuses]
    return web.json_response({"time": time.time(), "groups": groups})


async def get_timeline(request: web.Request) -> web.Response:
    """One group's timeline, as ``cdp timeline --json`` prints it."""
    group = check_name("group", request.match_info["group"])
    timeline = await asyncio.to_thread(request.app[TARGET].timeline, group)
    return web.json_response(timeline_to_dict(group, timeline_to_pb(timeline)))


async def get_metrics(request: web.Request) -> web.Response:
    """Prometheus text format, collected now (on the event loop, like the status RPC)."""
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_index(request: web.Request) -> web.Response:
    """The on-call page (static; it polls the JSON API)."""
    page = resources.files("cdp").joinpath("web_static", "index.html").read_bytes()
    return web.Response(
        body=page, content_type="text/html", charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )  # fmt: skip


def _http_status(exc: CdpError) -> int:
    if isinstance(exc, InvalidInputError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, PreconditionError):
        return 409
    return 500


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map cdp errors to an HTTP status and a JSON body naming the problem."""
    try:
        return await handler(request)
    except CdpError as exc:
        status = _http_status(exc)
        if status == 500:
            log.error("%s %s failed: %s", request.method, request.path, exc)
        body: dict[str, Any] = {"error": str(exc), "status": status}
        if isinstance(exc, InvalidInputError):
            body["field"] = exc.field
        return web.json_response(body, status=status)


def create_app(target: Target) -> web.Application:
    """The read-only web app of ``target``, with its own metrics registry."""
    app = web.Application(middlewares=[error_middleware])
    app[TARGET] = target
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TargetCollector(target))
    app[REGISTRY] = registry
    app.router.add_get("/", get_index)
    app.router.add_get("/api/v1/status", get_status)
    app.router.add_get("/api/v1/groups/{group}/timeline", get_timeline)
    app.router.add_get("/metrics", get_metrics)
    return app


async def start_web(target: Target, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve the app on host:port (warned if reachable from other machines); the bound port."""
    if not is_loopback(host):
        log.warning(
            "--http %s:%d is not a loopback address: the web page and /metrics are plain "
            "HTTP without authentication, so anyone who can reach it sees every group's "
            "name, VMs, state and journal sizes; bind 127.0.0.1 and put an authenticating "
            "proxy in front to share it",
            host, port,
        )  # fmt: skip
    runner = web.AppRunner(create_app(target), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise InvalidInputError("--http", f"cannot listen on {host}:{port}: {exc}") from exc
    return runner, int(runner.addresses[0][1])
