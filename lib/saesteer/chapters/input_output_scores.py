"""Chapter D (Arad et al.): the notebook's parameters, their checks, the coherence model, the measurements the
claims rest on, the claims table and the figures. The method is in ``analyses.scores``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from saesteer.analyses import scores as io
from saesteer.core.splits import choice
from saesteer.core.stats import bootstrap_mean, combine, verdict
from saesteer.study.judges import check_coherence_model
from saesteer.study.params import Param, ParameterError, check_layer
from saesteer.study.results import claim
from saesteer.study.subjects import SUBJECT_PARAMS

PARAMS = {  # the chapter's parameters
    "setting": Param(str),  # results go to data/results/<setting>/input_output_scores/
    **SUBJECT_PARAMS,
    "layers": Param(list, items=int, min=0),  # resid_post layers scored (empty = every layer)
    "max_features": Param(int, min=1, optional=True),  # features scored per layer (null = all of them)
    "lens_k": Param(int, min=1, max=200),  # tokens in a feature's logit lens
    "corpus_text": Param(str, optional=True, exists=True),  # text file, one document per line (null = organism corpus)
    "corpus_docs": Param(int, min=20, max=1_000_000),  # documents in the activation cache
    "min_examples": Param(int, min=1, max=100),  # features with fewer active examples get no input score
    "max_examples": Param(int, min=1, max=100),  # top-activating examples per feature
    "neutral_prompt": Param(str),  # the output score's prompt (the paper's "From my experience,")
    "out_factor": Param(float, min=0.0),  # s of the output score
    "prefixes_text": Param(str, optional=True, exists=True),  # text file of GenSuccess prefixes (null = organism prompts)
    "n_prefixes": Param(int, min=1, max=1000),  # prefixes per steered feature
    "gen_tokens": Param(int, min=1, max=200),  # sampled tokens per continuation
    "temperature": Param(float, min=0.01),  # sampling temperature
    "coherence_model": Param(str),  # perplexity judge, never the steered model: "organism-second" or a model name
    "selection_share": Param(float, min=0.05, max=0.95),  # share of each layer's features in the selection split
    "select_features": Param(int, min=1, max=100_000),  # selection features per layer (factor and threshold rules)
    "gen_features": Param(int, min=2, max=100_000),  # evaluation features per layer (the claims)
    "factors": Param(list, items=float, min=0.0, nonempty=True),  # the factor sweep
    "sweep_evaluation": Param(bool),  # steer held-out features at every factor (sensitivity), or at the rule's only
    "thresholds": Param(list, items=float, nonempty=True),  # output-score thresholds of the filter curve
    "min_kept_share": Param(float, min=0.0, max=1.0),  # the threshold rule keeps at least this share of features
    "filter_margin": Param(float, min=0.0),  # the paper's claimed gain: filtered over unfiltered mean, at least
    "random_draws": Param(int, min=200, max=100_000),  # random filters and bootstrap draws
    "hybrid_cut": Param(float, min=0.0),  # a score at least this high counts as "high" (hybrids: both high)
    "hybrid_cuts": Param(list, items=float, min=0.0, nonempty=True),  # other cuts, for the sensitivity figure only
    "hybrid_margin": Param(float, min=0.0),  # hybrids are rare: fewer than this times independent scores' count
    "n_examples": Param(int, min=1, max=100),  # worked examples of each kind (input, output features)
    "coherence_limit": Param(float, min=1.0),  # a steered text is coherent: perplexity at most this times unsteered
    "topic_lens_min": Param(int, min=1),  # lens tokens from one topic's vocabulary that make a topic-writing feature
    "batch_size": Param(int, min=1, max=100_000),  # rows per forward or generate call
    "seed": Param(int, min=0),
    "compare_with": Param(list, items=str),  # settings of this chapter on other subjects, shown beside this one
}


def check_params(params: dict) -> None:
    """Cross-parameter checks the specs cannot express."""
    if params["min_examples"] > params["max_examples"]:
        raise ParameterError(f"Parameter 'min_examples' must not exceed max_examples ({params['max_examples']}); "
                             f"got {params['min_examples']!r}.")
    check_coherence_model(params)


def check_layers(params: dict, n_layers: int) -> None:
    """The scored layers must exist in the model."""
    for layer in params["layers"]:
        check_layer("layers", layer, n_layers)


# --- measurements ----------------------------------------------------------------------------------------
def _at(gen: Sequence[dict], part: str, factor: float) -> list[dict]:
    return [g for g in gen if g["part"] == part and g["factor"] == factor]


def _arrays(rows_at: Sequence[dict], s_out: dict) -> tuple[np.ndarray, np.ndarray]:
    """GenSuccess gains and output scores of measured features."""
    return np.array([g["gain"] for g in rows_at]), np.array([s_out[(g["layer"], g["feature"])] for g in rows_at])


def measure(rows: Sequence[dict], steer: dict, truth: dict, params: dict) -> dict:
    """Every quantity a claim rests on, with its 95% interval: the layer trend and the hybrid ratio over all
    scored features; the threshold the rule picks on the selection features at the rule's factor; the filter's
    effect, the curve and the worked examples on the evaluation features; the ground-truth groups."""
    draws, seed, cut = params["random_draws"], params["seed"], params["hybrid_cut"]
    s_out = {(r["layer"], r["feature"]): r["S_out"] for r in rows}
    factor = steer["factor"]["factor"]
    gain, scores = _arrays(_at(steer["gen"], "selection", factor), s_out)
    threshold = io.pick_threshold(gain, scores, params["thresholds"], params["min_kept_share"])
    evaluation = _at(steer["gen"], "evaluation", factor)
    gain, scores = _arrays(evaluation, s_out)
    halves = {half: sorted({r["layer"] for r in rows if (r["depth"] <= 0.5) == (half == "early")}) for half in ("early", "late")}
    return {"factor": factor, "threshold": threshold, "halves": halves,
            "S_in early-late": io.trend_difference(rows, "S_in", draws, seed),
            "S_out early-late": io.trend_difference(rows, "S_out", draws, seed),
            "hybrids": io.hybrid_ratio(rows, cut, draws, seed),
            "filter": io.filter_effect(gain, scores, threshold, draws, seed),
            "curve": io.threshold_curve(gain, scores, params["thresholds"], draws, seed),
            "examples": _examples(rows, evaluation, steer["unsteered_perplexity"], params),
            "truth": _truth(rows, steer, truth, params)}


def _examples(rows: Sequence[dict], evaluation: Sequence[dict], base_ppl: float, params: dict) -> dict:
    """The worked examples (the rule on scores alone, in ``io.worked_examples``), their gains, the output
    features' gain over the input features' and the output features' perplexity over unsteered text."""
    ex = io.worked_examples(rows, evaluation, params["hybrid_cut"], params["n_examples"])
    g_in = np.array([e["gain"] for e in ex["input features"]])
    g_out = np.array([e["gain"] for e in ex["output features"]])
    ppl = np.array([e["perplexity"] / base_ppl for e in ex["output features"]])
    nan3 = (float("nan"),) * 3
    return {**ex, "output gain": bootstrap_mean(g_out, params["seed"]) if len(g_out) else nan3,
            "gain difference": io.mean_difference(g_out, g_in, params["random_draws"], params["seed"]),
            "perplexity ratio": bootstrap_mean(ppl, params["seed"]) if len(ppl) else nan3}


