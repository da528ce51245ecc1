"""The on-call web page, a read-only JSON API and Prometheus metrics, served by the target.

Owns the aiohttp app (:func:`create_app`: route table, one error middleware), the
``--http`` address rule and the metrics, declared here and nowhere else. It runs in the
target's process and event loop and reads the target at request or scrape time.

It must never change anything at the target: every route is a GET. It serves plain
HTTP without authentication (docs/SECURITY.md), so it shows only what ``cdp status``
and ``cdp timeline`` show, never journal or image data. It must never starve the gRPC
service it shares a process with: connections are capped and idle ones closed, requests
naming another Host are refused (DNS rebinding), and every response forbids inline code
and content sniffing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import resources
from typing import Any, cast

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cdp import audit, lifecycle, oncall
from cdp.errors import CdpError, InvalidInputError, NotFoundError, PreconditionError
from cdp.group import check_name
from cdp.rpc.convert import status_to_dict, status_to_pb, timeline_to_dict, timeline_to_pb
from cdp.status import GroupState, GroupStatus
from cdp.target.target import Target
from cdp.verified import VerifiedCache

log = logging.getLogger(__name__)

TARGET: web.AppKey[Target] = web.AppKey("target", Target)
REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry", CollectorRegistry)
RPO_HISTORY: web.AppKey[oncall.RpoHistory] = web.AppKey("rpo_history", oncall.RpoHistory)
VERIFIED: web.AppKey[VerifiedCache] = web.AppKey("verified", VerifiedCache)
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
ALLOWED_HOSTS: web.AppKey[frozenset[str]] = web.AppKey("allowed_hosts", frozenset)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_MAX_CONNECTIONS = 64
"""Concurrent HTTP connections served; past it a new one is closed at once, so a flood of
idle sockets cannot take the file descriptors the gRPC service needs."""
DEFAULT_IDLE_S = 10.0
"""A connection idle this long (no request yet, or between requests) is closed."""
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
"""Sent with every response: no inline or foreign code, no sniffing, no framing."""
STATIC_FILES = {"app.js": "text/javascript", "chart.js": "text/javascript", "app.css": "text/css"}
"""Files of ``web_static/`` served under ``/static/``, with their content types."""


# -- address ------------------------------------------------------------------------------


def parse_http_address(text: str) -> tuple[str, int]:
    """(host, port) of ``--http HOST:PORT``; port 0 picks a free one."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidInputError("--http", f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def host_of(header: str) -> str:
    """The host part of a ``Host`` header (no port, no IPv6 brackets), lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, _, port = header.rpartition(":")
    return name if name and port.isdigit() and ":" not in name else header


def default_allowed_hosts(bound_host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """Host names the web page answers to: loopback's, this machine's, the bound one, extra."""
    names = {"localhost", socket.gethostname(), socket.getfqdn(), bound_host, *extra}
    return frozenset(n.lower() for n in names if n)


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    """Whether a request's ``Host`` header may be answered.

    An IP literal is always fine (DNS rebinding needs a name the attacker controls); a
    name must be one of ``allowed``; a request without ``Host`` (HTTP/1.0) is answered.
    """
    if header is None:
        return True
    host = host_of(header)
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host in allowed


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
        yield from _policy_gauges(self._target, statuses)
        yield from _history_gauges(self._target, statuses)
        yield from _scrub_gauges(self._target)
        yield _lifecycle(statuses)
        yield _base_held(self._target)
        yield from _retention_guard(self._target)


def rpo_threshold_s(target: Target, group_id: str) -> float:
    """The RPO alert threshold of a group (seconds): its policy's ``rpo_alert``."""
    return float(target.config.policy_for(group_id).rpo_alert_s)


def _policy_gauges(target: Target, statuses: list[GroupStatus]) -> Iterator[Metric]:
    """What each member is measured against: its RPO threshold and journal limit."""
    threshold = GaugeMetricFamily(
        "cdp_group_rpo_threshold_seconds",
        "RPO (seconds) past which the group's RPO alert fires",
        labels=LABELS,
    )
    limit = GaugeMetricFamily(
        "cdp_group_journal_limit_bytes",
        "Journal size limit of the group (0: none); past it the oldest history is cut",
        labels=LABELS,
    )
    for s in statuses:
        threshold.add_metric([s.group_id, s.member_id], rpo_threshold_s(target, s.group_id))
        limit.add_metric([s.group_id, s.member_id], float(target.config.journal_limit_bytes))
    yield threshold
    yield limit
    yield GaugeMetricFamily(
        "cdp_scrub_interval_seconds",
        "Cadence of the scheduled scrub of every replica (0: never)",
        value=target.config.scrub_interval_s,
    )


