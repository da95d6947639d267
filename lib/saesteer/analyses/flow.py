"""Chapter C: feature flow across layers (Laptev et al., 2025), matched without data, checked with data.

The paper's route, step by step:

1. ``match_layer``: for every feature of the ``resid_post`` SAE at layer L, its top-k cosine
   matches among the decoder directions of ``resid_post`` at L-1 (``resid_prev``), ``attn_out``
   at L and ``mlp_out`` at L; chunked (``top_matches``) so Gemma-2-2B's 16k x 16k similarities
   never sit in memory at once;
2. ``categories``: translated / processed / newborn / unexplained from the top-1 similarities;
3. ``group_counts``: on a corpus, which top-1 predecessors are active on the same token as an
   active feature (the paper's 7 groups plus "From nowhere");
4. ``deactivation_table``: remove a predecessor (h + (r-1) a d, r = 0) and measure the feature's
   activation change 1 - z_new/z_old, for top-1 cosine, Pearson, a random pick among the top 5,
   and exhaustive search over the candidates;
5. ``flow_graph``: chain top-1 residual matches backward and forward from a seed feature, cut
   where the similarity drops below 0.5, attach module predecessors with similarity >= 0.15;
6. ``steer``/``deactivate_graph``: multi-layer steering with a graph (single layer vs cumulative,
   constant / linear / exponential schedules) and graph deactivation over a sweep of r, scored
   with the organism's ground truth (topic share) and the unsteered model's perplexity (coherence);
7. ``claims``: the paper's claims against this study's numbers.

Layer 0 has no previous residual SAE (its input is the embedding): its ``resid_prev`` match is
missing and counts as similarity 0 / inactive everywhere.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sae_lens import SAE

from saesteer.core.codes import sae_codes
from saesteer.core.generation import generate_text, perplexity
from saesteer.core.hooks import Site
from saesteer.core.interventions import (
    AddVector,
    ScaleRows,
    batches,
)
from saesteer.core.saes import check_fits, load_sae, unit_decoder
from saesteer.core.stats import auroc, bootstrap_mean, wilson
from saesteer.core.tokenizer import pack_rows
from saesteer.organism import evaluation
from saesteer.organism.language import TOPICS, Language
from saesteer.organism.probes import dialogue_labels
from saesteer.study.params import ParameterError
from saesteer.study.subjects import device_of

PREDECESSORS = ("resid_prev", "attn_out", "mlp_out")  # R_{L-1}, A_L, M_L
SHORT = {"resid_prev": "RES", "attn_out": "ATT", "mlp_out": "MLP", "resid_post": "R"}
CATEGORIES = ("translated", "processed", "newborn", "unexplained")
GROUPS = ("From nowhere", "From RES", "From MLP", "From RES&MLP", "From ATT", "From RES&ATT", "From MLP&ATT",
          "From RES&MLP&ATT")  # index = RES*1 + MLP*2 + ATT*4
SCHEDULES = ("constant", "linear", "exponential")
METHODS = ("top-1 cosine", "Pearson", "random top-5", "exhaustive")


def parse_seed(text: str) -> dict:
    """``"layer:feature"`` or ``"layer:feature:topic"`` as a seed, with a clear error otherwise."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[:2]) or (len(parts) == 3 and parts[2] not in TOPICS):
        raise ParameterError(f"Parameter 'seed_features' takes 'layer:feature' or 'layer:feature:topic'; got {text!r}.")
    return {"layer": int(parts[0]), "feature": int(parts[1]), "topic": parts[2] if len(parts) == 3 else None,
            "name": f"seed {text}"}


