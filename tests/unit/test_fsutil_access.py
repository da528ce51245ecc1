"""Access of data at rest (cdp/fsutil.py) on real files: private by default; a folder
shared with a data group passes the group on (setgid) and new files are 0640."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from helpers import other_group

from cdp import fsutil


def mode_gid(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_gid


def test_without_a_group_files_are_0600_and_folders_0700(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    fsutil.make_dirs(str(tmp_path / "a" / "b"))
    os.close(fsutil.create_file(str(tmp_path / "a" / "b" / "seg"), os.O_RDWR))
    fsutil.write_atomic(str(tmp_path / "a" / "meta"), b"x")
    assert mode_gid(tmp_path / "a")[0] == mode_gid(tmp_path / "a" / "b")[0] == 0o700
    assert mode_gid(tmp_path / "a" / "b" / "seg")[0] == 0o600
    assert mode_gid(tmp_path / "a" / "meta")[0] == 0o600


def test_a_shared_folder_passes_its_group_and_0640_on(tmp_path: Path) -> None:
    gid = other_group()
    root = tmp_path / "data"
    fsutil.make_dirs(str(root / "old"))
    (root / "old" / "f").write_bytes(b"before")
    os.chmod(root / "old" / "f", 0o644)
    changed, foreign = fsutil.apply_access(str(root), gid)
    assert (changed, foreign) == (3, [])
    assert mode_gid(root) == mode_gid(root / "old") == (0o2750, gid)
    assert mode_gid(root / "old" / "f") == (0o640, gid)  # what existed gets it too
    fsutil.make_dirs(str(root / "journal" / "g1"))
    os.close(fsutil.create_file(str(root / "journal" / "g1" / "seg"), os.O_RDWR))
    fsutil.write_atomic(str(root / "journal" / "meta"), b"x")
    assert mode_gid(root / "journal") == mode_gid(root / "journal" / "g1") == (0o2750, gid)
    assert mode_gid(root / "journal" / "g1" / "seg") == (0o640, gid)
    assert mode_gid(root / "journal" / "meta") == (0o640, gid)
    assert fsutil.apply_access(str(root), gid) == (0, [])  # idempotent


def test_dropping_the_group_makes_everything_private_again(tmp_path: Path) -> None:
    gid = other_group()
    root = tmp_path / "data"
    fsutil.make_dirs(str(root / "sub"))
    fsutil.apply_access(str(root), gid)
    os.close(fsutil.create_file(str(root / "sub" / "f"), os.O_RDWR))
    os.symlink("/etc/passwd", root / "link")  # left alone, never followed
    fsutil.apply_access(str(root), None)
    assert mode_gid(root)[0] == mode_gid(root / "sub")[0] == 0o700
    assert mode_gid(root / "sub" / "f")[0] == 0o600
    assert stat.S_IMODE(os.stat("/etc/passwd").st_mode) == 0o644
