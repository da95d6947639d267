"""Synthesis: the four chapters' analyses joined on one feature, chapter A's refusal feature.

1. ``place``: its input and output scores (chapter D) among its layer's features;
2. ``tradeoff_configs``: steering its whole flow graph (chapter C) against clamping it alone, measured
   with chapter A's batched sweep on jailbreak refusal, over-refusal and capability;
3. ``decomposition_ranks``: chapter B's decompositions of a refusal CAA vector, and where they rank it;
4. ``candidate_table`` and ``picks``: chapter A's candidates on held-out items, A's pick against the
   top candidate that passes chapter D's output-score filter.

Every number about the feature is read from the chapters' results files (``load_sources``), never typed.
A's results keep only each layer's best candidate, so ``basis`` recomputes the candidate list with A's own
functions and parameters (and the notebook checks the typical maximum against A's stored one).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from scipy.stats import percentileofscore, spearmanr

from saesteer.analyses import decomposition as svd
from saesteer.analyses import flow as ff
from saesteer.analyses import refusal as rs
from saesteer.analyses import scores as io
from saesteer.core.files import read_json
from saesteer.core.hooks import Site
from saesteer.core.stats import paired_difference
from saesteer.organism.evaluation import NEW_TOKENS
from saesteer.study.params import Param, ParameterError, nearest
from saesteer.study.paths import results_root, shown
from saesteer.study.subjects import SUBJECT_PARAMS

CHAPTERS = ("refusal_steering", "steering_vector_decomposition", "feature_flow", "input_output_scores")
TRADEOFF_KINDS = ("jailbreak", *rs.SAFE, *rs.CAPABILITY)  # what chapter A's trade-off reads
CANDIDATE_KINDS = ("jailbreak", *rs.SAFE)  # refusal gain and over-refusal of each candidate

PARAMS = {  # the chapter's parameters
    "setting": Param(str),  # results go to data/results/<setting>/synthesis/
    "sources": Param(str),  # the setting whose four chapter results are joined
    **SUBJECT_PARAMS,
    "strengths": Param(list, items=float, min=0.0, nonempty=True),  # clamp multiples (of the typical maximum) of single vs graph
    "eval_items": Param(int, min=2, max=5000),  # held-out items per behaviour in the graph trade-off sweep
    "candidate_items": Param(int, min=2, max=5000),  # held-out items per behaviour for each candidate
    "candidate_multiple": Param(float, min=0.0, optional=True),  # candidates' clamp; null: A's search_multiple
    "n_pairs": Param(int, min=2, max=5000),  # refusal pairs (selection prompts) of the CAA vector
    "refusal_answer": Param(str),  # the refusal's first word (positive answer of the pairs)
    "compliance_answer": Param(str),  # the compliance's first word (negative answer)
    "batch_size": Param(int, min=1, max=8192),  # rows per generate or forward call
    "seed": Param(int, min=0),
}


def check_params(params: dict) -> None:
    """Cross-parameter checks the specs cannot express."""
    root = results_root()
    if not (root / params["sources"]).is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "runs") if root.is_dir() else []
        hint = nearest(params["sources"], known) or f"the settings with results are {', '.join(known) or 'none'}."
        raise ParameterError(f"Parameter 'sources' is {params['sources']!r}, which has no results under "
                             f"{shown(root)}; {hint}")


# --- the chapters' results ------------------------------------------------------------------------
def load_sources(root: Path, sources: str, model: str) -> dict[str, dict]:
    """The four chapters' results files of setting ``sources`` (``root`` = the results folder), each checked
    to come from the same model; a missing one stops with the command that makes it."""
    out = {}
    for chapter in CHAPTERS:
        path = Path(root) / sources / chapter / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"Chapter {chapter!r} has no results file {shown(path)}; make it with "
                                    f"`python -m saesteer.study.pipeline --only {chapter}` (setting {sources!r}).")
        out[chapter] = read_json(path)
        if out[chapter]["params"]["model"] != model:
            raise ParameterError(f"Parameter 'sources' ({sources!r}) holds {chapter} results of model "
                                 f"{out[chapter]['params']['model']!r}; this notebook's model is {model!r}.")
    return out


def refusal_graph(chapter_c: dict, layer: int, feature: int) -> ff.FlowGraph:
    """Chapter C's flow graph seeded at the refusal feature (integer chain keys), checked against A's feature."""
    graph = next((g for g in chapter_c["results"]["graphs"] if g["seed"]["name"] == "refusal"), None)
    if graph is None or (graph["seed"]["layer"], graph["seed"]["feature"]) != (layer, feature):  # the results file's JSON
        raise ValueError(f"Chapter C's results hold no flow graph seeded at chapter A's refusal feature {feature} "
                         f"(layer {layer}); rerun chapter C after chapter A.")
    return ff.FlowGraph.from_json(graph)


def graph_subject(subject, chapter_c: dict):
    """The subject with chapter C's SAEs at every position (its own attention and MLP SAEs for a real model),
    in the shape chapter A's functions take (``lm`` and ``sae(site)``)."""
    return SimpleNamespace(lm=subject.lm, sae=ff.FlowSAEs(subject, chapter_c["params"]))