# --- SAEs of the three positions ------------------------------------------------------------------
class FlowSAEs:
    """The SAE at each site: resid_post from the subject; mlp_out and attn_out from their own
    sources when given (Gemma Scope has residual and MLP releases, the attention SAE is the user's)."""

    def __init__(self, subject, params: dict):
        self.subject, self.params, self.cache = subject, params, {}

    def __call__(self, site: Site) -> SAE:
        if site not in self.cache:
            self.cache[site] = self._load(site)
        return self.cache[site]

    def _load(self, site: Site) -> SAE:
        p, layer = self.params, site.layer
        if site.position == "mlp_out" and p["mlp_sae_release"]:
            sae = load_sae(p["mlp_sae_release"], p["mlp_sae_id"].format(layer=layer))
        elif site.position == "mlp_out" and p["mlp_sae_path"]:
            sae = load_sae(path=p["mlp_sae_path"].format(layer=layer, position=site.position))
        elif site.position == "attn_out" and p["attn_sae_path"]:
            sae = load_sae(path=p["attn_sae_path"].format(layer=layer, position=site.position))
        else:
            return self.subject.sae(site)
        check_fits(sae, self.subject.lm, site)
        return sae.to(device_of(self.subject.lm))


def predecessor_site(layer: int, position: str) -> Site | None:
    """The site of a predecessor position of resid_post at ``layer`` (None: layer 0 has no R_{L-1} SAE)."""
    if position == "resid_prev":
        return Site(layer - 1) if layer > 0 else None
    return Site(layer, position)


