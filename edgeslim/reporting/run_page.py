"""``runs/<name>/report.html``: one self-contained page per run (inline CSS, charts as PNG
``data:`` URIs, no script, no external asset).

Top to bottom: status and warnings, the headline figures, the stage table with deltas (each
runtime's latency in its own column: torch eager and deployed runtimes are never mixed), bar
charts, training and recovery curves, the final artifact's confusion matrix and per-class
change from the float model, the precision/runtime candidates measured, parity, benchmarks,
a search's Pareto front, and the environment.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgeslim.reporting import charts, collect, sections
from edgeslim.reporting import predictions as P
from edgeslim.reporting.collect import StageView, latency_runtimes, num, runtime_label
from edgeslim.reporting.html import cell, esc, page, png_img, table

GENERATED_ID = "generated"  # the one element that changes when the page is regenerated


def human(n: Any, unit: str = "") -> str:
    if not num(n):
        return "-"
    n = float(n)
    for suffix in ("", "K", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.3g}{suffix}{unit}"
        n /= 1000
    return f"{n:.3g}T{unit}"


def delta(cur: float | None, prev: float | None, points: bool = False, higher_better: bool = False) -> str:
    """A small coloured change: points for accuracy, percent for the rest (lower is better)."""
    if cur is None or prev is None or (not points and prev == 0):
        return ""
    d = (cur - prev) * 100 if points else (cur / prev - 1) * 100
    text = f"{d:+.1f} pts" if points else f"{d:+.0f}%"
    flat = abs(d) < (0.05 if points else 0.5)
    good = d > 0 if (points or higher_better) else d < 0
    return f'<span class="d {"flat" if flat else "good" if good else "bad"}">{text}</span>'


def _metric_cell(stages: list[StageView], i: int, key: str, fmt: Any, points: bool = False) -> str:
    def val(s: StageView) -> float | None:
        v = s.accuracy if key == "acc" else s.metrics.get(key)
        return float(v) if num(v) else None

    cur, st = val(stages[i]), stages[i]
    # accuracy is compared only with a stage tested on the same classes (a pretrain stage on a
    # source task has its own test split)
    same = [s for s in stages[:i] if key != "acc" or s.class_names == st.class_names]
    prev = next((v for s in reversed(same) if (v := val(s)) is not None), None)
    if cur is None:
        return cell("-", "num")
    text = esc(fmt(cur)) + (" CHANCE" if key == "acc" and st.metrics.get("chance_level") else "")
    if key == "acc" and st.class_names != _final_classes(stages):
        text += '<span class="d flat" title="tested on its own data (other classes)">own data</span>'
    return cell(text + delta(cur, prev, points=points, higher_better=points), "num", raw=True)


def _final_classes(stages: list[StageView]) -> list[str] | None:
    return next((s.class_names for s in reversed(stages) if s.class_names), None)


def _latency_cell(stages: list[StageView], i: int, runtime: str) -> str:
    def val(s: StageView) -> float | None:
        lat = s.latency
        return lat[0] if lat and lat[1] == runtime else None

    cur = val(stages[i])
    if cur is None:
        return cell("", "num")
    prev = next((v for s in reversed(stages[:i]) if (v := val(s)) is not None), None)
    return cell(f"{cur:.3f}" + delta(cur, prev), "num", raw=True)


def stage_table(stages: list[StageView]) -> str:
    rts = latency_runtimes(stages)
    heads = ["stage", "status", "params", "MACs", "size", "test acc", "accuracy measured in",
             *[f"latency ms · {runtime_label(r)}" for r in rts], "wall s"]
    rows, classes = [], []
    for i, s in enumerate(stages):
        rows.append([cell(s.dir), cell(s.status), _metric_cell(stages, i, "params", human),
                     _metric_cell(stages, i, "macs", human),
                     _metric_cell(stages, i, "size_bytes", lambda v: human(v, "B")),
                     _metric_cell(stages, i, "acc", lambda v: f"{v:.4f}", points=True),
                     cell(runtime_label(s.metrics.get("evaluated_on")) if s.accuracy is not None else ""),
                     *[_latency_cell(stages, i, r) for r in rts],
                     cell(f"{s.wall_s:.1f}" if num(s.wall_s) else "-", "num")])
        classes.append("flag" if s.metrics.get("chance_level") else "failed" if s.status in ("failed", "interrupted")
                       else "")
    note = ("<p class=\"note\">Deltas are against the previous stage that has the figure; latency deltas only "
            "within the same runtime's column. Accuracy: top-1 on the test split, measured on the stage's artifact "
            "in the runtime named. Latency: median, batch 1, on the run's host; each column is one runtime.</p>")
    return (table(heads, rows, classes, num_cols=[2, 3, 4, 5] + list(range(7, 8 + len(rts))))
            + note)


def charts_section(stages: list[StageView]) -> str:
    done = [s for s in stages if s.status == "completed"]
    # size figures: the stages that made an artifact (a bench stage measures, it makes none)
    sized = [s for s in done if any(num(s.metrics.get(k)) for k in ("params", "macs", "size_bytes"))]
    labels = [s.dir for s in done]

    def series(title: str, key: str, units: tuple[tuple[str, float], ...]) -> tuple[str, list[float | None]]:
        vals = [float(s.metrics[key]) if num(s.metrics.get(key)) else None for s in sized]
        top = max((v for v in vals if v is not None), default=0.0)
        unit, scale = next(((u, f) for u, f in units if top >= f), units[-1])  # the largest unit under top
        return f"{title} ({unit})", [v / scale if v is not None else None for v in vals]

    counts = (("G", 1e9), ("M", 1e6), ("K", 1e3), ("", 1.0))
    figs = [series("params", "params", counts), series("MACs", "macs", counts),
            series("size", "size_bytes", (("MB", 2.0**20), ("KB", 2.0**10), ("bytes", 1.0)))]
    bars = charts.stage_bars([s.dir for s in sized], [f for f in figs if any(v is not None for v in f[1])])
    lat = [(f"latency ms · {runtime_label(r)}",
            [s.latency[0] if s.latency and s.latency[1] == r else None for s in done]) for r in latency_runtimes(done)]
    lat_png = charts.stage_bars(labels, lat, compact=True)
    if not charts.available():
        return f"<h2 id=\"charts\">Per stage</h2><p class=\"note\">{charts.MISSING}.</p>"
    return ("<h2 id=\"charts\">Per stage</h2>"
            + (png_img(bars, "params, MACs and size per stage") if bars else "")
            + (png_img(lat_png, "latency per stage, one chart per runtime") if lat_png else ""))


def training_section(stages: list[StageView]) -> str:
    parts = []
    for s in stages:
        logs = collect.training_logs(s.folder)
        if not logs:
            continue
        png = charts.training_curves(s.dir, logs)
        last = logs[-1][1][-1]
        summary = ", ".join(f"{lab}: {len(rows)} epoch(s)" for lab, rows in logs)
        parts.append(f"<h3>{esc(s.dir)}</h3><p class=\"meta\">{esc(summary)}; last epoch: loss "
                     f"{esc(_fmt(last.get('train_loss')))}, val loss {esc(_fmt(last.get('val_loss')))}, val acc "
                     f"{esc(_fmt(last.get('val_top1')))}</p>"
                     + (png_img(png, f"training curves of {s.dir}") if png
                        else f"<p class=\"note\">{charts.MISSING}</p>"))
    return ("<h2 id=\"training\">Training and recovery curves</h2>" + "\n".join(parts)) if parts else ""


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if num(v) else "-"


def header(record: dict[str, Any], stages: list[StageView], generated: str) -> str:
    status = str(record.get("status", "?"))
    out = [f"<h1>edgeslim run <code>{esc(record.get('name'))}</code> "
           f"<span class=\"badge {esc(status)}\">{esc(status)}</span></h1>",
           f"<p class=\"meta\">created {esc(record.get('created'))} · updated {esc(record.get('updated'))} · seed "
           f"{esc(record.get('seed'))} · recipe hash <code>{esc(record.get('recipe_hash'))}</code> · report generated "
           f"<span id=\"{GENERATED_ID}\">{esc(generated)}</span></p>"]
    if status != "completed":
        bad = [s for s in stages if s.status != "completed"]
        done = [s.dir for s in stages if s.status == "completed"]
        what = {"interrupted": "was interrupted", "failed": "failed", "running": "is still running"}.get(
            status, f"is {status}")
        detail = "; ".join(f"{s.dir}: {s.status}" + (f" ({s.error})" if s.error else "") for s in bad)
        out.append(f"<div class=\"errbox\"><b>This run {esc(what)}.</b> {esc(detail) or 'No stage started.'} "
                   f"The figures below cover the finished stages only ({esc(', '.join(done)) or 'none'}).</div>")
    return "\n".join(out)


def warnings_box(items: list[str]) -> str:
    if not items:
        return ""
    return ("<div class=\"warnbox\" id=\"warnings\"><h2>Warnings</h2><ul>"
            + "".join(f"<li>{esc(w)}</li>" for w in items) + "</ul></div>")


def kpis(stages: list[StageView], fv: collect.FinalView | None) -> str:
    done = [s for s in stages if s.status == "completed"]
    if not done:
        return ""
    first = next((s for s in done if num(s.metrics.get("macs"))), None)
    final = fv.stage if fv else next((s for s in reversed(done) if s.accuracy is not None), None)
    items = []
    if final is not None and final.accuracy is not None:
        items.append(("final test accuracy", f"{final.accuracy:.4f}",
                      f"{final.dir}, {runtime_label(final.metrics.get('evaluated_on'))}"))
    last_macs = next((s for s in reversed(done) if num(s.metrics.get("macs"))), None)
    if first and last_macs and last_macs.metrics["macs"]:
        items.append(("MACs", human(last_macs.metrics["macs"]),
                      f"{first.metrics['macs'] / last_macs.metrics['macs']:.2f}x fewer than {first.dir}"))
    sized = [s for s in done if num(s.metrics.get("size_bytes"))]
    if sized:
        items.append(("size", human(sized[-1].metrics["size_bytes"], "B"), f"{sized[-1].dir}"))
    for r in latency_runtimes(done):
        last = next((s for s in reversed(done) if s.latency and s.latency[1] == r), None)
        if last is not None:
            items.append((f"latency · {runtime_label(r)}", f"{last.latency[0]:.3f} ms", last.dir))  # type: ignore[index]
    return "<div class=\"kpi\">" + "".join(f"<div>{esc(k)}<b>{esc(v)}</b><span class=\"meta\">{esc(n)}</span></div>"
                                         for k, v, n in items) + "</div>"


def render(run_dir: Path, record: dict[str, Any], evaluate_missing: bool = False,
           generated: str | None = None) -> str:
    """The whole page for ``run_dir`` as recorded in ``record`` (run.json)."""
    stages = collect.stage_views(run_dir, record)
    fv, why = collect.final_view(run_dir, record, stages, evaluate_missing)
    extra = P.collapse_warnings(fv.rows, fv.stage.dir, fv.reference.dir) if fv and fv.reference else []
    generated = generated or time.strftime("%Y-%m-%dT%H:%M:%S%z")
    body = [header(record, stages, generated), warnings_box(collect.warnings(record, stages, extra)),
            kpis(stages, fv), "<h2 id=\"stages\">Stages</h2>", stage_table(stages), charts_section(stages),
            training_section(stages), sections.final_section(fv, why), sections.precision_section(stages),
            sections.parity_section(collect.stage_files(stages, "parity.json")),
            sections.bench_section(collect.stage_files(stages, "bench.json")),
            sections.search_section(collect.search_front(run_dir)),
            sections.environment_section(record, stages),
            "<p class=\"note\">Files: run.json (the record), report.md (the same table in Markdown), one folder "
            "per stage with its artifact and meta.json. Regenerate this page with <code>edgeslim report "
            "RUN_FOLDER</code>.</p>"]
    return page(f"edgeslim run {record.get('name')}", "<div class=\"wrap\">\n" + "\n".join(b for b in body if b)
                + "\n</div>")