def basis(subject, chapter_a: dict, graph: ff.FlowGraph, selection: dict) -> dict:
    """Chapter A's candidates at its layer, recomputed with A's functions and parameters on A's selection
    prompts, and the typical maximum (A's clamp unit) of every feature at A's site and of every graph node."""
    p, site = chapter_a["params"], Site(chapter_a["results"]["layer"])
    transcripts = rs.refusal_transcripts(subject, selection["harmful"][: p["n_archetypal"]], p["refusal_markers"])
    prompts = [i for items in selection.values() for i in items]
    out = {"candidates": rs.candidates(subject, site, transcripts, p["max_candidates"]), "node_scales": {}}
    for s in sorted({site} | {ff.node_site(n) for n in graph.nodes.values()}, key=lambda s: s.order):
        scale = rs.typical_max(subject, s, transcripts, prompts)
        out["scale"] = scale.tolist() if s == site else out.get("scale")
        out["node_scales"] |= {k: float(scale[n["feature"]]) for k, n in graph.nodes.items() if ff.node_site(n) == s}
    return out


# --- 1. input and output scores ----------------------------------------------------------------------
def place(rows: list[dict], layer: int, feature: int, cut: float) -> dict:
    """A feature's scores and their percentiles among its layer's features (S_in over those that have one)."""
    part = [r for r in rows if r["layer"] == layer]
    me = next(r for r in part if r["feature"] == feature)
    s_in = [r["S_in"] for r in part if r["S_in"] == r["S_in"]]
    s_out = [r["S_out"] for r in part]
    has_in = me["S_in"] == me["S_in"]
    return {"layer": layer, "feature": feature, "S_in": me["S_in"], "S_out": me["S_out"],
            "S_in percentile": float(percentileofscore(s_in, me["S_in"], kind="mean")) if has_in else float("nan"),
            "S_out percentile": float(percentileofscore(s_out, me["S_out"], kind="mean")),
            "S_out rank": 1 + sum(s > me["S_out"] for s in s_out), "features": len(part),
            "kind": io.classify(me["S_in"], me["S_out"], cut)}


def layer_picks(chapter_a: dict, rows: list[dict], cut: float) -> list[dict]:
    """Chapter A's pick at every searched layer (the best candidate that passes A's search criterion, else the
    paper's top candidate), placed among its layer's scores (``place``)."""
    out = []
    for layer, s in chapter_a["results"]["search"].items():
        pick = s["best"][0] if s["best"] else s.get("top")
        if pick:
            out.append(place(rows, int(layer), pick["feature"], cut) | {"selection gain": pick["gain"],
                                                                         "passes A's criterion": bool(s["best"])})
    return out


def candidate_scores(rows: list[dict], layer: int, cands: list[dict]) -> list[dict]:
    """Chapter D's score rows of chapter A's candidates at ``layer``, in A's candidate order."""
    by_feature = {r["feature"]: r for r in rows if r["layer"] == layer}
    return [by_feature[c["feature"]] for c in cands]


