"""Chapter D: the scores of every feature: logit lens, S_in and S_out of each layer's scored features (each
layer a cached stage), one table row per feature, input / output / hybrid classes and the trend over layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from saesteer.analyses.scores.inputs import ActivationStats, activation_stats, corpus_documents, input_scores
from saesteer.analyses.scores.lens import logit_lens
from saesteer.analyses.scores.outputs import output_scores
from saesteer.core.hooks import Site


# --- the scores of every feature ---------------------------------------------------------------
def layer_features(subject, layer: int, max_features: int | None, seed: int) -> list[int]:
    """The features scored at ``layer``: all of them, or a seeded random ``max_features`` (sorted)."""
    d_sae = subject.sae(Site(layer)).cfg.d_sae
    if max_features is None or max_features >= d_sae:
        return list(range(d_sae))
    rng = np.random.default_rng(seed + layer)
    return sorted(rng.choice(d_sae, max_features, replace=False).tolist())


def score_layer(subject, layer: int, stats: ActivationStats, params: dict) -> dict:
    """Logit lens, input and output scores of the scored features of one layer's resid_post SAE."""
    site, sae = Site(layer), subject.sae(Site(layer))
    feats = layer_features(subject, layer, params["max_features"], params["seed"])
    lens = logit_lens(subject.lm, sae, params["lens_k"], feats)
    idx = torch.as_tensor(feats)
    s_in = input_scores(stats.peak[layer][:, idx], stats.token[layer][:, idx], lens, params["min_examples"],
                        params["max_examples"])
    s_out = output_scores(subject.lm, sae, site, feats, lens, params["neutral_prompt"], params["out_factor"],
                          params["batch_size"])
    return {"layer": layer, "features": feats, "lens": lens.tolist(), "input": s_in, "output": s_out}


def score_table(scored: Sequence[dict], n_layers: int, tokenizer=None) -> list[dict]:
    """One row per scored feature: layer, relative depth, S_in, S_out, number of examples, lens head."""
    rows = []
    for layer in scored:
        depth = (layer["layer"] + 1) / n_layers
        for i, f in enumerate(layer["features"]):
            row = {"layer": layer["layer"], "depth": depth, "feature": f, "S_in": layer["input"]["score"][i],
                   "S_out": layer["output"]["score"][i], "examples": layer["input"]["examples"][i]}
            if tokenizer is not None:
                row["lens"] = " ".join(tokenizer.convert_ids_to_tokens(layer["lens"][i][:5]))
            rows.append(row)
    return rows


def classify(s_in: float, s_out: float, cut: float) -> str:
    """Input, output, hybrid (both at least ``cut``) or neither; features with no input score count as low input."""
    high_in = s_in == s_in and s_in >= cut
    high_out = s_out >= cut
    return "hybrid" if high_in and high_out else "input" if high_in else "output" if high_out else "neither"


def layer_trend(rows: Sequence[dict], cut: float) -> list[dict]:
    """Per layer: mean S_in (over scored features), mean S_out, and the share of input, output and hybrid features."""
    out = []
    for layer in sorted({r["layer"] for r in rows}):
        part = [r for r in rows if r["layer"] == layer]
        kinds = [classify(r["S_in"], r["S_out"], cut) for r in part]
        s_in = [r["S_in"] for r in part if r["S_in"] == r["S_in"]]
        out.append({"layer": layer, "depth": part[0]["depth"], "features": len(part),
                    "mean S_in": float(np.mean(s_in)) if s_in else float("nan"),
                    "mean S_out": float(np.mean([r["S_out"] for r in part])),
                    "with S_in": len(s_in), **{f"{k} share": kinds.count(k) / len(part) for k in ("input", "output", "hybrid")}})
    return out


def score_all(subject, params: dict, stage=lambda name, compute: compute()) -> list[dict]:
    """Scores of every layer, each through ``stage(name, compute)`` (a ``results.Cache.get``); the activation
    cache over the corpus is built once, and only when some layer is not stored yet."""
    layers = params["layers"] or list(range(subject.n_layers))
    held: dict[str, ActivationStats] = {}

    def compute(layer: int) -> dict:
        if not held:
            docs = corpus_documents(subject, params["corpus_docs"], params["corpus_text"], params["seed"])
            held["stats"] = activation_stats(subject, docs, layers, params["max_examples"], min(params["batch_size"], 128))
        return score_layer(subject, layer, held["stats"], params)

    return [stage(f"scores_layer_{layer}", lambda: compute(layer)) for layer in layers]


def mean_difference(a: np.ndarray, b: np.ndarray, draws: int, seed: int) -> tuple[float, float, float]:
    """Mean of ``a`` minus mean of ``b`` with a 95% interval, resampling each group's features independently."""
    rng = np.random.default_rng(seed)
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan"), float("nan")
    diffs = rng.choice(a, (draws, len(a))).mean(1) - rng.choice(b, (draws, len(b))).mean(1)
    return float(a.mean() - b.mean()), float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def trend_difference(rows: Sequence[dict], key: str, draws: int, seed: int) -> tuple[float, float, float]:
    """Mean ``key`` of features at relative depth up to 50% minus that of deeper features (features without
    the score left out), with a bootstrap interval over features: the layer-trend claim's quantity."""
    early = np.array([r[key] for r in rows if r["depth"] <= 0.5 and r[key] == r[key]])
    late = np.array([r[key] for r in rows if r["depth"] > 0.5 and r[key] == r[key]])
    return mean_difference(early, late, draws, seed)


def hybrid_ratio(rows: Sequence[dict], cut: float, draws: int, seed: int) -> dict:
    """Among features with both scores: hybrids (both at least ``cut``) over the number two independent scores
    would give (high-input share x high-output share x features), with a bootstrap interval over features."""
    pts = np.array([(r["S_in"] >= cut, r["S_out"] >= cut) for r in rows if r["S_in"] == r["S_in"]], bool).reshape(-1, 2)
    if not len(pts):
        return {"cut": cut, "features": 0, "hybrids": 0, "expected": float("nan"), "ratio": float("nan"),
                "lo": float("nan"), "hi": float("nan")}

    def ratio(p: np.ndarray) -> float:
        expected = p[:, 0].mean() * p[:, 1].mean()
        return float((p[:, 0] & p[:, 1]).mean() / expected) if expected > 0 else float("nan")

    rng = np.random.default_rng(seed)
    draws_ = np.array([ratio(pts[rng.integers(0, len(pts), len(pts))]) for _ in range(draws)])
    lo, hi = (np.nan, np.nan) if np.isnan(draws_).mean() > 0.025 else np.nanpercentile(draws_, [2.5, 97.5])
    return {"cut": cut, "features": len(pts), "hybrids": int((pts[:, 0] & pts[:, 1]).sum()),
            "expected": float(pts[:, 0].mean() * pts[:, 1].mean() * len(pts)), "ratio": ratio(pts),
            "lo": float(lo), "hi": float(hi)}
