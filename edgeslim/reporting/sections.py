"""The report page's detail sections: final artifact (confusion matrix, per-class change),
precision/backend candidates, parity, benchmarks, search front, environment."""

from __future__ import annotations

import json
from typing import Any

from edgeslim.reporting import charts
from edgeslim.reporting import predictions as P
from edgeslim.reporting.collect import FinalView, SearchView, StageView, cpu_flags, num, runtime_label
from edgeslim.reporting.html import cell, esc, png_img, table

MAX_CLASS_ROWS = 100  # more classes: the worst by change are listed, the matrix image has all
CM_TABLE_MAX = 20  # the confusion matrix is also a text table up to this many classes


def _f(v: Any, fmt: str = ".4f", empty: str = "-") -> str:
    return format(v, fmt) if num(v) else empty


def final_section(fv: FinalView | None, why: str) -> str:
    if fv is None:
        return ("<h2 id=\"final\">Final artifact: per-class accuracy</h2>"
                f"<p class=\"note\">Not available: {esc(why)}.</p>")
    s = fv.stage
    ref = fv.reference
    head = (f"<h2 id=\"final\">Final artifact: {esc(s.dir)} in {esc(runtime_label(s.metrics.get('evaluated_on')))}</h2>"
            f"<p class=\"meta\">Test split, {int(fv.cm.sum())} images; predictions: {esc(fv.source)}. "
            + (f"Change is against the float model: {esc(ref.dir)} (torch eager). " if ref else esc(fv.note) + ". ")
            + f"Highlighted: a class that lost more than {P.COLLAPSE_POINTS:g} points and more than one of its "
            "test images.</p>")
    png = charts.confusion_matrix(fv.cm, fv.names, f"{s.dir}: confusion matrix (test split)")
    parts = [head, png_img(png, f"confusion matrix of {s.dir}") if png else f"<p class=\"note\">{charts.MISSING}</p>"]
    if fv.cm.shape[0] <= CM_TABLE_MAX:
        parts.append("<h3>Confusion matrix (rows: true class, columns: predicted)</h3>" + _cm_table(fv))
    parts.append("<h3>Per-class accuracy</h3>" + _class_table(fv))
    return "\n".join(parts)


def _cm_table(fv: FinalView) -> str:
    names = [fv.names[i] if i < len(fv.names) else str(i) for i in range(fv.cm.shape[0])]
    rows = [[cell(names[i], raw=False)] + [cell(int(v), "diag" if i == j else "") for j, v in enumerate(r)]
            for i, r in enumerate(fv.cm)]
    return table(["true \\ predicted", *names], rows, cls="cm")


def _class_table(fv: FinalView) -> str:
    rows = list(fv.rows)
    note = ""
    if len(rows) > MAX_CLASS_ROWS:
        rows.sort(key=lambda r: r.change_points if r.change_points is not None else r.accuracy * 100)
        rows = rows[:MAX_CLASS_ROWS]
        note = f"<p class=\"note\">The {MAX_CLASS_ROWS} classes that changed most of {len(fv.rows)}.</p>"
    ref = f"float ({fv.reference.dir})" if fv.reference else "float"
    out, classes = [], []
    for r in rows:
        chg = "-" if r.change_points is None else f"{r.change_points:+.1f}"
        out.append([cell(r.name), cell(r.n, "num"), cell(_f(r.reference), "num"), cell(_f(r.accuracy), "num"),
                    cell(chg + (" ⚠ collapsed" if r.flagged else ""), "num flag" if r.flagged else "num")])
        classes.append("flag" if r.flagged else "")
    return note + table(["class", "test images", ref, f"final ({fv.stage.dir})", "change (points)"], out, classes,
                        num_cols=(1, 2, 3, 4))