def _history_gauges(target: Target, statuses: list[GroupStatus]) -> Iterator[Metric]:
    """Per group: history available, the window promised, and whether it falls short.

    ``cdp_group_history_short`` is the timeline's own grade, which neither blames a
    group younger than its window nor an idle source.
    """
    available = GaugeMetricFamily(
        "cdp_group_history_seconds",
        "Seconds between the oldest and the newest restorable point of the group",
        labels=["group"],
    )
    window = GaugeMetricFamily(
        "cdp_group_history_window_seconds",
        "Seconds of history the group's window promises",
        labels=["group"],
    )
    short = GaugeMetricFamily(
        "cdp_group_history_short",
        "1 when the group keeps less history than its window promises (as far as it is "
        "old), e.g. because the journal size limit cuts it; else 0",
        labels=["group"],
    )
    for group_id in sorted({s.group_id for s in statuses}):
        timeline = target.timeline(group_id)
        available.add_metric([group_id], timeline.available_s)
        window.add_metric([group_id], timeline.history_window_s)
        short.add_metric([group_id], float(timeline.health != "ok"))
    yield available
    yield window
    yield short


def _scrub_gauges(target: Target) -> Iterator[Metric]:
    """The newest scheduled scrub: when it finished and the damage it found (absent before)."""
    if target.last_scrub is None:
        return
    finished, report = target.last_scrub
    yield GaugeMetricFamily(
        "cdp_scrub_last_finished_timestamp_seconds",
        "Unix time the newest scrub of every replica finished",
        value=finished,
    )
    yield GaugeMetricFamily(
        "cdp_scrub_damaged_regions",
        "Replica regions the newest scrub found damaged (refused until a resync rewrites them)",
        value=float(len(report.damage)),
    )


def _base_held(target: Target) -> Metric:
    """``cdp_group_base_held``: how many tests/failovers hold the member's base (0: none)."""
    family = GaugeMetricFamily(
        "cdp_group_base_held",
        "Holders (copy-free tests or failovers) keeping the base replica at or before their "
        "point; while held, apply stops there and the journal grows (intake stops at its limit)",
        labels=LABELS,
    )
    for member in sorted(target.groups.values(), key=lambda m: m.key):
        family.add_metric([member.group_id, member.member_id], float(len(member.holds.items())))
    return family


def _retention_guard(target: Target) -> Iterator[Metric]:
    """Intake refused to keep held, pinned or locked history; the target clock's jump."""
    refused = GaugeMetricFamily(
        "cdp_group_intake_refused",
        "1 while new writes are refused (RESOURCE_EXHAUSTED) because a base hold, the pin of "
        "a suspected attack or the retention lock keeps the journal at its size limit",
        labels=[*LABELS, "cause"],
    )
    jump = GaugeMetricFamily(
        "cdp_group_clock_jump_seconds",
        "Unexplained jump of the target's wall clock against its boot clock (signed "
        "seconds; 0 when trusted); while not 0 nothing leaves the history by time",
        labels=LABELS,
    )
    lock = GaugeMetricFamily(
        "cdp_group_retention_lock_seconds",
        "The group's retention lock: history no config change may shorten (0: none)",
        labels=LABELS,
    )
    for m in sorted(target.groups.values(), key=lambda m: m.key):
        labels, cause = [m.group_id, m.member_id], m.keeping.refused_by()
        for name in ("hold", "pin", "lock"):
            refused.add_metric([*labels, name], float(cause == name))
        jump.add_metric(labels, m.keeping.clock_jump_s())
        lock.add_metric(labels, m.keeping.policy.retention_lock_s)
    yield from (refused, jump, lock)


