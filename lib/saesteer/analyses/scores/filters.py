"""Chapter D, step 5: filtering on the output score. The threshold the rule picks on the selection features,
the filter curve on the evaluation features against random filters of the same size, the filter's effect with
intervals over features (for the claims), and the grid of every factor and threshold (for the sensitivity figure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from saesteer.core.stats import bootstrap_mean


def pick_threshold(gain: np.ndarray, s_out: np.ndarray, thresholds: Sequence[float], min_share: float) -> float:
    """The threshold rule on the selection features: the threshold with the highest mean GenSuccess gain among
    those keeping at least ``min_share`` of the features (ties: the lower threshold, keeping more)."""
    usable = [t for t in thresholds if (s_out >= t).mean() >= min_share]
    if not usable:
        return float(min(thresholds))
    return float(max(usable, key=lambda t: (gain[s_out >= t].mean(), -t)))


def _random_means(gain: np.ndarray, size: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Mean gain of ``draws`` random subsets of ``size`` features (without replacement)."""
    if size == 0:
        return np.array([np.nan])
    return np.array([gain[rng.choice(len(gain), size, replace=False)].mean() for _ in range(draws)])


def threshold_curve(gain: np.ndarray, s_out: np.ndarray, thresholds: Sequence[float], draws: int, seed: int) -> list[dict]:
    """First every feature (no filter), then per threshold: features kept (S_out >= threshold), their mean
    ``gain`` with a bootstrap interval over features, and ``draws`` random filters keeping as many features
    (the mean of the draws and the 2.5-97.5% range of their means)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in [None, *thresholds]:
        kept = np.ones(len(gain), bool) if t is None else s_out >= t
        mean, lo, hi = bootstrap_mean(gain[kept], rng)
        randoms = _random_means(gain, int(kept.sum()), draws, rng)
        out.append({"threshold": "none" if t is None else t, "kept": int(kept.sum()), "kept share": float(kept.mean()),
                    "mean": mean, "lo": lo, "hi": hi, "random mean": float(randoms.mean()),
                    "random lo": float(np.percentile(randoms, 2.5)), "random hi": float(np.percentile(randoms, 97.5))})
    return out


def _interval(values: np.ndarray, estimate: float) -> tuple[float, float, float]:
    """The estimate and the 2.5-97.5% range of its bootstrap ``values``; NaN when more than 2.5% are undefined."""
    if np.isnan(values).mean() > 0.025 or math.isnan(estimate):
        return estimate, math.nan, math.nan
    return estimate, float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))


def filter_effect(gain: np.ndarray, s_out: np.ndarray, threshold: float, draws: int, seed: int) -> dict:
    """The filter's effect on held-out features, each draw resampling the features with replacement: the ratio
    of the kept features' mean gain to all features' mean gain (undefined when the unfiltered mean is not
    positive), and the kept mean minus the mean of a random subset of the same size of the same resample."""
    rng = np.random.default_rng(seed)
    kept = s_out >= threshold
    n, size = len(gain), int(kept.sum())
    ratios, over = np.full(draws, np.nan), np.full(draws, np.nan)
    for d in range(draws):
        pick = rng.integers(0, n, n)
        g, k = gain[pick], kept[pick]
        if k.any():
            ratios[d] = g[k].mean() / g.mean() if g.mean() > 0 else np.nan
            over[d] = g[k].mean() - g[rng.choice(n, int(k.sum()), replace=False)].mean()
    base, filt = float(gain.mean()), float(gain[kept].mean()) if size else math.nan
    randoms = _random_means(gain, size, draws, rng)
    return {"threshold": threshold, "kept": size, "features": n, "unfiltered": base, "filtered": filt,
            "ratio": _interval(ratios, filt / base if base > 0 else math.nan),
            "over random": _interval(over, filt - float(randoms.mean())),
            "random": (float(randoms.mean()), float(np.percentile(randoms, 2.5)), float(np.percentile(randoms, 97.5)))}


def sensitivity(gen: Sequence[dict], s_out: dict[tuple[int, int], float], thresholds: Sequence[float],
                draws: int, seed: int) -> list[dict]:
    """For every factor and threshold (the alternatives to the pre-registered pair), the filter's ratio and
    its excess over random filters on the evaluation features: the sensitivity figure's grid."""
    out = []
    for factor in sorted({g["factor"] for g in gen}):
        at = [g for g in gen if g["factor"] == factor]
        gain = np.array([g["gain"] for g in at])
        scores = np.array([s_out[(g["layer"], g["feature"])] for g in at])
        for t in thresholds:
            e = filter_effect(gain, scores, t, draws, seed)
            out.append({"factor": factor, "threshold": t, "kept": e["kept"], "unfiltered": e["unfiltered"],
                        "filtered": e["filtered"], "ratio": e["ratio"][0], "ratio lo": e["ratio"][1],
                        "ratio hi": e["ratio"][2], "over random": e["over random"][0],
                        "over random lo": e["over random"][1], "over random hi": e["over random"][2]})
    return out