def precision_section(stages: list[StageView]) -> str:
    parts = []
    for s in stages:
        ch = s.metrics.get("precision_choice")
        if not isinstance(ch, dict):
            continue
        timing, sc = ch.get("timing") or {}, ch.get("self_compare") or {}
        rows, classes = [], []
        for r in ch.get("candidates") or []:
            if not isinstance(r, dict):
                continue
            skipped = bool(r.get("skipped"))
            ci, iqr = r.get("latency_ci95_ms") or [None, None], r.get("latency_iqr_ms") or [None, None]
            rows.append([cell(r.get("candidate")), cell(r.get("backend")), cell(r.get("precision")),
                         cell(_f(r.get("val_top1")), "num"), cell(_f(r.get("drop_points"), ".2f"), "num"),
                         cell(_f(r.get("latency_ms"), ".3f"), "num"),
                         cell(f"{_f(ci[0], '.3f')}-{_f(ci[1], '.3f')}" if not skipped else "-", "num"),
                         cell(f"{_f(iqr[0], '.3f')}-{_f(iqr[1], '.3f')}" if not skipped else "-", "num"),
                         cell("yes" if r.get("kept") else "no"), cell(r.get("why") or r.get("skipped") or "")])
            classes.append("ok" if r.get("candidate") == ch.get("chosen_candidate") else "")
        parts.append(
            f"<h3>{esc(s.dir)}: precision {esc(ch.get('mode', 'auto'))}, chosen "
            f"<b>{esc(ch.get('chosen_candidate'))}</b></h3><p class=\"meta\">{esc(ch.get('reason'))}. Batch 1, "
            f"{esc(timing.get('threads', '?'))} thread(s), {esc(timing.get('rounds', '?'))} interleaved rounds x "
            f"{esc(timing.get('calls_per_round', '?'))} calls; accuracy: val top-1 in each candidate's own runtime vs "
            f"the float ONNX in onnxruntime ({esc(ch.get('reference_val_top1'))}), budget "
            f"{esc(ch.get('budget_points'))} points"
            + (f"; self-compare ratio {esc(sc.get('ratio'))} (noise floor)" if sc else "") + ".</p>"
            + table(["candidate", "runtime", "precision", "val top-1", "drop (points)", "latency ms (median)",
                     "95% CI", "IQR", "kept", "why"], rows, classes, num_cols=(3, 4, 5, 6, 7))
            + "".join(f"<p class=\"note\">Note: {esc(n)}</p>" for n in
                      [ch.get("note"), ch.get("warning"), *(ch.get("notes") or [])] if n))
    if not parts:
        return ""
    return "<h2 id=\"precision\">Precision and runtime candidates (measured)</h2>" + "\n".join(parts)


def parity_section(found: list[tuple[StageView, Any]]) -> str:
    parts = []
    for s, rep in found:
        if not isinstance(rep, dict):
            continue
        ok = rep.get("passed")
        head = (f"<h3>{esc(s.dir)}: {esc(rep.get('kind'))} parity {'passed' if ok else 'FAILED'}</h3>"
                f"<p class=\"meta\">{esc(rep.get('artifact'))} vs {esc(rep.get('reference'))} on "
                f"{esc(rep.get('n_inputs'))} test images.</p>")
        if rep.get("kind") == "quantized":
            m = rep.get("metrics") or {}
            rows = [[cell("top-1 agreement with the float parent"), cell(_f(m.get("top1_agreement")), "num"),
                     cell(f">= {m.get('min_agreement')}")],
                    [cell("accuracy (parent)"),
                     cell(f"{_f(m.get('accuracy'))} ({_f(m.get('parent_accuracy'))})", "num"), cell("")],
                    [cell("accuracy drop"), cell(_f(m.get("accuracy_drop"), "+.4f"), "num"),
                     cell(f"<= {m.get('max_accuracy_drop')}")]]
            body = table(["figure", "value", "required"], rows, num_cols=(1,))
        else:
            rows, classes = [], []
            for o in rep.get("outputs") or []:
                rows.append([cell(o.get("name")), cell(_f(o.get("max_abs_err"), ".3g"), "num"),
                             cell(_f(o.get("rel_err"), ".2e"), "num"), cell(_f(o.get("limit"), ".3g"), "num"),
                             cell(_f(o.get("top1_agreement")), "num"), cell("pass" if o.get("passed") else "FAIL"),
                             cell(o.get("problem") or "")])
                classes.append("" if o.get("passed") else "failed")
            body = table(["output", "max abs err", "rel err", "limit", "top-1 agreement", "result", "problem"],
                         rows, classes, num_cols=(1, 2, 3, 4))
        parts.append(head + body)
    return ("<h2 id=\"parity\">Parity (export gate)</h2>" + "\n".join(parts)) if parts else ""


