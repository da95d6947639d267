"""Chapter C, step 6: multi-layer steering with a graph (single layer vs cumulative, constant / linear /
exponential schedules, compared at the same total added norm), the single-layer check of every chain layer
(why one layer needs a coefficient near the residual stream's own norm), and graph deactivation over a sweep of
r, scored with the organism's ground truth (topic share) and a scoring model's perplexity (coherence).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Sequence

import numpy as np
import torch

from saesteer.analyses.flow.graphs import FlowGraph
from saesteer.analyses.flow.matching import decoder
from saesteer.analyses.flow.validation import scale_edits
from saesteer.core.generation import generate_text, perplexity
from saesteer.core.hooks import Site, layout, walk
from saesteer.core.interventions import AddVector, batches, read_activations
from saesteer.core.models import torch_model
from saesteer.core.stats import cluster_bootstrap_mean, paired_difference
from saesteer.organism import evaluation
from saesteer.organism.language import Language, stable_hash
from saesteer.study.params import ParameterError

SCHEDULES = ("constant", "linear", "exponential")


# --- 6. multi-layer steering ----------------------------------------------------------------------
def schedule(kind: str, layers: Sequence[int], s: float, alpha: float) -> dict[int, float]:
    """Coefficient per layer: ``single`` puts s on the last layer only; cumulative schedules use every
    layer: constant s; linear rising to s at the last layer; exponential s exp(alpha l)."""
    layers = sorted(layers)
    if kind == "single":
        return {layers[-1]: s}
    if kind == "constant":
        return {layer: s for layer in layers}
    if kind == "linear":
        return {layer: s * (i + 1) / len(layers) for i, layer in enumerate(layers)}
    if kind == "exponential":
        return {layer: s * math.exp(alpha * layer) for layer in layers}
    raise ValueError(f"Schedule {kind!r} is not one of single, {', '.join(SCHEDULES)}.")


def matched_schedule(kind: str, layers: Sequence[int], total: float, alpha: float) -> dict[int, float]:
    """``schedule``'s shape rescaled so the coefficients sum to ``total``: every schedule adds the same total
    norm (unit directions), so single-layer and cumulative steering are compared at equal strength."""
    shape = schedule(kind, layers, 1.0, alpha)
    return {layer: total * c / sum(shape.values()) for layer, c in shape.items()}


def steer_configs(graphs: list[FlowGraph], coefficients: Sequence[float], schedules: Sequence[str], alpha: float,
                  matched: bool = False) -> list[dict]:
    """Baseline, then per topic graph and coefficient: single-layer (at the seed layer) and each cumulative
    schedule over the graph's residual layers up to the seed layer. ``matched``: the coefficient is the total
    added norm shared by the layers (``matched_schedule``); else it is the per-layer s of ``schedule``."""
    configs = [{"topic": None, "schedule": "none", "s": 0.0, "coeffs": {}}]
    shape = matched_schedule if matched else schedule
    for g in graphs:
        chain = {layer: f for layer, f in g.chain.items() if layer <= g.seed["layer"]}
        for s in coefficients:
            for kind in ("single", *schedules):
                coeffs = {layer: (chain[layer], c) for layer, c in shape(kind, list(chain), s, alpha).items()}
                configs.append({"topic": g.seed["topic"], "schedule": kind, "s": s, "coeffs": coeffs})
    return configs


def layer_configs(graphs: list[FlowGraph], coefficients: Sequence[float]) -> list[dict]:
    """Single-layer steering at every residual layer of each topic graph's chain (one feature, one layer),
    for the check of why one layer needs a large coefficient; schedule named ``layer L``."""
    return [{"topic": g.seed["topic"], "schedule": f"layer {layer}", "layer": layer, "s": s, "coeffs": {layer: (f, s)}}
            for g in graphs for layer, f in g.chain.items() for s in coefficients]


def add_edits(saes, rows: list[dict]) -> list[AddVector]:
    """One ``AddVector`` per layer with a vector per row ([rows, 1, d]): each row's config adds
    coefficient x unit decoder direction at its layers (NaN, i.e. untouched, elsewhere)."""
    layers = sorted({layer for c in rows for layer in c["coeffs"]})
    edits = []
    for layer in layers:
        d = decoder(saes, Site(layer))
        vec = torch.full((len(rows), 1, d.shape[1]), float("nan"))
        for i, c in enumerate(rows):
            if layer in c["coeffs"]:
                f, coeff = c["coeffs"][layer]
                vec[i, 0] = coeff * d[f]
        edits.append(AddVector(site=Site(layer), vector=vec))
    return edits


def generate_rows(lm, prompts: list[str], edits_for: Callable[[list[int]], list], n_rows: int, new_tokens: int,
                  batch_size: int) -> list[str]:
    """Greedy answers of ``n_rows`` rows, batched; ``edits_for(row indices)`` gives each batch's edits."""
    return generate_text(lm, list(prompts[:n_rows]), edits_for, new_tokens, batch_size)


