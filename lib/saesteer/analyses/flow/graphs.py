"""Chapter C, step 5: flow graphs: top-1 residual matches chained backward and forward from a seed feature, cut
where the similarity drops below the cut, module predecessors attached; node labels and the graphs' seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from saesteer.analyses.flow.corpus import Corpus, corpus_codes, text_corpus
from saesteer.analyses.flow.matching import SHORT
from saesteer.core.hooks import Site
from saesteer.core.stats import auroc
from saesteer.study.params import ParameterError


def parse_seed(text: str) -> dict:
    """``"layer:feature"`` or ``"layer:feature:topic"`` as a seed, with a clear error otherwise (whether the
    topic is one the subject knows is the chapter's check)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[:2]) or (len(parts) == 3 and not parts[2]):
        raise ParameterError(f"Parameter 'seed_features' takes 'layer:feature' or 'layer:feature:topic'; got {text!r}.")
    return {"layer": int(parts[0]), "feature": int(parts[1]), "topic": parts[2] if len(parts) == 3 else None,
            "name": f"seed {text}"}


# --- 5. flow graphs -------------------------------------------------------------------------------
@dataclass
class FlowGraph:
    """A seed feature's flow graph, as the stages after matching take it (labelling, drawing, steering,
    deactivating, the claims, the synthesis) and as the results file keeps it (``to_json``)."""

    seed: dict  # layer, feature, topic (or None), name, and where the seed came from (source)
    nodes: dict[str, dict]  # node id (e.g. "R3:12") -> layer, position, feature, sim; label, topic_auroc once labelled
    edges: list[tuple[str, str, float]]  # (from node, to node, cosine similarity)
    chain: dict[int, int]  # layer -> resid_post feature of the residual chain (``residual_chain``)

    def to_json(self) -> dict:
        return {"seed": self.seed, "chain": self.chain, "nodes": self.nodes, "edges": self.edges}

    @classmethod
    def from_json(cls, data: dict) -> FlowGraph:
        """A graph read back from a results file (JSON turns the chain's layers into strings, edges into lists)."""
        return cls(data["seed"], data["nodes"], [tuple(e) for e in data["edges"]],
                   {int(layer): f for layer, f in data["chain"].items()})


def node_id(position: str, layer: int, feature: int) -> str:
    return f"{SHORT.get(position, position)}{layer}:{feature}"


def flow_graph(matches: dict[int, dict], layer: int, feature: int, res_cut: float, module_cut: float,
               max_children: int = 2, seed: dict | None = None) -> FlowGraph:
    """The flow graph of resid_post feature ``feature`` at ``layer``: top-1 residual matches chained backward
    and forward while s_R >= ``res_cut``, plus module predecessors of each residual node with similarity
    >= ``module_cut``; ``seed`` describes the seed (by default its node id as name, no topic)."""
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
    seed = seed or {"layer": layer, "feature": feature, "topic": None, "name": node_id("resid_post", layer, feature)}
    return FlowGraph(seed, nodes, edges, residual_chain(nodes))


def residual_chain(nodes: dict[str, dict]) -> dict[int, int]:
    """Layer -> resid_post feature among a graph's nodes, the best-matching branch at each layer."""
    chain: dict[int, tuple[float, int]] = {}
    for node in nodes.values():
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


def label_graph(graph: FlowGraph, codes: dict[Site, torch.Tensor], corpus: Corpus, tokenizer) -> FlowGraph:
    """Each node's top tokens and, when the corpus has labels and the seed a topic, its AUROC for the
    topic's tokens against the other topics' tokens (ground truth: does the graph stay on topic?)."""
    flat = corpus.ids.flatten()
    labels = np.array(corpus.labels) if corpus.labels is not None else None
    topic = graph.seed["topic"]
    for node in graph.nodes.values():
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
                        "source": f"best feature for topic:{topic} at {Site(layer)} (AUROC {best['auroc']:.3f})"})
    out += [parse_seed(s) | {"source": "parameter seed_features"} for s in params["seed_features"]]
    return out


def corpus_probes(codes: torch.Tensor, labels: Sequence[str], topics: Sequence[str], site: Site) -> dict:
    """The best feature of each topic at ``site`` on a corpus whose tokens carry ``topic:<name>`` labels: the
    feature whose activation has the highest AUROC for the topic's tokens against every other token. Laid out
    as the organism's probe table ({"topic:<name>": {site: {"feature", "auroc"}}}), so ``seeds`` picks a real
    model's seeds by the same rule as the organism's."""
    labels, out = np.array(labels), {}
    for topic in topics:
        positive = labels == f"topic:{topic}"
        if not positive.any() or positive.all():
            raise ParameterError(f"Parameter 'seed_topics' names {topic!r}, but the selection corpus has no tokens of "
                                 "that source, or nothing else.")
        scores = auroc(codes.float().numpy(), positive)
        best = int(np.nanargmax(scores))
        out[f"topic:{topic}"] = {str(site): {"feature": best, "auroc": float(scores[best])}}
    return out


def selection_probes(lm, saes, params: dict, layer: int) -> dict:
    """``corpus_probes`` at resid_post of ``layer`` on the selection corpus (``selection_text``, packed like the
    data check's corpus): a real model's seeds are chosen on text the chapter's checks never read."""
    corpus = text_corpus(lm.tokenizer, params["selection_text"], params["corpus_rows"], params["context"])
    codes = corpus_codes(lm, saes, [Site(layer)], corpus.ids, params["batch_size"])[Site(layer)]
    return corpus_probes(codes.cpu(), corpus.labels, params["seed_topics"], Site(layer))


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
