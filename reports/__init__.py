"""Reports: any set of run records -> pandas -> RESULTS.md tables and PNG plots. Never trains.

Entry points: :func:`write_results` (directories of ``run.json``; the CLI, the multirun callback
and the Optuna sweeper call it) and :func:`write_records` (records already loaded, e.g. from W&B).
"""

from reports.collect import collect_runs, curves_table, find_records, load_records, runs_table
from reports.deltas import Baseline, delta_cells, delta_table, parse_baseline
from reports.options import ReportOptions
from reports.results import left_out_reasons, render_results, write_records, write_results
from reports.stale import stale_reasons
from reports.stats import Delta, welch_delta
from reports.tables import MetricPivot, format_cell, pivot_metric

__all__ = [
    "Baseline",
    "Delta",
    "MetricPivot",
    "ReportOptions",
    "collect_runs",
    "curves_table",
    "delta_cells",
    "delta_table",
    "find_records",
    "format_cell",
    "left_out_reasons",
    "load_records",
    "parse_baseline",
    "pivot_metric",
    "render_results",
    "runs_table",
    "stale_reasons",
    "welch_delta",
    "write_records",
    "write_results",
]