def _truth(rows: Sequence[dict], steer: dict, truth: dict, params: dict) -> dict:
    """Topic writers' and detectors' output score against the other evaluation features', and the writers'
    GenSuccess gain against theirs at the strongest factor (where steering visibly changes the text)."""
    writers, detectors = truth.get("topic writers (lens)", {}), truth.get("topic detectors (probes)", {})
    evaluated = [tuple(k) for k in steer["parts"]["evaluation"] if tuple(k) not in writers and tuple(k) not in detectors]
    strongest = max(params["factors"])
    gen_rows = [g for g in steer["gen"] if g["factor"] == strongest and g["part"] in ("evaluation", "ground truth")]
    draws, seed = params["random_draws"], params["seed"]
    return {"writers": len(writers), "detectors": len(detectors), "strongest": strongest,
            "writers output": sum(io.classify(r["S_in"], r["S_out"], params["hybrid_cut"]) in ("output", "hybrid")
                                  for r in rows if (r["layer"], r["feature"]) in writers),
            "detectors output": sum(io.classify(r["S_in"], r["S_out"], params["hybrid_cut"]) in ("output", "hybrid")
                                    for r in rows if (r["layer"], r["feature"]) in detectors),
            "writers S_out": io.group_difference(rows, writers, evaluated, "S_out", draws, seed),
            "detectors S_out": io.group_difference(rows, detectors, evaluated, "S_out", draws, seed),
            "writers gain": io.group_difference(gen_rows, writers, evaluated, "gain", draws, seed)}


