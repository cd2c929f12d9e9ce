"""Reports: every run's config and metrics in one table (CSV, parquet), the type's plots, a static HTML page."""

from __future__ import annotations

import datetime as _dt
import html
import logging
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from excise.errors import ExciseError
from excise.experiments.registry import ReportFigure, get_experiment_type
from excise.experiments.runs import read_config, read_meta, read_metrics, runs_root
from excise.experiments.sweep import sweep_runs
from excise.utils import honour_umask, storage_error

log = logging.getLogger(__name__)

FIRST_COLUMNS = ("run_id", "type", "state")
LAST_COLUMNS = ("attempt", "duration_s", "hostname", "error")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = ",".join(str(x) for x in v)
        else:
            out[key] = v
    return out


@dataclass
class Table:
    """The collected results and which columns are config and which are metrics."""

    frame: Any
    config_columns: list[str] = field(default_factory=list)
    metric_columns: list[str] = field(default_factory=list)


def collect(sweep_dir: str | Path) -> Table:
    """One row per run folder (so never a duplicate): config columns, metric columns, state, timing."""
    import pandas as pd

    sweep_dir = Path(sweep_dir)
    rows: list[dict[str, Any]] = []
    cfg_cols: dict[str, None] = {}
    met_cols: dict[str, None] = {}
    for r in sweep_runs(sweep_dir):
        run_dir = runs_root(sweep_dir) / r.run_id
        status = r.status or {}
        config = read_config(run_dir)
        meta = read_meta(run_dir)
        row: dict[str, Any] = {
            "run_id": r.run_id,
            "type": (config or {}).get("type") or meta.get("type") or status.get("type"),
            "state": r.state,
        }
        for k, v in _flatten({k: v for k, v in (config or {}).items() if k != "type"}).items():
            row[k] = v
            cfg_cols[k] = None
        metrics = read_metrics(run_dir) if r.state == "done" else None
        for k, v in _flatten(metrics or {}).items():
            col = k if k not in row and k not in LAST_COLUMNS else f"metrics.{k}"
            row[col] = v
            met_cols[col] = None
        err = status.get("error") if r.state == "failed" else None
        row.update(
            {
                "attempt": status.get("attempt"),
                "duration_s": status.get("duration_s"),
                "hostname": status.get("hostname"),
                "error": f"{err.get('type')}: {err.get('message')}" if isinstance(err, dict) else None,
            }
        )
        rows.append(row)
    columns = [*FIRST_COLUMNS, *cfg_cols, *met_cols, *LAST_COLUMNS]
    df = pd.DataFrame(rows, columns=columns)
    sort_cols = [c for c in ("type", *cfg_cols) if c in df.columns and df[c].notna().any()]
    if len(df) and sort_cols:
        df = df.sort_values(sort_cols, kind="stable", na_position="last").reset_index(drop=True)
    return Table(df, list(cfg_cols), list(met_cols))


