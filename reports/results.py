"""``RESULTS.md``: the study's comparison tables, written from any set of run records.

Sections, in a fixed order so that diffs of RESULTS.md between two runs of a study mean
something: the Findings in words; how ``seeds=auto`` chose the seeds, when it did
(``seeds_auto.json`` in ``root``); per setting (task, data, backbone, epoch budget) the pivot of
each metric (rows x columns, ``mean ± std (n)``), its deltas against the baseline (paired or
Welch t, Holm within a table), its interactions, and the plots; then the published numbers of
another budget beside ours (``report.published``); then the CSPNet-style model table; then the runs left out and why (run records that
cannot be read among them, as ``unreadable`` with the reason); then how to read it.
Every entry point (``python -m reports``, the multirun callback, the Optuna sweeper) ends here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from reports.analysis import analyse
from reports.claims import Claim, claims_in_records
from reports.collect import curves_table, load_records, runs_table
from reports.findings import findings_section
from reports.options import METRICS, ReportOptions
from reports.published import published_in_records, published_section
from reports.results_csv import results_frame
from reports.sections import (
    PlotTarget,
    how_to_read,
    left_out_section,
    model_sections,
    setting_sections,
    summary_section,
)
from reports.seeds_note import seeds_section
from reports.stale import stale_reasons
from runners.core.atomic_write import atomic_write, remove_orphans
from runners.core.job_lock import report_lock
from runners.core.record import RunRecord

__all__ = [
    "METRICS",
    "ReportOptions",
    "csv_path",
    "left_out_reasons",
    "render_report",
    "render_results",
    "write_records",
    "write_results",
]


def left_out_reasons(
    runs: pd.DataFrame, include_stale: bool = False, stale: pd.Series | None = None
) -> pd.Series:
    """Why each run is left out of the tables (its status, or ``stale``), ``""`` if it is used.

    Stale runs (:mod:`reports.stale`; ``stale`` if already computed) are left out unless
    ``include_stale``; the code-version rule looks at every record of a study, finished or not.
    """
    reasons = pd.Series("", index=runs.index, dtype=object)
    stale = stale_reasons(runs) if stale is None else stale
    not_done = runs["status"] != "completed"
    reasons[not_done] = runs.loc[not_done, "status"]
    if not include_stale:
        reasons[(~not_done) & (stale != "")] = "stale"
    return reasons


def render_report(
    runs: pd.DataFrame,
    options: ReportOptions | None = None,
    *,
    curves: pd.DataFrame | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
    plots_link: str = "plots",
    root: str | os.PathLike[str] | None = None,
    unreadable: Sequence[tuple[os.PathLike[str] | str, str]] = (),
) -> tuple[str, pd.DataFrame]:
    """RESULTS.md's markdown and results.csv's table for the runs table of
    :func:`reports.collect.runs_table`; both come from one analysis (:mod:`reports.analysis`).

    Args:
        options: the pivot, metrics, baseline, ... (default: :class:`ReportOptions`'s).
        curves: :func:`reports.collect.curves_table` of the same runs, for learning curves.
        plots_dir: where PNGs are written (no plots when ``None``); ``plots_link`` is how the
            markdown links to that folder.
        root: run directories are shown relative to it; its ``seeds_auto.json`` (a study run
            with ``seeds=auto``), if any, becomes the Seeds section.
        unreadable: ``(file, reason)`` of run records that could not be read; listed as left
            out.

    Raises:
        ValueError: an option names a key or metric the runs table does not have.
    """
    options = options or ReportOptions()
    base = options.checked_baseline()
    stale = stale_reasons(runs)
    reasons = left_out_reasons(runs, options.include_stale, stale)
    used = runs[reasons == ""]
    plots = None if plots_dir is None else PlotTarget(Path(plots_dir), plots_link, curves)
    analyses = analyse(used, options, base)
    pivot_keys = (options.rows, options.columns)
    lines = [
        *summary_section(runs, reasons, stale, len(unreadable), options),
        *findings_section(analyses, base, pivot_keys, options.claims),
        *seeds_section(root),
        *setting_sections(analyses, options, base, plots),
        *published_section(options.published, analyses, pivot_keys, options.confidence),
        *model_sections(used, options.rows, options.columns, base),
        *left_out_section(runs, reasons, stale, unreadable, None if root is None else Path(root)),
        *how_to_read(options.confidence),
    ]
    return "\n".join(lines), results_frame(analyses, pivot_keys, base, options.published)


def render_results(runs: pd.DataFrame, options: ReportOptions | None = None, **kwargs: Any) -> str:
    """The markdown text of RESULTS.md (:func:`render_report`'s first half)."""
    return render_report(runs, options, **kwargs)[0]


def write_records(
    records: Sequence[RunRecord],
    *,
    out: str | os.PathLike[str],
    options: ReportOptions | None = None,
    root: str | os.PathLike[str] | None = None,
    unreadable: Sequence[tuple[os.PathLike[str] | str, str]] = (),
) -> Path:
    """Write RESULTS.md (and ``plots/`` beside it) for already loaded records; returns ``out``.

    ``options``: see :class:`ReportOptions`; ``root`` and ``unreadable``: see
    :func:`render_results`. Without ``options.claims``, the claims the records' configs
    pre-register are checked; without ``options.published``, the published numbers they carry
    are shown.
    """
    options = options or ReportOptions()
    if not options.claims:
        options = dataclasses.replace(
            options, claims=claims_in_records([r.config for r in records])
        )
    if not options.published:
        options = dataclasses.replace(
            options, published=published_in_records([r.config for r in records])
        )
    target = Path(out)
    runs = runs_table(records)
    # Writers of one study directory take turns; the one writing may remove what a killed
    # writer left (live writers hold the lock, so nothing of theirs is touched).
    with report_lock(target.parent):
        remove_orphans(target.parent)
        remove_orphans(target.parent / "plots")
        text, table = render_report(
            runs,
            options,
            curves=curves_table(records) if options.plots else None,
            plots_dir=target.parent / "plots" if options.plots else None,
            root=root,
            unreadable=unreadable,
        )
        atomic_write(target, text)
        atomic_write(csv_path(target), table.to_csv(index=False))
    return target


def csv_path(results_md: Path) -> Path:
    """``results.csv`` beside ``RESULTS.md`` (``<stem, lower case>.csv`` for another name)."""
    return results_md.with_name(results_md.stem.lower() + ".csv")


def write_results(
    paths: Iterable[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    rows: str = "regularizer",
    columns: str = "batch",
    pivot: str | None = None,
    metrics: Sequence[str] | None = None,
    title: str = "Results",
    baseline: str | None = "regularizer=none",
    include_stale: bool = False,
    plots: bool = True,
    confidence: float = 0.95,
    claims: Sequence[Claim] | None = None,
) -> Path:
    """Collect the records under ``paths`` (recursively) and write RESULTS.md to ``out``.

    The entry point of the CLI, the multirun callback and the Optuna sweeper. The options are
    :class:`ReportOptions`'s; ``pivot="ROWS,COLUMNS"`` overrides ``rows`` and ``columns``. Run
    directories are shown relative to the first path. A record that cannot be read is listed
    under "Runs left out" as ``unreadable``, with the reason. ``claims``: checked in the
    Findings; ``None``: those the records' configs pre-register. The published numbers shown
    are those the records' configs carry (:func:`write_records` takes others). Returns ``out``.
    """
    paths = list(paths)
    first = Path(paths[0]) if paths else None
    root = None if first is None else (first if first.is_dir() else first.parent)
    unreadable: list[tuple[Path, str]] = []
    # epochs feed only the learning curves
    records = load_records(paths, epochs=plots, unreadable=unreadable)
    options = ReportOptions(
        rows=rows,
        columns=columns,
        metrics=metrics,
        title=title,
        baseline=baseline,
        include_stale=include_stale,
        confidence=confidence,
        plots=plots,
        claims=claims or (),
    ).with_pivot(pivot)
    return write_records(records, out=out, options=options, root=root, unreadable=unreadable)
