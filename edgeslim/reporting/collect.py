"""The facts a run report shows, read from ``run.json`` and the stage folders (nothing is
recomputed except, for a run recorded before stages kept ``test_predictions.npz``, one pass of
the final artifact over the test split).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslim.reporting import predictions as P

# A runtime name as the page shows it: "torch" alone would not say that it is eager mode.
RUNTIME_LABEL = {"torch": "torch eager"}
MAX_LOG_LINES = 10_000  # a metrics.jsonl longer than this is cut (a report stays readable)


def runtime_label(name: str | None) -> str:
    return RUNTIME_LABEL.get(name or "", name or "?")


def num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class StageView:
    index: int
    dir: str
    name: str
    status: str
    folder: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_s: float | None = None
    error: str | None = None
    class_names: list[str] | None = None
    onnx_file: str | None = None
    model_file: str | None = None

    @property
    def accuracy(self) -> float | None:
        acc = self.metrics.get("test_accuracy", self.metrics.get("test_top1"))
        return float(acc) if num(acc) else None

    @property
    def latency(self) -> tuple[float, str] | None:
        """(latency_ms, the runtime that measured it); older records name it in evaluated_on."""
        m = self.metrics
        if not num(m.get("latency_ms")):
            return None
        return float(m["latency_ms"]), str(m.get("latency_backend") or m.get("backend") or m.get("evaluated_on") or "?")


def stage_views(run_dir: Path, record: dict[str, Any]) -> list[StageView]:
    out = []
    for i, s in enumerate(record.get("stages") or []):
        if not isinstance(s, dict):
            continue
        d = str(s.get("dir") or f"{i:02d}-{s.get('name', '?')}")
        out.append(StageView(int(s.get("index", i)), d, str(s.get("name", "?")), str(s.get("status", "?")),
                             run_dir / d, dict(s.get("metrics") or {}), s.get("wall_s"), s.get("error"),
                             s.get("class_names"), s.get("onnx_file"), s.get("model_file")))
    return out


def latency_runtimes(stages: list[StageView]) -> list[str]:
    """Runtimes that measured any stage's latency: torch eager first, then in order of appearance."""
    seen = list(dict.fromkeys(lat[1] for s in stages if (lat := s.latency)))
    return sorted(seen, key=lambda r: (r != "torch", seen.index(r)))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _natural(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.parent.name)]