def _parquet_safe(df: Any) -> Any:
    """Columns mixing types (e.g. numbers and strings) become strings so pyarrow accepts them."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            kinds = {type(v) for v in out[col].dropna()}
            if len(kinds) > 1 and not kinds <= {int, float}:
                out[col] = out[col].map(
                    lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                )
    return out


@dataclass
class Report:
    """Paths written by :func:`write_report` and any warnings (e.g. a plot that failed)."""

    out_dir: Path
    csv: Path
    parquet: Path
    html: Path
    figures: list[ReportFigure]
    rows: int
    warnings: list[str] = field(default_factory=list)


#: Files that mark a folder as a report folder (``excise report --out`` refuses any other non-empty one).
REPORT_MARKERS = ("index.html", "results.csv")


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None) -> Report:
    """Collect the table, write CSV and parquet, draw each experiment type's plots, write index.html.

    Everything is written into a temporary folder next to the report folder, which then replaces the
    old one: a report that fails halfway leaves the previous report as it was, never a mix of both.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)

    sweep_dir = Path(sweep_dir)
    table = collect(sweep_dir)
    out = Path(out_dir) if out_dir else sweep_dir / "report"
    if out.exists() and not out.is_dir():
        raise ExciseError(f"report folder {out} is a file; pass a folder (new, empty, or an earlier report)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    except OSError as err:
        raise storage_error(err, out.parent, "writing the report") from None
    try:
        honour_umask(tmp, directory=True)
        figures, warnings = _write_report_files(sweep_dir, table, tmp)
        _replace_folder(tmp, out)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise storage_error(err, out.parent, "writing the report; the previous report is unchanged") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    figures = [ReportFigure(out / Path(f.path).relative_to(tmp), f.title, f.caption) for f in figures]
    warnings = [w.replace(str(tmp), str(out)) for w in warnings]
    return Report(
        out,
        out / "results.csv",
        out / "results.parquet",
        out / "index.html",
        figures,
        len(table.frame),
        warnings,
    )


def _replace_folder(new: Path, final: Path) -> None:
    """Put the finished folder ``new`` in the place of ``final`` (renames; the old one is removed)."""
    if not final.exists():
        os.rename(new, final)
        return
    old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(final, old)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_report_files(sweep_dir: Path, table: Table, out: Path) -> tuple[list[ReportFigure], list[str]]:
    plots_dir = out / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    df = table.frame
    csv_path, pq_path = out / "results.csv", out / "results.parquet"
    df.to_csv(csv_path, index=False)
    try:
        _parquet_safe(df).to_parquet(pq_path, index=False)
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001
        raise ExciseError(f"cannot write {pq_path}: {err} (is pyarrow installed?)") from None

    figures: list[ReportFigure] = []
    warnings: list[str] = []
    done = df[df["state"] == "done"]
    for type_name in sorted({t for t in done["type"].dropna()}):
        sub = done[done["type"] == type_name].dropna(axis=1, how="all").reset_index(drop=True)
        try:
            etype = get_experiment_type(type_name)
        except ExciseError as err:
            warnings.append(str(err))
            continue
        if etype.plots_fn is None:
            continue
        try:
            figs = etype.plots_fn(sub, plots_dir)
        except OSError:
            raise
        except Exception as err:  # noqa: BLE001 - one broken plot must not lose the table
            log.exception("plots of %s failed", type_name)
            warnings.append(f"plots of '{type_name}' failed: {type(err).__name__}: {err}")
            continue
        for f in figs:
            if not Path(f.path).is_file():
                warnings.append(f"plot '{f.title}' of '{type_name}' wrote no file at {f.path}")
            else:
                figures.append(f)
    for f in out.rglob("*"):
        honour_umask(f, directory=f.is_dir())
    from excise.utils import atomic_write_text

    atomic_write_text(out / "index.html", render_html(sweep_dir, table, figures, out, warnings))
    return figures, warnings


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
.counts span{display:inline-block;margin-right:1.5em}
figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top;max-width:560px}
figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
table.results{border-collapse:collapse;font-size:.8em}
table.results th,table.results td{border:1px solid #ddd;padding:3px 6px;text-align:right}
table.results th{background:#f4f4f4;position:sticky;top:0}
tr.failed td{background:#fff0f0}.warn{color:#a40}
code{background:#f4f4f4;padding:0 3px}
"""

_JS = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.plot');
  var ok = 0;
  imgs.forEach(function (im) { if (im.complete && im.naturalWidth > 0) { ok += 1; } });
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
  document.body.setAttribute('data-report-ready', 'true');
});
"""


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def render_html(
    sweep_dir: Path, table: Table, figures: list[ReportFigure], out: Path, warnings: list[str]
) -> str:
    """A static page: counts, figures (PNG files next to it), the results table, failures."""
    df = table.frame
    title = sweep_dir.name
    try:
        record = yaml.safe_load((sweep_dir / "sweep.yaml").read_text(encoding="utf-8")) or {}
        title = f"{record.get('name', title)} / {', '.join(record.get('modes') or [record.get('mode', '')])}"
        description = (record.get("document") or {}).get("description", "")
    except (OSError, ValueError, yaml.YAMLError, AttributeError, TypeError):
        # unreadable or odd sweep.yaml (e.g. a non-UTF-8 byte): the report goes on without it
        description = ""
    counts = df["state"].value_counts().to_dict() if len(df) else {}
    varying = [c for c in table.config_columns if df[c].nunique(dropna=False) > 1]
    constant = [c for c in table.config_columns if c not in varying]
    cols = ["run_id", "state", *varying, *table.metric_columns, "attempt", "duration_s"]
    if df["type"].nunique() > 1:
        cols.insert(1, "type")
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>excise report: {html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>excise report: {html.escape(title)}</h1>",
    ]
    if description:
        parts.append(f"<p>{html.escape(description)}</p>")
    parts.append(
        "<p class='counts'>"
        + "".join(f"<span><b>{html.escape(k)}</b> {v}</span>" for k, v in sorted(counts.items()))
        + f"<span><b>total</b> {len(df)}</span></p>"
    )
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts.append(
        f"<p>Generated {stamp} from <code>{html.escape(str(sweep_dir))}</code>. "
        "Data: <a href='results.csv'>results.csv</a>, <a href='results.parquet'>results.parquet</a>.</p>"
    )
    for w in warnings:
        parts.append(f"<p class='warn'>warning: {html.escape(w)}</p>")
    if figures:
        parts.append("<h2>Plots</h2><div class='figures'>")
        for f in figures:
            rel = Path(f.path).resolve().relative_to(out.resolve()).as_posix()
            parts.append(
                f"<figure><img class='plot' src='{html.escape(rel)}' alt='{html.escape(f.title)}'>"
                f"<figcaption><b>{html.escape(f.title)}</b> {html.escape(f.caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("<h2>Results</h2>")
    if constant and len(df):
        first = df.iloc[0]
        parts.append(
            "<p>Same in every run: "
            + ", ".join(f"<code>{html.escape(c)}={_cell(first[c])}</code>" for c in constant)
            + "</p>"
        )
    parts.append(
        "<table class='results' id='results'><thead><tr>"
        + "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        + "</tr></thead><tbody>"
    )
    for _, row in df.iterrows():
        cls = " class='failed'" if row["state"] == "failed" else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{_cell(row[c])}</td>" for c in cols) + "</tr>")
    parts.append("</tbody></table>")
    failed = df[df["state"] == "failed"]
    if len(failed):
        parts.append("<h2>Failures</h2><ul>")
        for _, row in failed.iterrows():
            parts.append(f"<li><code>{row['run_id']}</code>: {html.escape(str(row['error']))}</li>")
        parts.append(
            "</ul><p>Rerun them with <code>excise sweep ... --retry-failed</code>; "
            "tracebacks are in each run's <code>status.json</code> and <code>run.log</code>.</p>"
        )
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"
