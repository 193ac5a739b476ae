"""Reports: any set of run records -> pandas -> RESULTS.md. Never trains."""

from reports.collect import collect_runs, find_records
from reports.results import render_results, write_results
from reports.tables import format_cell, pivot_metric

__all__ = [
    "collect_runs",
    "find_records",
    "format_cell",
    "pivot_metric",
    "render_results",
    "write_results",
]