def _lifecycle(statuses: list[GroupStatus]) -> Metric:
    """``cdp_group_lifecycle``: 1 for the group's failover lifecycle state, 0 for the others."""
    family = GaugeMetricFamily(
        "cdp_group_lifecycle",
        "Failover lifecycle of the group (persisted at the target): 1 for the current state, "
        "0 for the others",
        labels=[*LABELS, "state"],
    )
    for s in statuses:
        for name in lifecycle.STATES:
            family.add_metric([s.group_id, s.member_id, name], float(s.lifecycle.state == name))
    return family


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
    ("cdp_group_rpo_seconds",
     "Seconds since the newest restorable point (grows while a resync is open or required)",
     lambda s: s.rpo_s),
    ("cdp_group_journal_bytes",
     "Bytes of journal segments on disk for the group",
     lambda s: s.journal_bytes),
    ("cdp_group_resync_remaining_bytes",
     "Bytes a running resync still has to send (0 when no resync runs)",
     lambda s: s.resync.remaining_bytes),
    ("cdp_group_epoch",
     "Fencing epoch of the group: sources that send an older one are refused (0: never "
     "failed over)",
     lambda s: s.lifecycle.epoch),
    ("cdp_group_resync_eta_seconds",
     "Seconds a running resync needs at its rate so far (0 when unknown or not running)",
     lambda s: s.resync.eta_s),
    ("cdp_group_suspicions",
     "Standing suspicions (possible ransomware) on the member's history, not dismissed; "
     "each one is an open alert (0: none)",
     lambda s: s.standing_suspicions),
    ("cdp_group_last_clean_point_timestamp_seconds",
     "Unix time (point time as listed) of the group's newest restorable point whose verdict "
     "is clean, what --at last-clean names (0: none)",
     lambda s: s.last_clean_ns / 1e9),
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
    target = request.app[TARGET]
    verified = await asyncio.to_thread(request.app[VERIFIED].get)
    groups = [
        {**status_to_dict(status_to_pb(s)), **oncall.group_extras(target, verified, s.group_id)}
        for s in target.status()
    ]
    return web.json_response({"time": time.time(), "groups": groups})


async def get_timeline(request: web.Request) -> web.Response:
    """One group's timeline, as ``cdp timeline --json`` prints it."""
    group = check_name("group", request.match_info["group"])
    target = request.app[TARGET]
    timeline = await asyncio.to_thread(target.timeline, group)
    bands = await asyncio.to_thread(target.suspect_bands, group)
    marks = await asyncio.to_thread(oncall.timeline_marks, target, group)
    data = timeline_to_dict(group, timeline_to_pb(timeline, bands))
    return web.json_response({**data, "marks": marks})


async def get_rpo(request: web.Request) -> web.Response:
    """One group's RPO over the last hour ([time s, RPO s] pairs) and its threshold."""
    target = request.app[TARGET]
    group = check_name("group", request.match_info["group"])
    now = max(s.rpo_s for s in target.status(group))  # NotFoundError (404): no such group
    samples = [*request.app[RPO_HISTORY].series(group), (round(time.time(), 3), round(now, 3))]
    return web.json_response({
        "group": group, "threshold_s": oncall.rpo_threshold_s(target, group),
        "sample_s": request.app[RPO_HISTORY].sample_s, "samples": samples,
    })  # fmt: skip


AUDIT_SHOWN = 20
"""Audit entries the page shows: the newest ones."""


async def get_audit(request: web.Request) -> web.Response:
    """The newest operator actions at this target (identity, action, object, outcome)."""
    log_ = audit.target_log(request.app[TARGET].config.data_dir)
    found = await asyncio.to_thread(log_.entries, 0, AUDIT_SHOWN)
    entries = [
        {"time": e.time_utc, "time_unix_ns": e.time_ns, "identity": e.identity,
         "action": e.action, "object": e.object, "outcome": e.outcome} for e in found
    ]  # fmt: skip
    return web.json_response({"entries": entries})


async def get_metrics(request: web.Request) -> web.Response:
    """Prometheus text format, collected now (on the event loop, like the status RPC)."""
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_index(request: web.Request) -> web.Response:
    """The on-call page (static; it polls the JSON API)."""
    return _static("index.html", "text/html")


async def get_static(request: web.Request) -> web.Response:
    """The page's script and style sheet (inline code is forbidden by the CSP)."""
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise NotFoundError(f"no static file {name!r}")
    return _static(name, STATIC_FILES[name])


