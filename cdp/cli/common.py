"""Helpers every subcommand shares: sizes, output, exit codes, errors, reaching the target."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from typing import Any

from cdp import tls
from cdp.errors import CdpError, InvalidInputError, RemoteError
from cdp.rpc.client import ReplicationClient, check_address

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
"""The command ran and its result is negative (e.g. replica differs)."""
EXIT_USAGE = 2
"""Bad flags or input."""
EXIT_REMOTE = 3
"""The target could not be reached or answered with an error."""

_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(flag: str, text: str) -> int:
    """Bytes in '4096', '4k', '64KiB', '1M', '2GiB' (binary units)."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise InvalidInputError(flag, f"{text!r} is not a size like 4096, 64k, 1MiB or 2G")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(flag: str, text: str) -> float:
    """Seconds in '0', '90', '90s', '15m', '1h', '30d'."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise InvalidInputError(flag, f"{text!r} is not a duration like 90s, 15m, 1h or 30d")
    return float(m.group(1)) * _SECONDS[(m.group(2) or "").lower()]


def emit_json(data: Any) -> None:
    """Print one JSON object on one line (the last line of a --json run)."""
    print(json.dumps(data, sort_keys=True), flush=True)


def exit_code_of(exc: CdpError) -> int:
    """Exit code for an error that ended a command."""
    if isinstance(exc, RemoteError):
        return EXIT_REMOTE
    if isinstance(exc, InvalidInputError):
        return EXIT_USAGE
    return EXIT_FAILED


def fail(exc: CdpError) -> int:
    """Report an error on stderr; return its exit code."""
    print(f"cdp: error: {exc}", file=sys.stderr)
    return exit_code_of(exc)


def add_target_group(p: Any) -> None:
    """The --target and --group flags most commands share, and an operator's TLS flags."""
    p.add_argument("--target", required=True, help="HOST:PORT of the target")
    p.add_argument("--group", required=True, help="consistency group name")
    add_tls_flags(p, "an operator's folder from `cdp certs init`, e.g. DIR/operators/admin")


def add_tls_flags(p: Any, folder: str) -> None:
    """--tls-dir DIR or --insecure: how to talk to the target (one of them is required)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--tls-dir", metavar="DIR",
        help=f"mutual TLS with ca.pem, cert.pem and key.pem in DIR: {folder}",
    )  # fmt: skip
    g.add_argument(
        "--insecure", action="store_true",
        help="plain text: no encryption, no authentication (logged as a warning)",
    )  # fmt: skip


def client_tls(args: argparse.Namespace) -> tls.ClientTLS | None:
    """The TLS settings from --tls-dir; None with --insecure (and a warning)."""
    if args.insecure:
        log.warning(
            "--insecure: talking to %s in plain text, without encryption or authentication",
            args.target,
        )
        return None
    if not args.tls_dir:
        raise InvalidInputError(
            "--tls-dir", "required: the folder holding this client's certificate",
            hint="make one with `cdp certs init DIR`, or pass --insecure for plain text",
        )  # fmt: skip
    return tls.load_client_tls(args.tls_dir)


def connect(args: argparse.Namespace) -> ReplicationClient:
    """A client for --target, over mTLS (--tls-dir) or plain text (--insecure)."""
    check_address(args.target)
    return ReplicationClient(args.target, client_tls(args))


def table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces apart."""
    all_rows = [header, *rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in all_rows
    )


def fmt_bytes(n: float) -> str:
    """Human-readable bytes (decimal MB/GB, as rates are quoted)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
