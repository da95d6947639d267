"""Chapter A: steer refusal by clamping one SAE feature (O'Brien et al.) and measure what it costs.

The paper's route, step by step:

1. ``candidates``: latents active on at least 2 tokens of the refusal the model
   gives to archetypal harmful prompts;
2. ``search``: clamp each candidate on a selection set (never evaluated on) and
   keep the one that raises refusal most; ``contrastive`` ranks features by mean
   activation on harmful minus benign prompts, the second route;
3. ``run_sweep``: clamp the feature to multiples of its typical maximum
   activation at every position (error term kept) and measure every behaviour,
   for the refusal feature, control features and conditional steering (clamp
   only when a harmful-prompt detector fires), all batched along the rows of
   the same generate calls;
The claims table is built by the chapter module, ``saesteer.chapters.refusal_steering``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import spearmanr

from saesteer.core.codes import sae_codes
from saesteer.core.hooks import Site
from saesteer.core.interventions import Clamp, batches, generate_with_edits
from saesteer.organism.evaluation import Item, judge, sweep
from saesteer.organism.probes import concept_aurocs

UNSAFE = ("harmful", "jailbreak", "escalation")  # refusal is wanted
SAFE = ("scary", "benign")  # refusal is over-refusal
CAPABILITY = ("mc", "arith", "truthful", "topic")  # benchmarks unrelated to refusal
KINDS = UNSAFE + SAFE + CAPABILITY
SEARCH_KINDS = ("harmful", "jailbreak", "benign", "scary")  # the search clamps candidates on these
SELECTION_KINDS = SEARCH_KINDS + CAPABILITY  # capability prompts also set the detector's threshold


# --- finding the feature -------------------------------------------------------------------------
def prompt_codes(subject, site: Site, inputs, bos: bool = True) -> torch.Tensor:
    """SAE codes [tokens, d_sae] (CPU) at ``site`` of the counted tokens of strings or token ids (``core.codes``'s
    rule); this chapter counts ``<bos>`` (``bos=True``), as its results were computed."""
    return sae_codes(subject.lm, {site: subject.sae(site)}, inputs, bos=bos).tokens(site)


def refusal_transcripts(subject, items: Sequence[Item], markers: Sequence[str], max_new_tokens: int = 16):
    """(prompt ids, response ids) of the items the model refuses (greedy), one pair per refused prompt."""
    tokenizer, pairs = subject.lm.tokenizer, []
    for item in items:
        prompt_ids = tokenizer(item.prompt, return_tensors="pt")["input_ids"][0]
        new = generate_with_edits(subject.lm, [item.prompt], max_new_tokens=max_new_tokens)[0]
        if tokenizer.eos_token_id in new.tolist():
            new = new[: new.tolist().index(tokenizer.eos_token_id)]
        if judge(Item("harmful", item.prompt, {}), tokenizer.decode(new), markers):
            pairs.append((prompt_ids, new))
    return pairs


def candidates(subject, site: Site, transcripts, max_candidates: int, min_tokens: int = 2) -> list[dict]:
    """Latents active on at least ``min_tokens`` tokens of a refusal, ranked by the number of refusals
    they do this on, then by their summed activation over refusal tokens."""
    count = total = None
    for prompt_ids, response_ids in transcripts:
        z = prompt_codes(subject, site, torch.cat([prompt_ids, response_ids])[None])[len(prompt_ids) :]
        hits = ((z > 0).sum(0) >= min_tokens).float()
        count = hits if count is None else count + hits
        total = z.sum(0) if total is None else total + z.sum(0)
    if count is None:
        return []
    order = sorted(torch.nonzero(count).flatten().tolist(), key=lambda f: (-count[f].item(), -total[f].item()))
    return [{"feature": f, "refusals": int(count[f]), "activation": float(total[f])} for f in order[:max_candidates]]


def typical_max(subject, site: Site, transcripts, items: Sequence[Item], batch_size: int = 64) -> torch.Tensor:
    """Per feature, the largest activation over the refusal transcripts and the prompts of ``items``:
    the scale clamp values are expressed in (the paper's clamp 12 was several times a feature's maximum)."""
    best = torch.zeros(subject.sae(site).cfg.d_sae)
    inputs = [torch.cat(pair)[None] for pair in transcripts] + list(batches([i.prompt for i in items], batch_size))
    for chunk in inputs:
        best = torch.maximum(best, prompt_codes(subject, site, chunk).amax(dim=0))
    return best


def clamp_rows(site: Site, sae, features: Sequence[int], values: torch.Tensor) -> list[Clamp]:
    """One clamp over ``features`` with a value per row ([rows, n_features], NaN = leave the row alone)."""
    return [Clamp(site=site, sae=sae, features=list(features), value=values)]


def marker_tokens(tokenizer, markers: Sequence[str]) -> int:
    """Tokens to generate before a refusal can be judged: the longest marker's length, plus one."""
    return 1 + max((len(tokenizer(m, add_special_tokens=False)["input_ids"]) for m in markers), default=1)


