"""Chapter D: input features versus output features (Arad, Mueller & Belinkov 2025), and steering with the right ones.

The paper's route, step by step:

1. ``logit_lens``: each feature's top-k tokens of softmax(W_U . norm(d_f)), through the
   model's own final norm, unembedding and logit soft-capping;
2. ``activation_stats`` and ``input_scores``: from the SAE codes of a text corpus, each
   feature's top-activating examples (documents) and the token where it peaks in each;
   S_in is the share of those peak tokens that lie in its logit lens;
3. ``output_scores``: steer each feature on a neutral prompt at the last token (add s times
   the largest code at that token, error term kept), many features along the batch
   dimension of one forward pass; S_out = P(steered) - P(unsteered) with
   P = (1 - rank/|V|) * p of the most probable logit-lens token;
4. ``gen_success``: sampled continuations with the feature steered at every new token;
   GenSuccess@k counts logit-lens tokens; ``factor_sweep`` picks the factor with the
   paper's rule (generation success over perplexity under the unsteered model);
5. ``threshold_curve``: mean GenSuccess of the features kept by an output-score threshold,
   against random filters of the same size;
6. ``ground_truth``: the organism's topic-detecting (probe) and topic-writing (lens) features;
7. ``claims``: the paper's claims against this study's numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from saesteer.core.codes import sae_codes
from saesteer.core.generation import EditsFor, generate, perplexity
from saesteer.core.hooks import Site, layout, walk
from saesteer.core.interventions import (
    BoostEach,
    batches,
    last_token_logits,
    prefix_cache,
)
from saesteer.core.models import torch_model
from saesteer.core.stats import bootstrap_mean
from saesteer.organism.evaluation import TOPIC_WORDS
from saesteer.study.params import ParameterError


# --- 1. logit lens ---------------------------------------------------------------------------
def unembed(lm, vectors: torch.Tensor) -> torch.Tensor:
    """Logits of residual-stream ``vectors`` [n, d] through the model's own final norm, unembedding and
    (Gemma-2) final logit soft-capping: the same modules the model's last position goes through."""
    model, lay = torch_model(lm), layout(lm)
    with torch.no_grad():
        weight = walk(model, lay.unembed).weight
        logits = walk(model, lay.unembed)(walk(model, lay.final_norm)(vectors.to(weight.dtype)))
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
    return logits.float()


def logit_lens(lm, sae, k: int, features: Sequence[int] | None = None, batch_size: int = 4096) -> torch.Tensor:
    """Top-``k`` token ids [n_features, k] of softmax(W_U . norm(d_f)), most probable first; special tokens
    (padding, <bos>, <eos>) are left out, since they are no text a feature could write."""
    rows = torch.arange(sae.cfg.d_sae) if features is None else torch.as_tensor(list(features))
    special = [i for i in lm.tokenizer.all_special_ids if i is not None]
    out = []
    for chunk in rows.split(batch_size):
        logits = unembed(lm, sae.W_dec[chunk].detach())
        logits[:, special] = float("-inf")
        out.append(logits.topk(k, dim=-1).indices)
    return torch.cat(out).cpu()


# --- 2. input score ------------------------------------------------------------------------------
def corpus_documents(subject, n_docs: int, corpus_text: str | None, seed: int) -> list[str]:
    """Documents for the activation cache: lines of ``corpus_text``, or the organism's training-distribution
    dialogues (a fresh seed, so the texts are new draws of the language, not the SAEs' training rows)."""
    if corpus_text is not None:
        lines = [line.strip() for line in open(corpus_text, encoding="utf-8") if line.strip()]
        return lines[:n_docs]
    if subject.language is None:
        raise ParameterError("Parameter 'corpus_text' must name a text file when the model is not the organism.")
    return [d.text() for d in subject.language.corpus(n_docs, seed=10_000 + seed)]


def by_length(docs: Sequence[str]) -> list[str]:
    """Documents sorted by length, so batches carry little padding (document order does not enter any score)."""
    return sorted(docs, key=lambda d: (len(d.split()), d))


@dataclass
class ActivationStats:
    """Per layer and feature, its top documents: each one's largest code over its tokens and the token id there."""

    peak: dict[int, torch.Tensor]  # layer -> [n_top, d_sae] max activation per top document, largest first
    token: dict[int, torch.Tensor]  # layer -> [n_top, d_sae] token id at that max


