"""Chapter D, step 6: the organism's ground truth, its topic-detecting (probe) and topic-writing (lens)
features, and the scores of each group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from saesteer.analyses.scores.lens import lens_index
from saesteer.analyses.scores.table import classify, mean_difference
from saesteer.organism.evaluation import TOPIC_WORDS


# --- 6. ground truth -----------------------------------------------------------------------------------
def topic_writers(tokenizer, scored: Sequence[dict], minimum: int) -> dict[tuple[int, int], str]:
    """(layer, feature) -> topic, for features with at least ``minimum`` lens tokens from one topic's vocabulary."""
    vocab = {t: {tokenizer.convert_tokens_to_ids(w) for w in words} for t, words in TOPIC_WORDS.items()}
    found = {}
    for layer in scored:
        for f, lens in zip(layer["features"], layer["lens"]):
            counts = {t: len(ids & set(lens)) for t, ids in vocab.items()}
            topic = max(counts, key=counts.get)
            if counts[topic] >= minimum:
                found[(layer["layer"], f)] = topic
    return found


def topic_detectors(probes: dict, layers: Sequence[int]) -> dict[tuple[int, int], str]:
    """(layer, feature) -> topic, for the organism's best single topic probe at each resid_post layer."""
    return {(layer, v[f"resid_post@{layer}"]["feature"]): c.split(":", 1)[1]
            for c, v in probes.items() if c.startswith("topic:") for layer in layers}


def group_table(rows: Sequence[dict], groups: dict[str, dict[tuple[int, int], str]], cut: float) -> list[dict]:
    """Per ground-truth group (and all features): count, mean S_in, mean S_out and the input/output/hybrid split."""
    index = {(r["layer"], r["feature"]): r for r in rows}
    table = []
    for name, members in {**groups, "all scored features": {k: "" for k in index}}.items():
        part = [index[k] for k in members if k in index]
        if not part:
            continue
        kinds = [classify(r["S_in"], r["S_out"], cut) for r in part]
        s_in = [r["S_in"] for r in part if r["S_in"] == r["S_in"]]
        table.append({"group": name, "features": len(part), "mean S_in": float(np.mean(s_in)) if s_in else float("nan"),
                      "mean S_out": float(np.mean([r["S_out"] for r in part])),
                      **{f"{k}": kinds.count(k) for k in ("input", "output", "hybrid", "neither")}})
    return table


def ground_truth_features(tokenizer, scored: Sequence[dict], probes: dict | None, minimum: int,
                          max_writers: int = 24) -> dict[str, dict[tuple[int, int], str]]:
    """The organism's topic detectors (best probe per topic and layer) and topic writers (lens drawn from one
    topic's vocabulary; at most ``max_writers``, those with the most topic tokens first); empty without probes."""
    if probes is None:
        return {}
    layers = [layer["layer"] for layer in scored]
    writers = topic_writers(tokenizer, scored, minimum)
    lenses = lens_index(scored)
    vocab = {t: {tokenizer.convert_tokens_to_ids(w) for w in words} for t, words in TOPIC_WORDS.items()}
    ranked = sorted(writers, key=lambda k: (-len(vocab[writers[k]] & set(lenses[k])), k))[:max_writers]
    return {"topic detectors (probes)": topic_detectors(probes, layers), "topic writers (lens)": {k: writers[k] for k in ranked}}


def group_difference(rows: Sequence[dict], members, others, key: str, draws: int, seed: int) -> tuple[float, float, float]:
    """Mean ``key`` of the ``members`` features minus that of the ``others`` ((layer, feature) keys), with a
    bootstrap interval over features: e.g. topic writers' output score against random features'."""
    index = {(r["layer"], r["feature"]): r[key] for r in rows}
    values = [np.array([index[k] for k in group if k in index and index[k] == index[k]]) for group in (members, others)]
    return mean_difference(*values, draws, seed)