@dataclass(frozen=True)
class Ranking:
    """The outcome of clamping each candidate on a prompt set: the unclamped baseline and the candidates
    ranked best first (more unsafe refusal, then less safe refusal), each with its gain over the baseline."""

    baseline: dict  # unsafe_refusal, safe_refusal (feature None, gain 0)
    ranked: list[dict]  # per candidate: feature, unsafe_refusal, safe_refusal, gain

    @property
    def best(self) -> dict | None:
        """The top candidate, or None when there were no candidates."""
        return self.ranked[0] if self.ranked else None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Ranking:
        return cls(data["baseline"], data["ranked"])


@dataclass(frozen=True)
class LayerSearch:
    """The paper's search at one layer (what ``find_feature`` hands to the sweep, the layer table, the
    detector and the synthesis): the refusals and candidates, every feature's typical maximum (the clamp
    unit), the ranking, the contrastive route and how the two routes agree."""

    layer: int
    refusals: int  # archetypal prompts the model refused
    candidates: list[dict]  # feature, tokens of the refusals it is active on
    scale: list[float]  # typical maximum activation of every feature
    ranking: Ranking | None  # None when the model refused none of the archetypal prompts
    contrast: list[float]  # mean activation on harmful minus benign prompts, per feature
    agreement: dict | None

    @property
    def best(self) -> dict | None:
        """The search's choice at this layer (its top candidate), or None."""
        return self.ranking.best if self.ranking else None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> LayerSearch:
        return cls(**(data | {"ranking": Ranking.from_json(data["ranking"]) if data["ranking"] else None}))


def search(subject, site: Site, cands: list[dict], scale: torch.Tensor, sets: dict[str, list[Item]],
           markers: Sequence[str], batch_size: int) -> Ranking:
    """Clamp each candidate to ``scale[f]`` on ``sets``, one candidate per row group (the baseline, no clamp,
    is a row group of its own); the refusal rates on unsafe and on safe prompts, ranked best first."""
    feats = [c["feature"] for c in cands]
    table = torch.full((len(feats) + 1, len(feats)), float("nan"))
    for i, f in enumerate(feats):
        table[i + 1, i] = scale[f]
    sae = subject.sae(site)
    tokens = marker_tokens(subject.lm.tokenizer, markers)
    reports = sweep(subject.lm, sets, len(feats) + 1, lambda configs, _: clamp_rows(site, sae, feats, table[configs]),
                    batch_size=batch_size, new_tokens={k: tokens for k in sets}, refusal_markers=markers, progress=False)
    rows = []
    for i, report in enumerate(reports):
        unsafe = np.mean([report[k]["rate"] for k in report if k in UNSAFE])
        safe = np.mean([report[k]["rate"] for k in report if k in SAFE])
        rows.append({"feature": None if i == 0 else feats[i - 1], "unsafe_refusal": float(unsafe), "safe_refusal": float(safe)})
    baseline, ranked = rows[0], rows[1:]
    ranked.sort(key=lambda r: (-r["unsafe_refusal"], r["safe_refusal"]))
    for r in ranked:
        r["gain"] = r["unsafe_refusal"] - baseline["unsafe_refusal"]
    return Ranking(baseline | {"gain": 0.0}, ranked)