def topic_vocabulary(params: dict) -> dict[str, frozenset[str]]:
    """Each topic's words: the parameter file's ``topic_words`` (a real model's topics, fixed before the run),
    else the organism's topic vocabularies (its ground truth)."""
    words = params.get("topic_words") or evaluation.TOPIC_WORDS
    return {topic: frozenset(w.lower() for w in ws) for topic, ws in words.items()}


def topic_share(answer: str, words: frozenset[str]) -> float:
    """Share of the generated words that belong to the target topic's vocabulary ``words`` (a word is compared
    lower-cased, without the punctuation around it)."""
    tokens = answer.split()
    return sum(t.strip(string.punctuation).lower() in words for t in tokens) / len(tokens) if tokens else 0.0


def coherence(scorer, prompts: Sequence[str], answers: Sequence[str], batch_size: int) -> list[float]:
    """Coherence of each continuation: 1 / perplexity of its tokens under ``scorer`` (``core.generation
    .perplexity``: exp of the mean log-probability; 0 for an empty answer): the unsteered model by default, or
    any other model with a tokenizer, e.g. an independently trained one. An answer's tokens are those that
    ``"<prompt> <answer>"`` adds to the prompt's tokens under the scorer's own tokenizer."""
    tokenizer, out = scorer.tokenizer, []
    for chunk in batches(list(zip(prompts, answers)), batch_size):
        tails = [tokenizer(f"{p} {a}")["input_ids"][len(tokenizer(p)["input_ids"]) :] if a else [] for p, a in chunk]
        width = max(map(len, tails))
        if width == 0:
            out += [0.0] * len(chunk)
            continue
        pad = tokenizer.pad_token_id
        ppl = perplexity(scorer, [p for p, _ in chunk], torch.tensor([t + [pad] * (width - len(t)) for t in tails]))
        out += [float(1 / x) if t else 0.0 for x, t in zip(ppl, tails)]
    return out


# --- prompts: held-out items first, each with its cluster (template and topic) ----------------------
def _pool(language: Language | None, items: list, keep: Callable[[str], bool], n: int, fill: int, salt: str) -> dict[str, str]:
    """Prompt -> cluster for the topic items whose topic passes ``keep``: held-out items first, then the
    training distribution (``fill`` x n draws) when there are fewer than ``n``; spread over clusters in an
    order fixed by ``salt`` (``_spread``)."""
    pool = {i.prompt: str(i.truth.get("cluster", i.prompt)) for i in items if keep(i.truth.get("topic"))}
    if language is not None and len(pool) < n:
        for d in language.selection_set("topic", fill * n):
            if keep(d.truth["topic"]):
                pool.setdefault(d.prompt(), str(d.truth.get("cluster", d.prompt())))
    return dict(sorted(pool.items(), key=_spread(pool, salt))[:n])


def _spread(pool: dict[str, str], salt: str) -> Callable[[tuple[str, str]], tuple[int, int, int]]:
    """Sort key taking one prompt of every cluster, then a second of every cluster, and so on, held-out before
    filled within a round and in a stable hash order of ``salt`` after that: ``n`` prompts cover as many clusters
    as they can, and each target topic (its own salt) takes a different subset of them."""
    rank, seen, order = {}, {}, {p: i for i, p in enumerate(pool)}
    for prompt, cluster in pool.items():
        rank[prompt] = seen.get(cluster, 0)
        seen[cluster] = rank[prompt] + 1
    return lambda item: (rank[item[0]], stable_hash("prompts", salt, item[0]) % 10_000, order[item[0]])


def steering_prompts(language: Language | None, items: list, topic: str, n: int) -> dict[str, str]:
    """Prompts asking for writing about other topics (held-out items first, training-distribution fill), as
    prompt -> cluster (the prompt's template and topic: prompts of one cluster are not independent)."""
    return _pool(language, items, lambda t: t != topic, n, 4, topic)


