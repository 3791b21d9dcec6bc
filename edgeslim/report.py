"""The end-of-run table (terminal), report.md and report.html (``edgeslim.reporting``).

Latency is shown per runtime: one column for torch eager, one per deployed runtime
(onnxruntime, openvino, ...), so an eager figure and a deployed one never share a column.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from edgeslim.fsutil import atomic_write_text

BASE_COLUMNS = ("stage", "params", "MACs", "size", "test acc", "acc on")


def _human(n: Any, unit: str = "") -> str:
    from edgeslim.reporting.run_page import human

    return human(n, unit)


def _views(record: dict[str, Any], run_dir: Path | None = None) -> list[Any]:
    from edgeslim.reporting.collect import stage_views

    return stage_views(run_dir or Path("."), record)


def columns(record: dict[str, Any]) -> list[str]:
    from edgeslim.reporting.collect import latency_runtimes, runtime_label

    return [*BASE_COLUMNS, *[f"latency ms · {runtime_label(r)}" for r in latency_runtimes(_views(record))]]


def rows(record: dict[str, Any]) -> list[list[str]]:
    """One row per stage: figures, the runtime that measured accuracy, then one latency cell per
    runtime column (empty where another runtime measured the stage)."""
    from edgeslim.reporting.collect import latency_runtimes, runtime_label

    views = _views(record)
    rts = latency_runtimes(views)
    out = []
    for s in views:
        m = s.metrics
        acc = s.accuracy
        shown = f"{acc:.4f}" if acc is not None else "-"
        lat = s.latency
        out.append([s.dir, _human(m.get("params")), _human(m.get("macs")), _human(m.get("size_bytes"), "B"),
                    shown + (" CHANCE" if m.get("chance_level") else ""),
                    runtime_label(m.get("evaluated_on")) if acc is not None else "-",
                    *[f"{lat[0]:.3f}" if lat and lat[1] == r else "" for r in rts]])
    return out


def stage_summary(m: dict[str, Any]) -> str:
    """A stage's headline figures for its progress line: ``test_acc 0.9513 latency_ms 1.234
    (torch eager) size 1.2MB``."""
    from edgeslim.reporting.collect import num, runtime_label

    parts = []
    acc = m.get("test_accuracy", m.get("test_top1"))
    if num(acc):
        parts.append(f"test_acc {acc:.4f}" + (" CHANCE" if m.get("chance_level") else ""))
    if num(m.get("latency_ms")):
        rt = m.get("latency_backend") or m.get("backend") or m.get("evaluated_on")
        parts.append(f"latency_ms {m['latency_ms']:.3f} ({runtime_label(rt)})")
    if num(m.get("size_bytes")):
        parts.append(f"size {_human(m['size_bytes'], 'B')}")
    return " ".join(parts)


def markdown(record: dict[str, Any], run_dir: Path | None = None) -> str:
    cols = columns(record)
    host = record.get("host") or {}
    lines = [f"# edgeslim run `{record.get('name')}`", "",
             f"status: **{record.get('status')}** · seed {record.get('seed')} · recipe hash "
             f"`{record.get('recipe_hash')}`",
             f"host: {host.get('cpu')} ({host.get('cores')} cores)"
             + (f", GPU {host['gpu']}" if host.get("gpu") else ""), "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(record)]
    lines += ["", "Accuracy is top-1 on the test split, measured on the stage's artifact in the runtime "
              "`acc on` names. Latency: median, batch 1, on this host, one column per runtime (torch eager "
              "and deployed runtimes are never mixed).", ""]
    from edgeslim.reporting.collect import warnings as all_warnings

    warnings = all_warnings(record, _views(record, run_dir), _collapse(record, run_dir))
    if warnings:
        lines += ["## Warnings", ""] + [f"- **{w}**" for w in warnings] + [""]
    lines += _precision_md(record)
    v = record.get("versions", {})
    lines.append("versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val))
    lines += ["", "report.html beside this file: charts, training curves, the final artifact's confusion matrix and "
              "per-class accuracy, parity, environment."]
    return "\n".join(lines) + "\n"


def _collapse(record: dict[str, Any], run_dir: Path | None) -> list[str]:
    """Classes the final artifact lost against the float model (from stored predictions)."""
    if run_dir is None:
        return []
    from edgeslim.reporting.collect import final_view
    from edgeslim.reporting.predictions import collapse_warnings

    fv, _ = final_view(run_dir, record, _views(record, run_dir))
    return collapse_warnings(fv.rows, fv.stage.dir, fv.reference.dir) if fv and fv.reference else []


def _precision_md(record: dict[str, Any]) -> list[str]:
    from edgeslim.compress.precision_auto import choice_markdown

    out = []
    for s in _views(record):
        ch = s.metrics.get("precision_choice")
        if isinstance(ch, dict):
            out += choice_markdown(ch, title=s.dir)
    return out


def write_report(run_dir: Path, record: dict[str, Any], evaluate_missing: bool = False) -> Path:
    """Write report.md and report.html in ``run_dir``; returns report.md's path.

    A fault while drawing the HTML page must not fail a run whose stages all finished: the page
    then says what went wrong (and the warning names ``edgeslim report`` to retry).
    """
    md = atomic_write_text(run_dir / "report.md", markdown(record, run_dir))
    write_html(run_dir, record, evaluate_missing, strict=False)
    return md


def write_html(run_dir: Path, record: dict[str, Any], evaluate_missing: bool = False,
               strict: bool = True, generated: str | None = None) -> Path:
    from edgeslim.reporting.run_page import render

    try:
        text = render(run_dir, record, evaluate_missing, generated)
    except Exception as exc:
        if strict:
            raise
        from edgeslim.reporting.html import esc, page

        msg = f"report.html could not be drawn ({type(exc).__name__}: {exc}); retry with: edgeslim report {run_dir}"
        print(f"warning: {msg}", file=sys.stderr)
        text = page(f"edgeslim run {record.get('name')}", f"<div class=\"errbox\">{esc(msg)}</div>")
    return atomic_write_text(run_dir / "report.html", text)


def print_table(record: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    if not console.is_terminal:  # a log file or CI: no terminal width to fit, keep every column readable
        console.width = max(console.width, 140)
    t = Table(title=f"run {record.get('name')}: {record.get('status')}")
    cols = columns(record)
    for c in cols:
        t.add_column(c, justify="left" if c in ("stage", "acc on") else "right", no_wrap=c == "test acc")
    for r in rows(record):
        t.add_row(*r, style="bold red" if r[4].endswith("CHANCE") else None)
    console.print(t)
    for w in record.get("warnings") or []:
        console.print(f"[bold yellow]warning:[/bold yellow] {w}", highlight=False, soft_wrap=True)
