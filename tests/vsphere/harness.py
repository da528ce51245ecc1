"""Build, start and stop the vcsim-cdp simulator (deploy/vcsim) from Python.

Used by conftest.py fixtures and by tests that need a non-default inventory.
"""

from __future__ import annotations

import os
import queue
import shutil
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pyVim.connect import Disconnect, SmartStubAdapter
from pyVmomi import vim

VCSIM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "vcsim"
BUILD_TIMEOUT_S = 600.0  # a cold build is ~12 s; apt-get install can take minutes
READY_TIMEOUT_S = 60.0  # time allowed between spawn and the VCSIM_URL line
STOP_TIMEOUT_S = 10.0  # grace period after SIGTERM before SIGKILL


@dataclass(frozen=True)
class Inventory:
    """Simulator inventory, translated 1:1 into vcsim-cdp flags (see deploy/vcsim/README.md).

    Generated names: datacenters DC<i>, clusters DC<i>_C<j>, cluster hosts
    DC<i>_C<j>_H<k>, standalone hosts DC<i>_H<k>, datastores LocalDS_<n>,
    numbered port groups DC<i>_DVPG<n>; ``portgroups`` are added by name to every DC.
    """

    datacenters: int = 1
    clusters: int = 1  # per datacenter
    hosts_per_cluster: int = 2
    standalone_hosts: int = 1  # per datacenter
    datastores: int = 1  # LocalDS_<n>, mounted on every host
    numbered_portgroups: int = 0  # DC<i>_DVPG<n>
    vms: int = 0  # model VMs per resource pool / standalone host
    portgroups: tuple[str, ...] = ("DR-Prod", "DR-Test-Isolated")
    user: str = "cdp"
    password: str = "cdp-secret"  # a non-default pair makes vcsim reject wrong passwords

    def flags(self) -> list[str]:
        args = {
            "-dc": self.datacenters,
            "-cluster": self.clusters,
            "-host": self.hosts_per_cluster,
            "-standalone-host": self.standalone_hosts,
            "-ds": self.datastores,
            "-pg": self.numbered_portgroups,
            "-vm": self.vms,
            "-username": self.user,
            "-password": self.password,
        }
        out = [part for flag, value in args.items() for part in (flag, str(value))]
        if self.portgroups:
            out += ["-portgroups", ",".join(self.portgroups)]
        return out


@dataclass
class Vcsim:
    """A running simulator process and how to reach it."""

    url: str  # https://user:pass@127.0.0.1:PORT/sdk, as printed by the binary
    host: str
    port: int
    user: str
    password: str
    inventory: Inventory
    startup_seconds: float  # spawn -> URL line
    proc: subprocess.Popen[bytes] = field(repr=False)
    _sessions: list[vim.ServiceInstance] = field(default_factory=list, repr=False)

    def connect(self, user: str | None = None, password: str | None = None) -> vim.ServiceInstance:
        """Log in with pyvmomi (default: the simulator's credentials); logged out at teardown."""
        # vcsim serves a self-signed test certificate: verification is off on purpose,
        # via an explicit context so nothing warns (the suite runs with warnings as errors).
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        # SmartStubAdapter negotiates the API version; logging in separately (rather than
        # SmartConnect) lets a failed login drop the stub's pooled sockets, which would
        # otherwise leak as ResourceWarnings.
        stub = SmartStubAdapter(host=self.host, port=self.port, sslContext=context)
        si = vim.ServiceInstance("ServiceInstance", stub)
        try:
            si.content.sessionManager.Login(
                userName=self.user if user is None else user,
                password=self.password if password is None else password,
            )
        except BaseException:
            stub.DropConnections()
            raise
        self._sessions.append(si)
        return si

    def close(self) -> None:
        """Log out every session, then stop the process (SIGTERM, SIGKILL after a grace period)."""
        for si in self._sessions:
            Disconnect(si)  # also drops the pooled HTTP connections (no ResourceWarning)
        self._sessions.clear()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def build_vcsim() -> Path:
    """Run build.sh and return the binary path; skip only when Go cannot be had at all."""
    go_obtainable = (
        shutil.which("go") is not None or os.geteuid() == 0 or shutil.which("sudo") is not None
    )
    if not go_obtainable and not os.environ.get("CI"):
        pytest.skip("vcsim needs Go: install golang-go golang-github-vmware-govmomi-dev")
    result = subprocess.run(
        [str(VCSIM_DIR / "build.sh")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"deploy/vcsim/build.sh failed ({result.returncode}):\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


def start_vcsim(binary: Path, inventory: Inventory, log_path: Path) -> Vcsim:
    """Spawn the simulator and wait for its URL line; stderr (simulator log) goes to log_path."""
    started = time.monotonic()
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [str(binary), *inventory.flags()], stdout=subprocess.PIPE, stderr=log
        )
    assert proc.stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    # readline() blocks, so read the single URL line on a helper thread to get a timeout.
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=READY_TIMEOUT_S).decode().strip()
    except queue.Empty:
        line = ""
    if not line.startswith("VCSIM_URL="):
        proc.kill()
        proc.wait()
        proc.stdout.close()
        pytest.fail(
            f"vcsim did not report ready within {READY_TIMEOUT_S} s (got {line!r}); "
            f"log:\n{log_path.read_text(errors='replace')[-4000:]}"
        )
    url = line.removeprefix("VCSIM_URL=")
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return Vcsim(
        url=url,
        host=parts.hostname,
        port=parts.port,
        user=parts.username or "",
        password=parts.password or "",
        inventory=inventory,
        startup_seconds=time.monotonic() - started,
        proc=proc,
    )
