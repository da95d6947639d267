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

from saesteer.analyses.flow.matching import CATEGORIES, categories, predecessor_site, top1
from saesteer.core.codes import sae_codes
from saesteer.core.files import documents_by_source
from saesteer.core.hooks import Site
from saesteer.core.splits import stable_hash
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
    """A text file (one document a line) or a JSONL corpus, tokenized and packed into rows. Documents that name
    their ``source`` (Gemma 3's corpus: quotations, dictionary glosses, Python documentation) label each of their
    tokens ``topic:<source>``, the corpus's ground truth, and are drawn so that every source holds about the
    same share of the tokens (the next document comes from the source with the fewest tokens so far, each
    source's documents in stable-hash order): the largest source cannot crowd the others out of the rows."""
    groups = documents_by_source(path)
    if list(groups) == [None]:
        return _pack([(tokenizer(doc)["input_ids"], None) for doc in groups[None]], rows, context)
    queues = {s: sorted(docs, key=lambda d: stable_hash(d, "flow-corpus")) for s, docs in groups.items()}
    tokens, used, pieces, need = dict.fromkeys(queues, 0), dict.fromkeys(queues, 0), [], rows * context
    while need > 0 and any(used[s] < len(q) for s, q in queues.items()):
        source = min((s for s in queues if used[s] < len(queues[s])), key=lambda s: (tokens[s], str(s)))
        ids = tokenizer(queues[source][used[source]])["input_ids"]
        pieces.append((ids, [f"topic:{source}"] * len(ids)))
        used[source], tokens[source], need = used[source] + 1, tokens[source] + len(ids), need - len(ids)
    return _pack(pieces, rows, context)


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


