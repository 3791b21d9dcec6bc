"""The compatibility matrix: ``matrix.csv`` (every column), ``matrix.md`` and ``matrix.html``.

One row per model: ✅ ``ok``, ❎ ``gate_failed`` (exported, but FP32 parity or INT8 agreement
missed its threshold), ❌ ``failed`` (a step raised, crashed, hung or ran out of memory). The
HTML page is self-contained (inline CSS, no script, no external asset): it opens from a CI
artifact or an e-mail as it is.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections import Counter
from pathlib import Path
from typing import Any

from edgeslim.fsutil import atomic_write_text
from edgeslim.reporting.html import page

ICON = {"ok": "✅", "gate_failed": "❎", "failed": "❌"}
HEAD = ["model", "status", "failed_step", "error_class", "error", "source", "kind", "weights", "input_shape",
        "opset", "exporter", "max_rel_err", "agreement", "top1_classes", "int8_mode", "int8_calibration",
        "int8_agreement", "int8_agreement_all", "int8_decisive", "int8_verdict", "int8_rel_err", "params",
        "fp32_bytes", "int8_bytes"]
NUMERIC = ("max_rel_err", "agreement", "int8_agreement", "int8_rel_err")
TAIL = ["steps", "versions", "duration_s", "finished_at", "key"]
_LAT = re.compile(r"^(?P<b>.+)_(?P<p>fp32|int8)_p(?P<q>50|90)_ms$")


def latency_columns(rows: list[dict[str, Any]]) -> list[str]:
    """``<backend>_<precision>_p50_ms`` / ``_p90_ms`` columns present in any row, in a stable order."""
    cols = {k for r in rows for k in (r.get("metrics") or {}) if _LAT.match(k)}
    return sorted(cols, key=lambda c: (_LAT.match(c)["b"], _LAT.match(c)["p"], _LAT.match(c)["q"]))  # type: ignore[index]


def flatten(row: dict[str, Any], lat_cols: list[str]) -> dict[str, Any]:
    m = row.get("metrics") or {}
    out = {c: row.get(c, m.get(c)) for c in HEAD}
    out.update({c: m.get(c) for c in lat_cols})
    out["steps"] = " ".join(f"{s['name']}:{s['status']}" for s in row.get("steps") or [])
    out["versions"] = " ".join(f"{k}={v}" for k, v in (row.get("versions") or {}).items() if v)
    out.update({c: row.get(c) for c in ("duration_s", "finished_at", "key")})
    return out


def columns(rows: list[dict[str, Any]]) -> list[str]:
    return HEAD + latency_columns(rows) + TAIL


def to_csv(rows: list[dict[str, Any]]) -> str:
    lat = latency_columns(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HEAD + lat + TAIL, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in flatten(r, lat).items()})
    return buf.getvalue()


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by status, failures by error class, and per-step pass counts."""
    status = Counter(r.get("status") for r in rows)
    classes = Counter(r.get("error_class") for r in rows if r.get("status") != "ok")
    steps: dict[str, Counter] = {}
    for r in rows:
        for s in r.get("steps") or []:
            steps.setdefault(s["name"], Counter())[s["status"]] += 1
    return {"models": len(rows), "ok": status.get("ok", 0), "gate_failed": status.get("gate_failed", 0),
            "failed": status.get("failed", 0), "by_error_class": dict(classes.most_common()),
            "steps": {k: dict(v) for k, v in steps.items()}}


def _fmt(v: Any, kind: str = "") -> str:
    if v is None or v == "":
        return ""
    if kind == "mb":
        return f"{v / 2**20:.3g}"
    if isinstance(v, float):
        return f"{v:.3g}" if kind != "ms" else f"{v:.3f}"
    return str(v)


