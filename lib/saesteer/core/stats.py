"""The study's statistics: Wilson intervals, bootstrap intervals of a mean (plain and clustered), AUROC.

Every chapter reports its rates, means and detector scores with these, so one
rule holds everywhere: 95% intervals, 1000 bootstrap draws unless asked, and
percentile intervals from the draws.
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
