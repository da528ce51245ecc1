"""Durable file operations, spelled out once.

``write_atomic``: write a temp file, fsync it, rename it over the target, fsync the
folder. After a crash the target holds either the old or the new content, never a mix.
Files are created 0600 (owner only): what cdp stores is disk data and its metadata.
"""

from __future__ import annotations

import os


def fsync_dir(path: str) -> None:
    """Make a folder's entries (files created, renamed or removed) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably (owner-only unless ``mode``)."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(folder)
