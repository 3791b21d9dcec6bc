"""The check's reports: terminal text, Markdown (job summary / PR comment), JUnit XML, JSON.

Every verdict reads the same in each: ``pass``, ``regression``, ``budget-exceeded``,
``inconclusive`` (the CI still straddled the threshold when time ran out: the samples could
not tell) and ``error`` (nothing was measured: bad input or a model that does not run). An
error still produces all three files, so CI never loses the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    from edgeslim.deploy.gate.check import CheckReport

ICONS = {"pass": ":white_check_mark:", "regression": ":x:", "budget-exceeded": ":x:",
         "inconclusive": ":warning:", "error": ":boom:"}
WHAT_NOW = {
    "inconclusive": "the gate could not tell: rerun on a quieter runner, give it more time "
    "(--max-time), or use fewer threads (--threads 1)",
    "error": "nothing was compared; fix the input named above",
}


def _ci(c: Any) -> str:
    hi = "inf" if c.ci_high == float("inf") else f"{c.ci_high:.3f}"
    return f"{c.confidence:.0%} CI [{c.ci_low:.3f}, {hi}]"


def summary_line(rep: CheckReport) -> str:
    """``<verdict>: <why>`` in one line."""
    status, c = rep.status, rep.comparison
    if status == "error":
        return f"error: {rep.error}"
    parts = []
    if c is not None:
        t = f"+{c.max_slowdown:.0%}"
        why = {
            "regression": f"slower than the {t} tolerance",
            "pass": f"within the {t} tolerance" + (f" ({c.detail})" if c.detail else ""),
            "inconclusive": f"undecided at the {t} threshold" + (f" ({c.detail})" if c.detail else ""),
        }[c.verdict]
        parts.append(f"ratio {c.ratio:.3f} ({c.delta_pct:+.1f}%), {_ci(c)}: {why}")
    failed = [b.name for b in rep.budgets if not b.passed]
    if failed:
        parts.append("budget exceeded: " + ", ".join(failed))
    elif rep.budgets:
        parts.append("budgets ok")
    return f"{status}: " + ("; ".join(parts) or "no comparison")


def _sampling(rep: CheckReport) -> str:
    c = rep.comparison
    if c is None:
        return ""
    stop = {"decided": "stopped when the CI decided", "time cap": "stopped at the time cap",
            "round cap": "stopped at the round cap"}.get(rep.stop, rep.stop)
    if rep.mode == "interleaved":
        how = f"{c.rounds} interleaved rounds x {rep.calls_per_round} calls in {rep.wall_s:.1f} s"
    elif rep.mode == "stored-baseline":
        how = f"{c.n_baseline} stored vs {c.n_candidate} new samples in {rep.wall_s:.1f} s"
    else:
        how = f"{c.rounds} rounds ({rep.mode}) in {rep.wall_s:.1f} s"
    threads = rep.settings.get("threads")
    return how + (f", {threads} thread(s) per side" if threads else "") + (f", {stop}" if stop else "")


def format_text(rep: CheckReport) -> str:
    """Plain-text summary for the terminal: the verdict first, in capitals."""
    a, b, c = rep.baseline, rep.candidate, rep.comparison
    lines = [f"{rep.status.upper()}: {summary_line(rep).partition(': ')[2]}"]
    if c is not None:
        lines += [
            f"  baseline  {a['name']}: median {a['median_ms']:.3f} ms  p99 {a['p99_ms']:.3f} ms",
            f"  candidate {b['name']}: median {b['median_ms']:.3f} ms  p99 {b['p99_ms']:.3f} ms",
            f"  ratio of medians {c.ratio:.3f} ({c.delta_pct:+.1f}%), {_ci(c)}, threshold "
            f"{c.threshold:.3f}, Mann-Whitney p={c.mw_p:.3g}; {_sampling(rep)}",
        ]
    lines += [f"  {'ok  ' if x.passed else 'FAIL'} {x.message}" for x in rep.budgets]
    if rep.status in WHAT_NOW and rep.status != "error":
        lines.append(f"  {WHAT_NOW[rep.status]} (exit {rep.exit_code})")
    return "\n".join(lines)


def _pct(a: float, b: float) -> str:
    return f"{(b / a - 1) * 100:+.1f}%" if a else "-"


def _md_table(rep: CheckReport) -> list[str]:
    a, b, c = rep.baseline, rep.candidate, rep.comparison
    rows = [("median (ms)", "median_ms", ".3f"), ("p99 (ms)", "p99_ms", ".3f"),
            ("throughput (items/s)", "throughput", ".1f")]
    out = ["| | baseline | candidate | Δ |", "|---|---:|---:|---:|"]
    out += [f"| {label} | {a[k]:{f}} | {b[k]:{f}} | {_pct(a[k], b[k])} |" for label, k, f in rows]
    rule = (f"the CI taken twice as wide (log scale) must lie above {c.threshold:.3f} (+{c.max_slowdown:.0%}) "
            f"for a regression, at or below it for a pass; inconclusive otherwise")
    return out + ["", f"Ratio of medians **{c.ratio:.3f}** ({c.delta_pct:+.1f}%), {_ci(c)}; "
                  f"Mann-Whitney p = {c.mw_p:.3g}. Rule: {rule}. {_sampling(rep)}.", "",
                  f"`{a['name']}` vs `{b['name']}`", ""]


def format_markdown(rep: CheckReport) -> str:
    """Markdown for a CI job summary or a PR comment."""
    status = rep.status
    out = [f"### edgeslim check {ICONS[status]} {summary_line(rep)}", ""]
    if status == "error":
        out += [f"Baseline `{rep.baseline['name']}`, candidate `{rep.candidate['name']}`: "
                f"{WHAT_NOW['error']} (exit {rep.exit_code}).", ""]
    if status == "inconclusive":
        out += [f"> **Inconclusive** (exit {rep.exit_code}): {WHAT_NOW['inconclusive']}.", ""]
    if rep.comparison is not None:
        out += _md_table(rep)
    if rep.budgets:
        out += ["| budget | limit | value | result |", "|---|---:|---:|---|"]
        out += [
            f"| {x.name} | {x.limit:g}{x.unit} | "
            f"{'-' if x.value is None else f'{x.value:.4g}'}{x.unit} | "
            f"{':white_check_mark:' if x.passed else ':x:'} |"
            for x in rep.budgets
        ]
        out.append("")
    h = rep.host
    if h:
        out.append(f"<sub>host: {h.get('cpu') or h.get('remote')} x{h.get('cores', '?')}"
                   f"{', GPU ' + str(h['gpu']) if h.get('gpu') else ''}</sub>")
    return "\n".join(out) + "\n"


def _latency_case(rep: CheckReport) -> tuple[str, str | None, str, str]:
    """(name, None | failure | error, type, message) of the latency comparison."""
    if rep.status == "error":
        return "latency regression", "error", "error", rep.error or "error"
    c = rep.comparison
    msg = (f"ratio {c.ratio:.3f} {_ci(c)}, threshold {c.threshold:.3f} ({c.verdict}); "
           f"baseline {rep.baseline['median_ms']:.3f} ms, candidate {rep.candidate['median_ms']:.3f} ms")
    if c.verdict == "regression":
        return "latency regression", "failure", "regression", msg
    if c.verdict == "inconclusive":
        return "latency regression", "error", "inconclusive", f"inconclusive: {msg}; {WHAT_NOW['inconclusive']}"
    return "latency regression", None, "", msg


def format_junit(rep: CheckReport) -> str:
    """JUnit XML: one test case for the latency comparison and one per budget.

    A regression (or an exceeded budget) is a ``<failure>``; an inconclusive comparison and a
    check that could not run are ``<error>`` (type ``inconclusive`` / ``error``), so no CI
    report shows them as passed.
    """
    cases = []
    if rep.comparison is not None or rep.status == "error":
        cases.append(_latency_case(rep))
    cases += [(f"budget {x.name}", None if x.passed else "failure", "budget", x.message)
              for x in rep.budgets]
    fails = sum(1 for _, kind, _, _ in cases if kind == "failure")
    errors = sum(1 for _, kind, _, _ in cases if kind == "error")
    body = []
    for name, kind, typ, msg in cases:
        inner = (f"<{kind} type={quoteattr(typ)} message={quoteattr(msg)}>{escape(msg)}</{kind}>"
                 if kind else "")
        body.append(
            f'    <testcase classname="edgeslim.check" name={quoteattr(name)} '
            f'time="{rep.wall_s:.3f}">{inner}<system-out>{escape(msg)}</system-out></testcase>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites><testsuite name="edgeslim check" tests="{len(cases)}" failures="{fails}" '
        f'errors="{errors}" time="{rep.wall_s:.3f}">\n' + "\n".join(body) + "\n</testsuite></testsuites>\n"
    )
