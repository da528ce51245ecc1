"""``cdp target serve --config`` as systemd runs it: a real target subprocess telling a
notify socket the test binds (READY, WATCHDOG, RELOADING, STOPPING), and SIGHUP reloads
that change a live group's policy, or keep the running config when the file is bad."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port

GROUP = "db"


def cdp(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cdp ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "cdp", *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def ok_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(data, dict)
    return data


def write_config(path: Path, data_dir: Path, port: int, window: str) -> None:
    path.write_text(
        f"data_dir: {data_dir}\nlisten: 127.0.0.1:{port}\ninsecure: true\n"
        "policies:\n  default:\n    history_window: 1h\n"
        f"  fast:\n    history_window: {window}\n    priority: high\n"
        f"groups:\n  {GROUP}:\n    policy: fast\n"
    )


class Notify:
    """The notify socket systemd would bind: a thread collects the target's datagrams."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, state: str, timeout_s: float = 30.0) -> float:
        """Monotonic time at which the next datagram with ``state`` arrived (waits for it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                for t, msg in self.messages:
                    if state in msg.splitlines():
                        self.messages.remove((t, msg))
                        return t
            time.sleep(0.02)
        raise AssertionError(f"no {state} within {timeout_s} s; got {self.messages}")

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notify]:
    n = Notify(str(tmp_path / "notify.sock"))
    yield n
    n.close()


def test_serve_with_config_notifies_systemd_and_reloads_live_policies(
    tmp_path: Path, notify: Notify
) -> None:
    port, config = free_port(), tmp_path / "target.yaml"
    write_config(config, tmp_path / "data", port, "1h")
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
           "WATCHDOG_USEC": "400000"}  # fmt: skip
    log = (tmp_path / "target.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdp", "target", "serve", "--config", str(config)],
        env=env, stdin=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        notify.wait_for("READY=1")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # bound before READY=1
        first = notify.wait_for("WATCHDOG=1")
        second = notify.wait_for("WATCHDOG=1")
        assert 0.1 <= second - first <= 2.0  # every WatchdogSec/2 = 0.2 s (a loaded machine)
        address = f"127.0.0.1:{port}"
        ok_json(cdp("sim", "run", "--target", address, "--insecure", "--json", "--seconds",
                    "1", "--rate-mb", "2", "--group", GROUP, "--vm", "vm1", "--disk-size",
                    "4MiB", "--dir", str(tmp_path / "source")))  # fmt: skip
        group = ["--target", address, "--insecure", "--group", GROUP, "--json"]
        assert ok_json(cdp("timeline", *group))["history_window_s"] == 3600.0
        status = ok_json(cdp("status", *group))["groups"][0]
        assert status["applied_seq"] < status["durable_seq"]  # the 1 h window holds it all

        write_config(config, tmp_path / "data", port + 1, "0")  # and a new port
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        notify.wait_for("READY=1")
        assert ok_json(cdp("timeline", *group))["history_window_s"] == 0.0
        deadline = time.monotonic() + 20
        while status["applied_seq"] < status["durable_seq"]:  # window 0: all applied
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
            status = ok_json(cdp("status", *group))["groups"][0]
        text = Path(log.name).read_text()
        assert "policies.fast: history_window_s 3600.0 -> 0.0" in text
        assert f"groups.{GROUP}: history_window_s 3600.0 -> 0.0" in text
        assert f"listen: '127.0.0.1:{port}' -> '127.0.0.1:{port + 1}' needs a restart" in text

        config.write_text(config.read_text().replace("priority: high", "priority: urgent"))
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        notify.wait_for("READY=1")
        assert ok_json(cdp("timeline", *group))["history_window_s"] == 0.0  # kept
        text = Path(log.name).read_text()
        assert "failed; the running config stays: policies.fast.priority: 'urgent'" in text
        reloads = [
            e
            for e in ok_json(cdp("audit", "--target", address, "--insecure", "--json"))["entries"]
            if e["action"] == "config.reload"
        ]
        assert [(e["identity"], e["outcome"][:6]) for e in reloads] == [
            ("signal", "ok"), ("signal", "error:")]  # fmt: skip
        assert "history_window_s 3600.0 -> 0.0" in reloads[0]["object"]
        assert "needs a restart" in reloads[0]["object"] and "urgent" in reloads[1]["outcome"]
        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_without_notify_socket_the_target_serves_as_before(tmp_path: Path) -> None:
    """No NOTIFY_SOCKET (not under systemd): nothing is sent, nothing fails."""
    from cdp.sdnotify import Notifier

    n = Notifier.from_env({})
    assert (n.ready(), n.watchdog(), n.stopping(), n.watchdog_interval_s) == (
        False, False, False, 0.0,
    )  # fmt: skip
    elsewhere = Notifier.from_env({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000",
                                   "WATCHDOG_PID": "1"})  # fmt: skip
    assert elsewhere.watchdog_interval_s == 0.0  # another process's watchdog
    mine = Notifier.from_env({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000"})
    assert mine.watchdog_interval_s == 0.5


def test_abstract_namespace_socket() -> None:
    """A NOTIFY_SOCKET starting with @ is in the abstract namespace."""
    from cdp.sdnotify import Notifier

    name = f"cdp-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(5)
        assert Notifier(f"@{name}", 0).ready("up")
        assert s.recv(100).decode().splitlines() == ["READY=1", "STATUS=up"]


def test_a_notify_socket_nobody_reads_never_blocks_the_target(tmp_path: Path) -> None:
    """systemd busy (its queue full): notifications are dropped and logged, never waited for."""
    from cdp.sdnotify import Notifier

    path = str(tmp_path / "full.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        n = Notifier(path, 1000)
        t0 = time.monotonic()
        sent = [n.watchdog() for _ in range(2000)]
        assert time.monotonic() - t0 < 5
        assert sent[0] and not sent[-1]
