"""Chapter B (Mayne et al.): the notebook's parameters, their checks and the claims table. The method is in ``analyses.decomposition``.

Every verdict comes from a 95% interval (``core.stats.verdict``): v is rebuilt on
build pairs resampled by cluster for claims 1-3, held-out pairs are resampled by
cluster for claims 4 and 6, features for claim 5. The thresholds are parameters,
fixed in the parameter file before any evaluation, and recorded with each row.
"""

from __future__ import annotations

from saesteer.analyses.decomposition import BEHAVIOURS, paired
from saesteer.core.files import resolve
from saesteer.core.stats import combine, verdict
from saesteer.study.params import Param, ParameterError, check_layer
from saesteer.study.results import claim
from saesteer.study.subjects import SUBJECT_PARAMS

PARAMS = {  # the chapter's parameters
    "setting": Param(str),  # results go to data/results/<setting>/steering_vector_decomposition/
    **SUBJECT_PARAMS,
    "pairs": Param(str),  # "organism" or a JSONL file of contrastive pairs (see ``load_pairs``)
    "behaviour": Param(str),  # the organism's behaviour when pairs is "organism": refusal or corrigibility
    "sae_families": Param(list, items=str, nonempty=True),  # SAE architectures compared (organism, or sae_path with {architecture}); the first gives the claims
    "norm_text": Param(str, optional=True, exists=True),  # text whose token norms are "real activations"
    "layer": Param(int, min=0, optional=True),  # resid_post layer analysed; null = the most steerable
    "layers": Param(list, items=int),  # layers whose steerability is measured (empty = every layer)
    "n_pairs": Param(int, min=2, max=5000),  # selection pairs the vectors are built on
    "n_choose": Param(int, min=2, max=5000),  # further selection pairs the layer is chosen on
    "n_eval": Param(int, min=2, max=5000),  # held-out pairs every claim is measured on
    "multipliers": Param(list, items=float, nonempty=True),  # the steerability sweep, in multiples of v
    "headline_multiplier": Param(float),  # the multiplier of the steering claim (one of multipliers)
    "scales": Param(list, items=float, min=0.0, nonempty=True),  # the a of encode(a v) (must include 1.0)
    "top_k": Param(int, min=1, max=50),  # latents per encoding (the paper's Table 1 has 5)
    "recon_k": Param(int, min=1, max=512),  # features each alternative keeps for its steering reconstruction
    "gt_margin": Param(float, min=0.0, max=0.5),  # a ground-truth feature has |AUROC - 0.5| at least this
    "far_below": Param(float, min=0.0, max=1.0),  # claim 1: "far below" = fewer real tokens than this share under |v|
    "dominance": Param(float, min=0.0, max=1.0),  # claims 2-3: "dominated" = more than this share of the top k are encode(0)'s
    "mirror_cosine": Param(float, min=-1.0, max=0.0),  # claim 4: a mirror's decoder cosine is at most this
    "sensitivity_ks": Param(list, items=int, nonempty=True),  # claim 5's sensitivity: other k ...
    "sensitivity_margins": Param(list, items=float, nonempty=True),  # ... and other ground-truth margins
    "n_norm_tokens": Param(int, min=100, max=1_000_000),  # real-activation tokens for the norm histogram
    "draws": Param(int, min=100, max=10_000),  # bootstrap draws of every interval
    "batch_size": Param(int, min=1, max=8192),  # rows per forward pass
    "seed": Param(int, min=0),
    "compare_with": Param(list, items=str),  # settings of this chapter on other subjects, shown beside this one
}


def check_params(params: dict) -> None:
    """Cross-parameter checks the specs cannot express."""
    if params["headline_multiplier"] not in params["multipliers"] or params["headline_multiplier"] <= 0:
        raise ParameterError(f"Parameter 'headline_multiplier' must be a positive one of multipliers {params['multipliers']}; "
                             f"got {params['headline_multiplier']!r}.")
    if 0.0 not in params["multipliers"]:
        raise ParameterError("Parameter 'multipliers' must include 0.0, the unsteered baseline.")
    if 1.0 not in params["scales"]:
        raise ParameterError(f"Parameter 'scales' must include 1.0 (encode(v) itself); got {params['scales']}.")
    if params["pairs"] != "organism" and not resolve(params["pairs"]).is_file():
        raise ParameterError(f"Parameter 'pairs' must be 'organism' or an existing JSONL file; got {params['pairs']!r}.")
    if params["behaviour"] not in BEHAVIOURS:
        raise ParameterError(f"Parameter 'behaviour' must be one of {', '.join(BEHAVIOURS)}; got {params['behaviour']!r}.")
    unknown = [f for f in params["sae_families"] if f not in ("jumprelu", "topk")]
    if unknown or len(set(params["sae_families"])) < len(params["sae_families"]):
        raise ParameterError(f"Parameter 'sae_families' must list distinct SAEs among jumprelu, topk; got {params['sae_families']}.")