def preregistered(measured: dict, steer: dict, params: dict) -> dict:
    """The results file's pre-registered choices: each pick among alternatives, where and by which rule."""
    sel = len(steer["parts"]["selection"])
    return {
        "factor": choice(measured["factor"], f"selection split ({sel} features)", "the paper's rule: maximise mean "
                         "GenSuccess over its best value, divided by mean perplexity over the unsteered one", params["factors"]),
        "threshold": choice(measured["threshold"], f"selection split ({sel} features)", "highest mean GenSuccess gain "
                            f"among thresholds keeping at least {params['min_kept_share']:g} of the features", params["thresholds"]),
        "hybrid_cut": choice(params["hybrid_cut"], "parameter file", "a score at least this high is high", params["hybrid_cuts"]),
        "worked examples": choice(params["n_examples"], "parameter file", "top S_in with S_out below the cut, and top "
                                  "S_out with S_in below the cut, among evaluation features with an input score"),
        "coherence model": choice(params["coherence_model"], "parameter file", "a model other than the steered one"),
    }


# --- claims ------------------------------------------------------------------------------------------------
def _iv(t: Sequence[float], fmt: str = ".2f") -> str:
    """A value and its interval as text: 0.12 [0.05, 0.20]."""
    return f"{t[0]:{fmt}} [{t[1]:{fmt}}, {t[2]:{fmt}}]"


def claims(measured: dict, n_features: int, params: dict) -> list[dict]:
    """The paper's claims with verdicts from ``core.stats`` rules on 95% intervals: layer trend, rare hybrids,
    filter gain, random control, worked examples, and the planted ground truth."""
    return [_claim_trend(measured, n_features), _claim_hybrids(measured["hybrids"], params),
            *_claims_filter(measured, params), _claim_examples(measured["examples"], measured["factor"], params),
            _claim_truth(measured["truth"], params)]


def _claim_trend(m: dict, n: int) -> dict:
    s_in, s_out = m["S_in early-late"], m["S_out early-late"]
    return claim(1, "Input features dominate early layers, output features late layers",
                 "depth 0-50%: high S_in, S_out ~ 0; depth 66-100%: the reverse",
                 f"early minus late mean S_in {_iv(s_in)}; early minus late mean S_out {_iv(s_out, '.3f')}",
                 combine(verdict(s_in[1], s_in[2], 0.0), verdict(s_out[1], s_out[2], 0.0, higher=False)),
                 "Both parts must hold: the input score higher at depth up to 50% than deeper, the output score lower.",
                 n=n, unit="feature", preregistered={"depth halves": "the paper's: relative depth up to 50% against deeper",
                                                     "scored features": "parameter file: layers, max_features"},
                 caveat=f"Each half holds few layers (early {_layers(m['halves']['early'])}, late "
                        f"{_layers(m['halves']['late'])}); the interval resamples features, not layers.")