def training_logs(folder: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """(label, epoch records) of every ``metrics.jsonl`` in a stage folder: the stage's own fit,
    then sub-fits (``recovery-<step>/`` of prune, ``qat/``, ``sparse/``) in step order."""
    files = ([folder / "metrics.jsonl"] if (folder / "metrics.jsonl").is_file() else [])
    files += sorted((p for p in folder.glob("*/metrics.jsonl") if p.is_file()), key=_natural)
    out = []
    for f in files:
        rows = []
        try:
            with open(f, encoding="utf-8", errors="replace") as fh:
                for i, line in enumerate(fh):
                    if i >= MAX_LOG_LINES:
                        break
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(rec, dict):
                        rows.append(rec)
        except OSError:
            continue
        if rows:
            out.append(("train" if f.parent == folder else f.parent.name, rows))
    return out


@dataclass
class FinalView:
    """The final artifact's confusion matrix and per-class accuracy, with the float reference."""

    stage: StageView
    cm: Any
    names: list[str]
    rows: list[P.ClassRow]
    reference: StageView | None
    source: str  # where the predictions came from
    note: str = ""


def final_view(run_dir: Path, record: dict[str, Any], stages: list[StageView],
               evaluate_missing: bool = False) -> tuple[FinalView | None, str]:
    """(the final artifact's view, or None and why). The final artifact is the last finished stage
    measured on the test split; the reference, the last stage before it measured in torch eager
    (the float model) on the same test images."""
    measured = [s for s in stages
                if s.status == "completed" and s.accuracy is not None and s.metrics.get("evaluated_on")]
    if not measured:
        return None, "no finished stage was measured on the test split"
    final = measured[-1]
    got = P.load_predictions(final.folder)
    source = f"{final.dir}/{P.FILE} (stored when the stage ran, in {runtime_label(final.metrics['evaluated_on'])})"
    if got is None:
        if not evaluate_missing:
            return None, f"{final.dir} kept no {P.FILE} (a run recorded before predictions were kept)"
        try:
            got = evaluate_artifact(record, final)
        except Exception as exc:  # the data or a runtime may be gone: the page says why, it still renders
            return None, f"{final.dir} kept no {P.FILE} and evaluating it failed ({type(exc).__name__}: {exc})"
        source = f"{final.dir}'s artifact evaluated on the test split by `edgeslim report`"
    pred, label = got
    names = list(final.class_names or record.get("data_fingerprint", {}).get("classes") or [])
    cm = P.confusion(pred, label, len(names))
    ref, ref_cm = None, None
    if final.metrics.get("evaluated_on") != "torch":
        for s in reversed(stages[: stages.index(final)]):
            if s.status != "completed" or s.metrics.get("evaluated_on") != "torch":
                continue
            r = P.load_predictions(s.folder)
            if r is not None and r[1].shape == label.shape and (r[1] == label).all():
                ref, ref_cm = s, P.confusion(r[0], r[1], cm.shape[0])
                break
    note = ("" if ref is not None else "the final artifact is the float model itself"
            if final.metrics.get("evaluated_on") == "torch" else
            "no earlier stage measured the float model in torch eager on the same test images")
    return FinalView(final, cm, names, P.class_rows(cm, names, ref_cm), ref, source, note), ""


def evaluate_artifact(record: dict[str, Any], st: StageView) -> tuple[Any, Any]:
    """Predictions of a stage's artifact on the run's test split, in the runtime it ships in."""
    from edgeslim.data import build_data
    from edgeslim.data.build import recorded_data, recorded_norm
    from edgeslim.measure import predict
    from edgeslim.recipe import DataSpec
    from edgeslim.runtime import open_backend
    from edgeslim.stages.standard import onnx_backend

    data = build_data(DataSpec.model_validate(recorded_data(record)), int(record.get("seed", 0)),
                      recorded_norm(record))
    threads = ((record.get("recipe") or {}).get("run") or {}).get("threads")
    if st.onnx_file:
        backend, _ = onnx_backend(st.folder / st.onnx_file, threads)
    else:
        from edgeslim.models.serialize import load_model

        backend = open_backend(load_model(st.folder / str(st.model_file)), "torch",
                               input_shape=tuple(data.input_shape))
    logits, labels = predict(backend, data, "test", 64)
    return logits.argmax(1), labels


def stage_files(stages: list[StageView], name: str) -> list[tuple[StageView, Any]]:
    """(stage, parsed JSON) of every finished stage folder holding ``name`` (parity.json, bench.json)."""
    return [(s, d) for s in stages if (d := read_json(s.folder / name)) is not None]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class SearchView:
    folder: Path
    points: list[dict[str, Any]]
    png: bytes | None  # the search's own pareto.png (checked to be a PNG)
    picked_trial: Any = None  # the trial --pick chose, when this run is the picked one


def search_front(run_dir: Path) -> SearchView | None:
    """A search's front for the report: ``<run>/search/`` (the run a search belongs to), or the
    search a picked run came from (``<run>/picked.json``, written by ``edgeslim search --pick``)."""
    folder, picked = run_dir / "search", None
    if not folder.is_dir():
        origin = read_json(run_dir / "picked.json")
        if not isinstance(origin, dict) or not isinstance(origin.get("search_dir"), str):
            return None
        folder = Path(origin["search_dir"])
        picked = (origin.get("point") or {}).get("trial") if isinstance(origin.get("point"), dict) else None
        if not folder.is_dir():
            return None
    data = read_json(folder / "pareto.json")
    if isinstance(data, dict):
        data = data.get("points") or data.get("front") or []
    points = [p for p in data if isinstance(p, dict)] if isinstance(data, list) else []
    try:
        image = (folder / "pareto.png").read_bytes() if (folder / "pareto.png").is_file() else None
    except OSError:
        image = None
    if image is not None and not image.startswith(PNG_SIGNATURE):
        image = None  # not a PNG: the report draws the front from pareto.json instead
    return SearchView(folder, points, image, picked)


def warnings(record: dict[str, Any], stages: list[StageView], extra: list[str]) -> list[str]:
    """Every warning the run recorded (data, normalisation guessed, chance level, budgets, the
    precision choice's), failed parity, and ``extra`` (the report's own, e.g. a collapsed class)."""
    out = list(record.get("warnings") or [])
    for s in stages:
        ws = list(s.metrics.get("warnings") or [])
        if isinstance(s.metrics.get("warning"), str):
            ws.append(s.metrics["warning"])
        out += [f"{s.dir}: {w}" for w in ws]
        if s.metrics.get("parity") not in (None, "passed") and str(s.metrics.get("parity")).startswith("fail"):
            out.append(f"{s.dir}: parity {s.metrics['parity']}")
    return list(dict.fromkeys(out + extra))


def cpu_flags(record: dict[str, Any], stages: list[StageView]) -> dict[str, Any]:
    """The CPU features the run recorded (``host.cpu_flags``; older runs: the quantize stage's)."""
    flags = (record.get("host") or {}).get("cpu_flags")
    if isinstance(flags, dict):
        return flags
    for s in stages:
        choice = s.metrics.get("precision_choice")
        cpu = choice.get("cpu") if isinstance(choice, dict) else None
        if isinstance(cpu, dict):
            return {k: v for k, v in cpu.items() if isinstance(v, bool)}
    return {}
