"""Chapter A (O'Brien et al.): the notebook's parameters, their checks and the claims table. The method is in ``analyses.refusal``."""

from __future__ import annotations

from collections.abc import Sequence

from saesteer.analyses.refusal import CAPABILITY, SAFE, UNSAFE, baseline_of
from saesteer.core.stats import wilson
from saesteer.study.params import Param, ParameterError, check_layer
from saesteer.study.results import claim
from saesteer.study.subjects import SUBJECT_PARAMS

PARAMS = {  # the chapter's parameters
    "setting": Param(str),  # results go to data/results/<setting>/refusal_steering/
    **SUBJECT_PARAMS,
    "refusal_markers": Param(list, items=str, nonempty=True),  # a response opening with one of these is a refusal
    "layer": Param(int, min=0, optional=True),  # resid_post layer steered; null = the layer the search picks
    "search_layers": Param(list, items=int),  # layers searched (empty = every layer)
    "n_archetypal": Param(int, min=1, max=200),  # archetypal harmful prompts whose refusals give candidates
    "max_candidates": Param(int, min=1, max=2000),  # at most this many candidates are steered in the search
    "n_selection": Param(int, min=4, max=2000),  # selection prompts per kind (disjoint from evaluation)
    "search_multiple": Param(float, min=0.0),  # clamp of the search, in multiples of the typical maximum
    "clamp_multiples": Param(list, items=float, min=0.0, nonempty=True),  # the sweep's clamps, in multiples of the typical maximum
    "headline_multiple": Param(float, min=0.0),  # the clamp the claims table reports (one of clamp_multiples)
    "control_features": Param(list, items=int, min=0),  # controls; empty = chosen automatically
    "eval_items": Param(int, min=2, max=5000),  # held-out items per kind in the sweep
    "layer_eval_items": Param(int, min=2, max=5000),  # held-out items per kind in the per-layer table
    "batch_size": Param(int, min=1, max=8192),  # rows per generate call
    "n_examples": Param(int, min=1, max=20),  # example generations shown per kind
    "seed": Param(int, min=0),
}


def check_params(params: dict) -> None:
    """Cross-parameter checks the specs cannot express."""
    if params["headline_multiple"] not in params["clamp_multiples"]:
        raise ParameterError(f"Parameter 'headline_multiple' must be one of clamp_multiples {params['clamp_multiples']}; "
                             f"got {params['headline_multiple']!r}.")


def check_layers(params: dict, n_layers: int) -> None:
    """The steered layer and the searched layers must exist in the model."""
    for layer in params["search_layers"]:
        check_layer("search_layers", layer, n_layers)
    if params["layer"] is not None:
        check_layer("layer", params["layer"], n_layers)


# --- claims ------------------------------------------------------------------------------------
def _rate(report: dict, kinds: Sequence[str]) -> tuple[float, float, float]:
    """Pooled rate and Wilson interval over ``kinds`` of a report."""
    hits = sum(round(report[k]["rate"] * report[k]["n"]) for k in kinds)
    n = sum(report[k]["n"] for k in kinds)
    return wilson(hits, n)


def _fmt(triple) -> str:
    rate, lo, hi = triple
    return f"{100 * rate:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def _monotone(values: Sequence[float], tolerance: float = 0.05) -> bool:
    """Non-decreasing up to ``tolerance`` (sampling noise between neighbouring clamps)."""
    return all(b >= a - tolerance for a, b in zip(values, values[1:]))


def claims(results: list[dict], headline: float) -> list[dict]:
    """The paper's five claims, its numbers, this study's numbers with intervals, and a verdict each."""
    by = {(r["name"], r["multiple"]): r["report"] for r in results}
    base, steered = baseline_of(results)["report"], by[("refusal feature", headline)]
    multiples = sorted(m for name, m in by if name == "refusal feature")
    curve = {kinds: [_rate(by[("refusal feature", m)], kinds)[0] for m in multiples]
             for kinds in [("jailbreak",), SAFE, CAPABILITY]}
    controls = {name: by[(name, headline)] for name, m in by if name.startswith("control") and m == headline}
    return [_claim_refusal(base, steered, curve[("jailbreak",)]), _claim_over_refusal(base, steered, curve[SAFE]),
            _claim_capability(base, steered, curve[CAPABILITY]), _claim_control(base, steered, controls),
            _claim_conditional(base, steered, by[("conditional", headline)])]


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(v, 2) for v in values]


