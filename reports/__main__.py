"""``python -m reports PATH... [--rows regularizer] [--columns batch] [--metric top1] [--out F]``.

A PATH that is an Optuna study directory also gets its study summary (``reports.optuna_study``).
"""

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
    # --- Optuna study directories (optuna_study.json): the study summary first (best overrides,
    # TRIALS.md, plots); RESULTS.md below is then written with this command's layout.
    from reports.optuna_study import is_study_dir, write_study_summary

    for path in args.paths:
        if is_study_dir(path):
            print(write_study_summary(path))
    # ---
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
