"""Chapter D (Arad et al.): the notebook's parameters, their checks, the claims table and the figures. The method is in ``analyses.scores``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from saesteer.analyses.scores import classify
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
    "gen_features": Param(int, min=2, max=100_000),  # random features per layer whose steering is measured
    "sweep_features": Param(int, min=1, max=100_000),  # features (over all layers) in the factor sweep
    "factors": Param(list, items=float, min=0.0, nonempty=True),  # the factor sweep
    "thresholds": Param(list, items=float, nonempty=True),  # output-score thresholds of the filter curve
    "random_draws": Param(int, min=1, max=1000),  # random filters of the same size per threshold
    "hybrid_cut": Param(float, min=0.0),  # a score at least this high counts as "high" (hybrids: both high)
    "topic_lens_min": Param(int, min=1),  # lens tokens from one topic's vocabulary that make a topic-writing feature
    "batch_size": Param(int, min=1, max=100_000),  # rows per forward or generate call
    "seed": Param(int, min=0),
}


def check_params(params: dict) -> None:
    """Cross-parameter checks the specs cannot express."""
    if params["min_examples"] > params["max_examples"]:
        raise ParameterError(f"Parameter 'min_examples' must not exceed max_examples ({params['max_examples']}); "
                             f"got {params['min_examples']!r}.")


def check_layers(params: dict, n_layers: int) -> None:
    """The scored layers must exist in the model."""
    for layer in params["layers"]:
        check_layer("layers", layer, n_layers)


def claims(trend: Sequence[dict], rows: Sequence[dict], curves: dict[float, list[dict]], factor: float, examples: dict,
           cut: float) -> list[dict]:
    """The paper's claims (layer trend, rare hybrids, filter gain, random control, worked examples) with verdicts
    from fixed rules; the filter claims at the rule's ``factor``, the other factors' curves given as evidence."""
    filtered = _claims_filter(curves[factor])
    for c in filtered:
        c["this study"] = f"factor {factor:g} (the rule's): " + c["this study"]
    for other, curve in curves.items():
        if other == factor:
            continue
        for mine, theirs in zip(filtered, _claims_filter(curve)):
            mine["this study"] += f"; factor {other:g}: {theirs['this study']}"
            if mine["verdict"] != "reproduced" and theirs["verdict"] == "reproduced":
                mine["verdict"] = "partly"
                mine["evidence"] += f" Reproduced at factor {other:g} only."
    return [_claim_trend(trend), _claim_hybrids(rows, cut), *filtered, _claim_examples(examples, cut)]


def _half(trend: Sequence[dict], early: bool) -> list[dict]:
    return [t for t in trend if (t["depth"] <= 0.5) == early]


def _claim_trend(trend: Sequence[dict]) -> dict:
    early, late = _half(trend, True), _half(trend, False)
    mean = lambda part, key: float(np.nanmean([t[key] for t in part])) if part else float("nan")  # noqa: E731
    in_e, in_l, out_e, out_l = mean(early, "mean S_in"), mean(late, "mean S_in"), mean(early, "mean S_out"), mean(late, "mean S_out")
    both = in_e > in_l and out_l > out_e
    verdict = "reproduced" if both else "partly" if in_e > in_l or out_l > out_e else "not reproduced"
    return claim(1, "Input features dominate early layers, output features late layers",
                 "depth 0-50%: high S_in, S_out ~ 0; depth 66-100%: the reverse",
                 f"mean S_in {in_e:.2f} (depth <= 50%) vs {in_l:.2f} (later); mean S_out {out_e:.3f} vs {out_l:.3f}",
                 verdict, "per layer (S_in, S_out): " + ", ".join(f"L{t['layer']} ({t['mean S_in']:.2f}, {t['mean S_out']:.3f})" for t in trend))


def _claim_hybrids(rows: Sequence[dict], cut: float) -> dict:
    kinds = [classify(r["S_in"], r["S_out"], cut) for r in rows]
    n_in, n_out, n_hyb = kinds.count("input"), kinds.count("output"), kinds.count("hybrid")
    expected = (n_in + n_hyb) * (n_out + n_hyb) / len(rows)  # if the two were independent
    verdict = "reproduced" if n_hyb < 0.1 * min(n_in + n_hyb, n_out + n_hyb) or n_hyb < 0.5 * expected else (
        "partly" if n_hyb < expected else "not reproduced")
    return claim(2, "High input and high output scores rarely co-occur (features hug the axes)", "few hybrids",
                 f"{n_hyb} hybrids among {len(rows)} features (both scores >= {cut}); {n_in} input, {n_out} output",
                 verdict, f"hybrids expected if the scores were independent: {expected:.1f}.")


def _claims_filter(curve: Sequence[dict]) -> list[dict]:
    base = curve[0]
    usable = [c for c in curve[1:] if c["kept"] >= 5]
    best = max(usable, key=lambda c: c["mean"]) if usable else base
    gain = best["mean"] / base["mean"] if base["mean"] > 0.01 else float("inf")  # no gain unfiltered: any gain is "x-fold"
    above = best["lo"] > base["hi"]
    verdict = "reproduced" if gain >= 2 and above else "partly" if above else "not reproduced"
    c3 = claim(3, "Filtering out low-output-score features gives 2-3x better steering", "GenSuccess@20 0.5-0.6 -> 1.1-1.4 (threshold 0.9)",
               f"mean GenSuccess gain {base['mean']:.2f} [{base['lo']:.2f}, {base['hi']:.2f}] (no filter, {base['kept']} features) -> "
               f"{best['mean']:.2f} [{best['lo']:.2f}, {best['hi']:.2f}] at S_out >= {best['threshold']:g} ({best['kept']} kept): {gain:.1f}x",
               verdict, "GenSuccess gain over unsteered continuations; curve: "
               + ", ".join(f"{c['threshold']}: {c['mean']:.2f} (n={c['kept']})" for c in curve))
    flat = best["random lo"] <= base["mean"] <= best["random hi"]  # random filters reproduce the unfiltered mean
    beaten = best["random hi"] < best["lo"]  # and stay below the output-score filter's interval
    c4 = claim(4, "A random filter of the same size gives no gain", "no gain",
               f"random filter keeping {best['kept']}: {best['random mean']:.2f} [{best['random lo']:.2f}, {best['random hi']:.2f}] "
               f"vs unfiltered {base['mean']:.2f} and output-score filter {best['mean']:.2f} [{best['lo']:.2f}, {best['hi']:.2f}]",
               "reproduced" if flat and beaten else "partly" if flat else "not reproduced",
               "random draws per threshold; interval = 2.5-97.5% of the draws' means.")
    return [c3, c4]


def _claim_examples(examples: dict, cut: float) -> dict:
    inp, out = examples["input feature"], examples["output feature"]
    if inp is None:
        return claim(5, "A high-input-score feature fails to steer; a high-output-score feature steers", "worked examples",
                     "no measured feature with a high input and low output score", "not tested", "")
    gain_in, gain_out = inp["gain"], out["gain"]
    verdict = "reproduced" if gain_out > 2 * max(gain_in, 0.0) + 0.5 and inp["S_in"] >= cut else "partly" if gain_out > gain_in else "not reproduced"
    return claim(5, "A high-input-score feature fails to steer; a high-output-score feature steers", "worked examples",
                 f"L{inp['layer']}/{inp['feature']} (S_in {inp['S_in']:.2f}, S_out {inp['S_out']:.2f}): GenSuccess "
                 f"{inp['baseline']:.2f} -> {inp['gen_success']:.2f}; L{out['layer']}/{out['feature']} (S_in {out['S_in']:.2f}, "
                 f"S_out {out['S_out']:.2f}): {out['baseline']:.2f} -> {out['gen_success']:.2f}", verdict,
                 f"GenSuccess unsteered -> steered at factor {out['factor']:g}.")


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
    """The factor sweep: mean GenSuccess and perplexity per factor, the chosen one marked."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    f = [r["factor"] for r in rows]
    ax.plot(f, [r["gen_success"] for r in rows], "-o", color="C3", label="mean GenSuccess@k")
    ax.axvline(chosen, color="k", ls="--", lw=1, label=f"chosen factor {chosen:g}")
    ax.set(xscale="log", title="Factor sweep", xlabel="steering factor s (times the largest code, log scale)",
           ylabel="mean GenSuccess@k")
    twin = ax.twinx()
    twin.plot(f, [r["perplexity"] for r in rows], "-s", color="C0", label="mean perplexity (unsteered organism)")
    twin.set(ylabel="perplexity", yscale="log")
    lines = ax.get_legend_handles_labels(), twin.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize=8, loc="upper left")
    return ax
