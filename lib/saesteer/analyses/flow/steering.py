"""Chapter C, step 6: multi-layer steering with a graph (single layer vs cumulative, constant / linear /
exponential schedules) and graph deactivation over a sweep of r, scored with the organism's ground truth
(topic share) and the unsteered model's perplexity (coherence).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import torch

from saesteer.analyses.flow.graphs import FlowGraph
from saesteer.analyses.flow.matching import decoder
from saesteer.analyses.flow.validation import scale_edits
from saesteer.core.generation import generate_text, perplexity
from saesteer.core.hooks import Site
from saesteer.core.interventions import (
    AddVector,
    batches,
)
from saesteer.core.stats import bootstrap_mean
from saesteer.organism import evaluation
from saesteer.organism.language import Language
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


def steer_configs(graphs: list[FlowGraph], coefficients: Sequence[float], schedules: Sequence[str], alpha: float) -> list[dict]:
    """Baseline, then per topic graph and coefficient: single-layer (at the seed layer) and each cumulative
    schedule over the graph's residual layers up to the seed layer."""
    configs = [{"topic": None, "schedule": "none", "s": 0.0, "coeffs": {}}]
    for g in graphs:
        chain = {layer: f for layer, f in g.chain.items() if layer <= g.seed["layer"]}
        for s in coefficients:
            for kind in ("single", *schedules):
                coeffs = {layer: (chain[layer], c) for layer, c in schedule(kind, list(chain), s, alpha).items()}
                configs.append({"topic": g.seed["topic"], "schedule": kind, "s": s, "coeffs": coeffs})
    return configs


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


def topic_share(answer: str, topic: str) -> float:
    """Share of the generated words that belong to the target topic's vocabulary."""
    words = answer.split()
    return sum(w in evaluation.TOPIC_WORDS[topic] for w in words) / len(words) if words else 0.0


def coherence(lm, prompts: Sequence[str], answers: Sequence[str], batch_size: int) -> list[float]:
    """Coherence of each continuation: 1 / perplexity of its tokens under the unsteered model (``core.generation
    .perplexity``: exp of the mean log-probability; 0 for an empty answer). An answer's tokens are those that
    ``"<prompt> <answer>"`` adds to the prompt's tokens."""
    tokenizer, out = lm.tokenizer, []
    for chunk in batches(list(zip(prompts, answers)), batch_size):
        tails = [tokenizer(f"{p} {a}")["input_ids"][len(tokenizer(p)["input_ids"]) :] if a else [] for p, a in chunk]
        width = max(map(len, tails))
        if width == 0:
            out += [0.0] * len(chunk)
            continue
        pad = tokenizer.pad_token_id
        ppl = perplexity(lm, [p for p, _ in chunk], torch.tensor([t + [pad] * (width - len(t)) for t in tails]))
        out += [float(1 / x) if t else 0.0 for x, t in zip(ppl, tails)]
    return out


def steering_prompts(language: Language | None, items: list, topic: str, n: int) -> list[str]:
    """Prompts asking for writing about other topics (held-out items first, training-distribution fill)."""
    pool = [i.prompt for i in items if i.truth.get("topic") != topic]
    if language is not None and len(pool) < n:
        pool += [d.prompt() for d in language.selection_set("topic", 4 * n) if d.truth["topic"] != topic]
    return list(dict.fromkeys(pool))[:n]


def steer(lm, saes, configs: list[dict], prompts: dict[str, list[str]], params: dict) -> list[dict]:
    """Every config on its topic's prompts (the baseline on every topic's prompts), batched along rows;
    one row per (config, prompt) with topic share, coherence and the answer."""
    rows = [(i, topic, p) for i, c in enumerate(configs) for topic in ([c["topic"]] if c["topic"] else prompts)
            for p in prompts[topic]]
    answers = generate_rows(lm, [p for _, _, p in rows], lambda chunk: add_edits(saes, [configs[rows[i][0]] for i in chunk]),
                            len(rows), params["new_tokens"], params["batch_size"])
    coh = coherence(lm, [p for _, _, p in rows], answers, params["batch_size"])
    return [{"config": i, "topic": topic, "schedule": configs[i]["schedule"], "s": configs[i]["s"],
             "topic share": topic_share(a, topic), "coherence": c, "answer": a}
            for (i, topic, p), a, c in zip(rows, answers, coh)]


def deactivate_graph(lm, saes, graphs: list[FlowGraph], prompts: dict[str, list[str]], factors: Sequence[float],
                     params: dict) -> list[dict]:
    """Scale every residual feature of each topic graph by r (all graph layers at once) on prompts about
    that topic; r = 1 is the unsteered baseline. One row per (topic, r, prompt)."""
    jobs = [(g.seed["topic"], r, p) for g in graphs for r in (1.0, *factors) for p in prompts[g.seed["topic"]]]
    chains = {g.seed["topic"]: g.chain for g in graphs}

    def edits_for(chunk):
        edits = []
        for r in sorted({jobs[i][1] for i in chunk}):
            rows = [[(Site(layer), f) for layer, f in chains[jobs[i][0]].items()] if jobs[i][1] == r else [] for i in chunk]
            edits += scale_edits(saes, rows, r)
        return edits

    answers = generate_rows(lm, [p for _, _, p in jobs], edits_for, len(jobs), params["new_tokens"], params["batch_size"])
    coh = coherence(lm, [p for _, _, p in jobs], answers, params["batch_size"])
    return [{"topic": t, "r": r, "topic share": topic_share(a, t), "coherence": c, "answer": a}
            for (t, r, p), a, c in zip(jobs, answers, coh)]


def topic_prompts(language: Language | None, items: list, topic: str, n: int) -> list[str]:
    """Prompts asking for writing about ``topic`` itself (held-out items first, then training distribution)."""
    pool = [i.prompt for i in items if i.truth.get("topic") == topic]
    if language is not None and len(pool) < n:
        pool += [d.prompt() for d in language.selection_set("topic", 8 * n) if d.truth["topic"] == topic]
    if not pool:
        raise ParameterError(f"The prompt folder's topic.jsonl has no prompt about {topic!r} (truth.topic) to deactivate on.")
    return list(dict.fromkeys(pool))[:n]


def steering_summary(rows: list[dict]) -> list[dict]:
    """Per (schedule, s): mean topic share, coherence and their product (behaviour x coherence) with intervals."""
    out = []
    keys = sorted({(r["schedule"], r["s"]) for r in rows}, key=lambda k: (k[1], k[0]))
    for schedule_name, s in keys:
        part = [r for r in rows if r["schedule"] == schedule_name and r["s"] == s]
        score = bootstrap_mean([r["topic share"] * r["coherence"] for r in part])
        out.append({"schedule": schedule_name, "s": s, "topic share": bootstrap_mean([r["topic share"] for r in part])[0],
                    "coherence": bootstrap_mean([r["coherence"] for r in part])[0], "topic x coherence": score[0],
                    "lo": score[1], "hi": score[2], "n": len(part)})
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