def check_layers(params: dict, n_layers: int) -> None:
    """The analysed layer and the swept layers must exist in the model; the analysed one must be swept."""
    for layer in params["layers"]:
        check_layer("layers", layer, n_layers)
    if params["layer"] is not None:
        check_layer("layer", params["layer"], n_layers)
        if params["layers"] and params["layer"] not in params["layers"]:
            raise ParameterError(f"Parameter 'layer' ({params['layer']}) must be one of layers {params['layers']}, "
                                 "whose vectors are built.")


def concept(params: dict) -> str | None:
    """The planted concept that is the ground truth of claim 5, or None (a pair file, or no planted concept)."""
    return BEHAVIOURS[params["behaviour"]][3] if params["pairs"] == "organism" else None


# --- claims ------------------------------------------------------------------------------------------
def claims(analysis: dict, steering: list[dict], context: dict) -> list[dict]:
    """The paper's six claims on the first SAE of ``analysis``. ``context``: the parameters ``params``, the layer
    choice ``layer`` (a ``splits.choice`` record), ``n_build`` / ``n_eval`` pairs and clusters, the ``unit`` of
    resampling, and the held-out pairs' ``clusters``."""
    name = next(iter(analysis["saes"]))
    return [claim_norm(analysis, context), claim_bias(analysis, name, context), claim_scaling(analysis, name, context),
            claim_negative(analysis["saes"][name], context), claim_alternatives(analysis["saes"][name], context),
            claim_steering(steering, context)]


def comparison_claims(analysis: dict, context: dict) -> list[dict]:
    """Claims 2 and 3 on every other SAE of ``analysis`` (the architecture comparison), with the SAE named."""
    return [c(analysis, name, context) for name in list(analysis["saes"])[1:] for c in (claim_bias, claim_scaling)]


def _layer_choice(context: dict) -> dict[str, str]:
    choice = context["layer"]
    return {"layer": f"{choice['made on']}: {choice['rule']} (layer {choice['value']})"}


def _fmt(lo: float, hi: float, digits: int = 3) -> str:
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def claim_norm(analysis: dict, context: dict) -> dict:
    """Reproduced when the share of real tokens below |v| is under ``far_below`` over the whole interval."""
    norms, iv = analysis["norms"], analysis["norm_intervals"]
    share, far = iv["share_below_v"], context["params"]["far_below"]
    return claim(1, "A steering vector's norm is far below the norms of real activations",
                 "|v| far below the real-norm distribution (200k tokens)",
                 f"|v| = {norms['v_norm']:.2f} = {norms['ratio_to_median']:.3f} x median real norm; "
                 f"{100 * norms['share_below_v']:.1f}% of real tokens below |v|",
                 verdict(share["lo"], share["hi"], far, higher=False),
                 f"The share of {len(norms['norms'])} real tokens with a norm below |v| has the 95% interval "
                 f"{_fmt(100 * share['lo'], 100 * share['hi'], 1)}% when v is rebuilt on resampled pairs.",
                 n=context["n_build"], unit=context["unit"],
                 preregistered=_layer_choice(context) | {"far below": f"parameter file: fewer than {far:.0%} of real tokens under |v|"},
                 caveat=("Real tokens are the organism's held-out dialogues of every kind, not pre-training text."
                         if not context["params"].get("norm_text") else
                         f"Real tokens are {len(norms['norms'])} tokens of held-out text (norm_text), not the paper's 200k."))


def _not_testable_bias(number: int, statement: str, zero: dict, name: str, context: dict) -> dict:
    """Claims 2-3 on a TopK SAE: k features always fire, so no bias feature can dominate a small input."""
    return claim(number, f"{statement} ({name} SAE)", "4 of the top 5 latents shared (4888: 95.0 vs 89.1)",
                 f"encode(0) fires {zero['zero_l0']} features, the largest code {zero['zero_max']:.3f}",
                 "not testable",
                 f"The largest code of encode(0) is {zero['zero_max']:.3f}, {zero['zero_max_over_median']:.1%} of the "
                 "median nonzero code on real tokens.", n=1, unit="none (one SAE)",
                 preregistered={"architecture": "rule fixed before evaluation: a TopK SAE cannot show a bias-dominated code"},
                 caveat=f"A TopK SAE fires its k largest pre-activations whatever the input, and this one's encoder biases "
                        f"give encode(0) a largest code of {zero['zero_max']:.3f}: nothing for a bias to dominate with.")