def predecessor_bits(codes: dict[Site, torch.Tensor], match: dict, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(active [tokens, features], group index [tokens, features]): which features of resid_post at ``layer``
    fire, and which of their top-1 predecessors fire on the same token (RES*1 + MLP*2 + ATT*4, ``GROUPS``)."""
    z = codes[Site(layer)]
    bits = torch.zeros(z.shape, dtype=torch.long)
    for position, weight in (("resid_prev", 1), ("mlp_out", 2), ("attn_out", 4)):
        site, (_, idx) = predecessor_site(layer, position), top1(match, position, z.shape[1])
        if site is not None:
            bits += weight * (codes[site][:, torch.as_tensor(idx)] > 0).long()
    return z > 0, bits


def category_group_table(active: torch.Tensor, bits: torch.Tensor, cats: np.ndarray) -> torch.Tensor:
    """Counts [categories, groups] of the active (token, feature) pairs."""
    flat = (torch.as_tensor(cats).expand_as(bits) * len(GROUPS) + bits)[active]
    return torch.bincount(flat, minlength=len(CATEGORIES) * len(GROUPS)).reshape(len(CATEGORIES), len(GROUPS))


def group_counts(codes: dict[Site, torch.Tensor], match: dict, layer: int, cats: np.ndarray, context: int | None = None) -> dict:
    """Over every (token, active feature) of resid_post at ``layer``: which top-1 predecessors are active
    on the same token. Returns the count per group and per (category, group), and with ``context`` (tokens per
    corpus row) the (category, group) counts of each corpus row, ``rows`` [rows][categories x groups], so
    intervals can resample rows (the tokens of one row are not independent)."""
    active, bits = predecessor_bits(codes, match, layer)
    table = category_group_table(active, bits, cats)
    out = {"groups": {g: int(table[:, i].sum()) for i, g in enumerate(GROUPS)},
           "by_category": {c: {g: int(table[j, i]) for i, g in enumerate(GROUPS)} for j, c in enumerate(CATEGORIES)}}
    if context is not None:
        cells = len(CATEGORIES) * len(GROUPS)
        flat = (torch.as_tensor(cats).expand_as(bits) * len(GROUPS) + bits)[active]
        row = (torch.arange(len(bits)) // context)[:, None].expand_as(bits)[active]
        per_row = torch.bincount(row * cells + flat, minlength=(len(bits) // context) * cells)
        out["rows"] = per_row.reshape(-1, cells).tolist()
    return out


def row_tables(groups: dict[int, dict]) -> dict[int, np.ndarray]:
    """Per layer, the per-row counts [rows, categories, groups] kept by ``group_counts(..., context)``."""
    return {layer: np.array(g["rows"], float).reshape(-1, len(CATEGORIES), len(GROUPS)) for layer, g in groups.items()}


def row_bootstrap(tables: dict[int, np.ndarray], statistic: Callable[[dict[int, np.ndarray]], float], draws: int = 1000,
                  seed: int = 0) -> tuple[float, float, float]:
    """``statistic`` of the summed (category, group) counts per layer and its 95% interval, resampling corpus
    rows (the same rows at every layer in a draw, as one row's tokens pass through every layer)."""
    n_rows = len(next(iter(tables.values())))
    value = statistic({layer: t.sum(0) for layer, t in tables.items()})
    rng = np.random.default_rng(seed)
    stats = [statistic({layer: t[idx].sum(0) for layer, t in tables.items()})
             for idx in rng.integers(0, n_rows, (draws, n_rows))]
    return float(value), float(np.nanpercentile(stats, 2.5)), float(np.nanpercentile(stats, 97.5))


def group_shares(counts: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Per layer, each group's share of active (token, feature) pairs, from [categories, groups] counts."""
    return {layer: c.sum(0) / max(1.0, c.sum()) for layer, c in counts.items()}


def nowhere_margin(counts: dict[int, np.ndarray]) -> float:
    """Mean share (over layers) of "From nowhere" minus the largest mean share of any other group."""
    mean = np.mean(list(group_shares(counts).values()), axis=0)
    return float(mean[0] - mean[1:].max())


def agreement_gap(counts: dict[int, np.ndarray]) -> float:
    """How often the RES predecessor fires with a translated feature minus with a newborn one (pooled layers):
    positive when the data-free categories agree with the data."""
    pooled = sum(counts.values())
    res = np.arange(len(GROUPS)) & 1 > 0
    share = lambda c: pooled[c, res].sum() / pooled[c].sum() if pooled[c].sum() else np.nan  # noqa: E731
    return float(share(CATEGORIES.index("translated")) - share(CATEGORIES.index("newborn")))


def peak_gap(counts: dict[int, np.ndarray], group: str, band: Sequence[int]) -> float:
    """The largest share of ``group`` at the layers of ``band`` minus its largest share at the other layers:
    positive when the group peaks inside the band."""
    shares = {layer: s[GROUPS.index(group)] for layer, s in group_shares(counts).items()}
    inside = [v for layer, v in shares.items() if layer in band]
    outside = [v for layer, v in shares.items() if layer not in band]
    return float(max(inside) - max(outside)) if inside and outside else float("nan")


def depth_band(n_layers: int, depth: float, width: float) -> list[int]:
    """The layers whose relative depth l / (n_layers - 1) lies within ``width`` of ``depth`` (e.g. the paper's
    From-MLP peak, layer 18 of Gemma-2-2B's 26, at 0.72), so a depth claim carries over to another model."""
    return [layer for layer in range(n_layers) if abs(layer / max(1, n_layers - 1) - depth) <= width]


def threshold_grid(codes: dict[Site, torch.Tensor], matches: dict[int, dict], res_grid: Sequence[float],
                   module_grid: Sequence[float]) -> list[dict]:
    """The sensitivity of the categories to their two thresholds: per (res, module) pair, each category's mean
    share over layers and the agreement gap (``agreement_gap``) the data check gives with those categories."""
    bits = {layer: predecessor_bits(codes, m, layer) for layer, m in matches.items()}
    rows = []
    for res in res_grid:
        for module in module_grid:
            cats = {layer: categories(m, res, module) for layer, m in matches.items()}
            counts = {layer: category_group_table(*bits[layer], cats[layer]).numpy().astype(float) for layer in matches}
            shares = {c: float(np.mean([np.mean(cats[layer] == i) for layer in matches])) for i, c in enumerate(CATEGORIES)}
            rows.append({"res_threshold": res, "module_threshold": module, **shares, "agreement gap": agreement_gap(counts)})
    return rows


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