def mean_prompt_codes(subject, site: Site, items: Sequence[Item], batch_size: int = 64) -> torch.Tensor:
    """Mean SAE code over the counted prompt tokens of ``items``."""
    total, n = None, 0
    for chunk in batches([i.prompt for i in items], batch_size):
        z = prompt_codes(subject, site, chunk)
        total = z.sum(0) if total is None else total + z.sum(0)
        n += len(z)
    return total / n


def contrastive(subject, site: Site, harmful: Sequence[Item], benign: Sequence[Item]) -> torch.Tensor:
    """Mean activation on harmful minus benign prompts, per feature (the contrastive route)."""
    return mean_prompt_codes(subject, site, harmful) - mean_prompt_codes(subject, site, benign)


def agreement(ranking: Ranking, contrast: torch.Tensor) -> dict:
    """How the search's choice and the contrastive ranking agree."""
    chosen = ranking.best["feature"]
    order = torch.argsort(contrast, descending=True).tolist()
    feats = [r["feature"] for r in ranking.ranked]
    rho = (spearmanr([r["unsafe_refusal"] for r in ranking.ranked], [contrast[f].item() for f in feats]).statistic
           if len(feats) > 2 else float("nan"))
    return {"search_choice": chosen, "contrastive_top": order[0], "contrastive_rank_of_choice": order.index(chosen) + 1,
            "same_feature": order[0] == chosen, "spearman_over_candidates": float(rho)}


def detector_scores(subject, site: Site, feature: int, items: Sequence[Item], batch_size: int = 64) -> list[float]:
    """The largest activation of ``feature`` over each prompt's counted tokens (the conditional-steering detector)."""
    scores = []
    for chunk in batches([i.prompt for i in items], batch_size):
        batch = sae_codes(subject.lm, {site: subject.sae(site)}, chunk, bos=True)
        z = batch.codes[site][..., feature].cpu().masked_fill(~batch.mask, 0)
        scores += z.amax(dim=1).tolist()
    return scores


def threshold(positive: Sequence[float], negative: Sequence[float]) -> dict:
    """The cut that best separates detector scores (balanced accuracy), chosen on selection prompts."""
    cuts = sorted(set(positive) | set(negative))
    best = max(cuts, key=lambda c: np.mean(np.array(positive) >= c) + np.mean(np.array(negative) < c))
    tpr, fpr = float(np.mean(np.array(positive) >= best)), float(np.mean(np.array(negative) >= best))
    return {"threshold": float(best), "true_positive_rate": tpr, "false_positive_rate": fpr}


# --- the sweep --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepConfig:
    """One setting of a clamp sweep: clamp ``feature`` to ``value`` at the sweep's site (or, with ``clamps``,
    several features at several sites), always or only where the harmful-prompt detector fires."""

    name: str  # e.g. "baseline", "refusal feature", "control 12"; with ``multiple``, a setting's key
    multiple: float | None = None  # the clamp in multiples of the feature's typical maximum
    feature: int | None = None  # None: no clamp at the sweep's site
    value: float | None = None  # the clamp value
    conditional: bool = False  # clamp only on prompts where the detector fires
    clamps: tuple | None = None  # (site, feature, value) clamps instead of the one feature (the synthesis)
    coeffs: dict | None = None  # chapter C's vectors added with the clamps (layer -> (feature, coefficient))

    def to_json(self) -> dict:
        """The setting as the results files keep it (``clamps`` and ``coeffs`` only when set)."""
        return {k: v for k, v in asdict(self).items() if k not in ("clamps", "coeffs") or v is not None}