def activation_stats(subject, docs: Sequence[str], layers: Sequence[int], n_top: int = 100, batch_size: int = 64,
                     max_len: int = 128) -> ActivationStats:
    """SAE codes of every document at every ``layers`` site in one forward pass per batch, reduced to each
    document's peak per feature, of which a running top ``n_top`` per feature is kept (memory stays
    [n_top, d_sae] per layer, so a real model's 16k-wide SAEs and long corpora fit). Tokens count by
    ``core.codes``'s rule: padding and the opening <bos> (it carries a huge norm) are left out."""
    sites = [Site(layer) for layer in layers]
    peak: dict[int, torch.Tensor] = {}
    token: dict[int, torch.Tensor] = {}
    for chunk in batches(by_length(docs), batch_size):
        # right padding: under the causal mask no real token sees a pad and positions start at 0 in every row,
        # so a document's codes do not depend on the batch it shares
        batch = sae_codes(subject.lm, {s: subject.sae(s) for s in sites}, chunk, padding_side="right", max_length=max_len)
        ids, mask = batch.ids, batch.mask
        for site in sites:
            z = batch.codes[site].cpu()
            value, where = z.masked_fill(~mask[..., None], -1.0).max(dim=1)
            values = torch.cat([peak.get(site.layer, value[:0]), value.clamp_min(0)])
            tokens = torch.cat([token.get(site.layer, where[:0]), torch.gather(ids, 1, where)])
            top, rows = values.topk(min(n_top, len(values)), dim=0)
            peak[site.layer], token[site.layer] = top, torch.gather(tokens, 0, rows)
    return ActivationStats(peak, token)


def input_scores(peak: torch.Tensor, token: torch.Tensor, lens: torch.Tensor, min_examples: int,
                 max_examples: int) -> dict:
    """S_in per feature: the share of its top-activating documents (at most ``max_examples``, active ones only)
    whose peak token is in its logit lens; NaN when fewer than ``min_examples`` documents activate it."""
    n = min(max_examples, peak.shape[0])
    top_vals, top_docs = peak.topk(n, dim=0)  # [n, d_sae]
    top_tokens = torch.gather(token, 0, top_docs)  # [n, d_sae]
    in_lens = (top_tokens.T[:, :, None] == lens[:, None, :]).any(-1)  # [d_sae, n]
    active = (top_vals.T > 0)
    count = active.sum(1)
    score = (in_lens & active).sum(1).float() / count.clamp_min(1)
    score[count < min_examples] = float("nan")
    common = [Counter(top_tokens[: int(c), f].tolist()).most_common(3) for f, c in enumerate(count)]
    return {"score": score.tolist(), "examples": count.tolist(), "peak_tokens": [[t for t, _ in c] for c in common]}


# --- 3. output score --------------------------------------------------------------------------------
def lens_probability(logits: torch.Tensor, lens: torch.Tensor) -> dict[str, torch.Tensor]:
    """P = (1 - rank/|V|) * p of the most probable logit-lens token, per row of ``logits`` [n, V]
    (``lens`` [n, k]); rank 0 is the most probable token of the vocabulary."""
    probs = torch.softmax(logits.float(), dim=-1)
    lens_probs = torch.gather(probs, 1, lens)
    p, best = lens_probs.max(dim=1)
    token = torch.gather(lens, 1, best[:, None])[:, 0]
    rank = (probs > p[:, None]).sum(dim=1).float()
    return {"P": (1 - rank / probs.shape[1]) * p, "p": p, "rank": rank, "token": token}


def prompt_prefix(lm, prompt: str, use_cache: bool = True):
    """Token ids [1, seq] of ``prompt`` and the key/value cache of all but its last token (None when not wanted
    or when the prompt is one token)."""
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"].to(lm.device)
    if not use_cache or ids.shape[1] < 2:
        return ids, None
    return ids, prefix_cache(lm, ids[:, :-1])


def output_scores(lm, sae, site: Site, features: Sequence[int], lens: torch.Tensor, prompt: str, factor: float,
                  batch_size: int = 1024, prefix_cache: bool = True) -> dict:
    """S_out for ``features`` (``lens`` [n, k] their logit lenses): one row per feature in each forward pass,
    each row steering its own feature at the last token of ``prompt`` (the prompt's other tokens run once,
    into a key/value cache, unless ``prefix_cache`` is false)."""
    ids, prefix = prompt_prefix(lm, prompt, prefix_cache)
    base_last = last_token_logits(lm, ids, (), 1, None)
    P, p, rank, token, base_P = [], [], [], [], []
    for chunk in batches(range(len(features)), batch_size):
        feats = [features[i] for i in chunk]
        edit = BoostEach(site=site, sae=sae, features=feats, factors=factor, tokens="last")
        steered = lens_probability(last_token_logits(lm, ids, [edit], len(feats), prefix), lens[chunk])
        base = lens_probability(base_last.expand(len(feats), -1), lens[chunk])
        P.append(steered["P"]), p.append(steered["p"]), rank.append(steered["rank"]), token.append(steered["token"])
        base_P.append(base["P"])
    P, base_P = torch.cat(P), torch.cat(base_P)
    return {"score": (P - base_P).tolist(), "P": P.tolist(), "P_unsteered": base_P.tolist(), "p": torch.cat(p).tolist(),
            "rank": torch.cat(rank).tolist(), "token": torch.cat(token).tolist()}


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


# --- 7. claims ----------------------------------------------------------------------------------------


# --- the chapter's stages ----------------------------------------------------------------------------
def lens_index(scored: Sequence[dict]) -> dict[tuple[int, int], list[int]]:
    """(layer, feature) -> its logit lens token ids."""
    return {(layer["layer"], f): lens for layer in scored for f, lens in zip(layer["features"], layer["lens"])}


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