def bench_section(found: list[tuple[StageView, Any]]) -> str:
    parts = []
    for s, res in found:
        if not isinstance(res, dict):
            continue
        st, art = res.get("settings") or {}, res.get("artifact") or {}
        rows = [[cell(r.get("batch"), "num"), *(cell(_f(r.get(k), ".3f"), "num") for k in
                 ("median_ms", "p90_ms", "p99_ms")), cell(_f(r.get("throughput"), ".1f"), "num"),
                 cell(r.get("iters"), "num")] for r in res.get("sweep") or [] if isinstance(r, dict)]
        parts.append(f"<h3>{esc(s.dir)}: {esc(art.get('name'))} in {esc(runtime_label(st.get('backend')))}</h3>"
                     f"<p class=\"meta\">threads intra={esc(st.get('intra_op_threads'))} "
                     f"inter={esc(st.get('inter_op_threads'))}, warmup {esc(st.get('warmup'))}, input "
                     f"{esc(st.get('input_shape'))}</p>"
                     + table(["batch", "median ms", "p90 ms", "p99 ms", "items/s", "calls"], rows,
                             num_cols=range(6)))
    return ("<h2 id=\"bench\">Benchmarks</h2>" + "\n".join(parts)) if parts else ""


def search_section(front: SearchView | None) -> str:
    if front is None:
        return ""
    img = front.png or charts.pareto(front.points, "search: accuracy vs measured latency")
    rows, classes = [], []
    for p in sorted(front.points, key=lambda p: p["latency_ms"] if num(p.get("latency_ms")) else float("inf")):
        settings = p.get("settings", p.get("params"))
        rows.append([cell(p.get("trial")), cell(_f(p.get("accuracy")), "num"),
                     cell(_f(p.get("latency_ms"), ".3f"), "num"), cell(runtime_label(p.get("backend"))),
                     cell(json.dumps(settings, sort_keys=True) if settings is not None else "")])
        picked = front.picked_trial is not None and p.get("trial") == front.picked_trial
        classes.append("ok" if picked else "")
    where = (f"the search this run was picked from ({front.folder}); its point is highlighted"
             if front.picked_trial is not None else f"{front.folder}")
    return ("<h2 id=\"search\">Search: Pareto front</h2>"
            f"<p class=\"meta\">From {esc(where)}. Accuracy: validation top-1 of each trial's artifact; latency: "
            "measured on the target. Test accuracy is measured for the picked point only.</p>"
            + (png_img(img, "Pareto front: accuracy vs latency") if img else "<p class=\"note\">No plot.</p>")
            + (table(["trial", "accuracy (val)", "latency ms", "runtime", "settings"], rows, classes, num_cols=(1, 2))
               if rows else "<p class=\"note\">pareto.json lists no points yet.</p>"))


def environment_section(record: dict[str, Any], stages: list[StageView]) -> str:
    host, v = record.get("host") or {}, record.get("versions") or {}
    flags = cpu_flags(record, stages)
    shown = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    feat = ", ".join(f"{f} {'yes' if flags.get(f) else 'no'}" for f in shown if f in flags) or "not recorded"
    run = (record.get("recipe") or {}).get("run") or {}
    threads = [f"run.threads {run.get('threads') or 'default'}"]
    if host.get("torch_threads"):
        threads.append(f"torch intra-op {host['torch_threads']}")
    for s in stages:
        t = ((s.metrics.get("precision_choice") or {}).get("timing") or {}) if isinstance(
            s.metrics.get("precision_choice"), dict) else {}
        if t.get("threads"):
            threads.append(f"{s.dir} candidates timed with {t['threads']}")
    rows = [("CPU", host.get("cpu")), ("cores", host.get("cores")), ("CPU features (INT8/BF16 speed)", feat),
            ("machine / OS", f"{host.get('machine', '?')} / {host.get('os', '?')}"),
            ("GPU", host.get("gpu") or "none"), ("threads", "; ".join(threads)),
            ("host", host.get("hostname")),
            ("versions", ", ".join(f"{k} {val}" for k, val in v.items() if val))]
    return ("<h2 id=\"environment\">Environment</h2>"
            + table(["what", "recorded by the run"], [[cell(k), cell(val)] for k, val in rows]))