def topic_prompts(language: Language | None, items: list, topic: str, n: int) -> dict[str, str]:
    """Prompts asking for writing about ``topic`` itself (held-out items first, then training distribution),
    as prompt -> cluster."""
    pool = _pool(language, items, lambda t: t == topic, n, 8, topic)
    if not pool:
        raise ParameterError(f"The prompt folder's topic.jsonl has no prompt about {topic!r} (truth.topic) to deactivate on.")
    return pool


def steer(lm, saes, configs: list[dict], prompts: dict[str, dict[str, str]], params: dict, scorer=None) -> list[dict]:
    """Every config on its topic's prompts (the baseline on every topic's prompts), batched along rows;
    one row per (config, prompt) with topic share, coherence (under ``scorer``, default ``lm``), the prompt's
    cluster and the answer."""
    rows = [(i, topic, p) for i, c in enumerate(configs) for topic in ([c["topic"]] if c["topic"] else prompts)
            for p in prompts[topic]]
    answers = generate_rows(lm, [p for _, _, p in rows], lambda chunk: add_edits(saes, [configs[rows[i][0]] for i in chunk]),
                            len(rows), params["new_tokens"], params["batch_size"])
    coh, words = coherence(scorer or lm, [p for _, _, p in rows], answers, params["batch_size"]), topic_vocabulary(params)
    return [{"config": i, "topic": topic, "schedule": configs[i]["schedule"], "s": configs[i]["s"], "prompt": p,
             "cluster": prompts[topic][p], "topic share": topic_share(a, words[topic]), "coherence": c, "answer": a}
            for (i, topic, p), a, c in zip(rows, answers, coh)]


def deactivate_graph(lm, saes, graphs: list[FlowGraph], prompts: dict[str, dict[str, str]], factors: Sequence[float],
                     params: dict, scorer=None) -> list[dict]:
    """Scale every residual feature of each topic graph by r (all graph layers at once) on prompts about
    that topic; r = 1 is the unsteered baseline. One row per (topic, r, prompt), with the prompt's cluster."""
    jobs = [(g.seed["topic"], r, p) for g in graphs for r in (1.0, *factors) for p in prompts[g.seed["topic"]]]
    chains = {g.seed["topic"]: g.chain for g in graphs}

    def edits_for(chunk):
        rows = [[(Site(layer), f) for layer, f in chains[jobs[i][0]].items()] for i in chunk]
        return scale_edits(saes, rows, [jobs[i][1] for i in chunk])

    answers = generate_rows(lm, [p for _, _, p in jobs], edits_for, len(jobs), params["new_tokens"], params["batch_size"])
    coh, words = coherence(scorer or lm, [p for _, _, p in jobs], answers, params["batch_size"]), topic_vocabulary(params)
    return [{"topic": t, "r": r, "prompt": p, "cluster": prompts[t][p], "topic share": topic_share(a, words[t]), "coherence": c,
             "answer": a} for (t, r, p), a, c in zip(jobs, answers, coh)]


# --- scoring: clustered means and paired differences -----------------------------------------------
def steering_summary(rows: list[dict], key: str = "schedule") -> list[dict]:
    """Per (``key``, s): mean topic share, coherence and their product (behaviour x coherence), the product's
    95% interval resampling prompt clusters."""
    out = []
    for name, s in sorted({(r[key], r["s"]) for r in rows}, key=lambda k: (k[1], str(k[0]))):
        part = [r for r in rows if r[key] == name and r["s"] == s]
        clusters = [r["cluster"] for r in part]
        score = cluster_bootstrap_mean([r["topic share"] * r["coherence"] for r in part], clusters)
        out.append({key: name, "s": s, "topic share": float(np.mean([r["topic share"] for r in part])),
                    "coherence": float(np.mean([r["coherence"] for r in part])), "topic x coherence": score[0],
                    "lo": score[1], "hi": score[2], "n": len(part), "clusters": len(set(clusters))})
    return out


def product(row: dict) -> float:
    """Behaviour x coherence of one generation (the paper's joint score)."""
    return row["topic share"] * row["coherence"]


def paired(rows: list[dict], a: Callable[[dict], bool], b: Callable[[dict], bool], metric: Callable[[dict], float],
           pair: Callable[[dict], tuple]) -> dict:
    """Mean of metric(a) - metric(b) over the items both ``a`` and ``b`` rows cover (matched by ``pair``),
    with its 95% interval resampling the items' clusters."""
    left = {pair(r): r for r in rows if a(r)}
    right = {pair(r): r for r in rows if b(r)}
    keys = sorted(set(left) & set(right), key=str)
    if not keys:
        return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "n": 0, "clusters": 0}
    clusters = [left[k]["cluster"] for k in keys]
    diff, lo, hi = paired_difference([metric(left[k]) for k in keys], [metric(right[k]) for k in keys], clusters)
    return {"diff": diff, "lo": lo, "hi": hi, "n": len(keys), "clusters": len(set(clusters))}