def _layers(layers: Sequence[int]) -> str:
    return ", ".join(map(str, layers)) or "none"


def _claim_hybrids(h: dict, params: dict) -> dict:
    return claim(2, "High input and high output scores rarely co-occur (features hug the axes)", "few hybrids",
                 f"{h['hybrids']} hybrids among {h['features']} features against {h['expected']:.0f} for independent "
                 f"scores: ratio {h['ratio']:.2f} [{h['lo']:.2f}, {h['hi']:.2f}]",
                 verdict(h["lo"], h["hi"], params["hybrid_margin"], higher=False),
                 f"Hybrids count as rare when they are fewer than {params['hybrid_margin']:g} times the number two "
                 f"independent scores would give, both scores at least {params['hybrid_cut']:g}.",
                 n=h["features"], unit="feature", preregistered={"hybrid_cut": "parameter file (other cuts in the sensitivity figure)",
                                                                "hybrid_margin": "parameter file"},
                 caveat="Features without an input score (too few active documents) are left out.")


def _claims_filter(m: dict, params: dict) -> list[dict]:
    f, s, t = m["filter"], m["factor"], m["threshold"]
    pre = {"factor": f"selection split: the paper's rule picked {s:g}",
           "threshold": f"selection split: highest gain keeping at least {params['min_kept_share']:g} picked {t:g}",
           "success measure": "GenSuccess gain over the feature's own lens tokens in unsteered continuations",
           "filter_margin": "parameter file (the paper's 2x)"}
    caveat = (f"Measured at factor {s:g} only; other factors and thresholds are in the sensitivity figure and do "
              "not change the verdict.")
    c3 = claim(3, "Filtering out low-output-score features gives 2-3x better steering",
               "GenSuccess@20 0.5-0.6 -> 1.1-1.4 (threshold 0.9)",
               f"mean gain {f['unfiltered']:.2f} (all {f['features']}) -> {f['filtered']:.2f} (S_out >= {t:g}, "
               f"{f['kept']} kept): ratio {_iv(f['ratio'])}",
               verdict(f["ratio"][1], f["ratio"][2], params["filter_margin"]),
               f"The ratio's interval resamples held-out features and must lie above {params['filter_margin']:g}; "
               "it is undefined when the unfiltered gain is not reliably positive.",
               n=f["features"], unit="held-out feature", preregistered=pre, caveat=caveat)
    c4 = claim(4, "A random filter of the same size gives no gain (the gain is the output score's)", "no gain",
               f"random filters keeping {f['kept']}: {_iv(f['random'])} ({params['random_draws']} draws); output-score "
               f"filter minus random {_iv(f['over random'])}",
               verdict(f["over random"][1], f["over random"][2], 0.0),
               "Each draw resamples the held-out features and a random subset of the kept size; the filter must beat it.",
               n=f["features"], unit="held-out feature", preregistered=pre, caveat=caveat)
    return [c3, c4]


def _claim_examples(ex: dict, factor: float, params: dict) -> dict:
    n_in, n_out = len(ex["input features"]), len(ex["output features"])
    statement = "A high-input-score feature fails to steer; a high-output-score feature steers (coherently)"
    pre = {"examples": "parameter file: n_examples and the rule on scores alone", "factor": "selection split",
           "coherence_limit": "parameter file", "coherence model": "parameter file: " + params["coherence_model"]}
    if not n_in or not n_out:
        return claim(5, statement, "worked examples", "no evaluated feature fits one of the two kinds", "not testable",
                     "The rule found no example of one kind.", n=n_in + n_out, unit="feature", preregistered=pre,
                     caveat="No evaluated feature with an input score fits the rule for one of the two kinds.")
    gain, diff, ppl = ex["output gain"], ex["gain difference"], ex["perplexity ratio"]
    v = combine(verdict(gain[1], gain[2], 0.0), verdict(diff[1], diff[2], 0.0),
                verdict(ppl[1], ppl[2], params["coherence_limit"], higher=False))
    return claim(5, statement, "worked examples",
                 f"{n_out} output features gain {_iv(gain)}, {_iv(diff)} more than {n_in} input features; their "
                 f"perplexity is {_iv(ppl)} times unsteered text's",
                 v, f"At factor {factor:g}, the output features must gain, gain more than the input features, and keep "
                    f"perplexity under {params['coherence_limit']:g} times that of unsteered text.",
                 n=n_in + n_out, unit="feature", preregistered=pre,
                 caveat="Few features; coherence is perplexity under the coherence model, not a reading.")