def _claim_refusal(base: dict, steered: dict, curve: list[float]) -> dict:
    b, s = _rate(base, UNSAFE[:2]), _rate(steered, UNSAFE[:2])
    esc_b, esc_s = _rate(base, ("escalation",))[0], _rate(steered, ("escalation",))[0]
    up = s[1] > b[2] and _monotone(curve)
    verdict = "reproduced" if up and esc_s > esc_b else "partly" if up or s[0] > b[0] else "not reproduced"
    return claim(1, "Clamping the refusal feature raises refusal of unsafe and jailbreak prompts, monotonically in the "
                     "clamp, and lowers multi-turn attack success", "unsafe refused 58% -> 96%; Crescendo success 56% -> 33%",
                  f"direct+jailbreak refused {_fmt(b)} -> {_fmt(s)}; escalation success {100 - 100 * esc_b:.0f}% -> "
                  f"{100 - 100 * esc_s:.0f}%", verdict, f"jailbreak refusal over clamps {_rounded(curve)}.")


def _claim_over_refusal(base: dict, steered: dict, curve: list[float]) -> dict:
    b, s = _rate(base, SAFE), _rate(steered, SAFE)
    verdict = "reproduced" if s[1] > b[2] and _monotone(curve) else "partly" if s[0] > b[0] else "not reproduced"
    return claim(2, "Over-refusal of safe prompts rises with the clamp", "safe refused 6% -> 68%",
                 f"{_fmt(b)} -> {_fmt(s)}", verdict, f"over-refusal over clamps {_rounded(curve)}.")


def _claim_capability(base: dict, steered: dict, curve: list[float]) -> dict:
    b, s = _rate(base, CAPABILITY), _rate(steered, CAPABILITY)
    verdict = "reproduced" if s[2] < b[1] else "partly" if s[0] < b[0] else "not reproduced"
    return claim(3, "Capability on refusal-unrelated benchmarks falls", "MMLU 68.8 -> 36.0; GSM8K 82.5 -> 35.6; TruthfulQA 65.0 -> 53.8",
                 f"pooled capability {_fmt(b)} -> {_fmt(s)}", verdict, f"capability over clamps {_rounded(curve)}.")


def _claim_control(base: dict, steered: dict, controls: dict[str, dict]) -> dict:
    b = _rate(base, CAPABILITY)
    feature_loss = b[0] - _rate(steered, CAPABILITY)[0]
    losses = {name: b[0] - _rate(report, CAPABILITY)[0] for name, report in controls.items()}
    worst = max(losses, key=losses.get)
    control = _rate(controls[worst], CAPABILITY)
    degrades = control[2] < b[1]  # the control's interval lies below the baseline's
    verdict = "reproduced" if degrades and losses[worst] >= 0.5 * feature_loss else "partly" if degrades else "not reproduced"
    return claim(4, "A control feature unrelated to refusal degrades capability about as much",
                 "control (philosophy) feature degrades MMLU/GSM8K comparably",
                 f"capability loss at the same clamp: refusal feature {100 * feature_loss:.0f} points, {worst} "
                 f"{100 * losses[worst]:.0f} points ({_fmt(control)})", verdict,
                 f"capability losses of the controls: { {c: round(v, 2) for c, v in losses.items()} }.")


def _claim_conditional(base: dict, steered: dict, conditional: dict) -> dict:
    unsafe, cap = UNSAFE[:2], CAPABILITY
    safety_kept = _share(_rate(conditional, unsafe)[0], _rate(base, unsafe)[0], _rate(steered, unsafe)[0])
    capability_kept = _share(_rate(conditional, cap)[0], _rate(steered, cap)[0], _rate(base, cap)[0])
    verdict = ("reproduced" if safety_kept >= 0.5 and capability_kept >= 0.5
               else "partly" if max(safety_kept, capability_kept) >= 0.5 else "not reproduced")
    return claim(5, "Conditional steering recovers most capability while keeping most of the safety gain",
                 "appendix: most capability recovered (qualitative)",
                 f"safety gain kept {100 * safety_kept:.0f}%, capability loss recovered {100 * capability_kept:.0f}%", verdict,
                 f"conditional: refused {_fmt(_rate(conditional, unsafe))}, capability {_fmt(_rate(conditional, cap))}.")


def _share(value: float, start: float, end: float) -> float:
    """How far ``value`` lies from ``start`` toward ``end`` (1 = all the way); NaN when they coincide."""
    return float("nan") if abs(end - start) < 1e-9 else (value - start) / (end - start)
