"""``data_group`` (issue 12): a real ``cdp target serve`` subprocess shares its data at
rest with a configured group (folders 2750, files 0640, RocksDB's own included, owned
by that group), goes back to owner-only when started without it, and refuses a group
that does not exist naming the field, before it creates anything."""

from __future__ import annotations

import grp
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from helpers import free_port, other_group
from test_target_service import cdp, ok_json

GROUP = "shared"


def modes(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (mode, gid) of every folder and file under root (root is ".")."""
    out = {".": (stat.S_IMODE(os.stat(root).st_mode), os.stat(root).st_gid)}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            st = os.stat(os.path.join(folder, name))
            out[os.path.relpath(os.path.join(folder, name), root)] = (
                stat.S_IMODE(st.st_mode), st.st_gid,
            )  # fmt: skip
    return out


def serve(tmp_path: Path, config: Path, *flags: str) -> subprocess.Popen[bytes]:
    """Start ``cdp target serve --config`` and wait until it serves."""
    ready = tmp_path / "ready.json"
    ready.unlink(missing_ok=True)
    with (tmp_path / "target.log").open("a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cdp", "target", "serve", "--config", str(config),
             "--ready-file", str(ready), *flags],
            stdin=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, (tmp_path / "target.log").read_text()
        assert time.monotonic() < deadline, "the target did not start"
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_a_data_group_can_read_everything_and_loses_it_when_dropped(tmp_path: Path) -> None:
    gid, port = other_group(), free_port()
    name = grp.getgrgid(gid).gr_name
    data, config = tmp_path / "data", tmp_path / "target.yaml"
    config.write_text(
        f"data_dir: {data}\nlisten: 127.0.0.1:{port}\ninsecure: true\ndata_group: {name}\n"
    )
    check = cdp("target", "config", "check", str(config))
    assert check.returncode == 0 and f"(readable by group {name})" in check.stdout
    assert (
        ok_json(cdp("target", "config", "check", "--json", str(config)))["config"]["data_group"]
        == name
    )
    proc = serve(tmp_path, config)
    try:
        ok_json(cdp("sim", "run", "--target", f"127.0.0.1:{port}", "--insecure", "--json",
                    "--seconds", "1", "--rate-mb", "1", "--group", GROUP, "--vm", "vm1",
                    "--disk-size", "1MiB", "--dir", str(tmp_path / "source")))  # fmt: skip
        proc.send_signal(signal.SIGHUP)  # a reload is audited: the audit log is made
        deadline = time.monotonic() + 10
        while not any("audit" in p for p in modes(data)):
            assert time.monotonic() < deadline, sorted(modes(data))
            time.sleep(0.05)
    finally:
        stop(proc)
    found = modes(data)
    kinds = {p.split(os.sep)[0] for p in found}
    assert {"journal", "index", "replicas", "replica-sums"} <= kinds, sorted(found)
    assert any(p.endswith("-flat.vmdk") for p in found) and any(".sst" in p or "LOG" in p
                                                                 for p in found)  # fmt: skip
    wrong = {
        p: (oct(m), g) for p, (m, g) in found.items()
        if (m, g) != ((0o2750 if (data / p).is_dir() else 0o640), gid)
    }  # fmt: skip
    assert wrong == {}

    config.write_text(config.read_text().replace(f"data_group: {name}\n", ""))
    stop(serve(tmp_path, config))
    wrong = {
        p: oct(m) for p, (m, _) in modes(data).items()
        if m != (0o700 if (data / p).is_dir() else 0o600)
    }  # fmt: skip
    assert wrong == {}


def test_a_group_that_does_not_exist_is_refused_by_its_field(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = cdp("target", "serve", "--data-dir", str(data), "--insecure", "--listen",
               "127.0.0.1:0", "--data-group", "no-such-group-cdp")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--data-group: no group named 'no-such-group-cdp'" in proc.stderr
    config = tmp_path / "target.yaml"
    config.write_text(f"data_dir: {data}\ndata_group: no-such-group-cdp\n")
    check = cdp("target", "config", "check", str(config))
    assert check.returncode == 2
    assert "data_group: no group named 'no-such-group-cdp'" in check.stdout + check.stderr
    assert not data.exists()  # nothing made before the error