def _static(name: str, content_type: str) -> web.Response:
    body = resources.files("cdp").joinpath("web_static", name).read_bytes()
    return web.Response(
        body=body, content_type=content_type, charset="utf-8",
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


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests whose ``Host`` names another site (421), before any handler runs."""
    header = request.headers.get("Host")
    if not host_allowed(header, request.app[ALLOWED_HOSTS]):
        body = {"error": f"Host {header!r} is not this target's; pass --http-allow-host "
                "NAME to serve it under that name", "status": 421}  # fmt: skip
        return web.json_response(body, status=421)
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def create_app(target: Target, allowed_hosts: frozenset[str] | None = None) -> web.Application:
    """The read-only web app of ``target``, with its own metrics registry."""
    app = web.Application(middlewares=[host_middleware, error_middleware])
    app.on_response_prepare.append(_security_headers)
    app[TARGET] = target
    app[ALLOWED_HOSTS] = allowed_hosts or default_allowed_hosts("")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TargetCollector(target))
    app[VERIFIED] = oncall.verified_cache(target)
    registry.register(oncall.VerifiedCollector(app[VERIFIED]))
    app[REGISTRY] = registry
    app[RPO_HISTORY] = oncall.RpoHistory()
    app.cleanup_ctx.append(_sampling)
    app.router.add_get("/", get_index)
    app.router.add_get("/static/{name}", get_static)
    app.router.add_get("/api/v1/status", get_status)
    app.router.add_get("/api/v1/groups/{group}/timeline", get_timeline)
    app.router.add_get("/api/v1/groups/{group}/rpo", get_rpo)
    app.router.add_get("/api/v1/audit", get_audit)
    app.router.add_get("/metrics", get_metrics)
    return app


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    """Sample every group's RPO for the page's chart while the app runs."""
    task = asyncio.create_task(oncall.sample_forever(app[TARGET], app[RPO_HISTORY]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class _Capped(asyncio.Protocol):
    """One HTTP connection: aiohttp's handler behind a cap on live connections.

    Past the cap, the oldest connection that never sent a byte makes room (an idle flood
    cannot lock the page out); if every one has spoken, the new connection is closed at
    once, without a word in the log: the file descriptors belong to gRPC first.
    """

    def __init__(self, inner: asyncio.Protocol, live: dict[_Capped, None], cap: int) -> None:
        self._inner, self._live, self._cap = inner, live, cap
        self._transport: asyncio.Transport | None = None
        self.spoke = False
        """Whether the peer has sent anything yet."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Serve it if under the cap (evicting a silent one if need be), else abort it."""
        transport = cast(asyncio.Transport, transport)
        if len(self._live) >= self._cap:
            silent = next((c for c in self._live if not c.spoke), None)
            if silent is None:
                transport.abort()
                return
            silent.evict()
        self._live[self] = None
        self._transport = transport
        self._inner.connection_made(transport)

    def evict(self) -> None:
        """Close this connection to make room for a newer one."""
        self._live.pop(self, None)
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget it; tell aiohttp if it was served."""
        self._live.pop(self, None)
        if self._transport is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Forward to aiohttp."""
        self.spoke = True
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        """Forward to aiohttp."""
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        """Forward to aiohttp."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Forward to aiohttp."""
        self._inner.resume_writing()


class _CappedSite(web.TCPSite):
    """A TCP site whose connections go through :class:`_Capped`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, cap: int) -> None:
        super().__init__(runner, host, port)
        self._cap = cap
        self._live: dict[_Capped, None] = {}
        """Live connections, oldest first."""

    async def start(self) -> None:
        """Listen; each accepted connection is counted against the cap."""
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None

        def factory() -> asyncio.Protocol:
            return _Capped(server(), self._live, self._cap)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, self._host, self._port)


async def start_web(
    target: Target,
    host: str,
    port: int,
    allow_hosts: tuple[str, ...] = (),
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_s: float = DEFAULT_IDLE_S,
) -> tuple[web.AppRunner, int]:
    """Serve the app on host:port (warned if reachable from other machines); the bound port.

    At most ``max_connections`` at once, each closed after ``idle_s`` without a request;
    requests must name this host (``allow_hosts`` adds names, e.g. a proxy's).
    """
    if not is_loopback(host):
        log.warning(
            "--http %s:%d is not a loopback address: the web page and /metrics are plain "
            "HTTP without authentication, so anyone who can reach it sees every group's "
            "name, VMs, state and journal sizes; bind 127.0.0.1 and put an authenticating "
            "proxy in front to share it",
            host, port,
        )  # fmt: skip
    app = create_app(target, default_allowed_hosts(host, allow_hosts))
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=idle_s)
    await runner.setup()
    site = _CappedSite(runner, host, port, max_connections)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise InvalidInputError("--http", f"cannot listen on {host}:{port}: {exc}") from exc
    return runner, int(runner.addresses[0][1])
