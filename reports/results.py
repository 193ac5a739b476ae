"""``RESULTS.md``: the study's comparison tables, written from any set of run records.

One section per setting (task, data, backbone and epoch budget), one table per metric with
rows = regularizer and columns = batch (the seed's question), then the runs that were left out
and why. The layout is stable, so diffs of RESULTS.md between two runs of a study mean something.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from reports.collect import collect_runs
from reports.tables import pivot_metric

__all__ = ["render_results", "write_results"]

#: Keys that define a comparable setting: runs differing here never share a table.
SETTING_KEYS = ("task", "data", "backbone", "epochs")
METRIC_TITLES = {
    "top1": "Top-1 (%)",
    "top5": "Top-5 (%)",
    "loss": "validation loss",
    "AP": "AP (COCO, %)",
    "AP50": "AP50 (%)",
}
#: What a detection setting tabulates, whatever ``metrics`` says for classification.
DETECTION_TABLE_METRICS = ("AP", "AP50")


def render_results(
    runs: pd.DataFrame,
    *,
    rows: str = "regularizer",
    columns: str = "batch",
    metrics: Sequence[str] = ("top1", "top5"),
    title: str = "Results",
) -> str:
    """The markdown text of RESULTS.md for the runs table from :func:`collect_runs`."""
    lines = [f"# {title}", ""]
    done = runs[runs["status"] == "completed"]
    left_out = runs[runs["status"] != "completed"]
    lines.append(
        f"{len(runs)} run records: {len(done)} completed, {len(left_out)} left out. "
        "Cells are mean ± sample std over seeds (n = runs)."
    )
    lines.append("")
    if done.empty:
        lines += ["No completed runs yet.", ""]
    for setting, group in done.groupby(list(SETTING_KEYS), dropna=False, sort=True):
        described = ", ".join(f"{k}={v}" for k, v in zip(SETTING_KEYS, setting, strict=True))
        lines += [f"## {described}", ""]
        task = setting[SETTING_KEYS.index("task")]
        for metric in DETECTION_TABLE_METRICS if task == "detect" else metrics:
            table = pivot_metric(group, rows, columns, metric)
            lines += [f"### {METRIC_TITLES.get(metric, metric)}", "", table.to_markdown(), ""]
    if not left_out.empty:
        lines += ["## Runs left out", "", "| run | status | error |", "|---|---|---|"]
        for _, run in left_out.sort_values("job_dir").iterrows():
            error = (run["error"] or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{run['job_dir']}` | {run['status']} | {error} |")
        lines.append("")
    return "\n".join(lines)


def write_results(
    paths: Iterable[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    rows: str = "regularizer",
    columns: str = "batch",
    metrics: Sequence[str] = ("top1", "top5"),
    title: str = "Results",
) -> Path:
    """Collect the records under ``paths`` and write the tables to ``out``; returns ``out``."""
    runs = collect_runs(paths)
    text = render_results(runs, rows=rows, columns=columns, metrics=metrics, title=title)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    return target