def sweep_configs(feature: int, controls: Sequence[int], multiples: Sequence[float], scale: Sequence[float]) -> list[SweepConfig]:
    """Every setting of the sweep, each with its clamp value: baseline; the refusal feature at multiples of
    its typical maximum; each control at multiples of its own maximum and at the refusal feature's raw
    values (the paper clamped both to the same number); conditional steering."""
    configs = [SweepConfig("baseline")]
    settings = [("refusal feature", feature, feature, False)]
    settings += [(f"control {c}", c, c, False) for c in controls]
    settings += [(f"control {c} (same value)", c, feature, False) for c in controls]
    settings += [("conditional", feature, feature, True)]
    for name, f, scaled_by, conditional in settings:
        configs += [SweepConfig(name, m, f, m * float(scale[scaled_by]), conditional) for m in multiples]
    return configs


def _clamps(site: Site, config: SweepConfig) -> list[tuple[Site, int, float]]:
    """The (site, feature, value) clamps of a config: its ``clamps``, else its one feature at ``site``."""
    if config.clamps is not None:
        return list(config.clamps)
    return [] if config.feature is None else [(site, config.feature, config.value)]


def run_sweep(subject, site: Site, configs: Sequence[SweepConfig], sets: dict[str, list[Item]], fires: dict[str, bool],
              markers: Sequence[str], batch_size: int, extra_edits=None) -> list[dict]:
    """Every config on every item, batched: one clamp per site over all features used there, one value row per
    (item, config). A config clamps ``feature`` at ``site`` to ``value``, or, with a ``clamps`` list of
    (site, feature, value), several features at several sites (a whole flow graph, for the synthesis chapter);
    ``extra_edits(configs of a batch's rows)`` adds other edits to every batch (e.g. chapter C's vectors)."""
    sites = sorted({s for c in configs for s, _, _ in _clamps(site, c)}, key=lambda s: s.order)
    feats = {s: sorted({f for c in configs for t, f, _ in _clamps(site, c) if t == s}) for s in sites}

    def edits_for(rows: torch.Tensor, items: list[Item]):
        values = {s: torch.full((len(rows), len(feats[s])), float("nan")) for s in sites}
        for r, (config, item) in enumerate(zip(rows.tolist(), items)):
            c = configs[config]
            if not c.conditional or fires[item.prompt]:
                for s, f, v in _clamps(site, c):
                    values[s][r, feats[s].index(f)] = v
        edits = [e for s in sites for e in clamp_rows(s, subject.sae(s), feats[s], values[s])]
        return edits + (list(extra_edits([configs[i] for i in rows.tolist()])) if extra_edits else [])

    reports = sweep(subject.lm, sets, len(configs), edits_for, batch_size=batch_size, refusal_markers=markers)
    return [c.to_json() | {"report": r} for c, r in zip(configs, reports)]


def baseline_of(results: list[dict]) -> dict:
    """The unsteered setting of a sweep's results (looked up by name, wherever it sits)."""
    return next(r for r in results if r["name"] == "baseline")


def summary(report: dict) -> dict:
    """Headline numbers of one setting: unsafe refusal, over-refusal, capability (means over kinds)."""
    mean = lambda kinds: float(np.mean([report[k]["rate"] for k in kinds if k in report]))  # noqa: E731
    return {"unsafe_refusal": mean(UNSAFE), "jailbreak_refusal": report["jailbreak"]["rate"],
            "over_refusal": mean(SAFE), "capability": mean(CAPABILITY)}


