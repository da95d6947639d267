"""Chapter A (O'Brien et al.): the notebook's parameters, their checks, the claims table and the chapter's
figures. The method is in ``analyses.refusal``.

Every verdict comes from ``core.stats.verdict`` on a paired difference (steered minus baseline over the same
held-out items) whose 95% interval resamples clusters (the request pair or template of each item), at the
operating points chosen on the selection split; other clamps appear in the sensitivity rows only.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from saesteer.analyses.refusal import SAFE, UNSAFE, baseline_of, capability_of, item_hits
from saesteer.core.stats import cluster_bootstrap_mean, combine, paired_difference, verdict
from saesteer.organism.evaluation import METRICS, OTHER_METRICS
from saesteer.study.params import Param, ParameterError, check_layer
from saesteer.study.results import claim
from saesteer.study.subjects import SUBJECT_PARAMS

PARAMS = {  # the chapter's parameters
    "setting": Param(str),  # results go to data/results/<setting>/refusal_steering/
    **SUBJECT_PARAMS,
    "refusal_markers": Param(list, items=str, nonempty=True),  # a response opening with one of these is a refusal
    "refusal_classifier": Param(str, optional=True),  # null: the markers judge refusal; else a text-classification model (hub id or local directory) does
    "layer": Param(int, min=0, optional=True),  # resid_post layer steered; null = the layer the search picks
    "search_layers": Param(list, items=int),  # layers searched (empty = every layer)
    "n_archetypal": Param(int, min=1, max=200),  # archetypal harmful prompts whose refusals give candidates
    "max_candidates": Param(int, min=1, max=2000),  # at most this many candidates are steered in the search
    "n_selection": Param(int, min=4, max=2000),  # selection prompts per kind (disjoint from evaluation)
    "search_multiple": Param(float, min=0.0),  # clamp of the search, in multiples of the typical maximum
    "search_min_gain": Param(float, min=0.0, max=1.0),  # a candidate must raise well-formed unsafe refusal by more
    "search_max_degenerate_rise": Param(float, min=0.0, max=1.0),  # ... and degenerate answers by at most this
    "clamp_multiples": Param(list, items=float, min=0.0, nonempty=True),  # the clamp grid, in typical maxima
    "balance_max_capability_loss": Param(float, min=0.0, max=1.0),  # balance clamp: selection capability loss limit
    "balance_max_degenerate": Param(float, min=0.0, max=1.0),  # balance clamp: selection degenerate share limit
    "n_controls": Param(int, min=1, max=100),  # random controls matched on activation frequency
    "control_features": Param(list, items=int, min=0),  # controls; empty = n_controls drawn at random
    "control_share": Param(float, min=0.0, max=1.0),  # "about as much": a control loses at least this share
    "most_share": Param(float, min=0.0, max=1.0),  # "most": conditional steering keeps at least this share
    "role_auroc": Param(float, min=0.5, max=1.0),  # a concept AUROC from which a feature detects / writes it
    "writer_top_k": Param(int, min=1, max=100),  # unembedding tokens searched for a refusal token
    "capability_kinds": Param(list, items=str, nonempty=True),  # capability benchmarks (prompt files), by METRICS
    "eval_items": Param(int, min=2, max=5000),  # held-out items per kind in the sweep
    "batch_size": Param(int, min=1, max=8192),  # rows per generate call
    "n_examples": Param(int, min=1, max=20),  # example generations shown per kind
    "seed": Param(int, min=0),
    "compare_with": Param(list, items=str),  # settings of this chapter on other subjects, shown beside this one
}


def check_params(params: dict) -> None:
    """Cross-parameter checks the specs cannot express: every capability kind is a benchmark the judge knows
    that is not a refusal behaviour (the operating points are chosen on the clamp grid, so any grid will do)."""
    metrics = METRICS | OTHER_METRICS
    for kind in params["capability_kinds"]:
        if metrics.get(kind, "refusal") == "refusal":
            known = sorted(k for k, m in metrics.items() if m != "refusal")
            raise ParameterError(f"Parameter 'capability_kinds' has {kind!r}, which is not a capability benchmark; "
                                 f"use some of {known}.")


def check_layers(params: dict, n_layers: int) -> None:
    """The steered layer and the searched layers must exist in the model."""
    for layer in params["search_layers"]:
        check_layer("search_layers", layer, n_layers)
    if params["layer"] is not None:
        check_layer("layer", params["layer"], n_layers)


# --- paired, clustered differences -------------------------------------------------------------------
def difference(steered: dict, base: dict, kinds: Sequence[str]) -> tuple[float, float, float]:
    """Mean of steered minus baseline hits over the held-out items of ``kinds``, with its 95% interval
    resampling clusters (the same items in both, so the difference is paired)."""
    s, clusters = item_hits(steered, kinds)
    return paired_difference(s, item_hits(base, kinds)[0], clusters)


def rate(report: dict, kinds: Sequence[str]) -> tuple[float, float]:
    """Pooled rate over ``kinds`` and the pooled share of degenerate answers."""
    n = sum(report[k]["n"] for k in kinds)
    return (sum(report[k]["rate"] * report[k]["n"] for k in kinds) / n,
            sum(report[k]["degenerate"] * report[k]["n"] for k in kinds) / n)


def _points(x: float) -> str:
    """A fraction as whole points, without a "-0"."""
    return f"{round(100 * x) + 0:d}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _diff(d: tuple[float, float, float]) -> str:
    return f"{100 * d[0]:+.0f} points [{100 * d[1]:+.0f}, {100 * d[2]:+.0f}]"


def _shown(report: dict, kinds: Sequence[str]) -> str:
    r, deg = rate(report, kinds)
    return f"{_pct(r)} (degenerate {_pct(deg)})"


def _n(report: dict, kinds: Sequence[str]) -> str:
    return f"{sum(report[k]['n'] for k in kinds)} items in {sum(report[k]['clusters'] for k in kinds)} clusters"


def _curve(results: list[dict], base: dict, kinds: Sequence[str]) -> str:
    """Rate over the clamp grid as one plain phrase (evidence, not a verdict)."""
    rows = sorted((r["multiple"], rate(r["report"], kinds)[0]) for r in results if r["name"] == "refusal feature")
    return ", ".join(f"{m:g}x {_pct(v)}" for m, v in rows) + f" (unsteered {_pct(rate(base, kinds)[0])})"


# --- claims ------------------------------------------------------------------------------------
def claims(results: list[dict], points: dict[str, dict], params: dict, found: dict) -> list[dict]:
    """The paper's five claims at the maximum-refusal clamp (the paper's clamp 12), with the balance clamp's
    numbers beside them; ``points`` are the ``splits.choice`` records of the two operating points, ``found``
    says how the feature was chosen (``feature``, ``layer``, ``passed``, ``rule``)."""
    by = {(r["name"], r["multiple"]): r["report"] for r in results}
    top, bal = points["max refusal"]["value"], points["balance"]["value"]
    base = baseline_of(results)["report"]
    steered, balance = by[("refusal feature", top)], by[("refusal feature", bal)]
    pre = {"feature": f"selection split: {found['rule']}",
           "maximum-refusal clamp": f"selection split: {points['max refusal']['rule']} (chose {top:g}x)",
           "margin": "0 (no change), fixed before evaluation"}
    controls = {name: report for (name, m), report in by.items() if name.startswith("control") and m == top}
    caveat = "" if found["passed"] else ("no candidate passed the search criterion (well-formed refusal up, degenerate "
                                         "answers not up); the feature is the paper's pick without it. ")
    return [_claim_refusal(base, steered, balance, results, top, bal, pre, caveat),
            _claim_over_refusal(base, steered, balance, results, top, bal, pre, caveat),
            _claim_capability(base, steered, balance, results, top, bal, pre, caveat),
            _claim_control(base, steered, controls, top, params, pre, caveat),
            _claim_conditional(base, steered, by.get(("conditional", top)), top, params, pre, caveat)]


def falls_between_clamps(results: list[dict], kinds: Sequence[str]) -> list[float]:
    """The clamps of the grid at which the rate over ``kinds`` surely falls from the previous clamp (the paired
    difference's interval lies wholly below zero): where "monotonically in the clamp" fails."""
    grid = sorted((r["multiple"], r["report"]) for r in results if r["name"] == "refusal feature")
    return [m for (_, before), (m, after) in zip(grid, grid[1:]) if difference(after, before, kinds)[2] < 0]


def _claim_refusal(base, steered, balance, results, top, bal, pre, caveat) -> dict:
    direct, escalation = difference(steered, base, UNSAFE[:2]), difference(steered, base, UNSAFE[2:])
    falls = falls_between_clamps(results, UNSAFE[:2])
    v = combine(verdict(direct[1], direct[2]), verdict(escalation[1], escalation[2]),
                "not reproduced" if falls else "reproduced")
    monotone = (f"it surely falls from one clamp to the next at {', '.join(f'{m:g}x' for m in falls)}" if falls
                else "it never surely falls from one clamp to the next")
    study = (f"direct+jailbreak refused {_shown(base, UNSAFE[:2])} -> {_shown(steered, UNSAFE[:2])} at {top:g}x and "
             f"{_shown(balance, UNSAFE[:2])} at the balance clamp {bal:g}x; escalation attack success "
             f"{_pct(1 - rate(base, UNSAFE[2:])[0])} -> {_pct(1 - rate(steered, UNSAFE[2:])[0])}")
    return claim(1, "Clamping the refusal feature raises refusal of unsafe and jailbreak prompts, monotonically in the "
                    "clamp, and lowers multi-turn attack success", "unsafe refused 58% -> 96%; Crescendo success 56% -> 33%",
                 study, v, f"Well-formed refusal changes by {_diff(direct)} on direct and jailbreak prompts and by "
                 f"{_diff(escalation)} on escalations; over the clamp grid jailbreak refusal is {_curve(results, base, ('jailbreak',))}, "
                 f"and direct+jailbreak refusal {monotone}.",
                 n=_n(base, UNSAFE), unit="request pair (verb-object)", preregistered=pre,
                 caveat=caveat + "A rise of any size counts (margin 0, fixed before evaluation; the paper's rise was 38 "
                 "points); monotonicity fails where a step between neighbouring clamps has an interval wholly below zero.")


def _claim_over_refusal(base, steered, balance, results, top, bal, pre, caveat) -> dict:
    d = difference(steered, base, SAFE)
    return claim(2, "Over-refusal of safe prompts rises with the clamp", "safe refused 6% -> 68%",
                 f"{_shown(base, SAFE)} -> {_shown(steered, SAFE)} at {top:g}x; {_shown(balance, SAFE)} at {bal:g}x",
                 verdict(d[1], d[2]), f"Well-formed refusal of safe prompts changes by {_diff(d)}; over the clamp grid it "
                 f"is {_curve(results, base, SAFE)}.", n=_n(base, SAFE), unit="request pair or scary word",
                 preregistered=pre, caveat=caveat)


def _claim_capability(base, steered, balance, results, top, bal, pre, caveat) -> dict:
    d = difference(steered, base, capability_of(base))
    return claim(3, "Capability on refusal-unrelated benchmarks falls", "MMLU 68.8 -> 36.0; GSM8K 82.5 -> 35.6; TruthfulQA 65.0 -> 53.8",
                 f"pooled capability {_shown(base, capability_of(base))} -> {_shown(steered, capability_of(base))} at {top:g}x; "
                 f"{_shown(balance, capability_of(base))} at {bal:g}x", verdict(d[1], d[2], higher=False),
                 f"Pooled capability changes by {_diff(d)}; over the clamp grid it is {_curve(results, base, capability_of(base))}.",
                 n=_n(base, capability_of(base)), unit="question template", preregistered=pre, caveat=caveat)


def control_losses(base: dict, steered: dict, controls: dict[str, dict]) -> tuple[float, dict[str, float]]:
    """Capability loss (baseline minus steered, pooled) of the refusal feature and of each control."""
    loss = lambda report: rate(base, capability_of(base))[0] - rate(report, capability_of(base))[0]  # noqa: E731
    return loss(steered), {name: loss(report) for name, report in controls.items()}


def control_margin(base: dict, steered: dict, controls: dict[str, dict], share: float) -> tuple[float, float, float]:
    """Mean control capability loss minus ``share`` of the refusal feature's, per item, with its clustered
    interval: above 0 means the controls degrade capability "about as much"."""
    b, clusters = item_hits(base, capability_of(base))
    s, _ = item_hits(steered, capability_of(base))
    c = np.mean([item_hits(report, capability_of(base))[0] for report in controls.values()], axis=0)
    return cluster_bootstrap_mean((b - c) - share * (b - s), clusters)


def _claim_control(base, steered, controls, top, params, pre, caveat) -> dict:
    share = params["control_share"]
    feature_loss, losses = control_losses(base, steered, controls)
    margin = control_margin(base, steered, controls, share)
    values = sorted(losses.values())
    return claim(4, "A control feature unrelated to refusal degrades capability about as much",
                 "control (philosophy) feature degrades MMLU/GSM8K comparably",
                 f"capability loss at {top:g}x: refusal feature {100 * feature_loss:.0f} points; {len(values)} controls "
                 f"median {_points(np.median(values))} points (range {_points(values[0])} to {_points(values[-1])})",
                 verdict(margin[1], margin[2]), f"The controls' mean capability loss minus {share:g} of the refusal "
                 f"feature's is {_diff(margin)}.", n=f"{_n(base, capability_of(base))}; {len(values)} controls",
                 unit="question template", preregistered=pre | {
                     "controls": "parameter file: random features matched on activation frequency at the same site, "
                                 "clamped at the same multiple of their own typical maximum",
                     "about as much": f"parameter file: at least {share:g} of the refusal feature's loss (control_share)"},
                 caveat=caveat + "The verdict reads the controls' mean; their median and range are shown beside it.")


def _claim_conditional(base, steered, conditional, top, params, pre, caveat) -> dict:
    share, statement = params["most_share"], "Conditional steering recovers most capability while keeping most of the safety gain"
    gain, loss = difference(steered, base, UNSAFE), difference(steered, base, capability_of(base))
    if conditional is None or gain[1] <= 0 or loss[2] >= 0:
        missing = " and ".join(m for m, absent in [("no safety gain", gain[1] <= 0), ("no capability loss", loss[2] >= 0)]
                               if absent) or "no conditional setting"
        return claim(5, statement, "appendix: most capability recovered (qualitative)",
                     f"always-on steering at {top:g}x shows {missing} (its 95% interval reaches zero), so conditional "
                     "steering has nothing to keep or recover",
                     "not testable", f"Always-on steering changes unsafe refusal by {_diff(gain)} and capability by "
                     f"{_diff(loss)}.", n=_n(base, UNSAFE + capability_of(base)), unit="request pair or template",
                     preregistered=pre, caveat=caveat + "Steering must both gain safety and lose capability for "
                     "conditional steering to keep or recover a share of either.")
    b, clusters = item_hits(base, UNSAFE)
    s, c = item_hits(steered, UNSAFE)[0], item_hits(conditional, UNSAFE)[0]
    kept = cluster_bootstrap_mean((c - b) - share * (s - b), clusters)
    b, clusters = item_hits(base, capability_of(base))
    s, c = item_hits(steered, capability_of(base))[0], item_hits(conditional, capability_of(base))[0]
    recovered = cluster_bootstrap_mean((c - s) - share * (b - s), clusters)
    return claim(5, statement, "appendix: most capability recovered (qualitative)",
                 f"conditional at {top:g}x: unsafe refused {_shown(conditional, UNSAFE)}, capability "
                 f"{_shown(conditional, capability_of(base))}", combine(verdict(kept[1], kept[2]), verdict(recovered[1], recovered[2])),
                 f"Safety gain kept minus {share:g} of the gain is {_diff(kept)} and capability recovered minus {share:g} "
                 f"of the loss is {_diff(recovered)}.", n=_n(base, UNSAFE + capability_of(base)), unit="request pair or template",
                 preregistered=pre | {"most": f"parameter file: at least {share:g} (most_share)",
                                      "detector": "selection split: top contrastive feature, balanced-accuracy threshold"},
                 caveat=caveat)


# --- sensitivity: every clamp, the same rules (shown, never scored) --------------------------------------
def sensitivity_rows(results: list[dict]) -> list[dict]:
    """Per clamp of the refusal feature: the paired differences behind claims 1-3 and the degenerate share,
    with the verdict each would get at that clamp (alternatives to the pre-registered operating point)."""
    base = baseline_of(results)["report"]
    rows = []
    for r in sorted((r for r in results if r["name"] == "refusal feature"), key=lambda r: r["multiple"]):
        row = {"multiple": r["multiple"]}
        for label, kinds, higher in [("unsafe refusal", UNSAFE[:2], True), ("over-refusal", SAFE, True),
                                     ("capability", capability_of(base), False)]:
            d = difference(r["report"], base, kinds)
            row |= {f"{label} change": d[0], f"{label} lo": d[1], f"{label} hi": d[2],
                    f"{label} verdict": verdict(d[1], d[2], higher=higher)}
        row["degenerate"] = float(np.mean([v["degenerate"] for v in r["report"].values()]))
        rows.append(row)
    return rows


def share_sensitivity(results: list[dict], top: float, shares: Sequence[float]) -> list[dict]:
    """Claim 4's verdict at other thresholds for "about as much" (shown, never scored)."""
    by = {(r["name"], r["multiple"]): r["report"] for r in results}
    base, steered = baseline_of(results)["report"], by[("refusal feature", top)]
    controls = {name: report for (name, m), report in by.items() if name.startswith("control") and m == top}
    return [{"share": s, "margin": (m := control_margin(base, steered, controls, s))[0], "lo": m[1], "hi": m[2],
             "verdict": verdict(m[1], m[2])} for s in shares]


# --- figures -------------------------------------------------------------------------------------
def _labels(points: dict[str, float]) -> dict[float, str]:
    """One label per distinct operating point ("balance = max refusal" when the rules pick the same clamp)."""
    out: dict[float, list[str]] = {}
    for label, m in points.items():
        out.setdefault(m, []).append(label)
    return {m: " = ".join(labels) for m, labels in out.items()}


def tradeoff_figure(rows: list[dict], points: dict[str, float]):
    """Jailbreak refusal gain against capability loss, one point per setting, coloured by the share of
    degenerate answers; the two operating points ringed."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for marker, name in [("o", "refusal feature"), ("s", "conditional"), ("^", "control")]:
        part = sorted((r for r in rows if r["setting"].startswith(name)), key=lambda r: r["multiple"])
        if not part:
            continue
        x, y = [r["capability loss"] for r in part], [r["jailbreak refusal gain"] for r in part]
        deg = [(r["jailbreak degenerate"] + r["capability degenerate"]) / 2 for r in part]
        if name == "refusal feature":
            ax.plot(x, y, "-", color="0.7", zorder=1)
            for r, xi, yi in zip(part, x, y):
                ax.annotate(f"{r['multiple']:g}x", (xi, yi), fontsize=7, xytext=(4, 3), textcoords="offset points")
        art = ax.scatter(x, y, c=deg, cmap="viridis", vmin=0, vmax=1, marker=marker, edgecolor="k", zorder=2,
                         label=name + ("s" if name == "control" else ""))
    for m, label in _labels(points).items():
        r = next(r for r in rows if r["setting"] == "refusal feature" and r["multiple"] == m)
        ax.scatter([r["capability loss"]], [r["jailbreak refusal gain"]], s=260, facecolor="none", edgecolor="C3", zorder=3)
        ax.annotate(label, (r["capability loss"], r["jailbreak refusal gain"]), color="C3", fontsize=8,
                    xytext=(6, -12), textcoords="offset points")
    fig.colorbar(art, ax=ax, label="degenerate share (jailbreak and capability answers)")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set(title="Safety gained against capability lost (held-out items)", xlabel="capability loss (fraction of items)",
           ylabel="jailbreak well-formed refusal gain (fraction)")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def sensitivity_figure(rows: list[dict], points: dict[str, float]):
    """The paired differences of claims 1-3 and the degenerate share at every clamp, with 95% intervals;
    the operating points marked (alternatives are shown here, never scored)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    m = [r["multiple"] for r in rows]
    for i, label in enumerate(["unsafe refusal", "over-refusal", "capability"]):
        ax.plot(m, [r[f"{label} change"] for r in rows], "-o", color=f"C{i}", label=f"{label} change", ms=4)
        ax.fill_between(m, [r[f"{label} lo"] for r in rows], [r[f"{label} hi"] for r in rows], color=f"C{i}", alpha=0.15)
    ax.plot(m, [r["degenerate"] for r in rows], "--", color="k", label="degenerate share (all behaviours)")
    for value, label in _labels(points).items():
        ax.axvline(value, color="C3", ls=":", lw=1)
        ax.annotate(label, (value, 1.0), color="C3", fontsize=8, rotation=90, va="top", xytext=(3, 0), textcoords="offset points")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xscale="log", title="Every clamp of the refusal feature, steered minus unsteered (held-out items)",
           xlabel="clamp (multiples of the typical maximum, log scale)", ylabel="paired difference / share", ylim=(-1.05, 1.05))
    ax.set_xticks(m, [f"{v:g}" for v in m])
    ax.minorticks_off()
    ax.legend(fontsize=8, loc="lower left")
    return fig


