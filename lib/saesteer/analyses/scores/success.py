"""Chapter D, steps 4-5: steering success. Sampled continuations with a feature steered at every new token;
GenSuccess@k counts logit-lens tokens; the paper's factor rule (generation success over perplexity under the
unsteered model) picks one factor; the filter curve compares output-score thresholds with random filters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from saesteer.analyses.scores.lens import lens_index
from saesteer.core.generation import EditsFor, generate, perplexity
from saesteer.core.hooks import Site
from saesteer.core.interventions import (
    BoostEach,
    batches,
)
from saesteer.core.stats import bootstrap_mean
from saesteer.study.params import ParameterError


# --- 4. steering success ---------------------------------------------------------------------------
def prefixes(subject, n: int, prefixes_text: str | None) -> list[str]:
    """GenSuccess prefixes: lines of ``prefixes_text``, or held-out organism prompts of several kinds (in turn)."""
    if prefixes_text is not None:
        return [line.strip() for line in open(prefixes_text, encoding="utf-8") if line.strip()][:n]
    if subject.language is None:
        raise ParameterError("Parameter 'prefixes_text' must name a text file when the model is not the organism.")
    kinds = ("benign", "scary", "topic", "truthful", "arith", "mc")
    sets = subject.eval_sets(kinds, n)
    mixed = [item.prompt for group in zip(*sets.values()) for item in group]
    return mixed[:n]


def _count_hits(ids: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Per row: how many generated tokens (``ids`` [n, t]) are in that row's lens (``lens`` [n, k])."""
    return (ids[:, :, None] == lens[:, None, :]).any(-1).sum(1).float()


def _generate(subject, texts: Sequence[str], edits_for: EditsFor, params: dict, seed: int,
              batch_size: int | None = None) -> list[torch.Tensor]:
    """Sampled continuations (temperature), ``batch_size`` rows per generate call (default: all at once), one id
    tensor per batch; seeded per batch (``seed`` + its first row) so a rerun gives the same tokens on CPU."""
    return generate(subject.lm, texts, edits_for, params["gen_tokens"], batch_size or len(texts), seed=seed,
                    do_sample=True, temperature=params["temperature"], top_k=0)


def gen_success(subject, jobs: Sequence[tuple[int, int, float]], lens: dict[tuple[int, int], list[int]],
                prompts: Sequence[str], params: dict) -> list[dict]:
    """GenSuccess@k and perplexity for each steered (layer, feature, factor) job over ``prompts``: one row per
    (job, prompt), steered at the last prompt token and every generated token. Rows of different layers and
    factors share each generate call, every edit leaving the other rows alone."""
    rows = [(j, p) for j in range(len(jobs)) for p in range(len(prompts))]
    texts = [prompts[p] for _, p in rows]
    generated = _generate(subject, texts, lambda chunk: _edits_for(subject, [jobs[rows[i][0]] for i in chunk]), params,
                          params["seed"], params["batch_size"])
    hits, ppl = [], []
    for chunk, ids in zip(batches(range(len(rows)), params["batch_size"]), generated):
        hits.append(_count_hits(ids, torch.tensor([lens[jobs[rows[i][0]][:2]] for i in chunk])))
        ppl.append(perplexity(subject.lm, [texts[i] for i in chunk], ids))
    hits, ppl = torch.cat(hits), torch.cat(ppl)
    n = len(prompts)
    return [{"layer": layer, "feature": f, "factor": s, "gen_success": float(hits[j * n : (j + 1) * n].mean()),
             "perplexity": float(ppl[j * n : (j + 1) * n].mean())} for j, (layer, f, s) in enumerate(jobs)]


def unsteered(subject, prompts: Sequence[str], params: dict, samples: int = 8) -> dict:
    """Unsteered continuations, ``samples`` per prompt (token ids), and their mean perplexity: the baseline
    every feature's GenSuccess is compared with (its lens tokens counted in these)."""
    texts = [p for p in prompts for _ in range(samples)]
    ids = _generate(subject, texts, [], params, params["seed"] + 10**6)[0]
    return {"ids": ids.tolist(), "perplexity": float(perplexity(subject.lm, texts, ids).mean())}


def baseline_success(ids: Sequence[Sequence[int]], lens: Sequence[int]) -> float:
    """GenSuccess of a feature's lens in unsteered continuations."""
    ids = torch.as_tensor(ids)
    return float(_count_hits(ids, torch.as_tensor(lens).expand(len(ids), -1)).mean())


def _edits_for(subject, jobs: Sequence[tuple[int, int, float]]) -> list[BoostEach]:
    """One ``BoostEach`` per (layer, factor) among the rows' jobs, each steering only its own rows."""
    edits = []
    for layer, factor in sorted({(layer, s) for layer, _, s in jobs if s > 0}):
        factors = [factor if (l, s) == (layer, factor) else float("nan") for l, _, s in jobs]
        edits.append(BoostEach(site=Site(layer), sae=subject.sae(Site(layer)), features=[f for _, f, _ in jobs],
                               factors=factors, tokens="last"))
    return edits


def pick_factor(sweep: Sequence[dict], baseline_gen: float, baseline_ppl: float) -> dict:
    """The paper's factor rule, one factor for all features: maximise generation success normalised by its best
    value over factors, divided by perplexity normalised by the unsteered perplexity. Generation success is
    counted as the gain over unsteered continuations (``baseline_gen``): on the organism the raw count is already
    high unsteered, so the raw rule would pick a factor too small to change any continuation."""
    factors = sorted({r["factor"] for r in sweep})
    gen = {s: float(np.mean([r["gen_success"] for r in sweep if r["factor"] == s])) for s in factors}
    ppl = {s: float(np.mean([r["perplexity"] for r in sweep if r["factor"] == s])) for s in factors}
    top = max(g - baseline_gen for g in gen.values())
    score = {s: max(gen[s] - baseline_gen, 0.0) / (top if top > 0 else 1.0) / (ppl[s] / baseline_ppl) for s in factors}
    best = max(factors, key=lambda s: (score[s], -s))
    return {"factor": best, "rows": [{"factor": s, "gen_success": gen[s], "gain": gen[s] - baseline_gen, "perplexity": ppl[s],
                                      "score": score[s]} for s in factors]}


