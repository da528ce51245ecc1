"""Durable file operations and the access of data at rest, spelled out once.

``write_atomic``: write a temp file, fsync it, rename it over the target, fsync the
folder. After a crash the target holds either the old or the new content, never a mix.

Access: what cdp stores is disk data and its metadata, so files are created 0600 and
folders 0700 (owner only). A target given a data group (``data_group``, docs/SECURITY.md)
marks its data dir shared with :func:`apply_access`: folders 2750 (the setgid bit makes
everything created inside inherit the group), files 0640. Every file or folder cdp
creates under the data dir goes through :func:`create_file` / :func:`make_dirs` /
:func:`write_atomic`, which take the access of the folder they are created in, so the
domain never carries the setting around.
"""

from __future__ import annotations

import os
import stat

PRIVATE_FILE_MODE = 0o600
"""A data file without a data group: the target's user only."""
PRIVATE_DIR_MODE = 0o700
"""A data folder without a data group."""
SHARED_FILE_MODE = 0o640
"""A data file in a folder shared with the data group: the group may read it."""
SHARED_DIR_MODE = 0o2750
"""A data folder shared with the data group: group may list it; setgid passes the group on."""


def fsync_dir(path: str) -> None:
    """Make a folder's entries (files created, renamed or removed) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_shared(folder: str) -> bool:
    """True if ``folder`` is shared with a data group (its setgid bit is set)."""
    return bool(os.stat(folder).st_mode & stat.S_ISGID)


def file_mode_in(folder: str) -> int:
    """The mode of a new data file in ``folder``: 0640 if it is shared, else 0600."""
    return SHARED_FILE_MODE if is_shared(folder) else PRIVATE_FILE_MODE


def create_file(path: str, flags: int) -> int:
    """``os.open`` with O_CREAT, the file getting the access of its folder; return the fd."""
    mode = file_mode_in(os.path.dirname(os.path.abspath(path)))
    return os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, mode)


def make_dirs(path: str) -> None:
    """``mkdir -p`` where each new folder gets the access of its parent (0700 or 2750)."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    make_dirs(parent)
    shared = is_shared(parent)
    try:
        # In a shared parent the kernel sets the setgid bit itself; no chmod to 2750 is
        # needed then, which systemd's RestrictSUIDSGID= would refuse.
        os.mkdir(path, 0o750 if shared else PRIVATE_DIR_MODE)
    except FileExistsError:
        return
    if shared and stat.S_IMODE(os.stat(path).st_mode) != SHARED_DIR_MODE:
        os.chmod(path, SHARED_DIR_MODE)  # a umask stricter than 027 took the group's bits


def apply_access(root: str, gid: int | None) -> tuple[int, list[str]]:
    """Give ``root`` and everything under it the access of ``gid`` (None: owner only).

    With a group: folders 2750 and files 0640 owned by that group; without: 0700 and
    0600 (the group loses access). Symlinks are left alone, and so are entries of
    another user (they cannot be changed unless running as root): returns how many
    entries changed and the paths of the other users' entries.
    """
    changed, foreign = _apply_one(root, True, gid), []
    for folder, dirs, files in os.walk(root):
        for name, is_dir in [(d, True) for d in dirs] + [(f, False) for f in files]:
            path = os.path.join(folder, name)
            done = _apply_one(path, is_dir, gid)
            if done < 0:
                foreign.append(path)
            changed += max(done, 0)
    return changed, foreign


def _apply_one(path: str, is_dir: bool, gid: int | None) -> int:
    """1 if ``path`` was changed, 0 if it was right (or a symlink), -1 if another user's."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return 0
    if st.st_uid != os.geteuid() and os.geteuid() != 0:
        return -1
    if gid is None:
        mode = PRIVATE_DIR_MODE if is_dir else PRIVATE_FILE_MODE
    else:
        mode = SHARED_DIR_MODE if is_dir else SHARED_FILE_MODE
    done = 0
    if gid is not None and st.st_gid != gid:
        os.chown(path, -1, gid)
        done = 1
    if stat.S_IMODE(st.st_mode) != mode or done:
        os.chmod(path, mode)  # after chown, which may clear the setgid bit
        done = 1
    return done


def write_atomic(path: str, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    The file gets the access of its folder (see :func:`create_file`) unless ``mode``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp"
    if mode is None:
        mode = file_mode_in(folder)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(folder)
