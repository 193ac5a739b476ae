"""``python -m reports PATH... [--rows regularizer] [--columns batch] [--metric top1] [--out F]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.results import write_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reports", description="Tabulate run records into RESULTS.md."
    )
    parser.add_argument(
        "paths", nargs="+", help="directories searched recursively for run.json, or run.json files"
    )
    parser.add_argument("--rows", default="regularizer")
    parser.add_argument("--columns", default="batch")
    parser.add_argument(
        "--metric", action="append", dest="metrics", help="top1, top5 or loss (repeatable)"
    )
    parser.add_argument("--out", help="default: RESULTS.md in the first PATH")
    args = parser.parse_args(argv)
    first = Path(args.paths[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent) / "RESULTS.md"
    try:
        path = write_results(
            args.paths,
            out=out,
            rows=args.rows,
            columns=args.columns,
            metrics=args.metrics or ["top1", "top5"],
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