def sample_features(rows: Sequence[dict], per_layer: int, seed: int) -> list[tuple[int, int]]:
    """A seeded random sample of ``per_layer`` scored features of each layer: (layer, feature) pairs."""
    rng = np.random.default_rng(seed)
    out = []
    for layer in sorted({r["layer"] for r in rows}):
        feats = [r["feature"] for r in rows if r["layer"] == layer]
        out += [(layer, int(f)) for f in sorted(rng.choice(feats, min(per_layer, len(feats)), replace=False))]
    return out


# --- 5. the filter curve ----------------------------------------------------------------------------
def threshold_curve(gen: np.ndarray, s_out: np.ndarray, thresholds: Sequence[float], draws: int, seed: int) -> list[dict]:
    """First every feature (no filter), then per threshold: features kept (S_out >= threshold), their mean
    ``gen`` with a bootstrap interval, and ``draws`` random filters keeping as many features (mean of the
    draws and the 2.5-97.5% range of their means)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in [None, *thresholds]:
        kept = np.ones(len(gen), bool) if t is None else s_out >= t
        mean, lo, hi = bootstrap_mean(gen[kept], rng)
        randoms = np.array([gen[rng.choice(len(gen), kept.sum(), replace=False)].mean() for _ in range(draws)]) if kept.any() else np.array([np.nan])
        out.append({"threshold": "none" if t is None else t, "kept": int(kept.sum()), "kept share": float(kept.mean()),
                    "mean": mean, "lo": lo, "hi": hi, "random mean": float(randoms.mean()),
                    "random lo": float(np.percentile(randoms, 2.5)), "random hi": float(np.percentile(randoms, 97.5))})
    return out


def steering(subject, rows: Sequence[dict], scored: Sequence[dict], extra: Sequence[tuple[int, int]], params: dict) -> dict:
    """The factor sweep on a random subset, the factor the paper's rule picks, then GenSuccess at that factor
    and at the sweep's strongest factor of ``gen_features`` random features per layer plus the ``extra``
    (ground-truth) features, with each one's GenSuccess in unsteered continuations."""
    prompts = prefixes(subject, params["n_prefixes"], params["prefixes_text"])
    lenses = lens_index(scored)
    base = unsteered(subject, prompts, params)
    rng = np.random.default_rng(params["seed"] + 1)
    pool = [(r["layer"], r["feature"]) for r in rows]
    sweep_set = [pool[i] for i in sorted(rng.choice(len(pool), min(params["sweep_features"], len(pool)), replace=False))]
    sweep = gen_success(subject, [(l, f, s) for s in params["factors"] for l, f in sweep_set], lenses, prompts, params)
    sweep_base = float(np.mean([baseline_success(base["ids"], lenses[k]) for k in sweep_set]))
    chosen = pick_factor(sweep, sweep_base, base["perplexity"])
    sample = sample_features(rows, params["gen_features"], params["seed"])
    feats = sample + [k for k in dict.fromkeys(extra) if k not in set(sample)]
    evaluated = sorted({chosen["factor"], max(params["factors"])})
    gen = gen_success(subject, [(l, f, s) for s in evaluated for l, f in feats], lenses, prompts, params)
    for g in gen:
        g["baseline"] = baseline_success(base["ids"], lenses[(g["layer"], g["feature"])])
        g["gain"] = g["gen_success"] - g["baseline"]
        g["random sample"] = (g["layer"], g["feature"]) in set(sample)
    return {"prompts": prompts, "unsteered_perplexity": base["perplexity"], "sweep": sweep, "factor": chosen, "gen": gen}


def continuations(subject, layer: int, feature: int, factor: float, prompts: Sequence[str], params: dict) -> list[dict]:
    """A worked example: sampled continuations of ``prompts`` unsteered and with ``feature`` steered."""
    edit = BoostEach(site=Site(layer), sae=subject.sae(Site(layer)), features=[feature] * len(prompts), factors=factor,
                     tokens="last")
    out = []
    for name, edits in (("unsteered", []), ("steered", [edit])):
        ids = _generate(subject, prompts, edits, params, params["seed"])[0]
        texts = subject.lm.tokenizer.batch_decode(ids, skip_special_tokens=True)
        out += [{"prompt": p, "setting": name, "continuation": t} for p, t in zip(prompts, texts)]
    return out


def worked_examples(rows: Sequence[dict], gen: Sequence[dict], cut: float) -> dict[str, dict]:
    """Among features whose steering was measured (``gen`` at one factor): the highest-S_in feature with a low
    output score (ties: the smallest GenSuccess gain), and the highest-S_out feature (ties: the largest gain)."""
    index = {(r["layer"], r["feature"]): r for r in rows}
    measured = [index[(g["layer"], g["feature"])] | {k: g[k] for k in ("gen_success", "baseline", "gain", "factor")} for g in gen]
    inputs = [m for m in measured if m["S_in"] == m["S_in"] and m["S_out"] < cut]
    return {"input feature": max(inputs, key=lambda m: (m["S_in"], -m["gain"])) if inputs else None,
            "output feature": max(measured, key=lambda m: (m["S_out"], m["gain"]))}