def _claim_truth(t: dict, params: dict) -> dict:
    statement = "Features that write a planted topic are output features (implied: the output score finds steerable features)"
    pre = {"topic writers": "parameter file: topic_lens_min (lens drawn from one topic's vocabulary)",
           "hybrid_cut": "parameter file"}
    if not t["writers"]:
        return claim(6, statement, "not tested in the paper", "no topic writers", "not testable",
                     "The subject has no planted topics.", n=0, unit="feature", preregistered=pre,
                     caveat="Only the organism has planted topics to check the scores against.")
    s, g = t["writers S_out"], t["writers gain"]
    return claim(6, statement, "not tested in the paper (no ground truth)",
                 f"{t['writers output']} of {t['writers']} topic writers and {t['detectors output']} of {t['detectors']} "
                 f"topic detectors are output features; writers' S_out minus held-out features' {_iv(s, '.3f')}; their "
                 f"GenSuccess gain at factor {t['strongest']:g} minus held-out features' {_iv(g)}",
                 verdict(s[1], s[2], 0.0),
                 "The verdict is on the writers' output score against held-out features; the steering gain is context.",
                 n=t["writers"], unit="feature", preregistered=pre,
                 caveat="Ground truth exists only on the organism; writers are found from their logit lens.")


# --- figures ---------------------------------------------------------------------------------------------
def plot_trend(trend, ax=None):
    """Mean S_in and S_out per layer against relative depth, with the share of input and output features."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    depth = [t["depth"] for t in trend]
    ax.plot(depth, [t["mean S_in"] for t in trend], "-o", color="C0", label="mean input score")
    ax.plot(depth, [t["mean S_out"] for t in trend], "-s", color="C3", label="mean output score")
    ax.plot(depth, [t["input share"] for t in trend], ":o", color="C0", alpha=0.6, label="share of input features")
    ax.plot(depth, [t["output share"] for t in trend], ":s", color="C3", alpha=0.6, label="share of output features")
    ax.set(title="Input and output scores by depth", xlabel="relative depth (layer + 1) / n_layers", ylabel="score or share",
           ylim=(-0.05, 1.05))
    ax.legend(fontsize=8)
    return ax


def plot_scatter(rows, cut: float, ax=None):
    """Density of (S_in, S_out) over every feature with an input score, the hybrid corner outlined."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5.5, 4.5))[1]
    pts = np.array([(r["S_in"], r["S_out"]) for r in rows if r["S_in"] == r["S_in"]])
    art = ax.hexbin(pts[:, 0], pts[:, 1], gridsize=25, bins="log", cmap="viridis", mincnt=1)
    plt.colorbar(art, ax=ax, label="features per cell (log scale)")
    ax.add_patch(plt.Rectangle((cut, cut), 1.05 - cut, 1.05 - cut, fill=False, ls="--", ec="r", lw=1.2, label="hybrids"))
    ax.set(title="Input score against output score", xlabel="input score S_in", ylabel="output score S_out")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_curve(curve, ax=None):
    """Mean GenSuccess of the features an output-score threshold keeps, against random filters of the same size."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    x = np.arange(len(curve))
    ax.errorbar(x, [c["mean"] for c in curve], yerr=[[c["mean"] - c["lo"] for c in curve], [c["hi"] - c["mean"] for c in curve]],
                fmt="-o", color="C3", capsize=3, label="kept by S_out >= threshold (95% bootstrap)")
    ax.plot(x, [c["random mean"] for c in curve], "-s", color="0.4", label="random filter, same size (mean of draws)")
    ax.fill_between(x, [c["random lo"] for c in curve], [c["random hi"] for c in curve], color="0.6", alpha=0.3,
                    label="random filter, 2.5-97.5% of draws")
    ax.set_xticks(x, [f"{c['threshold']}\n({c['kept']})" for c in curve], fontsize=8)
    ax.set(title="Steering success after filtering on the output score", xlabel="output-score threshold (features kept)",
           ylabel="mean GenSuccess gain (lens tokens per continuation)")
    ax.legend(fontsize=8)
    return ax


def plot_factors(rows, chosen: float, ax=None):
    """The factor sweep on the selection features: mean GenSuccess and perplexity per factor, the chosen one marked."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    f = [r["factor"] for r in rows]
    ax.plot(f, [r["gen_success"] for r in rows], "-o", color="C3", label="mean GenSuccess@k")
    ax.axvline(chosen, color="k", ls="--", lw=1, label=f"chosen factor {chosen:g}")
    ax.set(xscale="log", title="Factor sweep", xlabel="steering factor s (times the largest code, log scale)",
           ylabel="mean GenSuccess@k")
    twin = ax.twinx()
    twin.plot(f, [r["perplexity"] for r in rows], "-s", color="C0", label="mean perplexity (coherence model)")
    twin.set(ylabel="perplexity", yscale="log")
    lines = ax.get_legend_handles_labels(), twin.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize=8, loc="upper left")
    return ax


