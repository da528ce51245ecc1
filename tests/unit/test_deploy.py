"""deploy/: the systemd units (``systemd-analyze verify``), the install script's dry run,
the example configs and the target's Containerfile (built where a container engine runs;
otherwise its instructions are checked)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cdp.cli.target_config import parse_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("cdp-target.service", "cdp-failover@.service", "cdp-verify-scheduler.service")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _verify(tmp_path: Path, edit: tuple[str, str] | None = None) -> str:
    """systemd-analyze verify of the units, with ExecStart's binary a stub under tmp_path."""
    stub = tmp_path / "cdp"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text().replace("/usr/local/bin/cdp", str(stub))
        if edit:
            text = text.replace(*edit)
        (tmp_path / name).write_text(text)
    proc = subprocess.run(
        [SYSTEMD_ANALYZE or "", "verify", *(f"./{n}" for n in UNITS)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return f"{proc.returncode}\n{proc.stdout}{proc.stderr}".strip()


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not on this machine")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    assert _verify(tmp_path) == "0"


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not on this machine")
def test_verify_catches_a_bad_directive(tmp_path: Path) -> None:
    """The check above can fail: a typo in a unit is reported."""
    out = _verify(tmp_path, ("Restart=on-failure", "Restart=on-failur"))
    assert "Failed to parse service restart specifier" in out


def _directives(name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_target_unit_is_notify_watchdog_sandboxed() -> None:
    d = _directives("cdp-target.service")
    expected = {
        "Type": ["notify"], "Restart": ["on-failure"], "User": ["cdp"],
        "ProtectSystem": ["strict"], "ReadWritePaths": ["/var/lib/cdp"],
        "NoNewPrivileges": ["yes"], "PrivateTmp": ["yes"], "LimitNOFILE": ["65536"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
    }  # fmt: skip
    for key, value in expected.items():
        assert d.get(key) == value, key
    assert re.fullmatch(r"\d+s", d["WatchdogSec"][0])
    assert "target serve --config /etc/cdp/target.yaml" in d["ExecStart"][0]


def test_verify_scheduler_unit_reads_the_target_config_and_restarts() -> None:
    d = _directives("cdp-verify-scheduler.service")
    assert d["ExecStart"][0].endswith("failover verify-scheduler --config /etc/cdp/target.yaml")
    assert d["Restart"] == ["on-failure"] and "KillMode" not in d  # SIGTERM reaches the child
    assert d["ProtectSystem"] == ["strict"] and d["ReadWritePaths"] == ["/var/lib/cdp"]


def test_failover_unit_owns_one_plan_and_never_restarts() -> None:
    d = _directives("cdp-failover@.service")
    assert d["Restart"] == ["no"] and "Install" not in d  # started by hand, never at boot
    assert d["ExecStart"][0].endswith("failover run --plan /etc/cdp/plans/%i.yaml --deadline-owner")
    assert d["ProtectSystem"] == ["strict"] and d["ReadWritePaths"] == ["/var/lib/cdp"]


def test_install_dry_run_prints_every_step_and_changes_nothing() -> None:
    proc = subprocess.run(
        ["sh", str(DEPLOY / "install.sh"), "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    steps = [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]
    repo = str(DEPLOY.parent)
    expected = [
        "install -d -m 0700 -o cdp -g cdp /var/lib/cdp",
        f"install -m 0640 -o root -g cdp {repo}/deploy/target.example.yaml /etc/cdp/target.yaml",
        "python3 -m venv /opt/cdp",
        f"/opt/cdp/bin/pip install --upgrade {repo}",
        "ln -sf /opt/cdp/bin/cdp /usr/local/bin/cdp",
        "/usr/local/bin/cdp target config check /etc/cdp/target.yaml",
        "systemctl daemon-reload",
        "systemctl enable --now cdp-target.service",
    ]
    assert [s for s in steps if s in expected] == expected  # all there, in this order
    assert any(s.startswith("useradd --system") and s.endswith(" cdp") for s in steps) or (
        subprocess.run(["id", "cdp"], capture_output=True).returncode == 0
    )
    assert any(s.startswith("install -m 0644") and "cdp-target.service" in s for s in steps)


def test_install_with_a_data_group_shares_the_data_dir() -> None:
    proc = subprocess.run(
        ["sh", str(DEPLOY / "install.sh"), "--dry-run", "--data-group=cdp-readers"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    steps = [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]
    expected = [
        "groupadd --system cdp-readers",
        "usermod -a -G cdp-readers cdp",
        "install -d -m 2750 -o cdp -g cdp-readers /var/lib/cdp",
        "chgrp -R cdp-readers /var/lib/cdp",
        "find /var/lib/cdp -type d -exec chmod 2750 {} +",
        "find /var/lib/cdp -type f -exec chmod 0640 {} +",
        "sh -c echo 'data_group: cdp-readers' >> /etc/cdp/target.yaml",
        "/usr/local/bin/cdp target config check /etc/cdp/target.yaml",
    ]
    assert [s for s in steps if s in expected] == expected
    assert "install -d -m 0700 -o cdp -g cdp /var/lib/cdp" not in steps


def test_install_refuses_an_unknown_argument() -> None:
    proc = subprocess.run(["sh", str(DEPLOY / "install.sh"), "--dry"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "unknown argument --dry" in proc.stderr


@pytest.mark.parametrize("path", ["target.example.yaml", "container/target.yaml"])
def test_shipped_configs_are_valid(path: str) -> None:
    s = parse_config(yaml.safe_load((DEPLOY / path).read_text()))
    assert s.data_dir == "/var/lib/cdp"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    text = (DEPLOY / "container" / "Containerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0], ln.split(None, 1)[1]) for ln in lines]


def test_containerfile_instructions() -> None:
    """No container engine runs here (docker has no daemon, no podman/buildah): lint it."""
    ins = _instructions()
    kinds = [k for k, _ in ins]
    assert ins[0] == ("FROM", "python:3.11-slim")
    assert ("VOLUME", "/var/lib/cdp") in ins and ("EXPOSE", "7711") in ins
    assert ("USER", "cdp") in ins and kinds.index("USER") < kinds.index("ENTRYPOINT")
    assert any(k == "HEALTHCHECK" and "7711" in a for k, a in ins)
    for kind, args in ins:
        if kind == "COPY":
            for src in args.split()[:-1]:
                assert (DEPLOY.parent / src).exists(), src
    entry = next(a for k, a in ins if k == "ENTRYPOINT")
    assert '"target", "serve"' in entry


def _engine() -> str | None:
    for name in ("podman", "buildah", "docker"):
        path = shutil.which(name)
        if path and subprocess.run([path, "info"], capture_output=True, timeout=30).returncode == 0:
            return path
    return None


@pytest.mark.slow
def test_container_builds_and_becomes_healthy() -> None:
    engine = _engine()
    if engine is None:
        pytest.skip("no working podman, buildah or docker (docker here has no daemon)")
    tag = "cdp-target-test"
    build = subprocess.run(
        [engine, "build", "-f", str(DEPLOY / "container" / "Containerfile"), "-t", tag,
         str(DEPLOY.parent)], capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    run = subprocess.run([engine, "run", "--rm", tag, "--help"], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0 and "--config" in run.stdout