def _short_cols(lat: list[str]) -> list[tuple[str, str, str]]:
    """(title, column, format) of the columns the Markdown/HTML tables show."""
    cols = [("model", "model", ""), ("status", "status", ""), ("failed step", "failed_step", ""),
            ("error class", "error_class", ""), ("max rel err", "max_rel_err", ""), ("agreement", "agreement", ""),
            ("INT8 agreement", "int8_agreement", ""), ("INT8 decisive", "int8_decisive", ""),
            ("INT8 rel err", "int8_rel_err", ""), ("FP32 MB", "fp32_bytes", "mb"),
            ("INT8 MB", "int8_bytes", "mb")]
    cols += [(c.replace("_ms", " ms").replace("_", " "), c, "ms") for c in lat]
    return cols + [("opset", "opset", ""), ("input", "input_shape", ""), ("s", "duration_s", "")]


def _versions_line(rows: list[dict[str, Any]]) -> str:
    seen: dict[str, set] = {}
    for r in rows:
        for k, v in (r.get("versions") or {}).items():
            if v:
                seen.setdefault(k, set()).add(v)
    return ", ".join(f"{k} {'/'.join(sorted(v))}" for k, v in seen.items())


def to_markdown(rows: list[dict[str, Any]], title: str = "edgeslim zoo") -> str:
    lat = latency_columns(rows)
    cols = _short_cols(lat)
    s = summary(rows)
    lines = [f"# {title}", "", f"{s['models']} models: ✅ {s['ok']} ok, ❎ {s['gate_failed']} gate failed, "
             f"❌ {s['failed']} failed.", "", f"Versions: {_versions_line(rows)}", "",
             "| " + " | ".join(t for t, _, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        flat = flatten(r, lat)
        cells = []
        for _, c, f in cols:
            v = _fmt(flat.get(c), f)
            cells.append(f"{ICON.get(v, '')} {v}".strip() if c == "status" else v.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    errs = [r for r in rows if r.get("error")]
    if errs:
        lines += ["", "## Errors", ""] + [f"- **{r['model']}** ({r.get('failed_step')}, {r.get('error_class')}): "
                                         f"{str(r['error']).replace('|', '/')}" for r in errs]
    return "\n".join(lines) + "\n"


def to_html(rows: list[dict[str, Any]], title: str = "edgeslim zoo") -> str:
    lat = latency_columns(rows)
    cols = _short_cols(lat)
    s = summary(rows)
    e = html.escape
    head = "".join(f"<th>{e(t)}</th>" for t, _, _ in cols) + "<th>error</th>"
    body = []
    for r in rows:
        flat = flatten(r, lat)
        cells = []
        for _, c, f in cols:
            v = _fmt(flat.get(c), f)
            if c == "status":
                cells.append(f"<td title=\"{e(v)}\">{ICON.get(v, '')} {e(v)}</td>")
            else:
                cls = ' class="num"' if f in ("ms", "mb") or c in NUMERIC else ""
                cells.append(f"<td{cls}>{e(v)}</td>")
        cells.append(f"<td class=\"err\">{e(str(r.get('error') or ''))}</td>")
        body.append(f"<tr class=\"{e(str(r.get('status')))}\">{''.join(cells)}</tr>")
    by_class = ", ".join(f"{e(str(k))}: {v}" for k, v in s["by_error_class"].items()) or "none"
    # the page style every edgeslim HTML page shares (the run report too)
    return page(title, f"<h1>{e(title)}</h1><p class=\"sum\">{s['models']} models: "
                f"✅ {s['ok']} ok, ❎ {s['gate_failed']} exported but a gate failed, ❌ {s['failed']} failed. "
                f"Not ok by error class: {by_class}.<br>Versions: {e(_versions_line(rows))}</p>"
                f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>")


def write_matrix(out: Path, rows: list[dict[str, Any]], title: str = "edgeslim zoo") -> dict[str, Path]:
    """Write matrix.csv / .md / .html atomically; returns their paths."""
    paths = {"csv": out / "matrix.csv", "md": out / "matrix.md", "html": out / "matrix.html"}
    atomic_write_text(paths["csv"], to_csv(rows))
    atomic_write_text(paths["md"], to_markdown(rows, title))
    atomic_write_text(paths["html"], to_html(rows, title))
    return paths
