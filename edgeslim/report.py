"""The end-of-run table (terminal) and report.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslim.fsutil import atomic_write_text

COLUMNS = ("stage", "params", "MACs", "size", "test acc", "latency ms", "on")


def _human(n: Any, unit: str = "") -> str:
    if n is None or n == "":
        return "-"
    n = float(n)
    for suffix in ("", "K", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.3g}{suffix}{unit}"
        n /= 1000
    return f"{n:.3g}T{unit}"


def rows(record: dict[str, Any]) -> list[list[str]]:
    out = []
    for s in record.get("stages", []):
        m = s.get("metrics", {})
        acc = m.get("test_accuracy", m.get("test_top1"))  # test_top1: an evaluate stage on the test split
        shown = f"{acc:.4f}" if isinstance(acc, (int, float)) else "-"
        out.append([s["dir"], _human(m.get("params")), _human(m.get("macs")), _human(m.get("size_bytes"), "B"),
                    shown + (" CHANCE" if m.get("chance_level") else ""),
                    f"{m['latency_ms']:.3f}" if isinstance(m.get("latency_ms"), (int, float)) else "-",
                    m.get("evaluated_on", m.get("backend", "-"))])
    return out


def markdown(record: dict[str, Any]) -> str:
    lines = [f"# edgeslim run `{record['name']}`", "",
             f"status: **{record['status']}** · seed {record['seed']} · recipe hash `{record['recipe_hash']}`",
             f"host: {record['host'].get('cpu')} ({record['host'].get('cores')} cores)"
             + (f", GPU {record['host']['gpu']}" if record["host"].get("gpu") else ""), "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(record)]
    lines += ["", "Accuracy is top-1 on the test split, measured on the stage's artifact "
              "(`on`: torch or onnxruntime). Latency: median, batch 1, on this host.", ""]
    if record.get("warnings"):
        lines += ["## Warnings", ""] + [f"- **{w}**" for w in record["warnings"]] + [""]
    v = record.get("versions", {})
    lines.append("versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val))
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, record: dict[str, Any]) -> Path:
    return atomic_write_text(run_dir / "report.md", markdown(record))


def print_table(record: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    t = Table(title=f"run {record['name']}: {record['status']}")
    for c in COLUMNS:
        t.add_column(c, justify="left" if c in ("stage", "on") else "right", no_wrap=c == "test acc")
    for r in rows(record):
        t.add_row(*r, style="bold red" if r[4].endswith("CHANCE") else None)
    console.print(t)
    for w in record.get("warnings") or []:
        console.print(f"[bold yellow]warning:[/bold yellow] {w}", highlight=False, soft_wrap=True)
