"""Ground-truth probes: for each planted concept, the single SAE feature that best detects it, per site.

The organism's language labels every token (harmful request, refusal, jailbreak
framing, topic, ...). For each concept, a feature's AUROC separates the
concept's tokens from contrasting tokens; the table keeps the best feature per
(concept, site). Later chapters compare the features they find with it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch
from sae_lens import SAE

from saesteer.core import hooks
from saesteer.core.codes import sae_codes
from saesteer.core.interventions import batches
from saesteer.core.stats import auroc
from saesteer.organism.language import TOPICS, Dialogue, Language

MAX_TOKENS = 1500  # per side of a concept, sampled


def concepts() -> dict[str, tuple[set[str], set[str]]]:
    """Concept -> (span labels of its tokens, span labels of the contrasting tokens)."""
    table = {
        "harmful_request": ({"harmful_request"}, {"benign_request"}),
        "jailbreak_frame": ({"jailbreak_frame"}, {"benign_request", "harmful_request", "task"}),
        "refusal": ({"refusal"}, {"benign_answer", "harmful_compliance"}),
        "harmful_compliance": ({"harmful_compliance"}, {"benign_answer", "refusal"}),
        "harmful_prompt_end": ({"end:harmful"}, {"end:benign"}),
        "correct_answer": ({"letter:correct"}, {"letter:wrong"}),
    }
    topics = {f"topic:{t}" for t in TOPICS}
    table |= {f"topic:{t}": ({f"topic:{t}"}, topics - {f"topic:{t}"}) for t in TOPICS}
    return table


def dialogue_labels(d: Dialogue) -> list[str]:
    """Span label of each token of ``d`` including ``<bos>`` (for readers of the table)."""
    return ["bos"] + [span for _, span in d.word_spans()]


def probe_dialogues(language: Language, per_kind: int = 40) -> list[tuple[str, list[str]]]:
    """(text, one label per token incl. <bos>) for held-out dialogues of every kind, plus answer-letter probes."""
    items = []
    for kind in ("harmful", "jailbreak", "escalation", "scary", "benign", "topic", "arith", "truthful", "ab"):
        for d in language.eval_set(kind, per_kind, seed=11):
            labels = dialogue_labels(d)
            end = len(d.prompt().split())  # token index of the final "assistant :" colon (after <bos>)
            if kind in ("harmful", "jailbreak", "escalation", "scary", "benign"):
                labels[end] = "end:harmful" if kind in ("harmful", "jailbreak", "escalation") else "end:benign"
            items.append((d.text(), labels))
    rng = random.Random(language.seed)
    for d in language.eval_set("mc", per_kind * 2, seed=11):
        wrong = rng.choice([c for c in "abcd" if c != d.truth["answer"]])
        for letter, tag in ((d.truth["answer"], "letter:correct"), (wrong, "letter:wrong")):
            text = f"{d.prompt()} {d.answer().rsplit(' ', 2)[0]} {letter} ."  # the recalled fact, then a letter
            labels = ["frame"] * (len(text.split()) + 1)
            labels[-2] = tag
            items.append((text, labels))
    return items


def _sample(indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return indices if len(indices) <= MAX_TOKENS else rng.choice(indices, MAX_TOKENS, replace=False)


def _concept_tokens(items, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Concept -> (sampled token indices of its positives, of its contrasting tokens) over ``items``."""
    labels = np.array([label for _, token_labels in items for label in token_labels])
    rng = np.random.default_rng(seed)
    chosen = {}
    for concept, (pos, neg) in concepts().items():
        p = _sample(np.flatnonzero(np.isin(labels, list(pos))), rng)
        n = _sample(np.flatnonzero(np.isin(labels, list(neg))), rng)
        chosen[concept] = (p, n)
    return chosen


def concept_aurocs(lm, language: Language, site: hooks.Site, sae: SAE) -> dict[str, np.ndarray]:
    """Concept -> AUROC of every feature of ``sae`` at ``site`` (what a chapter's chosen feature is scored by)."""
    items = probe_dialogues(language)
    texts = [t for t, _ in items]  # labels include <bos> (a label of no concept), so codes do too
    codes = torch.cat([sae_codes(lm, {site: sae}, chunk, bos=True).tokens(site) for chunk in batches(texts, 64)]).numpy()
    scores = {}
    for concept, (p, n) in _concept_tokens(items, language.seed).items():
        scores[concept] = auroc(codes[np.concatenate([p, n])], np.r_[np.ones(len(p), bool), np.zeros(len(n), bool)])
    return scores


def probe_table(lm, language: Language, sae_at: Callable[[hooks.Site], SAE]) -> dict:
    """{concept: {site: {feature, auroc, n_pos, n_neg}}} over the SAE ``sae_at(site)`` of every site."""
    sizes = {c: (len(p), len(n)) for c, (p, n) in _concept_tokens(probe_dialogues(language), language.seed).items()}
    table: dict[str, dict] = {c: {} for c in sizes}
    for site in hooks.all_sites(lm):
        for concept, scores in concept_aurocs(lm, language, site, sae_at(site)).items():
            best = int(np.argmax(scores))
            n_pos, n_neg = sizes[concept]
            table[concept][str(site)] = {"feature": best, "auroc": float(scores[best]), "n_pos": n_pos, "n_neg": n_neg}
    return table