# --- 1. data-free matching ------------------------------------------------------------------------
def top_matches(target: torch.Tensor, source: torch.Tensor, k: int, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of ``target @ source.T`` per target row, ``chunk`` rows at a time: the full [n, m]
    matrix is never built, so memory stays at chunk x m floats. Returns (values, indices) [n, k]."""
    k = min(k, source.shape[0])
    values, indices = [], []
    for start in range(0, target.shape[0], chunk):
        block = target[start : start + chunk] @ source.T
        v, i = block.topk(k, dim=1)
        values.append(v)
        indices.append(i)
        del block
    return torch.cat(values), torch.cat(indices)


def decoder(saes: Callable[[Site], SAE], site: Site) -> torch.Tensor:
    """Unit decoder directions [d_sae, d_model] of the SAE at ``site``."""
    return unit_decoder(saes(site))


def match_layer(saes: Callable[[Site], SAE], layer: int, k: int, chunk: int = 2048) -> dict:
    """For every resid_post feature at ``layer``: top-k cosine matches at each predecessor position,
    as {position: {"sim": [F][k], "idx": [F][k]}} (``resid_prev`` is None at layer 0)."""
    return _match_predecessors(layer, decoder(saes, Site(layer)), lambda site: decoder(saes, site), k, chunk)


def _match_predecessors(layer: int, target: torch.Tensor, rows_at: Callable[[Site], torch.Tensor], k: int,
                        chunk: int) -> dict:
    """Top-k matches of ``target``'s rows among ``rows_at(site)`` for each predecessor site of ``layer``
    ({position: {"sim", "idx"}}, None where the position has no site): shared by cosine and Pearson matching."""
    out = {}
    for position in PREDECESSORS:
        site = predecessor_site(layer, position)
        if site is None:
            out[position] = None
            continue
        sim, idx = top_matches(target, rows_at(site), k, chunk)
        out[position] = {"sim": sim.tolist(), "idx": idx.tolist()}
    return out


def top1(match: dict, position: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, index) of the top-1 match per feature at ``position``; zeros / -1 when missing."""
    m = match[position]
    if m is None:
        return np.zeros(n), np.full(n, -1)
    return np.array(m["sim"])[:, 0], np.array(m["idx"])[:, 0]


# --- 2. categories --------------------------------------------------------------------------------
def categories(match: dict, res_threshold: float, module_threshold: float) -> np.ndarray:
    """Category index (into ``CATEGORIES``) per feature: high s_R alone = translated; high s_R and a
    high module match = processed; a high module match alone = newborn; nothing high = unexplained."""
    n = len(match["attn_out"]["sim"])
    s_r = top1(match, "resid_prev", n)[0] >= res_threshold
    s_mod = np.maximum(top1(match, "attn_out", n)[0], top1(match, "mlp_out", n)[0]) >= module_threshold
    return np.select([s_r & ~s_mod, s_r & s_mod, ~s_r & s_mod], [0, 1, 2], default=3)


def category_rows(matches: dict[int, dict], res_threshold: float, module_threshold: float) -> list[dict]:
    """One row per layer: the share of features in each category."""
    rows = []
    for layer, match in sorted(matches.items()):
        cats = categories(match, res_threshold, module_threshold)
        rows.append({"layer": layer, **{c: float(np.mean(cats == i)) for i, c in enumerate(CATEGORIES)}})
    return rows


def similarity_rows(matches: dict[int, dict]) -> list[dict]:
    """Long table of top-1 similarities (layer, position, similarity) for the distribution figure."""
    rows = []
    for layer, match in sorted(matches.items()):
        n = len(match["attn_out"]["sim"])
        for position in PREDECESSORS:
            if match[position] is not None:
                rows += [{"layer": layer, "position": SHORT[position], "similarity": float(s)}
                         for s in top1(match, position, n)[0]]
    return rows


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


# --- 4. causal validation by deactivation --------------------------------------------------------
def pearson_matches(codes: dict[Site, torch.Tensor], layer: int, k: int, chunk: int = 2048) -> dict:
    """Data-driven baseline: top-k Pearson correlations of each resid_post feature's activation with the
    features of each predecessor position over the corpus tokens (same layout as ``match_layer``)."""
    def standard(z):
        z = z - z.mean(0)
        return (z / z.norm(dim=0).clamp_min(1e-12)).T  # rows = features, unit norm: dot = correlation

    return _match_predecessors(layer, standard(codes[Site(layer)]), lambda site: standard(codes[site]), k, chunk)


def _pooled(match: dict, feature: int, k: int) -> list[tuple[float, str, int]]:
    """(score, position, predecessor) of the top-k at every position, best first."""
    pooled = [(match[p]["sim"][feature][j], p, match[p]["idx"][feature][j])
              for p in PREDECESSORS if match[p] is not None for j in range(min(k, len(match[p]["sim"][feature])))]
    return sorted(pooled, key=lambda t: -t[0])


def picks(cosine: dict, pearson: dict, feature: int, k: int, rng: random.Random) -> dict:
    """Each method's predecessor (position, feature) and the candidate set the exhaustive search covers."""
    cos, cor = _pooled(cosine, feature, k), _pooled(pearson, feature, k)
    cands = list(dict.fromkeys([(p, g) for _, p, g in cos + cor]))
    random_pick = rng.choice(cos[:5])
    return {"top-1 cosine": (cos[0][1], cos[0][2]), "Pearson": (cor[0][1], cor[0][2]),
            "random top-5": (random_pick[1], random_pick[2]), "candidates": cands}


def choose_targets(codes: torch.Tensor, n: int, min_active: int, rng: random.Random) -> list[int]:
    """``n`` features (seeded draw) active on at least ``min_active`` corpus tokens."""
    alive = torch.nonzero((codes > 0).sum(0) >= min_active).flatten().tolist()
    return sorted(rng.sample(alive, min(n, len(alive))))


def scale_edits(saes: Callable[[Site], SAE], rows: list[list[tuple[Site, int]]], factor: float) -> list[ScaleRows]:
    """One ``ScaleRows`` per site: row i scales each (site, feature) of ``rows[i]`` by ``factor``."""
    edits = []
    for site in sorted({s for row in rows for s, _ in row}, key=lambda s: s.order):
        feats = sorted({f for row in rows for s, f in row if s == site})
        factors = torch.full((len(rows), len(feats)), float("nan"))
        for i, row in enumerate(rows):
            for s, f in row:
                if s == site:
                    factors[i, feats.index(f)] = factor
        edits.append(ScaleRows(site=site, sae=saes(site), features=feats, factors=factors))
    return edits


def deactivation_changes(lm, saes, corpus: Corpus, codes: dict[Site, torch.Tensor], layer: int,
                         jobs: list[tuple[int, list[tuple[str, int]]]], batch_size: int) -> list[list[float]]:
    """For each job (target feature, predecessors): the target's mean activation change 1 - z_new/z_old when
    each predecessor alone is removed (r = 0), over the tokens of the target's most active corpus row where
    the target and that predecessor are both active (elsewhere the removal has nothing to remove). A
    predecessor never active with the target there scores 0: it cannot be what drives the target."""
    context = corpus.ids.shape[1]
    z_old = codes[Site(layer)].reshape(len(corpus.ids), context, -1)
    pred_on = {site: codes[site].reshape(len(corpus.ids), context, -1) > 0 for site in codes}
    rows = []  # (job index, candidate index, corpus row, site, predecessor)
    for j, (f, cands) in enumerate(jobs):
        row = int((z_old[:, :, f] > 0).sum(1).argmax())
        rows += [(j, c, row, predecessor_site(layer, p), g) for c, (p, g) in enumerate(cands)]
    changes = [[math.nan] * len(c) for _, c in jobs]
    sae = saes(Site(layer))
    for chunk in batches(rows, batch_size):
        edits = scale_edits(saes, [[(site, g)] for _, _, _, site, g in chunk], 0.0)
        rows_ids = corpus.ids[[r for _, _, r, _, _ in chunk]]
        z_new = sae_codes(lm, {Site(layer): sae}, rows_ids, edits=edits, bos=True).codes[Site(layer)].cpu()
        for i, (j, c, r, site, g) in enumerate(chunk):
            f = jobs[j][0]
            old, new = z_old[r, :, f], z_new[i, :, f]
            on = (old > 0) & pred_on[site][r, :, g]
            changes[j][c] = float((1 - new[on] / old[on]).mean()) if on.any() else 0.0
    return changes


def deactivation_layer(lm, saes, corpus: Corpus, codes: dict, layer: int, cosine: dict, pearson: dict,
                       params: dict) -> list[dict]:
    """The deactivation test at one layer: per target feature, each method's pick and its change."""
    rng = random.Random(params["seed"] * 1000 + layer)
    targets = choose_targets(codes[Site(layer)], params["n_deactivate"], params["min_active_tokens"], rng)
    chosen = [picks(cosine, pearson, f, params["candidates_k"], rng) for f in targets]
    changes = deactivation_changes(lm, saes, corpus, codes, layer, [(f, p["candidates"]) for f, p in zip(targets, chosen)],
                                   params["batch_size"])
    rows = []
    for f, p, change in zip(targets, chosen, changes):
        by = dict(zip(p["candidates"], change))
        best = max(by, key=by.get)
        row = {"layer": layer, "feature": f, "candidates": len(by), "exhaustive": by[best],
               "exhaustive pick": f"{SHORT[best[0]]}:{best[1]}"}
        for method in METHODS[:3]:
            row[method] = by[p[method]]
            row[f"{method} pick"] = f"{SHORT[p[method][0]]}:{p[method][1]}"
        rows.append(row)
    return rows


def deactivation_table(rows: list[dict], success: float) -> list[dict]:
    """The paper's Table 1: per method, mean activation change (95% normal interval over features) and the
    success rate (change >= ``success``, Wilson interval)."""
    out = []
    for method in METHODS:
        values = np.array([r[method] for r in rows])
        mean, half = float(values.mean()), 1.96 * float(values.std(ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else math.nan
        rate, lo, hi = wilson(int((values >= success).sum()), len(values))
        out.append({"method": method, "mean change": mean, "change lo": mean - half, "change hi": mean + half,
                    "success": rate, "success lo": lo, "success hi": hi, "n": len(values)})
    return out


# --- 5. flow graphs -------------------------------------------------------------------------------
def node_id(position: str, layer: int, feature: int) -> str:
    return f"{SHORT.get(position, position)}{layer}:{feature}"


def flow_graph(matches: dict[int, dict], layer: int, feature: int, res_cut: float, module_cut: float,
               max_children: int = 2) -> dict:
    """Nodes and edges of the flow graph of resid_post feature ``feature`` at ``layer``: top-1 residual
    matches chained backward and forward while s_R >= ``res_cut``, plus module predecessors of each
    residual node with similarity >= ``module_cut``."""
    nodes = {node_id("resid_post", layer, feature): {"layer": layer, "position": "resid_post", "feature": feature, "sim": 1.0}}
    edges = []
    f, l = feature, layer
    while l in matches and matches[l]["resid_prev"] is not None:
        s, g = matches[l]["resid_prev"]["sim"][f][0], matches[l]["resid_prev"]["idx"][f][0]
        if s < res_cut:
            break
        nodes[node_id("resid_post", l - 1, g)] = {"layer": l - 1, "position": "resid_post", "feature": g, "sim": s}
        edges.append((node_id("resid_post", l - 1, g), node_id("resid_post", l, f), s))
        f, l = g, l - 1
    frontier, l = [feature], layer
    while l + 1 in matches and frontier:
        prev = matches[l + 1]["resid_prev"]
        sims, idx = np.array(prev["sim"])[:, 0], np.array(prev["idx"])[:, 0]
        nxt = []
        for parent in frontier:
            kids = [int(c) for c in np.flatnonzero((idx == parent) & (sims >= res_cut))]
            for c in sorted(kids, key=lambda c: -sims[c])[:max_children]:
                nodes[node_id("resid_post", l + 1, c)] = {"layer": l + 1, "position": "resid_post", "feature": c, "sim": float(sims[c])}
                edges.append((node_id("resid_post", l, parent), node_id("resid_post", l + 1, c), float(sims[c])))
                nxt.append(c)
        frontier, l = nxt, l + 1
    for key, node in list(nodes.items()):
        match = matches.get(node["layer"])
        for position in ("attn_out", "mlp_out"):
            if match is None:
                continue
            s, g = match[position]["sim"][node["feature"]][0], match[position]["idx"][node["feature"]][0]
            if s >= module_cut:
                mid = node_id(position, node["layer"], g)
                nodes[mid] = {"layer": node["layer"], "position": position, "feature": g, "sim": s}
                edges.append((mid, key, s))
    return {"seed": node_id("resid_post", layer, feature), "nodes": nodes, "edges": edges}


def residual_chain(graph: dict) -> dict[int, int]:
    """Layer -> resid_post feature of the graph, the seed's lineage first (the best-matching branch forward)."""
    chain: dict[int, tuple[float, int]] = {}
    for node in graph["nodes"].values():
        if node["position"] == "resid_post":
            best = chain.get(node["layer"])
            if best is None or node["sim"] > best[0]:
                chain[node["layer"]] = (node["sim"], node["feature"])
    return {layer: f for layer, (_, f) in sorted(chain.items())}


def top_tokens(codes: torch.Tensor, token_ids: torch.Tensor, tokenizer, feature: int, n: int = 3) -> list[str]:
    """The ``n`` distinct tokens on which ``feature`` fires hardest in the corpus (a node's label)."""
    z = codes[:, feature]
    words: list[str] = []
    for i in torch.argsort(z, descending=True).tolist():
        if z[i] <= 0 or len(words) == n:
            break
        word = tokenizer.convert_ids_to_tokens(int(token_ids[i]))
        if word not in words:
            words.append(word)
    return words


def node_site(node: dict) -> Site:
    return Site(node["layer"], node["position"])


def label_graph(graph: dict, codes: dict[Site, torch.Tensor], corpus: Corpus, tokenizer, topic: str | None) -> dict:
    """Each node's top tokens and, when the corpus has labels and the seed a topic, its AUROC for the
    topic's tokens against the other topics' tokens (ground truth: does the graph stay on topic?)."""
    flat = corpus.ids.flatten()
    labels = np.array(corpus.labels) if corpus.labels is not None else None
    for node in graph["nodes"].values():
        z = codes[node_site(node)]
        node["label"] = " ".join(top_tokens(z, flat, tokenizer, node["feature"]))
        node["topic_auroc"] = None
        if topic is not None and labels is not None:
            mask = np.char.startswith(labels.astype(str), "topic:")
            positive = labels[mask] == f"topic:{topic}"
            if positive.any() and (~positive).any():
                node["topic_auroc"] = float(auroc(z[torch.as_tensor(mask)][:, [node["feature"]]].numpy(), positive)[0])
    return graph


def seeds(params: dict, probes: dict | None, refusal: dict | None, n_layers: int) -> list[dict]:
    """The graphs' seeds: chapter A's refusal feature (or the best refusal probe), the best probe feature
    of each topic at the seed layer, and any explicit ``layer:feature`` seeds."""
    layer = params["seed_layer"] if params["seed_layer"] is not None else n_layers // 2
    out = []
    if refusal is not None:
        out.append(refusal)
    if probes is not None:
        for topic in params["seed_topics"]:
            best = probes[f"topic:{topic}"][str(Site(layer))]
            out.append({"layer": layer, "feature": best["feature"], "topic": topic, "name": f"topic {topic}",
                        "source": f"best probe feature for topic:{topic} at {Site(layer)} (AUROC {best['auroc']:.3f})"})
    out += [parse_seed(s) | {"source": "parameter seed_features"} for s in params["seed_features"]]
    return out


def refusal_seed(chapter_a: dict | None, probes: dict | None, layers: Sequence[int]) -> dict | None:
    """Chapter A's refusal feature when its results exist and its layer is among the matched ``layers``,
    else the best refusal probe feature over those layers' resid_post sites (the source is recorded)."""
    if chapter_a is not None and chapter_a["results"]["layer"] in layers:
        r = chapter_a["results"]
        return {"layer": r["layer"], "feature": r["feature"], "topic": None, "name": "refusal",
                "source": "chapter A's steered feature (its results file for this setting)"}
    if probes is None:
        return None
    site = max((Site(layer) for layer in layers), key=lambda s: probes["refusal"][str(s)]["auroc"])
    best = probes["refusal"][str(site)]
    return {"layer": site.layer, "feature": best["feature"], "topic": None, "name": "refusal",
            "source": f"best refusal probe feature ({site}, AUROC {best['auroc']:.3f}); chapter A's feature absent or unmatched"}


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


def steer_configs(graphs: list[dict], coefficients: Sequence[float], schedules: Sequence[str], alpha: float) -> list[dict]:
    """Baseline, then per topic graph and coefficient: single-layer (at the seed layer) and each cumulative
    schedule over the graph's residual layers up to the seed layer."""
    configs = [{"topic": None, "schedule": "none", "s": 0.0, "coeffs": {}}]
    for g in graphs:
        chain = {layer: f for layer, f in g["chain"].items() if layer <= g["seed"]["layer"]}
        for s in coefficients:
            for kind in ("single", *schedules):
                coeffs = {layer: (chain[layer], c) for layer, c in schedule(kind, list(chain), s, alpha).items()}
                configs.append({"topic": g["seed"]["topic"], "schedule": kind, "s": s, "coeffs": coeffs})
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


def deactivate_graph(lm, saes, graphs: list[dict], prompts: dict[str, list[str]], factors: Sequence[float],
                     params: dict) -> list[dict]:
    """Scale every residual feature of each topic graph by r (all graph layers at once) on prompts about
    that topic; r = 1 is the unsteered baseline. One row per (topic, r, prompt)."""
    jobs = [(g["seed"]["topic"], r, p) for g in graphs for r in (1.0, *factors) for p in prompts[g["seed"]["topic"]]]
    chains = {g["seed"]["topic"]: g["chain"] for g in graphs}

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


# --- 7. claims ------------------------------------------------------------------------------------


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
