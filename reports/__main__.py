"""``python -m reports PATH... [--baseline regularizer=none] [--pivot regularizer,batch]
[--metric top1] [--out RESULTS.md] [--include-stale] [--no-plots] [--storage URL]
[--wandb ENTITY/PROJECT]``.

A PATH that is an Optuna study directory also gets its study summary (``reports.optuna_study``):
from its storage file inside PATH, or from ``--storage`` (a database URL is never taken from a
file inside PATH). A run record that cannot be read is listed in RESULTS.md's "Runs left out"
as ``unreadable``, with the reason. Documented in docs/REPORTS.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from reports.collect import find_records
from reports.options import METRICS, ReportOptions
from reports.results import write_records, write_results
from runners.core.record import RECORD_NAME


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports",
        description="Tabulate run records into RESULTS.md (tables, deltas, plots).",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        help="directories searched recursively for run.json, or run.json files",
    )
    parser.add_argument("--pivot", help="ROWS,COLUMNS of the tables (default regularizer,batch)")
    parser.add_argument("--rows", default="regularizer", help="alias: the ROWS of --pivot")
    parser.add_argument("--columns", default="batch", help="alias: the COLUMNS of --pivot")
    parser.add_argument(
        "--baseline",
        default="regularizer=none",
        help="KEY=VALUE, the arm deltas are taken against; KEY is a --pivot key ('' for none)",
    )
    parser.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        choices=METRICS,
        metavar="METRIC",
        help=f"repeatable; default: the task's (top1, top5 / AP, AP50); one of {', '.join(METRICS)}",
    )
    parser.add_argument(
        "--out", help="default: RESULTS.md in the first PATH (with --wandb: ./RESULTS.md)"
    )
    parser.add_argument(
        "--include-stale",
        action="store_true",
        help="tabulate runs of an older code version too (listed as stale)",
    )
    parser.add_argument("--no-plots", action="store_true", help="write no PNGs")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval coverage")
    parser.add_argument("--title", default="Results")
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="the Optuna study's storage (postgresql+psycopg://user@host/db, sqlite:///file, "
        "journal:<file>); default: only a storage file inside the study directory",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from W&B (online)")
    source.add_argument(
        "--wandb-offline",
        action="store_true",
        help="read the offline W&B runs (wandb/offline-run-*) under PATHs instead of run.json",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.paths and not args.wandb:
        parser.error("give PATHs of run records, or --wandb ENTITY/PROJECT")
    # Optuna study directories (optuna_study.json): the study summary first (best overrides,
    # TRIALS.md, plots); RESULTS.md below is then written with this command's layout.
    if not (args.wandb or args.wandb_offline):
        from reports.optuna_study import is_study_dir, write_study_summary

        for path in args.paths:
            if is_study_dir(path):
                try:
                    print(write_study_summary(path, storage=args.storage))
                except (FileNotFoundError, ValueError) as err:  # the run records still count
                    from runners.core.redact import redact

                    print(f"note: no Optuna summary: {redact(str(err))}", file=sys.stderr)
    options = ReportOptions(
        rows=args.rows,
        columns=args.columns,
        metrics=args.metrics,
        title=args.title,
        baseline=args.baseline or None,
        include_stale=args.include_stale,
        confidence=args.confidence,
        plots=not args.no_plots,
    )
    try:
        if args.paths:
            first = Path(args.paths[0])
            default_out = (first if first.is_dir() else first.parent) / "RESULTS.md"
        else:
            default_out = Path("RESULTS.md")
        out = Path(args.out) if args.out else default_out
        if args.wandb or args.wandb_offline:
            from reports.wandb_source import fetch_wandb_records, offline_records

            records = fetch_wandb_records(args.wandb) if args.wandb else offline_records(args.paths)
            if not records:
                where = args.wandb or ", ".join(args.paths)
                raise ValueError(f"{where}: no W&B runs found")
            root = None if args.wandb else first
            path = write_records(
                records, out=out, options=options.with_pivot(args.pivot), root=root
            )
        else:
            if not find_records(args.paths):
                raise ValueError(f"{', '.join(args.paths)}: no run records ({RECORD_NAME}) found")
            # the published numbers are the records' own (write_results reads them there)
            kwargs = {k: v for k, v in asdict(options).items() if k != "published"}
            path = write_results(args.paths, out=out, pivot=args.pivot, **kwargs)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