def tradeoff_rows(results: list[dict]) -> list[dict]:
    """One row per setting: refusal gain on jailbreaks and capability loss against the baseline."""
    baseline = baseline_of(results)
    base = summary(baseline["report"])
    rows = []
    for r in (r for r in results if r is not baseline):
        s = summary(r["report"])
        rows.append({"setting": r["name"], "multiple": r["multiple"], "value": r["value"],
                     "jailbreak refusal gain": s["jailbreak_refusal"] - base["jailbreak_refusal"],
                     "over-refusal gain": s["over_refusal"] - base["over_refusal"],
                     "capability loss": base["capability"] - s["capability"]})
    return rows


def rate_table(results: list[dict]) -> list[dict]:
    """Long table: setting, multiple, kind, rate and interval (for the per-benchmark figure)."""
    return [{"setting": r["name"], "multiple": r["multiple"], "kind": kind, "rate": v["rate"], "lo": v["lo"], "hi": v["hi"],
             "n": v["n"]} for r in results for kind, v in r["report"].items()]


def examples(results: list[dict], sets: dict[str, list[Item]], multiple: float, kinds: Sequence[str], n: int) -> list[dict]:
    """Prompts with the baseline answer and the answer with the refusal feature clamped at ``multiple``."""
    base = baseline_of(results)["report"]
    steered = next(r["report"] for r in results if r["name"] == "refusal feature" and r["multiple"] == multiple)
    return [{"kind": k, "prompt": sets[k][i].prompt, "baseline": base[k]["answers"][i], "steered": steered[k]["answers"][i]}
            for k in kinds for i in range(min(n, len(sets[k])))]


def strip_answers(results: list[dict]) -> list[dict]:
    """The sweep without the per-item answers (what the results file keeps)."""
    return [r | {"report": {k: {m: v for m, v in rep.items() if m != "answers"} for k, rep in r["report"].items()}}
            for r in results]


# --- the chapter's stages ------------------------------------------------------------------
def find_feature(subject, layer: int, params: dict, selection: dict[str, list[Item]]) -> LayerSearch:
    """The paper's search at ``layer`` and the contrastive route, on the selection sets."""
    site, markers = Site(layer), params["refusal_markers"]
    transcripts = refusal_transcripts(subject, selection["harmful"][: params["n_archetypal"]], markers)
    cands = candidates(subject, site, transcripts, params["max_candidates"])
    prompts = [i for items in selection.values() for i in items]
    scale = typical_max(subject, site, transcripts, prompts)
    search_sets = {k: selection[k] for k in SEARCH_KINDS}
    ranking = search(subject, site, cands, scale * params["search_multiple"], search_sets, markers, params["batch_size"]) if cands else None
    contrast = contrastive(subject, site, selection["harmful"] + selection["jailbreak"], selection["benign"] + selection["scary"])
    return LayerSearch(layer, len(transcripts), cands, scale.tolist(), ranking, contrast.tolist(),
                       agreement(ranking, contrast) if ranking and ranking.best else None)


def search_layers(subject, layers: Sequence[int], params: dict, selection: dict[str, list[Item]],
                  stage: Callable = lambda name, compute: compute()) -> dict[int, LayerSearch]:
    """``find_feature`` at every layer, each a stage (``stage(name, compute)``, e.g. a results cache's ``get``)."""
    return {layer: LayerSearch.from_json(stage(f"search_layer_{layer}",
                                               lambda: find_feature(subject, layer, params, selection).to_json()))
            for layer in layers}


def pick_layer(found: dict[int, LayerSearch]) -> int:
    """The layer whose best candidate raises unsafe refusal most (ties: less over-refusal, then shallower)."""
    usable = {layer: f.best for layer, f in found.items() if f.best}
    if not usable:
        raise RuntimeError("No layer gave refusal candidates: the model refused none of the archetypal prompts.")
    return min(usable, key=lambda layer: (-usable[layer]["gain"], usable[layer]["safe_refusal"], layer))


