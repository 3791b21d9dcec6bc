"""Statistics of the latency gate: bootstrap CI of a ratio of medians, Mann-Whitney U, verdicts.

Per-run summaries (median, p99, ...) are NOT here: they live in ``deploy/runner.py``
(``summarize``), the one place shared with the standalone device runner. This module only
holds the comparison statistics ``edgeslim check`` decides with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

REGRESSION, SLOWER_OK, NO_CHANGE, FASTER_OK, FASTER = (
    "regression",
    "slower-within-tolerance",
    "no significant change",
    "faster-within-tolerance",
    "faster",
)


@dataclass
class Comparison:
    """Result of comparing candidate (B) against baseline (A) latencies."""

    ratio: float  # median(B) / median(A); > 1 means the candidate is slower
    ci_low: float
    ci_high: float
    confidence: float
    mw_p: float  # two-sided Mann-Whitney U p-value on the raw samples
    rounds: int
    n_baseline: int
    n_candidate: int
    verdict: str
    max_slowdown: float

    @property
    def delta_pct(self) -> float:
        return (self.ratio - 1.0) * 100.0

    @property
    def failed(self) -> bool:
        return self.verdict == REGRESSION

    def to_json(self) -> dict:
        d = asdict(self)
        d["delta_pct"] = self.delta_pct
        return d


def _as_rounds(x: Sequence[Sequence[float]] | np.ndarray) -> list[np.ndarray]:
    return [np.asarray(r, dtype=np.float64) for r in x if len(r)]


def bootstrap_ratio_ci(
    a_rounds: Sequence[Sequence[float]],
    b_rounds: Sequence[Sequence[float]],
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Ratio of medians median(B)/median(A) with a paired block-bootstrap confidence interval.

    Args:
        a_rounds: baseline samples (ms), one list per interleaved round.
        b_rounds: candidate samples (ms), same number of rounds as ``a_rounds``.
        n_boot: bootstrap resamples.
        confidence: two-sided coverage of the interval.
        seed: RNG seed, so the same samples always give the same verdict.

    Returns:
        (ratio, low, high). Whole rounds are resampled, A and B of a round together, so load
        that changed between rounds (other jobs on a CI runner) moves both sides alike and
        widens the interval only as much as it really blurs the comparison.
    """
    a, b = _as_rounds(a_rounds), _as_rounds(b_rounds)
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same, non-zero number of rounds (got {len(a)} and {len(b)})")
    ratio = float(np.median(np.concatenate(b)) / np.median(np.concatenate(a)))
    if len(a) == 1:
        return ratio, ratio, ratio
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    if len({r.size for r in a + b}) == 1:  # equal round sizes: one vectorised pass
        sa, sb = np.stack(a), np.stack(b)
        ratios = np.median(sb[idx].reshape(n_boot, -1), axis=1) / np.median(
            sa[idx].reshape(n_boot, -1), axis=1
        )
    else:
        ratios = np.array(
            [
                np.median(np.concatenate([b[j] for j in row]))
                / np.median(np.concatenate([a[j] for j in row]))
                for row in idx
            ]
        )
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(ratios, [alpha, 1.0 - alpha])
    return ratio, float(lo), float(hi)


def bootstrap_ratio_ci_independent(
    a: Sequence[float],
    b: Sequence[float],
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Ratio of medians with an i.i.d. bootstrap interval, for samples taken at different times.

    Used against a stored baseline, where there are no interleaved rounds to pair.
    """
    av, bv = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if av.size == 0 or bv.size == 0:
        raise ValueError("both sample sets must be non-empty")
    ratio = float(np.median(bv) / np.median(av))
    rng = np.random.default_rng(seed)
    ma = np.median(av[rng.integers(0, av.size, size=(n_boot, av.size))], axis=1)
    mb = np.median(bv[rng.integers(0, bv.size, size=(n_boot, bv.size))], axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(mb / ma, [alpha, 1.0 - alpha])
    return ratio, float(lo), float(hi)


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test (normal approximation with tie correction).

    Returns:
        (U of ``b`` vs ``a``, p-value). Good for the sample sizes a benchmark collects (> 20 each).
    """
    av, bv = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n1, n2 = av.size, bv.size
    if n1 == 0 or n2 == 0:
        raise ValueError("both sample sets must be non-empty")
    allv = np.concatenate([av, bv])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(allv.size)
    sorted_v = allv[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u_b = float(ranks[n1:].sum() - n2 * (n2 + 1) / 2.0)
    n = n1 + n2
    tie = float((counts**3 - counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie)
    if var <= 0:
        return u_b, 1.0
    z = (abs(u_b - n1 * n2 / 2.0) - 0.5) / math.sqrt(var)
    p = math.erfc(max(z, 0.0) / math.sqrt(2.0))
    return u_b, float(min(1.0, p))


def verdict(ratio: float, ci_low: float, ci_high: float, max_slowdown: float) -> str:
    """Fail only when the slowdown is both significant (CI above 1) and above the tolerance.

    Args:
        ratio: candidate/baseline ratio of medians.
        ci_low: lower end of its confidence interval.
        ci_high: upper end.
        max_slowdown: tolerated slowdown as a fraction (0.05 = 5%).
    """
    if ci_low > 1.0:
        return REGRESSION if ratio > 1.0 + max_slowdown else SLOWER_OK
    if ci_high < 1.0:
        return FASTER if ratio < 1.0 - max_slowdown else FASTER_OK
    return NO_CHANGE


def compare_rounds(
    a_rounds: Sequence[Sequence[float]],
    b_rounds: Sequence[Sequence[float]],
    max_slowdown: float = 0.05,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare interleaved rounds of baseline (A) and candidate (B) samples."""
    ratio, lo, hi = bootstrap_ratio_ci(a_rounds, b_rounds, n_boot, confidence, seed)
    a_all = np.concatenate(_as_rounds(a_rounds))
    b_all = np.concatenate(_as_rounds(b_rounds))
    _, p = mann_whitney_u(a_all, b_all)
    return Comparison(
        ratio,
        lo,
        hi,
        confidence,
        p,
        len(_as_rounds(a_rounds)),
        int(a_all.size),
        int(b_all.size),
        verdict(ratio, lo, hi, max_slowdown),
        max_slowdown,
    )


def compare_samples(
    a: Sequence[float],
    b: Sequence[float],
    max_slowdown: float = 0.05,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare two independent sample sets (stored baseline vs a fresh run)."""
    ratio, lo, hi = bootstrap_ratio_ci_independent(a, b, n_boot, confidence, seed)
    _, p = mann_whitney_u(a, b)
    return Comparison(
        ratio,
        lo,
        hi,
        confidence,
        p,
        0,
        len(a),
        len(b),
        verdict(ratio, lo, hi, max_slowdown),
        max_slowdown,
    )


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation over mean (0 for fewer than two values)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or v.mean() == 0:
        return 0.0
    return float(v.std(ddof=1) / v.mean())