def claim_bias(analysis: dict, name: str, context: dict) -> dict:
    """Reproduced when more than ``dominance`` of encode(v)'s top-k active latents are encode(0)'s over the
    whole interval; not testable on a TopK SAE."""
    sae, params = analysis["saes"][name], context["params"]
    statement = "encode(v) is dominated by the encoder bias: its top latents are those of encode(0)"
    if sae["zero"]["architecture"] == "topk":
        return _not_testable_bias(2, statement, sae["zero"], name, context)
    table, k = sae["table1"], params["top_k"]
    iv = sae["overlap_intervals"]["1.0"]
    shared = table["scales"][[r["scale"] for r in table["scales"]].index(1.0)]["overlap_with_zero"]
    return claim(2, f"{statement} ({name} SAE)", "4 of the top 5 latents shared (4888: 95.0 vs 89.1)",
                 f"{shared} of the top {k} shared; encode(0) fires {sae['zero']['zero_l0']} features "
                 f"(largest code {sae['zero']['zero_max']:.3f})",
                 verdict(iv["lo"], iv["hi"], params["dominance"]),
                 f"The share of encode(v)'s top {k} active latents that encode(0) also has lies in {_fmt(iv['lo'], iv['hi'], 2)} "
                 "when v is rebuilt on resampled pairs.", n=context["n_build"], unit=context["unit"],
                 preregistered=_layer_choice(context) | _bias_rules(params),
                 caveat=f"encode(0) fires {sae['zero']['zero_l0']} features of this SAE; the paper's Gemma Scope SAE fires its bias "
                        "features at 0 because real activations carry a component that cancels their large positive bias.")


def _bias_rules(params: dict) -> dict[str, str]:
    return {"top k": f"parameter file: {params['top_k']} (the paper's Table 1)",
            "dominated": f"parameter file: more than {params['dominance']:.0%} of the top k shared with encode(0)"}


def claim_scaling(analysis: dict, name: str, context: dict) -> dict:
    """At the first scale where |a v| reaches the median real norm (else the largest): reproduced when more than
    ``dominance`` of the top k are encode(0)'s over the whole interval; not testable on a TopK SAE."""
    sae, params = analysis["saes"][name], context["params"]
    statement = "Scaling v up does not fix the decomposition (bias features persist)"
    if sae["zero"]["architecture"] == "topk":
        return _not_testable_bias(3, statement, sae["zero"], name, context)
    rows = sae["table1"]["scales"]
    row = next((r for r in rows if r["norm_over_median"] >= 1), rows[-1])
    iv = sae["overlap_intervals"][str(float(row["scale"]))]
    return claim(3, f"{statement} ({name} SAE)", "qualitative: still bias-dominated",
                 f"at a = {row['scale']:g} (|a v| = {row['norm_over_median']:.2f} x median real norm) {row['overlap_with_zero']} "
                 f"of the top {params['top_k']} are encode(0)'s",
                 verdict(iv["lo"], iv["hi"], params["dominance"]),
                 f"At that scale the shared share lies in {_fmt(iv['lo'], iv['hi'], 2)} when v is rebuilt on resampled pairs.",
                 n=context["n_build"], unit=context["unit"],
                 preregistered=_layer_choice(context) | _bias_rules(params) | {
                     "scale": "rule fixed before evaluation: the first scale of the parameter file whose |a v| reaches the median real norm"},
                 caveat="The other scales are in the scale table; they never change the verdict.")


def negative_parts(row: dict, diff: dict, mirror_cosine: float) -> dict[str, str]:
    """The verdict of each part of claim 4 for the strongest negative projection."""
    exact = lambda ok: "reproduced" if ok else "not reproduced"  # noqa: E731
    return {"lost": exact(row["code on v"] == 0), "more on negative": verdict(diff["lo"], diff["hi"]),
            "mirror spurious": exact(row["mirror code on v"] > row["mirror code on 0"] and row["mirror cosine"] <= mirror_cosine)}


def claim_negative(sae: dict, context: dict) -> dict:
    """The strongest negative projection (chosen on v, built on selection pairs): its code on v is zero, it is more
    active on the held-out negative answers (clustered interval), and a mirror with decoder cosine at most
    ``mirror_cosine`` fires more on v than on 0; every part must hold."""
    row, diff = sae["negative"]["rows"][0], sae["negative"]["neg_minus_pos"]
    parts = negative_parts(row, diff, context["params"]["mirror_cosine"])
    held = ", ".join(f"{k} {v}" for k, v in parts.items())
    return claim(4, "A strongly negative projection is lost by the encoder and a roughly opposite feature fires instead",
                 "14004: projection -7.27, code 0.00; mirror 3517 (cosine -0.82) active",
                 f"{row['feature']}: projection {row['projection']:.2f}, code {row['code on v']:.2f}; mirror {row['mirror']} "
                 f"(cosine {row['mirror cosine']:.2f}) code on v {row['mirror code on v']:.3f} vs on 0 {row['mirror code on 0']:.3f}",
                 combine(*parts.values()),
                 f"On held-out pairs the feature's code on the negative minus the positive answer is {diff['mean']:+.3f} "
                 f"{_fmt(diff['lo'], diff['hi'])}; parts: {held}.", n=context["n_eval"], unit=context["unit"],
                 preregistered=_layer_choice(context) | {
                     "feature": "selection split: the most negative projection of v (built on selection pairs)",
                     "mirror": f"parameter file: decoder cosine at most {context['params']['mirror_cosine']}"},
                 caveat="Only the single most negative projection is tested; the next ones are in the table and never change the verdict.")


