"""The journal keyring at the edge: ``--journal-key-file FILE`` or ``CDP_JOURNAL_KEY``.

A key file holds one ``KEY_ID:KEY`` line per key (KEY: 64 hex digits or base64 of 32
bytes), newest last; ``cdp journal keygen KEY_ID`` prints a new line. The file must be
readable by its owner only. The environment variable holds the same lines (commas may
separate them). The file wins when both are given. docs/SECURITY.md says how to rotate.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import Any

from cdp.errors import ConfigError
from cdp.journal.seal import Keyring, parse_keyring

ENV_VAR = "CDP_JOURNAL_KEY"
"""Environment variable holding the keyring when no key file is given."""
FLAG = "--journal-key-file"


def add_flag(p: Any, flag: str = FLAG) -> None:
    """Add the key file flag to a parser."""
    p.add_argument(
        flag, metavar="FILE", dest="journal_key_file",
        help=f"journal keyring (KEY_ID:KEY lines, newest last; `cdp journal keygen`); "
        f"default ${ENV_VAR}; with a key, new segments are AES-GCM encrypted and their "
        "chain keyed (docs/SECURITY.md)",
    )  # fmt: skip


def load_keyring(
    path: str | None, field: str = FLAG, env: Mapping[str, str] = os.environ
) -> Keyring | None:
    """The keyring from ``path`` (else ``$CDP_JOURNAL_KEY``); None when neither is set."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                mode = os.fstat(f.fileno()).st_mode
                text = f.read()
        except OSError as exc:
            raise ConfigError(field, f"cannot read {path!r}: {exc.strerror}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                field, f"{path!r} is readable by others (mode {stat.S_IMODE(mode):o}); "
                f"chmod 600 {path}",
            )  # fmt: skip
        return parse_keyring(text, field)
    text = env.get(ENV_VAR, "")
    return parse_keyring(text, ENV_VAR) if text.strip() else None
