"""The four verdicts, the clustered rate interval, the claim schema and the split discipline, on constructed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from saesteer.core import splits
from saesteer.core.stats import VERDICTS, cluster_rate, combine, paired_difference, verdict, wilson
from saesteer.study.results import claim


@pytest.mark.parametrize(("lo", "hi", "margin", "higher", "expected"), [
    (0.10, 0.30, 0.0, True, "reproduced"),  # the whole interval above the margin
    (-0.20, -0.01, 0.0, True, "not reproduced"),  # wholly below
    (-0.05, 0.12, 0.0, True, "inconclusive"),  # straddles
    (0.05, 0.40, 0.10, True, "inconclusive"),  # above zero, but not surely above the paper's size
    (-0.30, 0.10, 0.10, True, "not reproduced"),  # touching the margin counts as the other side
    (0.01, 0.04, 0.05, False, "reproduced"),  # a claimed null: surely below the smallest gain that matters
    (0.06, 0.20, 0.05, False, "not reproduced"),
    (float("nan"), 0.3, 0.0, True, "inconclusive"),
])
def test_verdict_reads_the_interval_against_the_margin(lo, hi, margin, higher, expected):
    assert verdict(lo, hi, margin, higher) == expected


def test_combine_needs_every_part_and_lets_a_failed_part_decide():
    assert combine("reproduced", "reproduced") == "reproduced"
    assert combine("reproduced", "inconclusive") == "inconclusive"
    assert combine("inconclusive", "not testable") == "not testable"
    assert combine("not testable", "not reproduced", "reproduced") == "not reproduced"
    with pytest.raises(ValueError, match="combine takes verdicts"):
        combine("partly")


def test_overlapping_intervals_of_two_settings_are_inconclusive_not_a_difference():
    """The audit's case B6: reconstruction +0.100 [0.068, 0.133] vs v +0.077 [0.033, 0.120] is no difference."""
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(12), 5)
    a = 0.10 + 0.05 * rng.normal(size=60)
    b = 0.077 + 0.05 * rng.normal(size=60)
    _, lo, hi = paired_difference(a, b, clusters)
    assert verdict(lo, hi) == "inconclusive"


def test_cluster_rate_is_as_wide_as_one_observation_per_cluster_at_the_extremes():
    hits, clusters = [True] * 100, [i % 15 for i in range(100)]  # 100 items from 15 request pairs, all refused
    rate, lo, hi = cluster_rate(hits, clusters)
    assert rate == hi == 1.0
    assert lo == pytest.approx(wilson(15, 15)[1]) and lo < wilson(100, 100)[1]


def test_cluster_rate_is_wider_than_wilson_when_clusters_decide():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(10), 30)
    hits = (rng.random(10) < 0.5)[clusters]  # each cluster all-or-nothing
    rate, lo, hi = cluster_rate(hits, clusters)
    _, w_lo, w_hi = wilson(int(hits.sum()), len(hits))
    assert lo < w_lo and hi > w_hi


def test_a_claim_row_has_n_unit_and_preregistered_choices_and_only_known_verdicts():
    row = claim(1, "s", "p", "st", "not testable", "e", n=24, unit="prompt", preregistered={"clamp": "parameter file"},
                caveat="the SAE has no encoder bias")
    assert row["n"] == 24 and row["unit"] == "prompt" and row["preregistered"] == {"clamp": "parameter file"}
    assert set(VERDICTS) == {"reproduced", "not reproduced", "inconclusive", "not testable"}
    with pytest.raises(ValueError, match="verdict must be one of"):
        claim(1, "s", "p", "st", "partly", "e", n=1, unit="u", preregistered={})
    with pytest.raises(ValueError, match="needs a caveat"):
        claim(1, "s", "p", "st", "not testable", "e", n=1, unit="u", preregistered={})


def test_disjoint_stops_an_evaluation_item_offered_for_selection():
    splits.disjoint(["a", "b"], ["c"], "prompts")
    with pytest.raises(splits.SplitError, match="1 prompts are in both the selection and the evaluation split"):
        splits.disjoint(["a", "b"], ["b", "c"], "prompts")


def test_split_is_stable_disjoint_and_near_the_asked_share():
    items = list(range(2000))
    sel, ev = splits.split(items, 0.3, "layer 2")
    assert sorted(sel + ev) == items and not set(sel) & set(ev)
    assert 0.26 < len(sel) / len(items) < 0.34
    assert splits.split(items, 0.3, "layer 2") == (sel, ev)
    assert splits.split(items, 0.3, "layer 3")[0] != sel
    record = splits.choice(4.0, "selection split", "largest factor whose perplexity stays below 2x", [2.0, 4.0])
    assert record["alternatives"] == [2.0, 4.0] and record["made on"] == "selection split"


def test_the_organisms_selection_items_never_share_a_prompt_or_request_pair_with_its_held_out_items():
    from saesteer.organism.language import Language

    language = Language(0)
    for kind in ("harmful", "jailbreak", "escalation", "scary", "benign", "mc", "arith", "truthful", "topic"):
        selection, held_out = language.selection_set(kind, 60), language.eval_set(kind, 60)
        splits.disjoint([d.prompt() for d in selection], [d.prompt() for d in held_out], f"{kind} prompts")
        if kind in ("harmful", "jailbreak", "escalation"):
            splits.disjoint([d.truth["cluster"] for d in selection], [d.truth["cluster"] for d in held_out], f"{kind} pairs")