def cumulative_gaps(rows: list[dict], schedules: Sequence[str], coefficients: Sequence[float]) -> list[dict]:
    """Per cumulative schedule and total s: behaviour x coherence of the schedule minus single-layer steering on
    the same (topic, prompt), paired; and pooled over ``coefficients`` (s = "pooled"), pairs keyed by s too."""
    out = []
    key = lambda r: (r["topic"], r["prompt"], r["s"])  # noqa: E731
    for kind in schedules:
        for s in (*coefficients, "pooled"):
            at = (lambda r: r["s"] in coefficients) if s == "pooled" else (lambda r, s=s: r["s"] == s)
            gap = paired(rows, lambda r: r["schedule"] == kind and at(r), lambda r: r["schedule"] == "single" and at(r),
                         product, key)
            out.append({"schedule": kind, "s": s, **gap})
    return out


def against_baseline(rows: list[dict], chosen: Callable[[dict], bool], metric: str, base: Callable[[dict], bool]) -> dict:
    """``metric`` of the ``chosen`` rows minus the unsteered rows' (``base``) on the same (topic, prompt)."""
    return paired(rows, chosen, base, lambda r: r[metric], lambda r: (r["topic"], r["prompt"]))


# --- why one layer needs a large coefficient --------------------------------------------------------
def residual_norms(lm, prompts: Sequence[str], layers: Sequence[int], batch_size: int) -> dict[int, float]:
    """Median norm of the residual stream (resid_post) per layer over the prompts' tokens: the scale an added
    vector must be compared with (padding left out)."""
    norms: dict[int, list] = {layer: [] for layer in layers}
    for chunk in batches(list(prompts), batch_size):
        enc = lm.tokenizer(list(chunk), return_tensors="pt", padding=True)
        acts = read_activations(lm, enc, [Site(layer) for layer in layers])
        keep = enc["attention_mask"].bool()
        for layer in layers:
            norms[layer].append(acts[Site(layer)].float().norm(dim=-1)[keep].cpu())
    return {layer: float(torch.cat(v).median()) for layer, v in norms.items()}


def lens_logits(lm, vector: torch.Tensor) -> torch.Tensor:
    """Logits of one residual-stream ``vector`` [d] through the model's own final norm and unembedding (logit
    soft-capping, where the model has it, is monotone and left out)."""
    model, lay = torch_model(lm), layout(lm)
    with torch.no_grad():
        weight = walk(model, lay.unembed).weight
        return walk(model, lay.unembed)(walk(model, lay.final_norm)(vector[None].to(weight.dtype)))[0].float()


def word_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """The token of each word as it appears inside text (after a space: SentencePiece's "▁word", byte-level
    BPE's "Ġword"), else the bare word (a word-level vocabulary such as the organism's); words the vocabulary
    lacks are left out."""
    vocab = tokenizer.get_vocab()
    found = (next((vocab[f] for f in (f"▁{w}", f"Ġ{w}", w) if f in vocab), None) for w in words)
    return [i for i in found if i is not None]


def writer_scores(lm, saes, graph: FlowGraph, words: Sequence[str]) -> dict[int, float]:
    """Per chain layer: the logit lens of the node's unit decoder direction (final norm and unembedding), the
    mean z-score of the topic's ``words`` among all tokens: how directly the feature writes its topic."""
    ids = word_token_ids(lm.tokenizer, sorted(words))
    out = {}
    for layer, f in graph.chain.items():
        logits = lens_logits(lm, decoder(saes, Site(layer))[f])
        z = (logits - logits.mean()) / logits.std()
        out[layer] = float(z[ids].mean()) if ids else math.nan
    return out


# --- stages as the notebook calls them ------------------------------------------------------------
def well_formed(answer: str) -> float:
    """Organism-only grammar check: share of sentences of the form 'the N is W near the N .' with topic words
    (the grammar of topic answers), a second, generator-based coherence measure."""
    sentences = [s.strip() for s in answer.split(".") if s.strip()]
    if not sentences:
        return 0.0
    vocab = "|".join(sorted({w for words in evaluation.TOPIC_WORDS.values() for w in words}))
    pattern = re.compile(rf"the ({vocab}) is ({vocab}) near the ({vocab})")
    return sum(bool(pattern.fullmatch(s)) for s in sentences) / len(sentences)
