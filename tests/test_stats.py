"""The statistics module: bootstrap intervals (plain and clustered) and the Wilson interval."""

from __future__ import annotations

import numpy as np

from saesteer.core.stats import bootstrap_mean, cluster_bootstrap_mean, wilson


def test_bootstrap_mean_takes_a_seed_or_a_generator_and_brackets_the_mean():
    values = np.arange(30) ** 1.5
    by_seed = bootstrap_mean(values, 4)
    assert by_seed == bootstrap_mean(values, np.random.default_rng(4))
    mean, lo, hi = by_seed
    assert lo < mean < hi and mean == values.mean()
    assert all(np.isnan(bootstrap_mean([])))


def test_cluster_bootstrap_is_wider_when_values_move_together_within_clusters():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(10), 20)
    values = rng.normal(size=10)[clusters] + 0.1 * rng.normal(size=200)  # the cluster decides the value
    _, lo, hi = bootstrap_mean(values, 1)
    mean, c_lo, c_hi = cluster_bootstrap_mean(values, clusters, 1)
    assert mean == values.mean() and c_lo < mean < c_hi
    assert c_hi - c_lo > 2 * (hi - lo)


def test_cluster_bootstrap_of_singleton_clusters_is_a_plain_bootstrap_in_distribution():
    values = np.random.default_rng(2).normal(size=400)
    _, lo, hi = bootstrap_mean(values, 3)
    _, c_lo, c_hi = cluster_bootstrap_mean(values, np.arange(400), 3)
    assert abs((hi - lo) - (c_hi - c_lo)) < 0.3 * (hi - lo)


def test_wilson_is_empty_for_no_trials():
    assert all(np.isnan(wilson(0, 0)))