def plot_sensitivity(grid, chosen: tuple[float, float], hybrids, cut: float, axes=None):
    """The alternatives: the filter's ratio on held-out features for every factor and threshold (the
    pre-registered pair outlined), and the hybrid ratio for every hybrid cut (the pre-registered one marked)."""
    import matplotlib.pyplot as plt

    axes = axes if axes is not None else plt.subplots(1, 2, figsize=(11, 4.2))[1]
    factors, thresholds = sorted({g["factor"] for g in grid}), sorted({g["threshold"] for g in grid})
    values = np.array([[next(g["ratio"] for g in grid if g["factor"] == f and g["threshold"] == t) for t in thresholds]
                       for f in factors])
    art = axes[0].imshow(values, cmap="viridis", aspect="auto", origin="lower")
    axes[0].grid(False)
    plt.colorbar(art, ax=axes[0], label="filtered over unfiltered mean gain")
    for (i, f), (j, t) in ((a, b) for a in enumerate(factors) for b in enumerate(thresholds)):
        if f == chosen[0] and t == chosen[1]:
            axes[0].add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="r", lw=2))
    axes[0].set_xticks(range(len(thresholds)), [f"{t:g}" for t in thresholds], fontsize=8)
    axes[0].set_yticks(range(len(factors)), [f"{f:g}" for f in factors])
    axes[0].set(title="Filter gain for every factor and threshold (red: pre-registered)",
                xlabel="output-score threshold", ylabel="steering factor s")
    cuts = [h["cut"] for h in hybrids]
    axes[1].errorbar(cuts, [h["ratio"] for h in hybrids], fmt="-o", capsize=3,
                     yerr=[[h["ratio"] - h["lo"] for h in hybrids], [h["hi"] - h["ratio"] for h in hybrids]])
    axes[1].axvline(cut, color="k", ls="--", lw=1, label=f"pre-registered cut {cut:g}")
    axes[1].axhline(1.0, color="0.5", ls=":", lw=1, label="independent scores")
    axes[1].set(title="Hybrids against independence, by cut", xlabel="cut on both scores",
                ylabel="hybrids / independent expectation (95% CI)")
    axes[1].legend(fontsize=8)
    return axes