def claim_alternatives(sae: dict, context: dict) -> dict:
    """Reproduced when both alternatives the paper points at (f(a+) - f(a-), signed projection) single out the
    planted concept's features better than encode(v) (recovery AUROC difference above 0 over the whole interval)."""
    params = context["params"]
    statement = "Encoding differences and signed decoder projections recover the behaviour's features"
    if "recovery" not in sae:
        return claim(5, statement, "qualitative (no ground truth in the paper)", "no planted ground truth", "not testable",
                     "This subject plants no concept for the behaviour.", n=0, unit="none",
                     preregistered={"ground truth": "parameter file: the planted concept of the behaviour"},
                     caveat="A ground truth independent of the SAE codes of the pairs needs a planted concept (the organism's "
                            "refusal); ranking features by their codes on the pairs' answers would score the same statistic as f(a+) - f(a-).")
    rec, prec = sae["recovery"], {m["method"]: m["precision"] for m in sae["methods"]}
    alts = ("f(a+) - f(a-)", "signed projection")
    parts = [verdict(rec["methods"][a]["minus_naive_lo"], rec["methods"][a]["minus_naive_hi"]) for a in alts]
    diffs = "; ".join(f"{a} minus encode(v) {rec['methods'][a]['minus_naive']:+.3f} "
                      f"{_fmt(rec['methods'][a]['minus_naive_lo'], rec['methods'][a]['minus_naive_hi'])}" for a in alts)
    return claim(5, statement, "qualitative (no ground truth in the paper)",
                 "recovery AUROC " + ", ".join(f"{m} {r['auroc']:.2f}" for m, r in rec["methods"].items())
                 + f"; precision at {params['top_k']} " + ", ".join(f"{m} {p:.0%}" for m, p in prec.items()),
                 combine(*parts), f"Recovery AUROC differences over {rec['n_features']} features: {diffs}.",
                 n=rec["n_features"], unit="SAE feature",
                 preregistered=_layer_choice(context) | {
                     "ground truth": f"planted labels: the {concept(params)} concept's AUROC on held-out labelled dialogues",
                     "margin": f"parameter file: |AUROC - 0.5| at least {params['gt_margin']}",
                     "k": f"parameter file: precision at {params['top_k']}"},
                 caveat=f"{rec['n_truth']} of {rec['n_features']} features are ground truth; it reads planted refusal spans of other "
                        "dialogues, which f(a+) - f(a-) resembles more than the others (it also reads codes on a refusal's first word). "
                        "Other k and margins are in the sensitivity figure and never change the verdict.")


def claim_steering(rows: list[dict], context: dict) -> dict:
    """Reproduced when v's P shift minus the reconstruction's, paired on held-out pairs, is above 0 over the whole
    clustered interval; inconclusive when the interval straddles 0."""
    m = context["params"]["headline_multiplier"]
    at = [r for r in rows if r["multiplier"] == m]
    by = {r["vector"]: r for r in at}
    diff = paired(at, "v", "SAE reconstruction", context["clusters"])
    fmt = lambda r: f"{r['p_shift']:+.3f} {_fmt(r['p_lo'], r['p_hi'])}"  # noqa: E731
    return claim(6, "Steering with the SAE reconstruction of v is weaker than steering with v",
                 "qualitative (the reconstruction loses the bias-free and negative components)",
                 f"shift of P(positive) at {m:g} v: v {fmt(by['v'])}, reconstruction {fmt(by['SAE reconstruction'])}",
                 verdict(diff[1], diff[2]),
                 f"Paired on held-out pairs, v's shift minus the reconstruction's is {diff[0]:+.3f} {_fmt(diff[1], diff[2])}.",
                 n=context["n_eval"], unit=context["unit"],
                 preregistered=_layer_choice(context) | {
                     "multiplier": f"parameter file: {m:g} x v, every vector rescaled to |v|",
                     "behaviour": "parameter file: P(positive) / (P(positive) + P(negative)) at the first answer token"},
                 caveat="Other multipliers are in the sensitivity figure and never change the verdict.")
