"""Chapter C, step 3: the corpus (the organism's labelled dialogues or a text file, packed into rows), its SAE
codes at every matched site, and the data check: which top-1 predecessors are active on the same token as an
active feature (the paper's 7 groups plus "From nowhere").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sae_lens import SAE

from saesteer.analyses.flow.matching import CATEGORIES, predecessor_site, top1
from saesteer.core.codes import sae_codes
from saesteer.core.hooks import Site
from saesteer.core.tokenizer import pack_rows
from saesteer.organism.language import Language
from saesteer.organism.probes import dialogue_labels
from saesteer.study.params import ParameterError

GROUPS = ("From nowhere", "From RES", "From MLP", "From RES&MLP", "From ATT", "From RES&ATT", "From MLP&ATT",
          "From RES&MLP&ATT")  # index = RES*1 + MLP*2 + ATT*4


# --- 3. the corpus and the data check -------------------------------------------------------------
@dataclass
class Corpus:
    """Packed token rows [rows, context] and, on the organism, one span label per token."""

    ids: torch.Tensor
    labels: list[str] | None  # flattened, aligned with ids.flatten(); None for a plain text corpus


def _pack(pieces: list[tuple[list[int], list[str] | None]], rows: int, context: int) -> Corpus:
    """Concatenate tokenized documents and cut them into full rows (no padding reaches the SAEs)."""
    ids = pack_rows([piece_ids for piece_ids, _ in pieces], context, rows)
    if len(ids) == 0:
        raise ParameterError(f"The corpus needs at least one row of {context} tokens (parameter 'context').")
    labels = [label for piece_ids, piece_labels in pieces for label in (piece_labels or [""] * len(piece_ids))]
    return Corpus(ids, labels[: ids.numel()] if any(p[1] is not None for p in pieces) else None)


def organism_corpus(tokenizer, language: Language, rows: int, context: int, seed: int) -> Corpus:
    """Training-distribution dialogues with their span labels, packed into rows."""
    pieces, need = [], rows * context
    for dialogue in language.corpus(rows * context // 10 + 10, seed=seed + 1000):
        ids = tokenizer(dialogue.text())["input_ids"]
        labels = dialogue_labels(dialogue)
        pieces.append((ids, labels if len(labels) == len(ids) else ["?"] * len(ids)))
        need -= len(ids)
        if need <= 0:
            break
    return _pack(pieces, rows, context)


def text_corpus(tokenizer, path: str, rows: int, context: int) -> Corpus:
    """A text file (one document a line) tokenized and packed into rows."""
    lines = [line for line in open(path).read().splitlines() if line.strip()]
    return _pack([(tokenizer(line)["input_ids"], None) for line in lines], rows, context)


def corpus_codes(lm, saes: Callable[[Site], SAE], sites: Sequence[Site], ids: torch.Tensor, batch_size: int) -> dict[Site, torch.Tensor]:
    """SAE codes [tokens, d_sae] at every site for the packed corpus (one forward per batch; every token of a
    packed row counts, <bos> included, so the codes align with ``Corpus.labels``)."""
    out: dict[Site, list] = {s: [] for s in sites}
    for start in range(0, len(ids), batch_size):
        batch = sae_codes(lm, {s: saes(s) for s in sites}, ids[start : start + batch_size], bos=True)
        for site in sites:
            out[site].append(batch.tokens(site))
    return {s: torch.cat(v) for s, v in out.items()}


def flow_sites(layers: Sequence[int]) -> list[Site]:
    """Every site the matching of ``layers`` touches (resid_post at L and L-1, attn_out and mlp_out at L)."""
    sites = {Site(layer) for layer in layers} | {Site(layer - 1) for layer in layers if layer > 0}
    sites |= {Site(layer, p) for layer in layers for p in ("attn_out", "mlp_out")}
    return sorted(sites, key=lambda s: s.order)


def group_counts(codes: dict[Site, torch.Tensor], match: dict, layer: int, cats: np.ndarray) -> dict:
    """Over every (token, active feature) of resid_post at ``layer``: which top-1 predecessors are active
    on the same token. Returns the count per group and per (category, group)."""
    z = codes[Site(layer)]
    n = z.shape[1]
    active = z > 0
    bits = torch.zeros_like(active, dtype=torch.long)
    for position, weight in (("resid_prev", 1), ("mlp_out", 2), ("attn_out", 4)):
        site, (_, idx) = predecessor_site(layer, position), top1(match, position, n)
        if site is not None:
            bits += weight * (codes[site][:, torch.as_tensor(idx)] > 0).long()
    cat = torch.as_tensor(cats).expand_as(bits)
    flat = (cat * len(GROUPS) + bits)[active]
    table = torch.bincount(flat, minlength=len(CATEGORIES) * len(GROUPS)).reshape(len(CATEGORIES), len(GROUPS))
    return {"groups": {g: int(table[:, i].sum()) for i, g in enumerate(GROUPS)},
            "by_category": {c: {g: int(table[j, i]) for i, g in enumerate(GROUPS)} for j, c in enumerate(CATEGORIES)}}


def group_rows(groups: dict[int, dict]) -> list[dict]:
    """One row per layer: the share of active (token, feature) pairs in each group."""
    rows = []
    for layer, g in sorted(groups.items()):
        total = max(1, sum(g["groups"].values()))
        rows.append({"layer": layer, **{name: count / total for name, count in g["groups"].items()}})
    return rows


def agreement_rows(groups: dict[int, dict]) -> list[dict]:
    """Per cosine category (all layers pooled): how often the residual and the module predecessors
    are active with the feature, i.e. whether the data-free category agrees with the data."""
    rows = []
    for c in CATEGORIES:
        counts = np.zeros(len(GROUPS))
        for g in groups.values():
            counts += np.array([g["by_category"][c][name] for name in GROUPS])
        total = counts.sum()
        idx = np.arange(len(GROUPS))
        share = (lambda mask: float(counts[mask].sum() / total)) if total else (lambda mask: float("nan"))  # noqa: E731
        rows.append({"category": c, "active pairs": int(total), "RES predecessor active": share(idx & 1 > 0),
                     "module predecessor active": share(idx & 6 > 0), "from nowhere": share(idx == 0)})
    return rows