# --- what the chapter found, in words --------------------------------------------------------------
def finding_search(found: dict, layer: int, feature: int, passed: bool) -> str:
    """The search's outcome in one paragraph: whether any candidate passed, and what the chosen one does."""
    ranked = found[layer].ranking.ranked
    me = next(r for r in ranked if r["feature"] == feature)
    passing = sum(r["passes"] for f in found.values() if f.ranking for r in f.ranking.ranked)
    total = sum(len(f.ranking.ranked) for f in found.values() if f.ranking)
    head = (f"**{passing} of {total} candidates over {len(found)} layers pass the search criterion.** " if passing else
            f"**None of the {total} candidates over {len(found)} layers passes the search criterion**, so the chapter "
            "steers the paper's pick without it and scores it as such. ")
    return head + (f"Feature {feature} at layer {layer} raises well-formed unsafe refusal on the selection set by "
                   f"{100 * me['gain']:+.0f} points and the share of degenerate answers by {100 * me['degenerate_rise']:+.0f} points.")


def finding_role(feature: int, role: dict) -> str:
    """What the feature is, against the planted ground truth and its unembedding."""
    aurocs = ", ".join(f"{k.removeprefix('AUROC ').replace('_', ' ')} {v:.2f}" for k, v in role.items()
                       if k.startswith("AUROC") and v is not None)
    kind = ("of unknown role (no planted ground truth)" if role["role"].startswith("not known") else
            {"neither": "neither a harmful-request detector nor a refusal writer"}.get(role["role"], f"a {role['role']}"))
    return (f"**Feature {feature} is {kind}.** Its decoder direction writes the tokens "
            f"{' '.join(repr(t) for t in role['top tokens'])} through the unembedding"
            + (f"; its AUROCs for the planted concepts are {aurocs}." if aurocs else "."))


def finding_points(results: list[dict], points: dict[str, float]) -> str:
    """Held-out numbers at the two operating points, each rate with its degenerate share."""
    by = {(r["name"], r["multiple"]): r["report"] for r in results}
    base = baseline_of(results)["report"]
    parts = []
    for label, m in points.items():
        r = by[("refusal feature", m)]
        parts.append(f"at the {label} clamp ({m:g}x) jailbreak refusal is {_shown(r, ('jailbreak',))}, over-refusal "
                     f"{_shown(r, SAFE)} and capability {_shown(r, capability_of(base))}")
    return (f"Unsteered, jailbreak refusal is {_shown(base, ('jailbreak',))}, over-refusal {_shown(base, SAFE)} and "
            f"capability {_shown(base, capability_of(base))}; " + "; ".join(parts) + ".")
