"""``precision: auto`` across backend x precision: measure each candidate in the runtime that would
run it, keep the fastest within the accuracy budget.

A candidate is one ``providers.Candidate`` (backend, precision, device) and one artifact:
onnxruntime fp32/int8/int8_dynamic run their own files; OpenVINO fp32 and int8 run the *same*
float and QDQ files onnxruntime runs; OpenVINO bf16 is the float file compiled with the BF16
inference-precision hint (only offered where the CPU has native BF16).

How it is measured (:func:`measure_candidates`):

* **accuracy**: validation top-1 of the artifact opened in the candidate's own backend and
  precision -- the runtime that would ship it -- compared with the float ONNX in onnxruntime
  (the stage's parent, as the accuracy guard sees it);
* **latency**: batch 1, all candidates opened at once and timed in interleaved rounds whose order
  rotates (``runtime.timing.interleaved_rounds``), so load on a shared machine falls on every
  candidate alike. onnxruntime runs with spinning off (``providers.DEFAULT_ALLOW_SPINNING``: an
  idle spinning pool would steal the cores the next candidate runs on) and OpenVINO with pinned
  threads, both with the same thread count. A second session of the first candidate runs in the
  rotation as a **self-compare**: its ratio to the first is the noise floor of the comparison.

:func:`choose` is a pure function of the measured rows (tests inject measurements through
:func:`select`'s ``measure`` argument). Every candidate is recorded with its figures or the
reason it was skipped, and why it was or was not kept.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeslim.errors import InputError

if TYPE_CHECKING:
    from edgeslim.data.bundle import DataBundle
    from edgeslim.runtime.providers import Candidate

EVAL_BATCH = 64
MIN_ROUNDS = 10  # at least this many rounds (a whole number of rotations) per measurement
SELF_SUFFIX = "#self"
NOISY_SELF_COMPARE = 0.05  # a self-compare further than this from 1.0 makes the figures noise
Measure = Callable[..., dict[str, Any]]


def artifact_key(precision: str) -> str:
    """Which built file a precision runs: bf16 is the float file with the BF16 hint."""
    return "fp32" if precision == "bf16" else precision


def artifact_of(cand: Candidate, files: dict[str, Path]) -> Path | None:
    return files.get(artifact_key(cand.precision))


def open_candidate(cand: Candidate, path: Path, threads: int | None, providers: list[str] | None = None) -> Any:
    """Open ``path`` the way the candidate would run it (the runtime layer's backend)."""
    from edgeslim.runtime import open_backend

    kw: dict[str, Any] = {"threads": threads}
    if cand.backend == "onnxruntime":
        kw["device"] = cand.device
        if providers and cand.device != "cpu":
            kw["providers"] = providers
    elif cand.backend == "openvino":
        kw["precision"] = "bf16" if cand.precision == "bf16" else None
    else:
        kw.update(device=cand.device, precision=cand.precision)
    return open_backend(path, cand.backend, **kw)


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def val_top1(backend: Any, data: DataBundle) -> float:
    from edgeslim.measure import predict

    return top1(*predict(backend, data, "val", EVAL_BATCH))


def latency_stats(rounds: list[list[float]]) -> dict[str, Any]:
    """Median (ms) with a distribution-free 95% CI, IQR, p90 and the per-round medians.

    The CI takes the order statistics n/2 -+ 0.98 sqrt(n) of the pooled calls (the binomial
    interval of the median, calls treated as independent).
    """
    flat = sorted(s for r in rounds for s in r)
    n = len(flat)
    half = 0.98 * math.sqrt(n)
    lo, hi = flat[max(0, math.floor(n / 2 - half))], flat[min(n - 1, math.ceil(n / 2 + half))]
    return {
        "latency_ms": round(float(np.median(flat)), 4),
        "latency_ci95_ms": [round(lo, 4), round(hi, 4)],
        "latency_iqr_ms": [round(float(np.percentile(flat, 25)), 4), round(float(np.percentile(flat, 75)), 4)],
        "latency_p90_ms": round(float(np.percentile(flat, 90)), 4),
        "latency_calls": n,
        "round_medians_ms": [round(float(np.median(r)), 4) for r in rounds if r],
    }


def _row(cand: Candidate, path: Path | None) -> dict[str, Any]:
    row: dict[str, Any] = {"candidate": cand.key, "backend": cand.backend, "precision": cand.precision,
                           "device": cand.device}
    if path is not None:
        row.update(artifact=path.name, size_bytes=path.stat().st_size if path.is_file() else None)
    if cand.skipped:
        row["skipped"] = cand.skipped
    return row


def measure_candidates(
    cands: list[Candidate], files: dict[str, Path], data: DataBundle, threads: int | None, iters: int,
    providers: list[str] | None = None, log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Accuracy (val top-1) and interleaved batch-1 latency of every candidate; see the module doc.

    Returns:
        ``{"rows": [...], "reference": {...}, "self_compare": {...}, "timing": {...}}``.
    """
    from edgeslim.runtime.providers import DEFAULT_ALLOW_SPINNING
    from edgeslim.runtime.timing import interleaved_rounds, make_input

    rows = {c.key: _row(c, artifact_of(c, files)) for c in cands}
    opened = _open_and_evaluate(cands, files, data, threads, providers, rows, log)
    ref_key = "onnxruntime/fp32"
    ref = rows[ref_key]["val_top1"] if ref_key in opened else round(
        val_top1(open_candidate(_ort_fp32(), files["fp32"], threads), data), 4)
    timed = [c for c in cands if c.key in opened]
    if not timed:
        return {"rows": list(rows.values()), "reference": {"candidate": ref_key, "val_top1": ref}}
    first = timed[0]
    opened[first.key + SELF_SUFFIX] = open_candidate(first, artifact_of(first, files), threads, providers)  # type: ignore[arg-type]
    x = make_input(tuple(data.input_shape), 1)
    fns = {k: (lambda b=b: b.run(x)) for k, b in opened.items()}
    n_rounds = len(fns) * max(1, math.ceil(MIN_ROUNDS / len(fns)))
    calls = max(2, math.ceil(iters / n_rounds))
    per = interleaved_rounds(fns, rounds=n_rounds, calls=calls, warmup=5)
    for c in timed:
        rows[c.key].update(latency_stats(per[c.key]))
    return {
        "rows": list(rows.values()),
        "reference": {"candidate": ref_key, "artifact": files["fp32"].name, "val_top1": ref,
                      "note": "the float ONNX in onnxruntime: the stage's parent for the accuracy guard"},
        "self_compare": self_compare(per[first.key], per[first.key + SELF_SUFFIX], first.key),
        "timing": {"batch": 1, "threads": threads or "default", "rounds": n_rounds, "calls_per_round": calls,
                   "interleaved": True, "onnxruntime_spinning": DEFAULT_ALLOW_SPINNING, "openvino_pinning": True},
    }


def _open_and_evaluate(cands: list[Candidate], files: dict[str, Path], data: DataBundle, threads: int | None,
                       providers: list[str] | None, rows: dict[str, dict[str, Any]],
                       log: Callable[[str], None] | None) -> dict[str, Any]:
    """Open each candidate and take its val top-1 there; one that its runtime cannot compile or
    run (an operator OpenVINO lacks, ...) is recorded as skipped with the reason, not fatal."""
    from edgeslim.errors import EdgeslimError

    opened: dict[str, Any] = {}
    for c in cands:
        try:
            backend = open_candidate(c, artifact_of(c, files), threads, providers)  # type: ignore[arg-type]
            rows[c.key]["val_top1"] = round(val_top1(backend, data), 4)
        except (EdgeslimError, RuntimeError) as exc:  # RuntimeError: what OpenVINO/onnxruntime raise at run time
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            rows[c.key]["skipped"] = f"{c.backend} could not run it: {first}"
            continue
        rows[c.key]["runtime"] = backend.describe()
        opened[c.key] = backend
        if log:
            log(f"precision auto: {c.key} val top-1 {rows[c.key]['val_top1']:.4f}")
    return opened


def _ort_fp32() -> Candidate:
    from edgeslim.runtime.providers import Candidate

    return Candidate("onnxruntime", "fp32", "cpu")


def self_compare(a: list[list[float]], b: list[list[float]], key: str) -> dict[str, Any]:
    """Two sessions of the same candidate in the same rotation: the ratio of their medians."""
    per = [float(np.median(rb) / np.median(ra)) for ra, rb in zip(a, b, strict=True) if ra and rb]
    ratio = float(np.median([s for r in b for s in r]) / np.median([s for r in a for s in r]))
    return {"candidate": key, "ratio": round(ratio, 4), "round_ratio_min": round(min(per), 4),
            "round_ratio_max": round(max(per), 4), "flat": abs(ratio - 1) <= NOISY_SELF_COMPARE}


def choose(rows: list[dict[str, Any]], reference_top1: float, budget: float, n_val: int,
           forced: str | None = None) -> dict[str, Any]:
    """The fastest measured candidate within the budget (of precision ``forced`` when given).

    Within budget is the accuracy guard's own rule (``guards.check_budget``: the drop from the
    reference may not exceed ``max(budget, one validation image)``). When no candidate of auto
    is within budget the fastest fp32 one is kept (the stage's guard then judges it); a forced
    precision is kept even over budget (its guard fails or warns). Marks each row ``kept`` with
    ``why``; returns the choice record.
    """
    from edgeslim.compress.guards import check_budget

    measured = [r for r in rows if not r.get("skipped")]
    for r in measured:
        # on_budget "warn": a candidate over budget is a fact to record; the stage's guard judges
        # only the chosen one (and fails or warns as the recipe says)
        g = check_budget("quantize", reference_top1, r["val_top1"], budget, "warn", n_val, "")
        r.update(drop_points=g["drop_points"], within_budget=g["within_budget"])
    eligible = [r for r in measured if forced is None or r["precision"] == forced]
    if not eligible:
        why = "; ".join(f"{r['candidate']}: {r['skipped']}" for r in rows if r.get("skipped")) or "none built"
        raise InputError(f"quantize precision {forced or 'auto'}: no candidate can be measured here ({why}); "
                         "choose another precision or measure on a machine that runs it")
    ok_all = [r for r in measured if r["within_budget"]]
    pool = [r for r in eligible if r["within_budget"]] or (
        eligible if forced else [r for r in eligible if r["precision"] == "fp32"] or eligible)
    chosen = min(pool, key=lambda r: r["latency_ms"])
    fastest = min(ok_all, key=lambda r: r["latency_ms"]) if ok_all else chosen
    _mark(rows, chosen, forced, budget)
    res: dict[str, Any] = {
        "mode": "forced" if forced else "auto", "chosen": chosen["precision"], "chosen_backend": chosen["backend"],
        "chosen_candidate": chosen["candidate"], "chosen_device": chosen["device"],
        "fastest_within_budget": fastest["precision"], "fastest_candidate": fastest["candidate"],
        "reference_val_top1": reference_top1, "budget_points": budget, "val_images": n_val,
        "reason": _reason(chosen, rows, budget, forced), "candidates": rows,
    }
    if forced and fastest is not chosen and fastest["latency_ms"] < chosen["latency_ms"]:
        res["warning"] = (
            f"forced precision {forced} ({chosen['candidate']}, {chosen['latency_ms']:.3f} ms) is slower than "
            f"{fastest['candidate']} ({fastest['latency_ms']:.3f} ms) within the budget; set precision: auto "
            "to keep the faster one")
    near = _within_noise(chosen, [r for r in pool if r is not chosen])
    if near:
        res["note"] = near
    return res


def _mark(rows: list[dict[str, Any]], chosen: dict[str, Any], forced: str | None, budget: float) -> None:
    for r in rows:
        r["kept"] = r is chosen
        if r.get("skipped"):
            r["why"] = f"skipped: {r['skipped']}"
        elif r is chosen:
            r["why"] = ("forced precision; fastest backend for it" if forced else
                        "fastest within the accuracy budget" if r["within_budget"] else
                        "no candidate within the budget: fastest fp32 kept (the accuracy guard judges it)")
        elif not r["within_budget"]:
            r["why"] = f"over the accuracy budget ({r['drop_points']:.2f} points lost; budget {budget:g})"
        elif forced and r["precision"] != forced:
            r["why"] = f"measured for comparison; precision {forced} forced by the recipe"
        else:
            pct = (r["latency_ms"] / chosen["latency_ms"] - 1) * 100 if chosen["latency_ms"] > 0 else 0.0
            r["why"] = f"{pct:.0f}% slower than {chosen['candidate']} ({r['latency_ms']:.3f} vs " \
                       f"{chosen['latency_ms']:.3f} ms)"


def _reason(chosen: dict[str, Any], rows: list[dict[str, Any]], budget: float, forced: str | None) -> str:
    others = ", ".join(f"{r['candidate']} {r['latency_ms']:.3f} ms" for r in rows
                       if r is not chosen and not r.get("skipped"))
    if forced:
        return f"{forced} forced by the recipe; {chosen['candidate']} is its fastest backend " \
               f"({chosen['latency_ms']:.3f} ms; {others or 'no other'})"
    return (f"{chosen['candidate']} is the fastest within the {budget:g} point budget "
            f"({chosen['latency_ms']:.3f} ms; {others or 'no other candidate'})")


def _within_noise(chosen: dict[str, Any], others: list[dict[str, Any]]) -> str | None:
    """A runner-up whose median lies inside the chosen one's CI: the order may flip on a rerun."""
    lo, hi = chosen.get("latency_ci95_ms") or (chosen["latency_ms"],) * 2
    close = [r for r in others if lo <= r["latency_ms"] <= hi]
    if not close:
        return None
    names = ", ".join(f"{r['candidate']} {r['latency_ms']:.3f} ms" for r in close)
    return f"within the measurement noise of {chosen['candidate']} (CI {lo:.3f}-{hi:.3f} ms): {names}"


def runtime_hint(choice: dict[str, Any], stage: str = "quantize") -> dict[str, Any]:
    """What travels with the shipped ONNX (metadata ``edgeslim.runtime``) and the stage meta:
    the backend and precision the choice was made for, and which backends were measured, so
    ``edgeslim deploy`` can put that runtime first only where its order was really compared."""
    measured = sorted({r["backend"] for r in choice["candidates"] if not r.get("skipped")})
    return {"backend": choice["chosen_backend"], "precision": choice["chosen"], "device": choice["chosen_device"],
            "measured": measured, "host_arch": platform.machine(), "stage": stage, "mode": choice["mode"]}


def select(
    cands: list[Candidate], files: dict[str, Path], data: DataBundle, budget: float, *,
    threads: int | None, iters: int, forced: str | None = None,
    providers: list[str] | None = None, measure: Measure = measure_candidates,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure the runnable candidates (``measure``), choose, and record every candidate.

    ``cands`` in the target's order; skipped ones (and those whose artifact was not built) are
    recorded with their reason. ``measure`` is injectable: tests pass fixed measurements.
    """
    runnable = [c for c in cands if c.applicable and not c.skipped and artifact_of(c, files) is not None]
    skipped = [_row(c, None) | {"skipped": c.skipped or f"{c.precision} was not built"}
               for c in cands if c.applicable and c not in runnable]
    if not runnable:
        why = "; ".join(f"{r['candidate']}: {r['skipped']}" for r in skipped) or "no candidate"
        raise InputError(f"quantize: no candidate can be measured on this machine ({why}); "
                         "set quantize.backends / target.providers to runtimes installed here")
    m = measure(runnable, files, data, threads, iters, providers=providers, log=log)
    rows = m["rows"] + skipped
    order = {c.key: i for i, c in enumerate(cands)}
    rows.sort(key=lambda r: order.get(r["candidate"], len(order)))
    res = choose(rows, m["reference"]["val_top1"], budget, len(data.val), forced)
    res.update(reference=m["reference"], self_compare=m.get("self_compare"), timing=m.get("timing"))
    sc = m.get("self_compare") or {}
    if sc and not sc.get("flat", True):
        res.setdefault("notes", []).append(
            f"self-compare {sc['ratio']:.3f} (two sessions of {sc['candidate']}): the machine was noisy, "
            "latency differences under that are not resolved")
    return res


def choice_markdown(choice: dict[str, Any], title: str = "quantize") -> list[str]:
    """report.md lines for a recorded choice: every candidate, its figures and why it was kept or not."""
    cpu, timing, sc = choice.get("cpu") or {}, choice.get("timing") or {}, choice.get("self_compare") or {}
    flags = ", ".join(f for f in ("avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if cpu.get(f)) or "none"
    lines = [f"## {title}: precision {choice.get('mode', 'auto')}, backend x precision", "",
             f"CPU {cpu.get('model') or '?'} (INT8/BF16 flags: {flags}); batch 1, {timing.get('threads', '?')} "
             f"thread(s), {timing.get('rounds', '?')} interleaved rounds x {timing.get('calls_per_round', '?')} calls; "
             f"accuracy: val top-1 in each candidate's runtime vs the float ONNX in onnxruntime "
             f"({choice.get('reference_val_top1')}), budget {choice.get('budget_points')} points.", "",
             "| candidate | val top-1 | drop (points) | latency ms (median) | 95% CI | IQR | kept | why |",
             "|---|---|---|---|---|---|---|---|"]
    for r in choice.get("candidates", []):
        if r.get("skipped"):
            lines.append(f"| {r['candidate']} | - | - | - | - | - | no | {r.get('why', r['skipped'])} |")
            continue
        ci, iqr = r.get("latency_ci95_ms") or ["?", "?"], r.get("latency_iqr_ms") or ["?", "?"]
        lines.append(f"| {r['candidate']} | {r['val_top1']:.4f} | {r.get('drop_points', 0):.2f} | "
                     f"{r['latency_ms']:.3f} | {ci[0]}-{ci[1]} | {iqr[0]}-{iqr[1]} | "
                     f"{'**yes**' if r.get('kept') else 'no'} | {r.get('why', '')} |")
    lines += ["", f"Chosen: **{choice.get('chosen_candidate')}** -- {choice.get('reason')}."]
    if sc:
        lines.append(f"Self-compare (two sessions of {sc.get('candidate')}): {sc.get('ratio')}.")
    lines += [f"Note: {n}" for n in [choice.get("note"), choice.get("warning"), *choice.get("notes", [])] if n]
    return lines + [""]
