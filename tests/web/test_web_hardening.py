"""The web port under abuse (issue 12, defect 8), against a real ``cdp target serve --http``.

A flood of idle TCP connections to ``--http`` must not take the file descriptors gRPC
needs, idle connections are closed, the log stays small, only expected Host headers are
answered (DNS rebinding), and every response carries CSP and nosniff headers.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import free_port

FD_LIMIT = 256
"""RLIMIT_NOFILE of the target under test: small, so a flood of 300 sockets would exhaust it."""
FLOOD = 300


@dataclass
class Served:
    """A target subprocess with ``--http``, its stderr in a file."""

    proc: subprocess.Popen[bytes]
    grpc: str
    http_port: int
    log_path: str

    def get(self, path: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}")
        if host is not None:
            req.add_header("Host", host)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.fixture
def served(tmp_path: str) -> Iterator[Served]:
    grpc, http_port = f"127.0.0.1:{free_port()}", free_port()
    ready = os.path.join(tmp_path, "ready.json")
    log_path = os.path.join(tmp_path, "target.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cdp", "target", "serve", "--insecure",
             "--data-dir", os.path.join(tmp_path, "data"), "--listen", grpc,
             "--http", f"127.0.0.1:{http_port}", "--ready-file", ready],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_limit_fds,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while not os.path.exists(ready):
        assert proc.poll() is None, Path(log_path).read_text()
        assert time.monotonic() < deadline, "target did not become ready"
        time.sleep(0.05)
    try:
        yield Served(proc, grpc, http_port, log_path)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _status_json(address: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "cdp", "status", "--target", address, "--insecure", "--json"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_an_idle_connection_flood_on_http_does_not_starve_grpc(served: Served) -> None:
    socks: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", served.http_port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        time.sleep(1.0)
        # New gRPC clients still get an answer while the flood holds its sockets.
        assert "groups" in _status_json(served.grpc)
        status, _, _ = served.get("/api/v1/status")
        assert status == 200
    finally:
        for s in socks:
            s.close()
    assert served.proc.poll() is None
    assert os.path.getsize(served.log_path) < 100_000, "the flood flooded the log"


def test_an_idle_connection_is_closed(served: Served) -> None:
    """A connection that sends no request is closed by the target (slowloris)."""
    with socket.create_connection(("127.0.0.1", served.http_port)) as s:
        s.settimeout(30)
        t0 = time.monotonic()
        assert s.recv(1) == b""
        assert time.monotonic() - t0 < 25


def test_an_unexpected_host_header_is_refused(served: Served) -> None:
    status, _, body = served.get("/api/v1/status", host="rebind.attacker.example")
    assert status == 421
    assert b"Host" in body
    for ok in (f"127.0.0.1:{served.http_port}", f"localhost:{served.http_port}", "localhost"):
        assert served.get("/api/v1/status", host=ok)[0] == 200


@pytest.mark.parametrize("path", ["/", "/api/v1/status", "/metrics", "/api/v1/groups/x/timeline"])
def test_every_response_carries_security_headers(served: Served, path: str) -> None:
    _, headers, _ = served.get(path)
    assert headers.get("X-Content-Type-Options") == "nosniff"
    csp = headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert headers.get("X-Frame-Options") == "DENY"