def plot_scores(rows: list[dict], layer: int, feature: int, candidates: list[int], cut: float, ax=None):
    """S_in against S_out of every feature at ``layer`` (no S_in: drawn at -0.1), A's candidates and feature marked."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4.5))[1]
    part = {r["feature"]: r for r in rows if r["layer"] == layer}
    x = lambda fs: [part[f]["S_in"] if part[f]["S_in"] == part[f]["S_in"] else -0.1 for f in fs]  # noqa: E731
    y = lambda fs: [part[f]["S_out"] for f in fs]  # noqa: E731
    ax.scatter(x(part), y(part), s=8, color="0.7", label=f"features of layer {layer}")
    others = [f for f in candidates if f != feature]
    ax.scatter(x(others), y(others), s=30, color="C1", edgecolor="k", lw=0.5, label="chapter A's other candidates")
    ax.scatter(x([feature]), y([feature]), s=220, marker="*", color="C3", edgecolor="k", label=f"refusal feature {feature}")
    ax.axhline(cut, color="C0", ls="--", lw=1, label=f"output-score cut {cut:g} (chapter D)")
    ax.axvline(-0.05, color="0.5", lw=0.6)
    ax.set(title=f"The refusal feature among layer {layer}'s features", xlabel="input score S_in (-0.1: too few examples)",
           ylabel="output score S_out")
    ax.legend(fontsize=7, loc="lower right")
    return ax


def finding_scores(me: dict, cands: list[dict], cut: float) -> str:
    """Where the refusal feature stands on D's two scores, and whether A's candidates share its place."""
    side = {"output": "an output feature", "input": "an input feature", "hybrid": "a hybrid",
            "neither": "neither an input nor an output feature"}[me["kind"]]
    above = sum(c["S_out"] >= cut for c in cands)
    s_in = "no input score" if me["S_in"] != me["S_in"] else f"S_in {me['S_in']:.2f} (percentile {me['S_in percentile']:.0f})"
    return (f"**The refusal feature is {side} by chapter D's rule.** Feature {me['feature']} at layer {me['layer']} has "
            f"{s_in} and S_out {me['S_out']:.2f} (percentile {me['S_out percentile']:.0f}, rank {me['S_out rank']} of "
            f"{me['features']} features of its layer). Of chapter A's {len(cands)} candidates at that layer, {above} reach "
            f"S_out >= {cut:g}; " + ("the feature that steers refusal is one of them, as the input/output split predicts."
                                     if me["S_out"] >= cut else "the feature that steers refusal is not, against the "
                                     "input/output split's prediction."))


# --- 2. steering the whole graph --------------------------------------------------------------------
def tradeoff_configs(chapter_a: dict, chapter_c: dict, graph: ff.FlowGraph, base: dict, strengths: list[float], saes) -> list[rs.SweepConfig]:
    """Baseline; at each strength m: A's single-feature clamp (m x typical maximum), every graph node clamped
    (m x its own typical maximum), and chapter C's additive steering with its constant schedule over the
    residual chain, s = m x typical maximum x |d_f| (so the seed layer adds what A's clamp adds at z = 0)."""
    layer, feature = chapter_a["results"]["layer"], chapter_a["results"]["feature"]
    tmax = base["scale"][feature]
    norm = float(saes(Site(layer)).W_dec[feature].detach().norm())
    configs = [rs.SweepConfig("baseline")]
    coefficient = {m: m * tmax * norm for m in strengths}
    added = ff.steer_configs([graph], list(coefficient.values()), ["constant"], chapter_c["params"]["alpha"])
    constant = {c["s"]: c for c in added if c["schedule"] == "constant"}  # C's constant schedule, by coefficient
    for m in strengths:
        configs.append(rs.SweepConfig("refusal feature, clamped (A)", m, feature, m * tmax))
        configs.append(rs.SweepConfig("whole graph, clamped", m, clamps=tuple(
            (ff.node_site(n), n["feature"], m * base["node_scales"][k]) for k, n in graph.nodes.items())))
        chain = constant[coefficient[m]]
        configs.append(rs.SweepConfig("residual chain, added (C)", m, value=chain["s"], coeffs=chain["coeffs"]))
    return configs


def graph_sweep(gsubject, site: Site, configs: list[rs.SweepConfig], sets: dict, markers: list[str], batch_size: int) -> list[dict]:
    """Every config on every item with chapter A's sweep (clamps at any sites) plus chapter C's vectors;
    returned without the answers, the clamps and the vectors, with each item's hit and cluster (what the cache
    keeps, for the paired differences)."""
    extra = lambda rows: ff.add_edits(gsubject.sae, [{"coeffs": c.coeffs or {}} for c in rows])  # noqa: E731
    out = rs.run_sweep(gsubject, site, configs, sets, {}, markers, batch_size, extra_edits=extra)
    return [{k: v for k, v in r.items() if k not in ("clamps", "coeffs")}
            | {"report": {kind: {m: v for m, v in rep.items() if m != "answers"} for kind, rep in r["report"].items()}}
            for r in out]


def comparison_strength(chapter_a: dict) -> float:
    """The strength at which the graph is compared with the single feature: chapter A's balance clamp, chosen
    on A's selection split before any held-out item was steered (the other strengths are shown, not scored)."""
    return float(chapter_a["results"]["operating_points"]["balance"])


def graph_differences(sweep: list[dict], multiple: float) -> dict[str, tuple[float, float, float]]:
    """Whole graph clamped minus the feature alone clamped, at ``multiple``, per behaviour: the mean paired
    difference of per-item hits over the same held-out items, with its 95% interval resampling clusters."""
    by = {(r["name"], r["multiple"]): r["report"] for r in sweep}
    graph, single = by[("whole graph, clamped", multiple)], by[("refusal feature, clamped (A)", multiple)]
    out = {}
    for name, kinds in (("jailbreak refusal", ("jailbreak",)), ("over-refusal", rs.SAFE), ("capability", rs.CAPABILITY)):
        g, clusters = rs.item_hits(graph, kinds)
        out[name] = paired_difference(g, rs.item_hits(single, kinds)[0], clusters)
    return out


def finding_graph(diffs: dict[str, tuple[float, float, float]], multiple: float, n_nodes: int) -> str:
    """Does clamping the whole graph change chapter A's trade-off at A's balance clamp? Each behaviour's paired
    difference with its interval; a change counts only where the interval excludes zero."""
    def shown(name: str) -> str:
        mean, lo, hi = diffs[name]
        way = "higher" if lo > 0 else "lower" if hi < 0 else "no different (the interval spans zero)"
        return f"{name} {way}: {100 * mean:+.0f} points [{100 * lo:+.0f}, {100 * hi:+.0f}]"

    (_, r_lo, r_hi), (_, o_lo, o_hi), (_, c_lo, c_hi) = (diffs[k] for k in ("jailbreak refusal", "over-refusal", "capability"))
    gains, losses = r_lo > 0 or c_lo > 0 or o_hi < 0, r_hi < 0 or c_hi < 0 or o_lo > 0
    lead = {(True, False): "improves", (False, True): "worsens", (True, True): "trades one behaviour for another in",
            (False, False): "does not measurably change"}[(gains, losses)]
    return (f"**Clamping the whole flow graph {lead} chapter A's trade-off at A's balance clamp ({multiple:g}x).** "
            f"Against clamping the refusal feature alone, clamping all {n_nodes} nodes of its graph gives "
            f"{shown('jailbreak refusal')}; {shown('over-refusal')}; {shown('capability')} (paired over the same held-out "
            "items, intervals resampling request pairs and templates). The strength was chosen on chapter A's selection "
            "split; the other strengths are in the figure and decide nothing.")


# --- 3. decomposing the refusal CAA vector ------------------------------------------------------------
def refusal_pairs(subject, n: int, positive: str, negative: str) -> list[svd.Pair]:
    """Contrastive pairs on harmful selection prompts: the refusal's first word against the compliance's."""
    return [svd.Pair(i.prompt, f" {positive}", f" {negative}", "selection") for i in subject.selection_sets(["harmful"], n)["harmful"]]


def rank_of(weights: torch.Tensor, feature: int) -> int | None:
    """1 + the number of features with a larger |weight| (chapter B's ordering); None when the weight is 0."""
    w = weights[feature].abs()
    return None if w == 0 else int((weights.abs() > w).sum()) + 1


def decomposition_ranks(subject, site: Site, feature: int, pairs: list[svd.Pair], k: int, batch_size: int) -> dict:
    """The CAA vector at ``site`` from ``pairs``, chapter B's decompositions of it, and the feature's rank,
    weight and sign under each (with each method's top 5)."""
    vec = svd.caa_vectors(subject.lm, pairs, [site.layer], batch_size)[site.layer]
    sae = subject.sae(site)
    weights = svd.decompositions(sae, vec["v"], vec["pos"], vec["neg"], k)
    rows = [{"method": name, "rank": rank_of(w, feature), "weight": float(w[feature]), "nonzero": int((w != 0).sum()),
             "top 5": [r["feature"] for r in svd.top(w, 5, signed=True)]} for name, w in weights.items()]
    cosine = float(torch.nn.functional.cosine_similarity(vec["v"], sae.W_dec[feature].detach().float(), dim=0))
    return {"v_norm": float(vec["v"].norm()), "cosine": cosine, "pairs": len(pairs), "methods": rows}


def plot_ranks(rows: list[dict], d_sae: int, feature: int, ax=None):
    """The refusal feature's rank under each decomposition (log scale; 'absent' = weight 0)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 3.5))[1]
    ranks = [r["rank"] or d_sae for r in rows]
    ax.barh([r["method"] for r in rows], ranks, color=["C3" if r["rank"] == 1 else "C0" if r["rank"] else "0.7" for r in rows])
    for i, r in enumerate(rows):
        ax.annotate(f"#{r['rank']}" if r["rank"] else "absent (weight 0)", (ranks[i], i), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set(xscale="log", xlim=(0.8, 4 * d_sae), title=f"Rank of refusal feature {feature} in each decomposition",
           xlabel=f"rank by |weight| among {d_sae} features (log scale; 1 = top)", ylabel="decomposition (chapter B)")
    ax.invert_yaxis()
    return ax


def finding_decomposition(result: dict, feature: int) -> str:
    """Which of chapter B's decompositions recover the refusal feature, with its rank under each."""
    rows = result["methods"]
    top = [r["method"] for r in rows if r["rank"] == 1 and r["weight"] > 0]
    ranks = "; ".join(f"{r['method']} " + (f"#{r['rank']}" + (" (negative weight)" if r["weight"] < 0 else "") if r["rank"]
                                          else "absent") for r in rows)
    naive = rows[0]
    lead = (f"**{' and '.join(top)} recover{'s' if len(top) == 1 else ''} the refusal feature as the top feature; the naive "
            f"encoding {'does too' if naive['rank'] == 1 else 'does not'}.**" if top else
            "**No decomposition of the refusal CAA vector ranks the refusal feature first.**")
    return (f"{lead} The refusal CAA vector "
            f"(|v| = {result['v_norm']:.2f}, {result['pairs']} harmful selection prompts) has cosine {result['cosine']:.2f} "
            f"with feature {feature}'s decoder direction. Rank of feature {feature} by |weight|: {ranks}.")


# --- 4. output-score filter against A's search ------------------------------------------------------
def candidate_outcomes(gsubject, site: Site, cands: list[dict], scale: list[float], multiple: float, sets: dict,
                       markers: list[str], batch_size: int) -> rs.Ranking:
    """Chapter A's search (every candidate clamped at ``multiple`` of its typical maximum, one row group each,
    and the unclamped baseline), run on held-out ``sets`` instead of the selection set, with answers as long
    as chapter A's sweep generates (its short search answers would miss loops that start later)."""
    return rs.search(gsubject, site, cands, torch.tensor(scale) * multiple, sets, markers, batch_size,
                     new_tokens=NEW_TOKENS["jailbreak"])


def candidate_table(outcomes: rs.Ranking, cands: list[dict], rows: list[dict], layer: int, cut: float) -> list[dict]:
    """Per candidate, in A's candidate order: its scores, whether it passes the filter, and its held-out
    jailbreak refusal, over-refusal and refusal gain (from A's search run on held-out items)."""
    scores = {r["feature"]: r for r in rows if r["layer"] == layer}
    held = {o["feature"]: o for o in outcomes.ranked}
    return [{"candidate": i + 1, "feature": c["feature"], "refusals": c["refusals"], "S_in": scores[c["feature"]]["S_in"],
             "S_out": scores[c["feature"]]["S_out"], "passes filter": scores[c["feature"]]["S_out"] >= cut,
             "jailbreak refused": held[c["feature"]]["unsafe_refusal"], "over-refusal": held[c["feature"]]["safe_refusal"],
             "refusal gain": held[c["feature"]]["gain"]} for i, c in enumerate(cands)]


def picks(table: list[dict], a_feature: int) -> dict[str, int]:
    """A's pick (its search's top), the first candidate in A's order (no search, no filter), the first that
    passes the output-score filter (no search), and the candidate with the highest output score."""
    out = {"chapter A's search": a_feature, "first candidate": table[0]["feature"]}
    passed = [r["feature"] for r in table if r["passes filter"]]
    if passed:
        out["first candidate passing the filter"] = passed[0]
    out["highest S_out"] = max(table, key=lambda r: r["S_out"])["feature"]
    return out


def pick_configs(chosen: dict[str, int], scale: list[float], multiple: float) -> list[rs.SweepConfig]:
    """Baseline and each distinct pick clamped at ``multiple`` of its typical maximum (A's sweep configs)."""
    feats = list(dict.fromkeys(chosen.values()))
    return [rs.SweepConfig("baseline")] + [rs.SweepConfig(f"feature {f}", multiple, f, multiple * scale[f]) for f in feats]


def pick_summaries(sweep: list[dict]) -> dict:
    """Feature (None for the baseline) -> the headline numbers of its clamp (``rs.summary``)."""
    return {r["feature"]: rs.summary(r["report"]) for r in sweep}


def correlation(table: list[dict]) -> float:
    """Spearman correlation of S_out and held-out refusal gain over the candidates (NaN if either is constant)."""
    x, y = [r["S_out"] for r in table], [r["refusal gain"] for r in table]
    return float(spearmanr(x, y).statistic) if len(set(x)) > 1 and len(set(y)) > 1 else float("nan")


def plot_candidates(table: list[dict], chosen: dict[str, int], cut: float, rho: float, ax=None):
    """Output score against held-out refusal gain per candidate, A's pick and the filtered pick marked."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4.5))[1]
    ax.scatter([r["S_out"] for r in table], [r["refusal gain"] for r in table], s=25, color="C1", edgecolor="k", lw=0.5,
               label="chapter A's candidates")
    row = {r["feature"]: r for r in table}
    for (name, f), marker, color in zip(chosen.items(), ["*", "s", "D", "^"], ["C3", "C7", "C0", "C2"]):
        ax.scatter([row[f]["S_out"]], [row[f]["refusal gain"]], s=200 if marker == "*" else 70, marker=marker, color=color,
                   edgecolor="k", label=f"{name}: {f}", zorder=3)
    ax.axvline(cut, color="C0", ls="--", lw=1, label=f"output-score cut {cut:g} (chapter D)")
    ax.set(title=f"Output score and refusal gain (Spearman rho {rho:.2f})", xlabel="output score S_out (chapter D)",
           ylabel="held-out jailbreak refusal gain (fraction)")
    ax.legend(fontsize=7)
    return ax


def finding_filter(table: list[dict], chosen: dict[str, int], summaries: dict[int, dict], rho: float, cut: float) -> str:
    """A's pick against the output-filtered pick on held-out items, and the rank correlation."""
    row = {r["feature"]: r for r in table}
    a, f = chosen["chapter A's search"], chosen.get("first candidate passing the filter")
    describe = lambda x: (f"feature {x} (S_out {row[x]['S_out']:.2f}): jailbreak refusal gain {100 * row[x]['refusal gain']:+.0f} "  # noqa: E731
                          f"points, over-refusal {100 * row[x]['over-refusal']:.0f}%, capability {100 * summaries[x]['capability']:.0f}%")
    base = summaries[None]
    if f is None:
        head = f"**No candidate passes the output-score filter (S_out >= {cut:g}).**"
        body = f"Chapter A's pick: {describe(a)}."
    else:
        better = row[f]["refusal gain"] > row[a]["refusal gain"]
        same = f == a
        head = ("**The output-score filter picks the same feature as chapter A's search.**" if same else
                f"**The output-score filter's pick {'beats' if better else 'does not beat'} chapter A's search.**")
        body = f"Chapter A's pick: {describe(a)}." + ("" if same else f" First candidate passing S_out >= {cut:g}: {describe(f)}.")
    rank = 1 + sum(r["refusal gain"] > row[a]["refusal gain"] for r in table)
    body += f" On held-out jailbreaks chapter A's pick ranks #{rank} of {len(table)} candidates by refusal gain."
    kept = sum(r["passes filter"] for r in table)
    body += (f" Chapter A's pick passes the filter itself, so the paper's search run only over the {kept} filtered "
             f"candidates would find the same feature with {kept} of {len(table)} clamp tests." if row[a]["passes filter"] else
             " Chapter A's pick fails the filter: a search over the filtered candidates would miss it.")
    strength = "weak" if not abs(rho) >= 0.3 else "moderate" if abs(rho) < 0.6 else "strong"
    return (f"{head} Unsteered capability {100 * base['capability']:.0f}%, jailbreak refusal "
            f"{100 * base['jailbreak_refusal']:.0f}%. {body} {sum(r['passes filter'] for r in table)} of {len(table)} candidates "
            f"pass the filter. Over the candidates, S_out and refusal gain have Spearman rho {rho:.2f} ({strength}), so the "
            f"output score {'ranks' if rho >= 0.3 else 'does not rank'} refusal steering candidates well on the organism.")
