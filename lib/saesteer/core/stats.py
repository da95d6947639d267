"""The study's statistics: intervals (Wilson, bootstrap, clustered bootstrap), AUROC, and the verdict rules.

Every chapter reports its rates, means and detector scores with these, so one
rule holds everywhere: 95% intervals, 1000 bootstrap draws unless asked, and
percentile intervals from the draws. Items that share a template or a request
pair are not independent, so rates are resampled by cluster (``cluster_rate``).

Every claim of the scorecard gets one of four verdicts from ``verdict`` (one
comparison against a margin) or ``combine`` (several parts):

- reproduced: the whole 95% interval lies on the side the paper claims;
- not reproduced: the whole interval lies on the other side;
- inconclusive: the interval straddles the margin (too wide to tell);
- not testable: the subject cannot exhibit the mechanism (``not_testable`` says why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float, float]:
    """Rate and Wilson 95% interval of ``successes`` out of ``n`` (NaNs when ``n`` is 0)."""
    if n == 0:
        return math.nan, math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # rounding never leaves p outside


def bootstrap_mean(values: Sequence[float], rng: np.random.Generator | int = 0,
                   draws: int = 1000) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap interval, resampling single values (``rng``: a generator, or a seed)."""
    values = np.asarray(values, float)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    means = np.random.default_rng(rng).choice(values, (draws, len(values))).mean(1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def cluster_bootstrap_mean(values: Sequence[float], clusters: Sequence, rng: np.random.Generator | int = 0,
                           draws: int = 1000) -> tuple[float, float, float]:
    """Mean and 95% bootstrap interval resampling whole clusters (e.g. the prompts of one template), for
    values that are not independent within a cluster; each draw's mean is over the values it picked."""
    values, labels = np.asarray(values, float), np.asarray(clusters)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    _, index = np.unique(labels, return_inverse=True)
    sums, sizes = np.bincount(index, weights=values), np.bincount(index)
    picks = np.random.default_rng(rng).integers(0, len(sums), (draws, len(sums)))
    means = sums[picks].sum(1) / sizes[picks].sum(1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def auroc(codes: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUROC of every column of ``codes`` [tokens, features] for the boolean ``positive`` (ties averaged)."""
    ranks = rankdata(codes, axis=0)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return (ranks[positive].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def cluster_rate(hits: Sequence[bool], clusters: Sequence, rng: np.random.Generator | int = 0,
                 draws: int = 1000) -> tuple[float, float, float]:
    """Rate and 95% interval of judgements that are not independent within a cluster (the items of one
    template or request pair): the wider of the clustered bootstrap interval and the Wilson interval with
    one observation per cluster, so a rate of 0 or 1 over few clusters still gets an honest width."""
    hits = np.asarray(hits, float)
    if len(hits) == 0:
        return math.nan, math.nan, math.nan
    rate, b_lo, b_hi = cluster_bootstrap_mean(hits, clusters, rng, draws)
    n_clusters = len(set(map(str, clusters)))
    _, w_lo, w_hi = wilson(rate * n_clusters, n_clusters)
    return rate, min(b_lo, w_lo), max(b_hi, w_hi)


def paired_difference(a: Sequence[float], b: Sequence[float], clusters: Sequence, rng: np.random.Generator | int = 0,
                      draws: int = 1000) -> tuple[float, float, float]:
    """Mean of ``a - b`` over the same items (e.g. steered minus baseline) with its clustered 95% interval."""
    return cluster_bootstrap_mean(np.asarray(a, float) - np.asarray(b, float), clusters, rng, draws)


VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not testable")


def verdict(lo: float, hi: float, margin: float = 0.0, higher: bool = True) -> str:
    """The verdict on a claim that a quantity lies above ``margin`` (``higher``) or below it, from the
    quantity's 95% interval [lo, hi]: reproduced when the whole interval is on the claimed side, not
    reproduced when it is wholly on the other side (touching the margin counts as the other side),
    inconclusive otherwise, or when the interval is undefined (NaN)."""
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    above, below = lo > margin, hi <= margin
    if not higher:
        above, below = hi < margin, lo >= margin
    return "reproduced" if above else "not reproduced" if below else "inconclusive"


def combine(*parts: str) -> str:
    """The verdict on a claim made of several parts: not reproduced if any part is, else not testable if any
    part is, else inconclusive if any part is, else reproduced (every part must hold)."""
    unknown = set(parts) - set(VERDICTS)
    if unknown or not parts:
        raise ValueError(f"combine takes verdicts among {VERDICTS}; got {parts!r}.")
    for v in ("not reproduced", "not testable", "inconclusive"):
        if v in parts:
            return v
    return "reproduced"
