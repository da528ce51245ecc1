"""``python -m bench SUBCOMMAND``; with no subcommand it runs ``ingest``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench import capacity, export, ingest, ransomware, rto, suite


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="cdp benchmarks")
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    ingest.add_parser(sub)
    export.add_parser(sub)
    rto.add_parser(sub)
    suite.add_parser(sub)
    capacity.add_parser(sub)
    ransomware.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0].startswith("-") and args_list[0] not in ("-h", "--help"):
        args_list.insert(0, "ingest")
    args = build_parser().parse_args(args_list)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
