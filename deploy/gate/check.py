"""``edgeslim check``: the CI latency regression gate.

Baseline (A) and candidate (B) run in the same process, in interleaved rounds (A B, then B A,
...), so load from other jobs hits both alike and cancels out of the ratio of medians. The
gate fails only when the slowdown is significant (bootstrap CI above 1) AND larger than
``max_slowdown``; hard budgets (latency per device profile, size, MACs, accuracy) are checked
too. A stored-baseline mode compares with a saved ``edgeslim bench --json`` result, and refuses
when the host fingerprint differs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from edgeslim.deploy.gate.bench import BenchOptions, fingerprint_mismatch, host_fingerprint
from edgeslim.deploy.gate.budget import BudgetResult
from edgeslim.deploy.gate.stats import Comparison, compare_rounds, compare_samples
from edgeslim.errors import InputError
from edgeslim.runtime.timing import make_input, summarize, time_calls

CHECK_SCHEMA = "edgeslim.check/1"


@dataclass
class CheckOptions:
    """Gate settings. Rounds run until ``min_rounds`` and ``min_time_s`` are both reached."""

    max_slowdown: float = 0.05
    confidence: float = 0.95
    min_rounds: int = 20
    max_rounds: int = 2000
    min_time_s: float = 3.0
    round_ms: float = 25.0  # time per side per round; calls per round follow from it
    bench: BenchOptions = field(default_factory=lambda: BenchOptions(warmup=10))


@dataclass
class CheckReport:
    """Everything the gate decided, renderable as text, Markdown, JUnit XML and JSON."""

    baseline: dict[str, Any]
    candidate: dict[str, Any]
    comparison: Comparison | None
    budgets: list[BudgetResult] = field(default_factory=list)
    mode: str = "interleaved"
    host: dict[str, Any] = field(default_factory=dict)
    calls_per_round: int = 0
    wall_s: float = 0.0

    @property
    def regression(self) -> bool:
        return self.comparison is not None and self.comparison.failed

    @property
    def budget_failed(self) -> bool:
        return any(not b.passed for b in self.budgets)

    @property
    def exit_code(self) -> int:
        return 1 if self.regression or self.budget_failed else 0

    @property
    def verdict(self) -> str:
        parts = [self.comparison.verdict] if self.comparison else []
        if self.budget_failed:
            parts.append(
                "budget exceeded: " + ", ".join(b.name for b in self.budgets if not b.passed)
            )
        return "; ".join(parts) or "budgets ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": CHECK_SCHEMA,
            "mode": self.mode,
            "passed": self.exit_code == 0,
            "verdict": self.verdict,
            "comparison": self.comparison.to_json() if self.comparison else None,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "calls_per_round": self.calls_per_round,
            "budgets": [
                {"name": b.name, "limit": b.limit, "value": b.value, "passed": b.passed}
                for b in self.budgets
            ],
            "host": self.host,
            "wall_s": round(self.wall_s, 3),
        }


def _side(
    name: str, samples: list[float], batch: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    s = summarize(samples, batch)
    return {
        "name": name,
        **{
            k: s[k]
            for k in ("iters", "median_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "throughput")
        },
        **(extra or {}),
    }


def interleave(
    fa: Any, fb: Any, opts: CheckOptions
) -> tuple[list[list[float]], list[list[float]], int]:
    """Time ``fa`` and ``fb`` in alternating blocks (AB, BA, AB, ...); return per-round samples.

    Both sides get the same number of calls per round, chosen so a block lasts about
    ``round_ms``; alternating the order cancels any advantage of going first.
    """
    warm = max(opts.bench.warmup, 1)
    ta = summarize(time_calls(fa, warmup=warm, min_iters=5, min_time_s=0.0))["median_ms"]
    tb = summarize(time_calls(fb, warmup=warm, min_iters=5, min_time_s=0.0))["median_ms"]
    k = int(min(50, max(1, opts.round_ms / max(ta, tb, 1e-3))))
    a_rounds: list[list[float]] = []
    b_rounds: list[list[float]] = []
    start = time.perf_counter()
    while len(a_rounds) < opts.max_rounds and (
        len(a_rounds) < opts.min_rounds or time.perf_counter() - start < opts.min_time_s
    ):
        if len(a_rounds) % 2 == 0:
            sa = time_calls(fa, warmup=0, min_iters=k, min_time_s=0.0)
            sb = time_calls(fb, warmup=0, min_iters=k, min_time_s=0.0)
        else:
            sb = time_calls(fb, warmup=0, min_iters=k, min_time_s=0.0)
            sa = time_calls(fa, warmup=0, min_iters=k, min_time_s=0.0)
        a_rounds.append(sa)
        b_rounds.append(sb)
    return a_rounds, b_rounds, k


def run_check(
    baseline: str | Path, candidate: str | Path, opts: CheckOptions | None = None
) -> CheckReport:
    """Compare two artifacts in this process (interleaved rounds) and return the report."""
    from edgeslim.deploy.gate.artifact import open_artifact

    opts = opts or CheckOptions()
    b = opts.bench
    batch = b.batches[0]
    art_a, art_b = open_artifact(baseline, b), open_artifact(candidate, b)
    for art in (art_a, art_b):
        if art.fixed_batch is not None and art.fixed_batch != batch:
            raise InputError(
                f"'{art.name}' has a fixed batch size of {art.fixed_batch}; "
                f"pass --batch {art.fixed_batch}"
            )
    xa, xb = (
        make_input(art_a.input_shape, batch, b.seed),
        make_input(art_b.input_shape, batch, b.seed),
    )
    t0 = time.perf_counter()
    a_rounds, b_rounds, k = interleave(
        lambda: art_a.backend.run(xa), lambda: art_b.backend.run(xb), opts
    )
    wall = time.perf_counter() - t0
    cmp = compare_rounds(a_rounds, b_rounds, opts.max_slowdown, opts.confidence)
    flat_a = [s for r in a_rounds for s in r]
    flat_b = [s for r in b_rounds for s in r]
    return CheckReport(
        _side(art_a.name, flat_a, batch, {"artifact": art_a.describe(), "runtime": art_a.runtime()}),
        _side(art_b.name, flat_b, batch, {"artifact": art_b.describe(), "runtime": art_b.runtime()}),
        cmp,
        host=host_fingerprint(),
        calls_per_round=k,
        wall_s=wall,
    )


def run_stored_check(
    baseline_json: str | Path, candidate: str | Path, opts: CheckOptions | None = None
) -> CheckReport:
    """Compare a candidate with a stored bench result; refuse when the hosts differ."""
    from edgeslim.deploy.gate.bench import load_result, run_benchmark
    from edgeslim.runtime.providers import BACKENDS

    opts = opts or CheckOptions()
    stored = load_result(baseline_json)
    here = host_fingerprint()
    st = stored.get("settings", {})
    runtime = st.get("backend") if st.get("backend") in BACKENDS else None
    diffs = fingerprint_mismatch(stored.get("host", {}), here, runtime)
    if diffs:
        raise InputError(
            f"refusing to compare with '{baseline_json}': it was measured on a different host "
            f"({'; '.join(diffs)}); re-create the baseline on this machine with "
            "edgeslim bench BASELINE --json FILE, or compare two artifacts side by side"
        )
    bopts = replace(
        opts.bench,
        batches=[int(stored.get("batch", 1))],
        min_iters=int(st.get("min_iters", opts.bench.min_iters)),
        min_time_s=float(st.get("min_time_s", opts.bench.min_time_s)),
        warmup=int(st.get("warmup", opts.bench.warmup)),
    )
    if isinstance(st.get("threads_requested"), dict):
        bopts.threads = st["threads_requested"].get("intra") or bopts.threads
        bopts.inter_threads = st["threads_requested"].get("inter") or bopts.inter_threads
    if bopts.backend is None and runtime and Path(candidate).suffix in BACKENDS[runtime].artifacts:
        bopts.backend = runtime  # the candidate runs in the runtime the baseline was measured in
    t0 = time.perf_counter()
    fresh = run_benchmark(candidate, bopts)
    cmp = compare_samples(
        stored["samples_ms"], fresh["samples_ms"], opts.max_slowdown, opts.confidence
    )
    batch = bopts.batches[0]
    return CheckReport(
        _side(
            f"{stored['artifact']['name']} (stored)",
            stored["samples_ms"],
            batch,
            {"artifact": stored["artifact"], "created": stored.get("created")},
        ),
        _side(
            fresh["artifact"]["name"], fresh["samples_ms"], batch, {"artifact": fresh["artifact"]}
        ),
        cmp,
        mode="stored-baseline",
        host=here,
        wall_s=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- rendering


def _pct(a: float, b: float) -> str:
    return f"{(b / a - 1) * 100:+.1f}%" if a else "-"


def format_text(rep: CheckReport) -> str:
    """Plain-text summary for the terminal."""
    a, b, c = rep.baseline, rep.candidate, rep.comparison
    state = "FAIL" if rep.exit_code else "PASS"
    lines = [f"{state}: {rep.verdict}"]
    if c is not None:
        lines += [
            f"  baseline  {a['name']}: median {a['median_ms']:.3f} ms  p99 {a['p99_ms']:.3f} ms",
            f"  candidate {b['name']}: median {b['median_ms']:.3f} ms  p99 {b['p99_ms']:.3f} ms",
            f"  ratio of medians {c.ratio:.3f} ({c.delta_pct:+.1f}%), {c.confidence:.0%} CI "
            f"[{c.ci_low:.3f}, {c.ci_high:.3f}], Mann-Whitney p={c.mw_p:.3g}, "
            f"max slowdown {c.max_slowdown:.0%}, {_sampling(rep)}",
        ]
    lines += [f"  {'ok  ' if x.passed else 'FAIL'} {x.message}" for x in rep.budgets]
    return "\n".join(lines)


def _sampling(rep: CheckReport) -> str:
    c = rep.comparison
    if c is None:
        return ""
    if rep.mode == "interleaved":
        return f"{c.rounds} interleaved rounds x {rep.calls_per_round} calls in {rep.wall_s:.1f} s"
    return f"{c.n_baseline} stored vs {c.n_candidate} new samples ({rep.mode})"


def format_markdown(rep: CheckReport) -> str:
    """Markdown for a CI job summary or a PR comment."""
    a, b, c = rep.baseline, rep.candidate, rep.comparison
    icon = ":x:" if rep.exit_code else ":white_check_mark:"
    out = [
        f"### edgeslim check {icon} {'regression' if rep.exit_code else 'pass'}: {rep.verdict}",
        "",
    ]
    if c is not None:
        out += [
            "| | baseline | candidate | Δ |",
            "|---|---:|---:|---:|",
            f"| median (ms) | {a['median_ms']:.3f} | {b['median_ms']:.3f} | "
            f"{_pct(a['median_ms'], b['median_ms'])} |",
            f"| p99 (ms) | {a['p99_ms']:.3f} | {b['p99_ms']:.3f} | "
            f"{_pct(a['p99_ms'], b['p99_ms'])} |",
            f"| throughput (items/s) | {a['throughput']:.1f} | {b['throughput']:.1f} | "
            f"{_pct(a['throughput'], b['throughput'])} |",
            "",
            f"Ratio of medians **{c.ratio:.3f}** ({c.delta_pct:+.1f}%), {c.confidence:.0%} CI "
            f"[{c.ci_low:.3f}, {c.ci_high:.3f}]; Mann-Whitney p = {c.mw_p:.3g}; fails above "
            f"+{c.max_slowdown:.0%} when significant. {_sampling(rep)}.",
            "",
            f"`{a['name']}` vs `{b['name']}`",
            "",
        ]
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
    out.append(
        f"<sub>host: {h.get('cpu')} x{h.get('cores')}"
        f"{', GPU ' + str(h['gpu']) if h.get('gpu') else ''}</sub>"
    )
    return "\n".join(out) + "\n"


def format_junit(rep: CheckReport) -> str:
    """JUnit XML: one test case for the latency comparison and one per budget."""
    cases = []
    if rep.comparison is not None:
        c = rep.comparison
        msg = (
            f"ratio {c.ratio:.3f} CI [{c.ci_low:.3f}, {c.ci_high:.3f}] ({c.verdict}); "
            f"baseline {rep.baseline['median_ms']:.3f} ms, "
            f"candidate {rep.candidate['median_ms']:.3f} ms"
        )
        cases.append(("latency regression", not c.failed, msg))
    cases += [(f"budget {x.name}", x.passed, x.message) for x in rep.budgets]
    fails = sum(1 for _, ok, _ in cases if not ok)
    body = []
    for name, ok, msg in cases:
        inner = "" if ok else f"<failure message={quoteattr(msg)}>{escape(msg)}</failure>"
        body.append(
            f'    <testcase classname="edgeslim.check" name={quoteattr(name)} '
            f'time="{rep.wall_s:.3f}">{inner}<system-out>{escape(msg)}</system-out></testcase>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites><testsuite name="edgeslim check" tests="{len(cases)}" failures="{fails}" '
        f'errors="0" time="{rep.wall_s:.3f}">\n' + "\n".join(body) + "\n</testsuite></testsuites>\n"
    )
