"""Data at rest is private: the target's folders are 0700 and its files 0600, exported
images included (real files, real modes)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from conftest import make_record, small_group, start_target, stop_target

from cdp.cli.image import export_image

GROUP = "perm"
SPEC = small_group(GROUP, disks=1)


def loose(root: str, skip: str = "") -> list[str]:
    """Paths under root that group or other users may read, write or enter."""
    out = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(folder, name)
            if skip and path.startswith(skip + os.sep):
                continue
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o077:
                out.append(f"{os.path.relpath(path, root)} {oct(mode)}")
    return out


async def test_target_files_and_exported_images_are_private(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "target")
    os.makedirs(data_dir, mode=0o755)
    os.chmod(data_dir, 0o755)  # an operator's existing folder, readable by all
    r = await start_target(data_dir, history_window_s=3600)
    try:
        reply = await r.client.open_session("host-a", SPEC, 0, 1)
        stream = r.client.stream(reply.session_id)
        await stream.send([make_record(1, 0, 0, b"secret" * 512)])
        assert (await stream.recv()) is not None
        stream.cancel()
        out = str(tmp_path / "export" / "perm.vmdk")
        os.makedirs(os.path.dirname(out))
        await export_image(r.client, GROUP, f"{GROUP}-vm0", 0, "latest", out)
    finally:
        await stop_target(r)
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
    # RocksDB makes its own files; the index folder itself is 0700
    index = os.path.join(data_dir, "index")
    assert stat.S_IMODE(os.stat(index).st_mode) == 0o700
    assert loose(data_dir, skip=index) == []
    assert loose(str(tmp_path / "export")) == []
