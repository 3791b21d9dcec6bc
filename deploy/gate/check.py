"""``edgeslim check``: the CI latency regression gate.

Baseline (A) and candidate (B) run in the same process, in interleaved rounds (A B, then B A,
...), so load from other jobs hits both alike and cancels out of the ratio of medians. Rounds
go on until the confidence interval of the ratio, taken twice as wide (``stats.MARGIN``), lies
entirely on one side of ``T = 1 + max_slowdown`` (``pass`` below, ``regression`` above) or the
time cap is reached (``inconclusive``: it still straddles T). Hard budgets (latency per device profile, size,
MACs, accuracy) are checked too. A stored-baseline mode compares with a saved
``edgeslim bench --json`` result, and refuses when the host fingerprint differs.

Each side runs with ``gate_threads()`` intra-op threads unless ``--threads`` says otherwise
(why: ``docs/ci-gate.md``, measured by ``benchmarks/gate_defaults.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeslim.deploy.gate.bench import (
    BenchOptions,
    fingerprint_mismatch,
    host_fingerprint,
    one_line,
    run_failure,
)
from edgeslim.deploy.gate.budget import BudgetResult
from edgeslim.deploy.gate.stats import Comparison, compare_rounds, compare_samples
from edgeslim.errors import InputError
from edgeslim.runtime.timing import make_input, summarize, time_calls

CHECK_SCHEMA = "edgeslim.check/2"
# The exit code of each verdict. 3 is left out on purpose: it means "tampered bundle" in
# edgeslim (the bundle runner), and a gate must never be mistaken for that.
EXIT_CODES = {"pass": 0, "regression": 1, "budget-exceeded": 1, "error": 2, "inconclusive": 4}


def usable_cores() -> int:
    """Cores this process may run on (affinity / cpuset aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def gate_threads(cores: int | None = None) -> int:
    """Default intra-op threads of each side of a check: half the usable cores, 1 to 4.

    The other half absorbs what a shared runner adds (neighbours, the OS, the idle side's
    pool). On a 2-core runner that is 1 thread: the steadiest ratio measured
    (``benchmarks/gate_defaults.py``); more threads than 4 add scheduling noise to a
    batch-1 model without adding signal to a *ratio*.
    """
    return max(1, min(4, (cores or usable_cores()) // 2))


@dataclass
class CheckOptions:
    """Gate settings. Rounds run until ``min_rounds`` and ``min_time_s`` are reached, then
    until the CI decides or ``max_time_s`` (the cap) has passed."""

    max_slowdown: float = 0.05
    confidence: float = 0.95
    min_rounds: int = 20
    max_rounds: int = 100_000
    min_time_s: float = 3.0
    max_time_s: float = 10.0
    round_ms: float = 25.0  # time per side per round; calls per round follow from it
    look_every_s: float = 1.0  # how often the CI is recomputed after min_time_s ...
    look_growth: float = 0.25  # ... or after this share of the time spent, when that is longer
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
    stop: str = ""  # decided | time cap | round cap | fixed rounds
    looks: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_code: int = 2

    @property
    def budget_failed(self) -> bool:
        return any(not b.passed for b in self.budgets)

    @property
    def status(self) -> str:
        """pass | regression | budget-exceeded | inconclusive | error."""
        if self.error is not None:
            return "error"
        if self.comparison is not None and self.comparison.failed:
            return "regression"
        if self.budget_failed:
            return "budget-exceeded"  # a definite failure outranks an undecided latency
        if self.comparison is not None and not self.comparison.decided:
            return "inconclusive"
        return "pass"

    @property
    def regression(self) -> bool:
        return self.status == "regression"

    @property
    def exit_code(self) -> int:
        return self.error_code if self.status == "error" else EXIT_CODES[self.status]

    @property
    def summary(self) -> str:
        """One line: the verdict and why."""
        from edgeslim.deploy.gate.report import summary_line

        return summary_line(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": CHECK_SCHEMA,
            "verdict": self.status,
            "exit_code": self.exit_code,
            "passed": self.exit_code == 0,
            "summary": self.summary,
            "error": self.error,
            "mode": self.mode,
            "comparison": self.comparison.to_json() if self.comparison else None,
            "stop": self.stop,
            "looks": self.looks,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "calls_per_round": self.calls_per_round,
            "settings": self.settings,
            "budgets": [
                {"name": b.name, "limit": b.limit, "value": b.value, "passed": b.passed}
                for b in self.budgets
            ],
            "host": self.host,
            "wall_s": round(self.wall_s, 3),
        }


def error_report(message: str, code: int, baseline: str, candidate: str, mode: str) -> CheckReport:
    """The report written when the check could not measure (bad input, a crashing model)."""
    return CheckReport({"name": baseline}, {"name": candidate}, None, mode=mode, error=message,
                       error_code=code)


def _side(
    name: str, samples: list[float], batch: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    s = summarize(samples, batch)
    keys = ("iters", "median_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "throughput")
    return {"name": name, **{k: s[k] for k in keys}, **(extra or {})}


def adaptive(
    step: Callable[[], None], count: Callable[[], int], judge: Callable[[], Comparison],
    opts: CheckOptions,
) -> tuple[Comparison, str, int, float]:
    """Call ``step`` until ``min_rounds``/``min_time_s`` hold and ``judge`` decides, or a cap.

    Returns (comparison, stop reason, looks, seconds). The CI is recomputed every
    ``look_every_s`` (or every quarter of the time spent, whichever is longer), so a long run
    does not spend its time bootstrapping. Looking more than once is safe here because a wrong
    decision needs the CI to clear ``T`` on the wrong side, far from where the truth lies; near
    ``T`` the outcome is ``inconclusive`` (docs/ci-gate.md).
    """
    start = time.perf_counter()
    next_look, looks = opts.min_time_s, 0
    while True:
        step()
        elapsed = time.perf_counter() - start
        n = count()
        if n >= opts.max_rounds:
            stop = "round cap"
            break
        if elapsed >= opts.max_time_s:
            stop = "time cap"
            break
        if n >= opts.min_rounds and elapsed >= next_look:
            looks += 1
            cmp = judge()
            if cmp.decided:
                return cmp, "decided", looks, time.perf_counter() - start
            next_look = elapsed + max(opts.look_every_s, opts.look_growth * elapsed)
    cmp = judge()
    return cmp, ("decided" if cmp.decided and n >= opts.min_rounds else stop), looks + 1, elapsed


class _Sides:
    """Two guarded callables: an exception inside a model run becomes a one-line InputError
    naming the side, so a crashing candidate is bad input (exit 2), never a regression."""

    def __init__(self, fa: Callable[[], object], fb: Callable[[], object], names: tuple[str, str]):
        self.fns, self.names = {"a": fa, "b": fb}, {"a": names[0], "b": names[1]}

    def time(self, side: str, **kw: Any) -> list[float]:
        try:
            return time_calls(self.fns[side], **kw)
        except Exception as exc:  # onnxruntime/OpenVINO raise their own types
            raise run_failure(self.names[side], exc) from exc


def interleave(
    fa: Callable[[], object], fb: Callable[[], object], opts: CheckOptions,
    names: tuple[str, str] = ("baseline", "candidate"),
) -> tuple[list[list[float]], list[list[float]], int, Comparison, str, int]:
    """Time ``fa`` and ``fb`` in alternating blocks (AB, BA, AB, ...) until the CI decides.

    Both sides get the same number of calls per round, chosen so a block lasts about
    ``round_ms``; alternating the order cancels any advantage of going first.

    Returns:
        (baseline rounds, candidate rounds, calls per round, comparison, stop reason, looks).
    """
    sides = _Sides(fa, fb, names)
    warm = max(opts.bench.warmup, 1)
    ta = summarize(sides.time("a", warmup=warm, min_iters=5, min_time_s=0.0))["median_ms"]
    tb = summarize(sides.time("b", warmup=warm, min_iters=5, min_time_s=0.0))["median_ms"]
    k = int(min(1000, max(1, opts.round_ms / max(ta, tb, 1e-4))))
    a_rounds: list[list[float]] = []
    b_rounds: list[list[float]] = []

    def step() -> None:
        order = ("a", "b") if len(a_rounds) % 2 == 0 else ("b", "a")
        got = {s: sides.time(s, warmup=0, min_iters=k, min_time_s=0.0) for s in order}
        a_rounds.append(got["a"])
        b_rounds.append(got["b"])

    def judge() -> Comparison:
        return compare_rounds(a_rounds, b_rounds, opts.max_slowdown, opts.confidence,
                              min_rounds=opts.min_rounds)

    cmp, stop, looks, _ = adaptive(step, lambda: len(a_rounds), judge, opts)
    return a_rounds, b_rounds, k, cmp, stop, looks


def _open_side(what: str, spec: str | Path, b: BenchOptions) -> Any:
    from edgeslim.deploy.gate.artifact import open_artifact

    try:
        return open_artifact(spec, b)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from exc
    except Exception as exc:  # a library that fails to open the file in its own way
        raise InputError(f"{what} '{spec}' cannot be loaded ({type(exc).__name__}: {one_line(exc)})") from exc


def _settings(opts: CheckOptions, b: BenchOptions, art: Any) -> dict[str, Any]:
    return {"threads": b.threads, "threads_default": gate_threads(), "usable_cores": usable_cores(),
            "min_time_s": opts.min_time_s, "max_time_s": opts.max_time_s, "min_rounds": opts.min_rounds,
            "round_ms": opts.round_ms, "confidence": opts.confidence, "max_slowdown": opts.max_slowdown,
            "warmup": b.warmup, "batch": b.batches[0], "backend": art.backend_name}


def run_check(
    baseline: str | Path, candidate: str | Path, opts: CheckOptions | None = None
) -> CheckReport:
    """Compare two artifacts in this process (interleaved, adaptive rounds); return the report."""
    opts = opts or CheckOptions()
    b = opts.bench if opts.bench.threads else replace(opts.bench, threads=gate_threads())
    batch = b.batches[0]
    art_a, art_b = _open_side("baseline", baseline, b), _open_side("candidate", candidate, b)
    for art in (art_a, art_b):
        if art.fixed_batch is not None and art.fixed_batch != batch:
            raise InputError(
                f"'{art.name}' has a fixed batch size of {art.fixed_batch}; "
                f"pass --batch {art.fixed_batch}"
            )
    xa, xb = make_input(art_a.input_shape, batch, b.seed), make_input(art_b.input_shape, batch, b.seed)
    t0 = time.perf_counter()
    a_rounds, b_rounds, k, cmp, stop, looks = interleave(
        lambda: art_a.backend.run(xa), lambda: art_b.backend.run(xb), opts,
        (f"baseline '{art_a.name}'", f"candidate '{art_b.name}'"),
    )
    wall = time.perf_counter() - t0
    flat_a = [s for r in a_rounds for s in r]
    flat_b = [s for r in b_rounds for s in r]
    return CheckReport(
        _side(art_a.name, flat_a, batch, {"artifact": art_a.describe(), "runtime": art_a.runtime()}),
        _side(art_b.name, flat_b, batch, {"artifact": art_b.describe(), "runtime": art_b.runtime()}),
        cmp, host=host_fingerprint(), calls_per_round=k, wall_s=wall, stop=stop, looks=looks,
        settings=_settings(opts, b, art_b),
    )


def _stored_bench_options(stored: dict[str, Any], opts: CheckOptions, cand: str | Path) -> BenchOptions:
    """The candidate is measured the way the baseline was (batch, warm-up, threads, runtime)."""
    from edgeslim.runtime.providers import BACKENDS

    st = stored.get("settings") or {}
    req = st.get("threads_requested") if isinstance(st.get("threads_requested"), dict) else {}
    intra, inter = req.get("intra"), req.get("inter")
    if opts.bench.threads and opts.bench.threads != intra:
        raise InputError(f"the stored baseline was measured with --threads {intra or 'default'}; "
                         f"drop --threads {opts.bench.threads} or record the baseline again with it")
    bopts = replace(opts.bench, batches=[int(stored.get("batch", 1))], threads=intra,
                    inter_threads=inter or opts.bench.inter_threads)
    bopts.warmup = int(_num(st.get("warmup"), bopts.warmup))  # damaged: the default is as good
    runtime = st.get("backend") if st.get("backend") in BACKENDS else None
    if bopts.backend is None and runtime and Path(cand).suffix in BACKENDS[runtime].artifacts:
        bopts.backend = runtime  # the candidate runs in the runtime the baseline was measured in
    return bopts


def run_stored_check(
    baseline_json: str | Path, candidate: str | Path, opts: CheckOptions | None = None
) -> CheckReport:
    """Compare a candidate with a stored bench result; refuse when the hosts differ.

    The candidate is timed in chunks until the CI of the ratio decides or the cap is reached,
    like the interleaved mode (min time: the larger of the stored and the requested one).
    """
    from edgeslim.deploy.gate.baseline import load_baseline
    from edgeslim.runtime.providers import BACKENDS

    opts = opts or CheckOptions()
    stored = load_baseline(baseline_json)
    here = host_fingerprint()
    st = stored.get("settings") or {}
    runtime = st.get("backend") if st.get("backend") in BACKENDS else None
    diffs = fingerprint_mismatch(stored["host"], here, runtime)
    if diffs:
        raise InputError(
            f"refusing to compare with '{baseline_json}': it was measured on a different host "
            f"({'; '.join(diffs)}); re-create the baseline on this machine with "
            "edgeslim bench BASELINE --save-baseline BRANCH, or compare two artifacts side by side"
        )
    bopts = _stored_bench_options(stored, opts, candidate)
    art = _open_side("candidate", candidate, bopts)
    batch = bopts.batches[0]
    x = make_input(art.input_shape, batch, bopts.seed)
    sides = _Sides(lambda: None, lambda: art.backend.run(x), ("baseline", f"candidate '{art.name}'"))
    sides.time("b", warmup=max(bopts.warmup, 1), min_iters=0, min_time_s=0.0, max_iters=0)
    fresh: list[float] = []
    ref = stored["samples_ms"]

    def judge() -> Comparison:
        return compare_samples(ref, fresh, opts.max_slowdown, opts.confidence)

    sopts = replace(opts, min_rounds=max(10, int(_num(st.get("min_iters"), 50))),
                    min_time_s=max(opts.min_time_s, _num(st.get("min_time_s"), 0.0)))
    t0 = time.perf_counter()
    cmp, stop, looks, _ = adaptive(
        lambda: fresh.extend(sides.time("b", warmup=0, min_iters=1, min_time_s=0.25)),
        lambda: len(fresh), judge, sopts)
    return CheckReport(
        _side(f"{stored['artifact']['name']} (stored)", ref, batch,
              {"artifact": stored["artifact"], "created": stored.get("created")}),
        _side(art.name, fresh, batch, {"artifact": art.describe(), "runtime": art.runtime()}),
        cmp, mode="stored-baseline", host=here, wall_s=time.perf_counter() - t0, stop=stop,
        looks=looks, settings={**_settings(sopts, bopts, art), "baseline_json": str(baseline_json)},
    )


def _num(v: Any, default: float) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else default