def choose_controls(subject, found: LayerSearch, feature: int, probes: dict | None) -> list[int]:
    """Control features unrelated to refusal: the organism's best topic probe at the site (the paper's
    "philosophy" feature), else the active feature with the least harmful-vs-benign contrast."""
    site = Site(found.layer)
    if probes is not None:
        topics = [(row[str(site)]["auroc"], row[str(site)]["feature"]) for c, row in probes.items() if c.startswith("topic:")]
        picked = [f for _, f in sorted(topics, reverse=True) if f != feature]
        if picked:
            return picked[:1]
    scale, contrast = torch.tensor(found.scale), torch.tensor(found.contrast).abs()
    active = torch.nonzero(scale > 0).flatten().tolist()
    return [min((f for f in active if f != feature), key=lambda f: contrast[f].item() / scale[f].item())]


def conditional_detector(subject, found: LayerSearch, selection: dict[str, list[Item]], eval_sets: dict[str, list[Item]]) -> dict:
    """The harmful-prompt detector: the top contrastive feature, with the threshold that best separates
    harmful and jailbreak selection prompts from benign, scary-word and capability ones, and whether
    it fires on each evaluation prompt."""
    site, feature = Site(found.layer), int(np.argmax(found.contrast))
    positive = detector_scores(subject, site, feature, selection["harmful"] + selection["jailbreak"])
    negative = detector_scores(subject, site, feature, [i for k in (*SAFE, *CAPABILITY) for i in selection[k]])
    cut = threshold(positive, negative)
    prompts = [i.prompt for items in eval_sets.values() for i in items]
    scores = detector_scores(subject, site, feature, [Item("x", p, {}) for p in prompts])
    fires = {p: s >= cut["threshold"] for p, s in zip(prompts, scores)}
    rate = {kind: float(np.mean([fires[i.prompt] for i in items])) for kind, items in eval_sets.items()}
    return {"feature": feature, **cut, "fires": fires, "fire_rate_by_kind": rate}


def layer_headlines(subject, found: dict[int, LayerSearch], params: dict, sets: dict[str, list[Item]]) -> list[dict]:
    """At every searched layer, its best candidate clamped at the headline multiple, on held-out items:
    all layers and the baseline share one batched sweep (one clamp per layer site)."""
    layers = [layer for layer in sorted(found) if found[layer].best]
    feats = {layer: found[layer].best["feature"] for layer in layers}

    def edits_for(rows: torch.Tensor, _items):
        edits = []
        for j, layer in enumerate(layers):
            values = torch.full((len(rows), 1), float("nan"))
            values[rows == j + 1] = params["headline_multiple"] * found[layer].scale[feats[layer]]
            edits += clamp_rows(Site(layer), subject.sae(Site(layer)), [feats[layer]], values)
        return edits

    reports = sweep(subject.lm, sets, len(layers) + 1, edits_for, batch_size=params["batch_size"],
                    refusal_markers=params["refusal_markers"])
    base, per_layer = reports[0], reports[1:]  # row group 0 is unclamped, j + 1 clamps layers[j] (edits_for)
    base = summary(base)
    rows = []
    for layer, report in zip(layers, per_layer):
        s = summary(report)
        rows.append({"layer": layer, "feature": feats[layer], "selection gain": found[layer].best["gain"],
                     "jailbreak refusal": s["jailbreak_refusal"], "over-refusal": s["over_refusal"],
                     "capability": s["capability"], "baseline jailbreak refusal": base["jailbreak_refusal"],
                     "baseline capability": base["capability"]})
    return rows


def probe_match(subject, site: Site, feature: int, probes: dict) -> list[dict]:
    """The chosen feature's AUROC for every planted concept at ``site``, next to the best probe there."""
    scores = concept_aurocs(subject.lm, subject.language, site, subject.sae(site))
    return [{"concept": c, "chosen feature AUROC": float(v[feature]), "best feature": probes[c][str(site)]["feature"],
             "best AUROC": probes[c][str(site)]["auroc"], "is best": probes[c][str(site)]["feature"] == feature}
            for c, v in scores.items() if not c.startswith("topic:")]


