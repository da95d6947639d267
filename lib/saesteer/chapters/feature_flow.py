"""Chapter C (Laptev et al.): the notebook's parameters, their checks, the claims table and the figures. The method is in ``analyses.flow``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from saesteer.analyses.flow import GROUPS, METHODS, SCHEDULES, FlowGraph, parse_seed
from saesteer.organism.language import TOPICS
from saesteer.study.params import Param, ParameterError, check_layer
from saesteer.study.results import claim
from saesteer.study.subjects import SUBJECT_PARAMS

PARAMS = {  # the chapter's parameters
    "setting": Param(str),  # results go to data/results/<setting>/feature_flow/
    **SUBJECT_PARAMS,
    "mlp_sae_release": Param(str, optional=True),  # sae-lens release of the mlp_out SAEs (null: as resid_post)
    "mlp_sae_id": Param(str, optional=True),  # its id template, with {layer}
    "mlp_sae_path": Param(str, optional=True),  # or local mlp_out SAE directories, with {layer}
    "attn_sae_path": Param(str, optional=True),  # local attn_out SAE directories, with {layer} (null: as resid_post)
    "layers": Param(list, items=int, min=0),  # resid_post layers matched (empty = every layer)
    "top_k": Param(int, min=1, max=64),  # matches kept per feature and predecessor position
    "chunk_size": Param(int, min=1, max=65536),  # target features per similarity block (bounds memory)
    "res_threshold": Param(float, min=0.0, max=1.0),  # s_R at or above this is "high" (categories)
    "module_threshold": Param(float, min=0.0, max=1.0),  # s_A or s_M at or above this is "high"
    "corpus_text": Param(str, optional=True, exists=True),  # text file, one document a line (null: organism corpus)
    "corpus_rows": Param(int, min=1, max=100000),  # packed corpus rows for the data check and Pearson
    "context": Param(int, min=4, max=4096),  # tokens per packed corpus row
    "n_deactivate": Param(int, min=1, max=10000),  # target features per layer in the deactivation test
    "min_active_tokens": Param(int, min=1),  # a target must be active on at least this many corpus tokens
    "candidates_k": Param(int, min=1, max=64),  # per position, top-k cosine and top-k Pearson candidates searched
    "success_threshold": Param(float, min=0.0, max=1.0),  # a deactivation succeeds when the change reaches this
    "graph_res_cut": Param(float, min=0.0, max=1.0),  # flow graph: residual chain cut where s_R falls below
    "graph_module_cut": Param(float, min=0.0, max=1.0),  # flow graph: attach module predecessors from here
    "max_children": Param(int, min=1, max=16),  # flow graph: forward branches kept per node
    "seed_topics": Param(list, items=str),  # organism topics whose best probe feature seeds a graph
    "seed_layer": Param(int, min=0, optional=True),  # layer of the seeds (null: the middle layer)
    "seed_features": Param(list, items=str),  # extra seeds "layer:feature" or "layer:feature:topic"
    "steer_coefficients": Param(list, items=float, min=0.0, nonempty=True),  # s, added along unit decoder directions
    "small_coefficients": Param(int, min=1),  # the smallest this many coefficients count as "small"
    "schedules": Param(list, choices=SCHEDULES, nonempty=True),  # cumulative schedules compared with single-layer steering
    "alpha": Param(float),  # exponential schedule: s_l = s exp(alpha l)
    "deactivate_factors": Param(list, items=float, nonempty=True),  # r of the graph deactivation sweep
    "steer_prompts": Param(int, min=1, max=1000),  # prompts per steered topic
    "new_tokens": Param(int, min=1, max=256),  # tokens generated per prompt
    "batch_size": Param(int, min=1, max=8192),  # rows per forward or generate call
    "seed": Param(int, min=0),
}


def check_params(params: dict) -> None:
    """Cross-parameter checks the specs cannot express."""
    for topic in params["seed_topics"]:
        if topic not in TOPICS:
            raise ParameterError(f"Parameter 'seed_topics' must name topics from {', '.join(TOPICS)}; got {topic!r}.")
    for text in params["seed_features"]:
        parse_seed(text)
    if params["small_coefficients"] > len(params["steer_coefficients"]):
        raise ParameterError("Parameter 'small_coefficients' must be at most the number of steer_coefficients.")
    organism = params["model"] == "organism"
    if not any(parse_seed(t)["topic"] for t in params["seed_features"]) and not (organism and params["seed_topics"]):
        raise ParameterError("Parameter 'seed_features' needs at least one 'layer:feature:topic' seed to steer with "
                             "(on the organism, 'seed_topics' can name topics instead).")
    if not organism and params["corpus_text"] is None:
        raise ParameterError("Parameter 'corpus_text' must name a text file for a model other than the organism.")
    if params["mlp_sae_release"] and not params["mlp_sae_id"]:
        raise ParameterError("Parameter 'mlp_sae_id' must name the id template when 'mlp_sae_release' is given.")


def check_layers(params: dict, n_layers: int) -> None:
    """Matched layers, seed layers and explicit seeds must exist, and every seed must sit on a matched layer
    (its graph is drawn from the matches and the corpus codes of the matched layers)."""
    layers = params["layers"] or list(range(n_layers))
    for layer in layers:
        check_layer("layers", layer, n_layers)
    seed_layer = params["seed_layer"] if params["seed_layer"] is not None else n_layers // 2
    named = [("seed_features", parse_seed(s)["layer"]) for s in params["seed_features"]]
    if params["model"] == "organism" and params["seed_topics"]:
        named.append(("seed_layer", seed_layer))
    for name, layer in named:
        check_layer(name, layer, n_layers)
        if layer not in layers:
            raise ParameterError(f"Parameter {name!r} puts a seed at layer {layer}, which is not among the matched "
                                 f"layers {layers}; add it to 'layers' or move the seed.")


def claim_groups(groups: list[dict], agreement: list[dict]) -> dict:
    """"From nowhere" is the commonest group, and cosine categories agree with co-activation."""
    mean = {g: float(np.mean([r[g] for r in groups])) for g in GROUPS}
    top = max(mean, key=mean.get)
    by = {r["category"]: r for r in agreement}
    agree = by["translated"]["RES predecessor active"] > by["newborn"]["RES predecessor active"]
    verdict = "reproduced" if top == "From nowhere" and agree else "partly" if agree or top == "From nowhere" else "not reproduced"
    return claim(1, "Predecessor groups: 'From nowhere' is the commonest group; data-free categories match co-activation",
                 "'From nowhere' commonest on Gemma-2-2B; three depth phases",
                 f"commonest group: {top} ({100 * mean[top]:.0f}% of active pairs); RES predecessor co-active for "
                 f"{100 * by['translated']['RES predecessor active']:.0f}% of translated vs "
                 f"{100 * by['newborn']['RES predecessor active']:.0f}% of newborn pairs", verdict,
                 f"mean group shares over layers: { {g: round(v, 3) for g, v in mean.items()} }.")


def claim_deactivation(table: list[dict]) -> dict:
    """Top-1 cosine about as good as Pearson, close to exhaustive; random top-5 worse."""
    t = {r["method"]: r for r in table}
    cos, cor, rnd, exh = (t[m] for m in METHODS)
    as_good = cos["change hi"] >= cor["change lo"]  # cosine's interval reaches Pearson's
    close = cos["mean change"] >= 0.8 * exh["mean change"]
    worse = rnd["mean change"] < cos["mean change"]
    verdict = "reproduced" if as_good and close and worse else "partly" if as_good or close else "not reproduced"
    fmt = lambda r: f"{r['mean change']:.2f} [{r['change lo']:.2f}, {r['change hi']:.2f}] / {100 * r['success']:.0f}%"  # noqa: E731
    return claim(2, "Top-1 cosine predecessors predict causal dependence about as well as Pearson and close to exhaustive search",
                 "cosine 0.75 / 65%; Pearson 0.74 / 65%; exhaustive 0.83 / 73%; random top-5 worse",
                 f"cosine {fmt(cos)}; Pearson {fmt(cor)}; exhaustive {fmt(exh)}; random top-5 {fmt(rnd)}", verdict,
                 f"n = {cos['n']} features; 'close' = cosine mean change at least 80% of exhaustive's.")


def claim_graphs(graphs: list[FlowGraph], min_auroc: float = 0.7) -> dict:
    """Topic graphs stay on their topic at every layer (ground truth)."""
    topical = [g for g in graphs if g.seed["topic"]]
    stays = {g.seed["topic"]: min(n["topic_auroc"] for n in g.nodes.values() if n["position"] == "resid_post")
             for g in topical if all(n["topic_auroc"] is not None for n in g.nodes.values())}
    if not stays:
        return claim(3, "Flow graphs of a topic feature stay on the topic at every layer", "qualitative (feature descriptions)",
                     "no ground truth for this model", "not tested", "")
    ok = sum(v >= min_auroc for v in stays.values())
    spans = {g.seed["topic"]: len(g.chain) for g in topical}
    verdict = "reproduced" if ok == len(stays) else "partly" if ok else "not reproduced"
    return claim(3, "Flow graphs of a topic feature stay on the topic at every layer", "qualitative (feature descriptions)",
                 f"{ok} of {len(stays)} topic graphs keep topic AUROC >= {min_auroc} at every residual node", verdict,
                 f"lowest residual-node AUROC per topic { {t: round(v, 3) for t, v in stays.items()} }; layers spanned {spans}.")


def claim_cumulative(summary: list[dict], small: Sequence[float]) -> dict:
    """Cumulative steering beats single-layer steering at small coefficients (topic x coherence)."""
    at = {(r["schedule"], r["s"]): r for r in summary}
    wins, evidence = 0, []
    for s in small:
        single = at[("single", s)]
        best = max((r for (k, c), r in at.items() if c == s and k not in ("single", "none")), key=lambda r: r["topic x coherence"])
        beats = best["lo"] > single["hi"]
        wins += beats
        evidence.append(f"s={s:g}: single {single['topic x coherence']:.3f} [{single['lo']:.3f}, {single['hi']:.3f}], "
                        f"{best['schedule']} {best['topic x coherence']:.3f} [{best['lo']:.3f}, {best['hi']:.3f}]")
    higher = sum(max(r["topic x coherence"] for (k, c), r in at.items() if c == s and k not in ("single", "none"))
                 > at[("single", s)]["topic x coherence"] for s in small)
    verdict = "reproduced" if wins == len(small) else "partly" if wins or higher == len(small) else "not reproduced"
    return claim(4, "Cumulative flow-graph steering beats single-layer steering at small coefficients",
                 "cumulative better at small s, less sensitive to hyperparameters",
                 f"best cumulative schedule's interval above single-layer's at {wins} of {len(small)} small coefficients "
                 f"(higher mean at {higher})", verdict, "; ".join(evidence) + ".")


def claim_tradeoff(summary: list[dict]) -> dict:
    """Steering raises the behaviour and lowers coherence."""
    base = next(r for r in summary if r["schedule"] == "none")
    strongest = max(r["s"] for r in summary)
    top = [r for r in summary if r["s"] == strongest and r["schedule"] != "none"]
    up = float(np.mean([r["topic share"] for r in top])) - base["topic share"]
    down = base["coherence"] - float(np.mean([r["coherence"] for r in top]))
    verdict = "reproduced" if up > 0 and down > 0 else "partly" if up > 0 or down > 0 else "not reproduced"
    return claim(5, "Steering raises the behaviour and lowers coherence", "behaviour up, coherence down",
                 f"at s={strongest:g}: topic share {base['topic share']:.2f} -> {base['topic share'] + up:.2f}, coherence "
                 f"{base['coherence']:.2f} -> {base['coherence'] - down:.2f} (mean over schedules)", verdict, "")
