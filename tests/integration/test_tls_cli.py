"""The command line over mutual TLS, and plain text only with --insecure (warned about).

Real subprocesses: ``cdp certs init``, ``cdp target serve --tls-dir`` and the client
commands with a source's or an operator's folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import TargetProcess, free_port

GROUP = "tls-group"


def cdp(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdp", *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def last_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(data, dict)
    return data


def usage_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr


@dataclass
class Site:
    """A target serving mTLS, and the folders of ``cdp certs init``."""

    address: str
    pki: str

    def source(self, *args: str) -> list[str]:
        return ["--target", self.address, "--tls-dir", f"{self.pki}/sources/host-a", *args]

    def operator(self, *args: str) -> list[str]:
        return ["--target", self.address, "--tls-dir", f"{self.pki}/operators/ops", *args]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = str(tmp_path_factory.mktemp("tls-cli"))
    pki = os.path.join(root, "pki")
    ok(cdp("certs", "init", pki, "--source", f"host-a={GROUP}", "--operator", "ops"))
    target = TargetProcess(
        os.path.join(root, "data"), free_port(), "--tls-dir", os.path.join(pki, "target")
    )
    target.start()
    try:
        yield Site(target.address, pki)
    finally:
        assert target.stop() == 0


def sim_run(site: Site, group: str) -> subprocess.CompletedProcess[str]:
    return cdp("sim", "run", *site.source("--group", group, "--seconds", "0.5",
               "--disk-size", "8MiB", "--disks", "1", "--json"))  # fmt: skip


def test_source_writes_and_operator_reads_over_mtls(site: Site) -> None:
    proc = ok(sim_run(site, GROUP))
    result = last_json(proc)
    assert result["acked_seq"] == result["writes"] > 0
    assert "WARNING" not in proc.stderr
    status = ok(cdp("status", *site.operator("--json")))
    (g,) = last_json(status)["groups"]
    assert g["group_id"] == GROUP and g["durable_seq"] == result["acked_seq"]
    assert "WARNING" not in status.stderr
    ok(cdp("points", "list", *site.operator("--group", GROUP, "--all", "--json")))
    ok(cdp("timeline", *site.operator("--group", GROUP, "--json")))


def test_source_writing_another_group_exits_3_permission_denied(site: Site) -> None:
    proc = sim_run(site, "not-mine")
    assert proc.returncode == 3, proc.stderr
    assert "PERMISSION_DENIED" in proc.stderr and "'not-mine'" in proc.stderr
    assert "source 'host-a'" in proc.stderr and "Traceback" not in proc.stderr


def test_source_certificate_cannot_read_status(site: Site) -> None:
    proc = cdp("status", *site.source())
    assert proc.returncode == 3
    assert "PERMISSION_DENIED" in proc.stderr and "operator certificate" in proc.stderr


# -- flags ---------------------------------------------------------------------------------

CLIENT_COMMANDS = {
    "status": ["status", "--target", "127.0.0.1:1"],
    "points list": ["points", "list", "--target", "127.0.0.1:1", "--group", "g"],
    "points bookmark": ["points", "bookmark", "b", "--target", "127.0.0.1:1", "--group", "g"],
    "timeline": ["timeline", "--target", "127.0.0.1:1", "--group", "g"],
    "image export": [
        "image",
        "export",
        "--target",
        "127.0.0.1:1",
        "--group",
        "g",
        "--vm",
        "v",
        "--out",
        "/tmp/cdp-never-written.vmdk",
        "--dry-run",
    ],  # fmt: skip
    "sim run": ["sim", "run", "--target", "127.0.0.1:1", "--seconds", "1"],
}


@pytest.mark.parametrize("command", list(CLIENT_COMMANDS))
def test_client_command_needs_tls_dir_or_insecure(command: str) -> None:
    usage_error(cdp(*CLIENT_COMMANDS[command]), "--tls-dir", "--insecure", "cdp certs init")


@pytest.mark.parametrize("command", list(CLIENT_COMMANDS))
def test_tls_dir_and_insecure_exclude_each_other(command: str, tmp_path: str) -> None:
    usage_error(
        cdp(*CLIENT_COMMANDS[command], "--tls-dir", str(tmp_path), "--insecure"), "not allowed"
    )


@pytest.mark.parametrize(
    "argv", [["status"], ["sim", "run"], ["timeline"], ["image", "export"], ["target", "serve"],
             ["demo"]],
)  # fmt: skip
def test_help_shows_the_tls_flags(argv: list[str]) -> None:
    proc = ok(cdp(*argv, "--help"))
    assert "--insecure" in proc.stdout
    assert argv == ["demo"] or "--tls-dir" in proc.stdout


def test_missing_tls_folder_exits_2_naming_it(tmp_path: str) -> None:
    missing = os.path.join(str(tmp_path), "nope")
    proc = cdp("status", "--target", "127.0.0.1:1", "--tls-dir", missing)
    usage_error(proc, "--tls-dir", missing, "no such folder")


def test_corrupt_certificate_exits_2_naming_the_file(site: Site, tmp_path: str) -> None:
    folder = os.path.join(str(tmp_path), "copy")
    os.makedirs(folder)
    for name in ("ca.pem", "key.pem"):
        shutil.copy(os.path.join(site.pki, "operators", "ops", name), folder)
    with open(os.path.join(folder, "cert.pem"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    proc = cdp("status", "--target", site.address, "--tls-dir", folder)
    usage_error(proc, "--tls-dir", os.path.join(folder, "cert.pem"), "not a PEM certificate")


def test_target_serve_needs_tls_dir_or_insecure(tmp_path: str) -> None:
    proc = cdp("target", "serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0")
    usage_error(proc, "--tls-dir", "--insecure")


def test_target_serve_without_authz_exits_2(site: Site, tmp_path: str) -> None:
    folder = os.path.join(str(tmp_path), "target")
    os.makedirs(folder)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        shutil.copy(os.path.join(site.pki, "target", name), folder)
    data = os.path.join(str(tmp_path), "data")
    proc = cdp("target", "serve", "--data-dir", data, "--listen", "127.0.0.1:0",
               "--tls-dir", folder)  # fmt: skip
    usage_error(proc, "--tls-dir", os.path.join(folder, "authz.yaml"))


# -- --insecure is loud ----------------------------------------------------------------------


def test_insecure_target_and_client_warn(tmp_path: str) -> None:
    ready = os.path.join(str(tmp_path), "ready")
    log_path = os.path.join(str(tmp_path), "target.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cdp", "target", "serve", "--insecure", "--data-dir",
             os.path.join(str(tmp_path), "data"), "--listen", "127.0.0.1:0",
             "--ready-file", ready],
            stdin=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(ready):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            with open(ready) as f:
                address = json.load(f)["address"]
            client = ok(cdp("status", "--target", address, "--insecure"))
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    with open(log_path) as f:
        served = f.read()
    assert "WARNING" in served and "--insecure" in served and "plain text" in served
    assert "PLAIN TEXT" in served  # the serving line says so too
    assert "WARNING" in client.stderr and "--insecure" in client.stderr
    assert "plain text" in client.stderr


def test_demo_insecure_says_so_and_still_verifies() -> None:
    proc = ok(cdp("demo", "--insecure", "--seconds", "1", "--json", timeout=120))
    r = last_json(proc)
    assert r["verified"] is True and r["transport"] == "insecure"
    assert "WARNING" in proc.stderr and "plain text" in proc.stderr
