"""Chapter A: steer refusal by clamping one SAE feature (O'Brien et al.) and measure what it costs.

The paper's route, step by step:

1. ``candidates``: latents active on at least 2 tokens of the refusal the model
   gives to archetypal harmful prompts;
2. ``search``: clamp each candidate on a selection set (never evaluated on) and
   keep the one that raises well-formed refusal most without raising degenerate
   answers (a candidate that only makes the model stammer "sorry sorry" fails);
   ``contrastive`` ranks features by mean activation on harmful minus benign
   prompts, the second route; ``role`` says whether the chosen feature detects
   harmful requests or writes refusals, against the planted ground truth;
3. ``operating_points``: the balance clamp and the maximum-refusal clamp, chosen
   on a selection sweep by rules fixed in the parameter file;
4. ``run_sweep``: clamp the feature to multiples of its typical maximum
   activation at every position (error term kept) and measure every behaviour
   on held-out items, for the refusal feature, frequency-matched random control
   features and conditional steering (clamp only when a harmful-prompt detector
   fires), all batched along the rows of the same generate calls.
The claims table is built by the chapter module, ``saesteer.chapters.refusal_steering``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.stats import spearmanr

from saesteer.core.answers import refusal_classifier
from saesteer.core.codes import sae_codes
from saesteer.core.files import resolve
from saesteer.core.hooks import Site, layout, walk
from saesteer.core.interventions import Clamp, batches, generate_with_edits
from saesteer.core.models import torch_model
from saesteer.core.splits import choice
from saesteer.gemma3 import chat_probes
from saesteer.organism.evaluation import Item, RefusalJudge, opens_with_refusal, sweep
from saesteer.organism.probes import concept_aurocs
from saesteer.study import chat_build

UNSAFE = ("harmful", "jailbreak", "escalation")  # refusal is wanted
SAFE = ("scary", "benign")  # refusal is over-refusal
CAPABILITY = ("mc", "arith", "truthful", "topic")  # the organism's benchmarks unrelated to refusal
KINDS = UNSAFE + SAFE + CAPABILITY
SEARCH_KINDS = ("harmful", "jailbreak", "benign", "scary")  # the search clamps candidates on these
SELECTION_KINDS = SEARCH_KINDS + CAPABILITY  # capability prompts also set the detector's threshold


def capability_of(report: dict) -> tuple[str, ...]:
    """The capability kinds of a report or of a set of prompt sets: every kind that is neither unsafe nor safe
    (the organism's four benchmarks, the chat model's facts and sums)."""
    return tuple(k for k in report if k not in UNSAFE + SAFE)


@lru_cache(maxsize=2)
def _classifier(model: str, device: str) -> RefusalJudge:
    """A text-classification refusal judge, loaded once per model and device."""
    local = resolve(model)
    return refusal_classifier(str(local) if local.exists() else model, device)


def refusal_judge(params: dict) -> RefusalJudge | None:
    """The refusal judge the parameters ask for: None (refusal markers; the default) unless ``refusal_classifier``
    names a text-classification model (hub id or local directory), then ``core.answers.refusal_classifier`` on
    the parameters' ``device``. Pass it as ``refusal_judge`` to ``find_feature``'s helpers and ``run_sweep``."""
    model = params.get("refusal_classifier")
    return None if model is None else _classifier(str(model), params.get("device", "auto"))


# --- finding the feature -------------------------------------------------------------------------
def prompt_codes(subject, site: Site, inputs, bos: bool = True) -> torch.Tensor:
    """SAE codes [tokens, d_sae] (CPU) at ``site`` of the counted tokens of strings or token ids (``core.codes``'s
    rule); this chapter counts ``<bos>`` (``bos=True``), as its results were computed."""
    return sae_codes(subject.lm, {site: subject.sae(site)}, inputs, bos=bos).tokens(site)


def refusal_transcripts(subject, items: Sequence[Item], markers: Sequence[str], max_new_tokens: int = 16,
                        refusal_judge: RefusalJudge | None = None):
    """(prompt ids, response ids) of the items whose unsteered greedy answer opens with a refusal marker (or,
    with ``refusal_judge``, that it calls a refusal), one pair per refused prompt: the model's own refusals,
    whose active latents are the candidates."""
    tokenizer, pairs = subject.lm.tokenizer, []
    for item in items:
        prompt_ids = tokenizer(item.prompt, return_tensors="pt")["input_ids"][0]
        new = generate_with_edits(subject.lm, [item.prompt], max_new_tokens=max_new_tokens)[0]
        if tokenizer.eos_token_id in new.tolist():
            new = new[: new.tolist().index(tokenizer.eos_token_id)]
        text = tokenizer.decode(new)
        if (refusal_judge([text], [item.prompt])[0] if refusal_judge is not None else opens_with_refusal(text, markers)):
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


def feature_activity(subject, site: Site, transcripts, items: Sequence[Item],
                     batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per feature, its typical maximum (the largest activation over the refusal transcripts and the prompts of
    ``items``: the unit clamps are expressed in, as the paper's clamp 12 was several times a feature's maximum)
    and its activation frequency (share of the prompts' counted tokens where it is active: what controls match)."""
    best, active, tokens = torch.zeros(subject.sae(site).cfg.d_sae), torch.zeros(subject.sae(site).cfg.d_sae), 0
    for pair in transcripts:
        best = torch.maximum(best, prompt_codes(subject, site, torch.cat(pair)[None]).amax(dim=0))
    for chunk in batches([i.prompt for i in items], batch_size):
        z = prompt_codes(subject, site, chunk)
        best, active, tokens = torch.maximum(best, z.amax(dim=0)), active + (z > 0).sum(0), tokens + len(z)
    return best, active / max(tokens, 1)


def typical_max(subject, site: Site, transcripts, items: Sequence[Item], batch_size: int = 64) -> torch.Tensor:
    """Per feature, its typical maximum (``feature_activity``'s first part)."""
    return feature_activity(subject, site, transcripts, items, batch_size)[0]


def clamp_rows(site: Site, sae, features: Sequence[int], values: torch.Tensor) -> list[Clamp]:
    """One clamp over ``features`` with a value per row ([rows, n_features], NaN = leave the row alone)."""
    return [Clamp(site=site, sae=sae, features=list(features), value=values)]


def search_tokens(tokenizer, markers: Sequence[str]) -> int:
    """Tokens the search generates per answer: the longest marker and three more, enough to tell a refusal's
    opening ("sorry , i can") from a stammer ("sorry sorry sorry") at a fraction of a full answer's cost."""
    return 3 + max((len(tokenizer(m, add_special_tokens=False)["input_ids"]) for m in markers), default=1)


@dataclass(frozen=True)
class Ranking:
    """The outcome of clamping each candidate on a prompt set: the unclamped baseline and the candidates
    ranked best first (those that pass the search criterion first, then more well-formed unsafe refusal, then
    less safe refusal), each with its gain and its rise in degenerate answers over the baseline."""

    baseline: dict  # unsafe_refusal, safe_refusal, degenerate (feature None, gain 0)
    ranked: list[dict]  # per candidate: feature, unsafe_refusal, safe_refusal, degenerate, gain, degenerate_rise, passes

    @property
    def best(self) -> dict | None:
        """The top candidate that passes the search criterion, or None when none does."""
        return self.ranked[0] if self.ranked and self.ranked[0].get("passes", True) else None

    @property
    def top(self) -> dict | None:
        """The top candidate by the paper's rule alone (most unsafe refusal), passing or not."""
        return max(self.ranked, key=lambda r: (r["gain"], -r["safe_refusal"]), default=None)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Ranking:
        return cls(data["baseline"], data["ranked"])


@dataclass(frozen=True)
class LayerSearch:
    """The paper's search at one layer (what ``find_feature`` hands to the sweep, the layer table, the
    detector and the synthesis): the refusals and candidates, every feature's typical maximum (the clamp
    unit) and activation frequency, the ranking, the contrastive route and how the two routes agree."""

    layer: int
    refusals: int  # archetypal prompts the model refused
    candidates: list[dict]  # feature, tokens of the refusals it is active on
    scale: list[float]  # typical maximum activation of every feature
    ranking: Ranking | None  # None when the model refused none of the archetypal prompts
    contrast: list[float]  # mean activation on harmful minus benign prompts, per feature
    agreement: dict | None
    frequency: list[float] | None = None  # share of selection prompt tokens where each feature is active

    @property
    def best(self) -> dict | None:
        """The search's choice at this layer (its top candidate that passes the criterion), or None."""
        return self.ranking.best if self.ranking else None

    @property
    def top(self) -> dict | None:
        """The paper's choice without the criterion (its top candidate by unsafe refusal), or None."""
        return self.ranking.top if self.ranking else None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> LayerSearch:
        return cls(**(data | {"ranking": Ranking.from_json(data["ranking"]) if data["ranking"] else None}))


def _search_row(report: dict) -> dict:
    """Well-formed refusal on unsafe and on safe prompts, and the share of degenerate answers, of one setting."""
    mean = lambda kinds, key: float(np.mean([report[k][key] for k in report if k in kinds]))  # noqa: E731
    return {"unsafe_refusal": mean(UNSAFE, "rate"), "safe_refusal": mean(SAFE, "rate"),
            "degenerate": mean(KINDS, "degenerate")}


def search(subject, site: Site, cands: list[dict], scale: torch.Tensor, sets: dict[str, list[Item]],
           markers: Sequence[str], batch_size: int, min_gain: float = 0.0, max_degenerate_rise: float = 0.0,
           new_tokens: int | None = None, refusal_judge: RefusalJudge | None = None) -> Ranking:
    """Clamp each candidate to ``scale[f]`` on ``sets``, one candidate per row group (the baseline, no clamp,
    is a row group of its own). A candidate passes when it raises well-formed unsafe refusal by more than
    ``min_gain`` and the share of degenerate answers by at most ``max_degenerate_rise``; ranked best first.
    Answers are ``new_tokens`` long (default ``search_tokens``: short, which misses loops that start later);
    ``refusal_judge`` judges refusal instead of the markers (``evaluation.rate_of``)."""
    feats = [c["feature"] for c in cands]
    table = torch.full((len(feats) + 1, len(feats)), float("nan"))
    for i, f in enumerate(feats):
        table[i + 1, i] = scale[f]
    sae, tokens = subject.sae(site), new_tokens or search_tokens(subject.lm.tokenizer, markers)
    reports = sweep(subject.lm, sets, len(feats) + 1, lambda configs, _: clamp_rows(site, sae, feats, table[configs]),
                    batch_size=batch_size, new_tokens={k: tokens for k in sets}, refusal_markers=markers, progress=False,
                    refusal_judge=refusal_judge)
    rows = [{"feature": None if i == 0 else feats[i - 1]} | _search_row(r) for i, r in enumerate(reports)]
    baseline, ranked = rows[0] | {"gain": 0.0, "degenerate_rise": 0.0}, rows[1:]
    for r in ranked:
        r["gain"] = r["unsafe_refusal"] - baseline["unsafe_refusal"]
        r["degenerate_rise"] = r["degenerate"] - baseline["degenerate"]
        r["passes"] = bool(r["gain"] > min_gain and r["degenerate_rise"] <= max_degenerate_rise)
    ranked.sort(key=lambda r: (not r["passes"], -r["unsafe_refusal"], r["safe_refusal"]))
    return Ranking(baseline, ranked)


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
    """How the search's choice (its top candidate, passing or not) and the contrastive ranking agree."""
    chosen = (ranking.best or ranking.top)["feature"]
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


def sweep_configs(feature: int, controls: Sequence[int], multiples: Sequence[float], points: dict[str, float],
                  scale: Sequence[float]) -> list[SweepConfig]:
    """Every setting of the held-out sweep, each with its clamp value: baseline; the refusal feature at every
    multiple of its typical maximum on the grid; conditional steering at both operating points (``points``:
    name -> multiple); each control at the maximum-refusal point, where claims 4 and 5 are scored, at the same
    multiple of its own typical maximum."""
    configs = [SweepConfig("baseline")]
    configs += [SweepConfig("refusal feature", m, feature, m * float(scale[feature])) for m in multiples]
    configs += [SweepConfig("conditional", m, feature, m * float(scale[feature]), conditional=True)
                for m in dict.fromkeys(points.values())]
    if "max refusal" in points:
        m = points["max refusal"]
        configs += [SweepConfig(f"control {c}", m, c, m * float(scale[c])) for c in controls]
    return configs


def _clamps(site: Site, config: SweepConfig) -> list[tuple[Site, int, float]]:
    """The (site, feature, value) clamps of a config: its ``clamps``, else its one feature at ``site``."""
    if config.clamps is not None:
        return list(config.clamps)
    return [] if config.feature is None else [(site, config.feature, config.value)]


def run_sweep(subject, site: Site, configs: Sequence[SweepConfig], sets: dict[str, list[Item]], fires: dict[str, bool],
              markers: Sequence[str], batch_size: int, extra_edits=None, refusal_judge: RefusalJudge | None = None) -> list[dict]:
    """Every config on every item, batched: one clamp per site over all features used there, one value row per
    (item, config). A config clamps ``feature`` at ``site`` to ``value``, or, with a ``clamps`` list of
    (site, feature, value), several features at several sites (a whole flow graph, for the synthesis chapter);
    ``extra_edits(configs of a batch's rows)`` adds other edits to every batch (e.g. chapter C's vectors);
    ``refusal_judge`` (``refusal_judge(params)``) judges refusal instead of the markers."""
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

    reports = sweep(subject.lm, sets, len(configs), edits_for, batch_size=batch_size, refusal_markers=markers,
                    refusal_judge=refusal_judge)
    return [c.to_json() | {"report": r} for c, r in zip(configs, reports)]


def baseline_of(results: list[dict]) -> dict:
    """The unsteered setting of a sweep's results (looked up by name, wherever it sits)."""
    return next(r for r in results if r["name"] == "baseline")


def summary(report: dict) -> dict:
    """Headline numbers of one setting: unsafe refusal, over-refusal, capability (means over kinds), and the
    share of degenerate answers next to each."""
    mean = lambda kinds, key="rate": float(np.mean([report[k][key] for k in kinds if k in report]))  # noqa: E731
    return {"unsafe_refusal": mean(UNSAFE), "jailbreak_refusal": report["jailbreak"]["rate"],
            "over_refusal": mean(SAFE), "capability": mean(capability_of(report)), "unsafe_degenerate": mean(UNSAFE, "degenerate"),
            "jailbreak_degenerate": report["jailbreak"]["degenerate"], "safe_degenerate": mean(SAFE, "degenerate"),
            "capability_degenerate": mean(capability_of(report), "degenerate")}


def tradeoff_rows(results: list[dict]) -> list[dict]:
    """One row per setting: refusal gain on jailbreaks, over-refusal gain and capability loss against the
    baseline, each with the share of degenerate answers behind it."""
    baseline = baseline_of(results)
    base = summary(baseline["report"])
    rows = []
    for r in (r for r in results if r is not baseline):
        s = summary(r["report"])
        rows.append({"setting": r["name"], "multiple": r["multiple"], "value": r["value"],
                     "jailbreak refusal gain": s["jailbreak_refusal"] - base["jailbreak_refusal"],
                     "jailbreak degenerate": s["jailbreak_degenerate"],
                     "over-refusal gain": s["over_refusal"] - base["over_refusal"], "safe degenerate": s["safe_degenerate"],
                     "capability loss": base["capability"] - s["capability"],
                     "capability degenerate": s["capability_degenerate"]})
    return rows


def rate_table(results: list[dict]) -> list[dict]:
    """Long table: setting, multiple, kind, rate and interval, degenerate share (for the per-benchmark figure)."""
    return [{"setting": r["name"], "multiple": r["multiple"], "kind": kind, "rate": v["rate"], "lo": v["lo"], "hi": v["hi"],
             "degenerate": v["degenerate"], "n": v["n"]} for r in results for kind, v in r["report"].items()]


def item_hits(report: dict, kinds: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Per item of ``kinds`` (in order), whether it was a hit, and its cluster (prefixed by its kind, so that
    templates of different behaviours never merge): the material of paired, clustered differences."""
    hits = np.concatenate([np.asarray(report[k]["hits"], float) for k in kinds])
    return hits, [f"{k}:{c}" for k in kinds for c in report[k]["cluster"]]


def examples(results: list[dict], sets: dict[str, list[Item]], multiple: float, kinds: Sequence[str], n: int) -> list[dict]:
    """Prompts with the baseline answer and the answer with the refusal feature clamped at ``multiple``."""
    base = baseline_of(results)["report"]
    steered = next(r["report"] for r in results if r["name"] == "refusal feature" and r["multiple"] == multiple)
    return [{"kind": k, "prompt": sets[k][i].prompt, "baseline": base[k]["answers"][i], "steered": steered[k]["answers"][i]}
            for k in kinds for i in range(min(n, len(sets[k])))]


def strip_answers(results: list[dict]) -> list[dict]:
    """The sweep without the per-item answers, hits and clusters (what the results file keeps)."""
    per_item = ("answers", "hits", "cluster")
    return [r | {"report": {k: {m: v for m, v in rep.items() if m not in per_item} for k, rep in r["report"].items()}}
            for r in results]


# --- the chapter's stages ------------------------------------------------------------------
def find_feature(subject, layer: int, params: dict, selection: dict[str, list[Item]]) -> LayerSearch:
    """The paper's search at ``layer`` with the well-formed criterion, and the contrastive route, on the selection
    sets; refusal is judged by the markers, or by the classifier ``refusal_classifier`` names (``refusal_judge``)."""
    site, markers, judged_by = Site(layer), params["refusal_markers"], refusal_judge(params)
    transcripts = refusal_transcripts(subject, selection["harmful"][: params["n_archetypal"]], markers,
                                      refusal_judge=judged_by)
    cands = candidates(subject, site, transcripts, params["max_candidates"])
    prompts = [i for items in selection.values() for i in items]
    scale, frequency = feature_activity(subject, site, transcripts, prompts)
    search_sets = {k: selection[k] for k in SEARCH_KINDS}
    ranking = search(subject, site, cands, scale * params["search_multiple"], search_sets, markers, params["batch_size"],
                     params["search_min_gain"], params["search_max_degenerate_rise"],
                     refusal_judge=judged_by) if cands else None
    contrast = contrastive(subject, site, selection["harmful"] + selection["jailbreak"], selection["benign"] + selection["scary"])
    return LayerSearch(layer, len(transcripts), cands, scale.tolist(), ranking, contrast.tolist(),
                       agreement(ranking, contrast) if ranking and ranking.ranked else None, frequency.tolist())


def search_layers(subject, layers: Sequence[int], params: dict, selection: dict[str, list[Item]],
                  stage: Callable = lambda name, compute: compute()) -> dict[int, LayerSearch]:
    """``find_feature`` at every layer, each a stage (``stage(name, compute)``, e.g. a results cache's ``get``)."""
    return {layer: LayerSearch.from_json(stage(f"search_layer_{layer}",
                                               lambda: find_feature(subject, layer, params, selection).to_json()))
            for layer in layers}


def pick_layer(found: dict[int, LayerSearch]) -> int:
    """The layer whose best passing candidate raises unsafe refusal most (ties: less over-refusal, then
    shallower); when no candidate passes anywhere, the layer of the best candidate by the paper's rule alone."""
    usable = {layer: f.best for layer, f in found.items() if f.best}
    if not usable:
        usable = {layer: f.top for layer, f in found.items() if f.top}
    if not usable:
        raise RuntimeError("No layer gave refusal candidates: the model refused none of the archetypal prompts.")
    return min(usable, key=lambda layer: (-usable[layer]["gain"], usable[layer]["safe_refusal"], layer))


def chosen(found: LayerSearch) -> tuple[dict, bool]:
    """The candidate the chapter steers at this layer and whether it passed the search criterion (else the
    paper's rule alone picked it)."""
    return (found.best, True) if found.best else (found.top, False)


def choose_controls(found: LayerSearch, feature: int, n: int, seed: int, pool_factor: int = 5) -> list[int]:
    """``n`` random control features matched on activation frequency at the same site: drawn (seeded) from the
    ``pool_factor * n`` live features nearest the refusal feature in log frequency, leaving out the refusal
    candidates (features active on refusals are not unrelated to refusal)."""
    freq = np.asarray(found.frequency, float)
    excluded = {feature} | {c["feature"] for c in found.candidates}
    live = [f for f in np.flatnonzero((freq > 0) & (np.asarray(found.scale) > 0)).tolist() if f not in excluded]
    target = np.log(max(freq[feature], 1e-6))
    pool = sorted(live, key=lambda f: (abs(np.log(freq[f]) - target), f))[: pool_factor * n]
    picked = np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False)
    return sorted(int(f) for f in picked)


def conditional_detector(subject, found: LayerSearch, selection: dict[str, list[Item]], eval_sets: dict[str, list[Item]]) -> dict:
    """The harmful-prompt detector: the top contrastive feature, with the threshold that best separates
    harmful and jailbreak selection prompts from the other (benign, scary-word and capability) ones, and
    whether it fires on each evaluation prompt."""
    site, feature = Site(found.layer), int(np.argmax(found.contrast))
    positive = detector_scores(subject, site, feature, selection["harmful"] + selection["jailbreak"])
    negative = detector_scores(subject, site, feature, [i for k in selection if k not in UNSAFE for i in selection[k]])
    cut = threshold(positive, negative)
    prompts = [i.prompt for items in eval_sets.values() for i in items]
    scores = detector_scores(subject, site, feature, [Item("x", p, {}) for p in prompts])
    fires = {p: s >= cut["threshold"] for p, s in zip(prompts, scores)}
    rate = {kind: float(np.mean([fires[i.prompt] for i in items])) for kind, items in eval_sets.items()}
    return {"feature": feature, **cut, "fires": fires, "fire_rate_by_kind": rate}


def layer_table(found: dict[int, LayerSearch]) -> list[dict]:
    """Per searched layer, on the selection set: its top candidate, that candidate's well-formed refusal gain,
    rise in degenerate answers and whether it passes, and how many candidates pass there."""
    rows = []
    for layer in sorted(found):
        f = found[layer]
        if not f.ranking or not f.ranking.ranked:
            continue
        top = f.best or f.top
        rows.append({"layer": layer, "feature": top["feature"], "refusal gain": top["gain"],
                     "degenerate rise": top["degenerate_rise"], "passes": top["passes"],
                     "candidates passing": sum(r["passes"] for r in f.ranking.ranked), "candidates": len(f.ranking.ranked)})
    return rows


# --- operating points (chosen on the selection split) --------------------------------------------
def selection_rows(results: list[dict]) -> list[dict]:
    """Per clamp of a selection sweep of the refusal feature: well-formed unsafe refusal, its gain, capability
    loss and the share of degenerate answers over every behaviour (what the operating-point rules read)."""
    base = summary(baseline_of(results)["report"])
    rows = []
    for r in (r for r in results if r["name"] == "refusal feature"):
        s, report = summary(r["report"]), r["report"]
        rows.append({"multiple": r["multiple"], "unsafe refusal": s["unsafe_refusal"],
                     "refusal gain": s["unsafe_refusal"] - base["unsafe_refusal"],
                     "over-refusal gain": s["over_refusal"] - base["over_refusal"],
                     "capability loss": base["capability"] - s["capability"],
                     "degenerate": float(np.mean([v["degenerate"] for v in report.values()]))})
    return sorted(rows, key=lambda r: r["multiple"])


def operating_points(rows: list[dict], max_capability_loss: float, max_degenerate: float) -> dict[str, dict]:
    """The paper's two operating points on the selection rows, by rules written before evaluation (each a
    ``splits.choice`` record): balance = the largest clamp whose capability loss and degenerate share stay within
    the limits (the smallest clamp when none does); maximum refusal = the clamp with the most well-formed unsafe
    refusal (ties: the smaller clamp)."""
    grid = [r["multiple"] for r in rows]
    within = [r for r in rows if r["capability loss"] <= max_capability_loss and r["degenerate"] <= max_degenerate]
    balance = max(within, key=lambda r: r["multiple"]) if within else rows[0]
    most = max(rows, key=lambda r: (r["unsafe refusal"], -r["multiple"]))
    rule = (f"largest clamp with selection capability loss <= {max_capability_loss:g} and degenerate share <= "
            f"{max_degenerate:g} (parameter file); the smallest clamp when none qualifies")
    return {"balance": choice(balance["multiple"], "selection split", rule + ("" if within else "; none qualified"), grid),
            "max refusal": choice(most["multiple"], "selection split",
                                  "clamp with the most well-formed unsafe refusal (ties: smaller clamp)", grid)}


# --- what the feature is ---------------------------------------------------------------------------
DETECTOR_CONCEPTS = ("harmful_request", "harmful_prompt_end")  # planted concepts of a harmful request
WRITER_CONCEPTS = ("refusal",)  # planted concept of the refusal the model writes


def has_ground_truth(subject) -> bool:
    """Whether the subject's concepts are planted: the organism, or the chat model (its dataset's labels)."""
    return subject.is_organism or subject.params["model"] == chat_build.CHAT_MODEL


def probe_match(subject, site: Site, feature: int, records: list[dict] | None = None) -> list[dict]:
    """The chosen feature's AUROC for every planted concept at ``site``, next to the best feature there (the
    organism's probe table; for the chat model, the feature with the highest AUROC over the labelled tokens
    of ``records``, by default its dataset's selection conversations, ``gemma3.chat_probes``)."""
    if subject.is_organism:
        probes = subject.probes()
        scores = concept_aurocs(subject.lm, subject.language, site, subject.sae(site))
        best = {c: (probes[c][str(site)]["feature"], probes[c][str(site)]["auroc"]) for c in scores if not c.startswith("topic:")}
    else:
        records = chat_build.ground_truth_records() if records is None else records
        scores = chat_probes.concept_aurocs(subject.lm, subject.sae(site), site, records)
        best = {c: (int(np.argmax(v)), float(np.max(v))) for c, v in scores.items()}
    return [{"concept": c, "chosen feature AUROC": float(scores[c][feature]), "best feature": f, "best AUROC": a,
             "is best": f == feature} for c, (f, a) in best.items()]


def writes_tokens(subject, site: Site, feature: int, markers: Sequence[str], k: int) -> dict:
    """The feature's top-``k`` tokens through the unembedding (logit lens of its decoder direction) and
    whether the first token of a refusal marker is among them."""
    tokenizer, model, lay = subject.lm.tokenizer, torch_model(subject.lm), layout(subject.lm)
    with torch.no_grad():  # the decoder direction through the model's own final norm and unembedding
        direction = subject.sae(site).W_dec[feature].detach()[None]
        logits = walk(model, lay.unembed)(walk(model, lay.final_norm)(direction.to(model.dtype)))[0].float()
    logits[[i for i in tokenizer.all_special_ids if i is not None]] = float("-inf")  # no text a feature could write
    top = logits.topk(k).indices.tolist()
    firsts = {ids[0] for m in markers if (ids := tokenizer(m, add_special_tokens=False)["input_ids"])}
    return {"top tokens": [tokenizer.decode([t]) for t in top], "writes a refusal token": bool(firsts & set(top))}


def role(match: list[dict] | None, lens: dict, auroc_cut: float) -> dict:
    """Detector (a harmful-request concept's AUROC >= ``auroc_cut``), writer (the refusal concept's AUROC >=
    ``auroc_cut`` or a refusal token among its unembedding's top tokens), both, or neither; unknown detector
    side without planted ground truth (``match`` None)."""
    by = {r["concept"]: r["chosen feature AUROC"] for r in match or []}
    detector = None if match is None else max(by.get(c, 0.0) for c in DETECTOR_CONCEPTS) >= auroc_cut
    writer = lens["writes a refusal token"] or any(by.get(c, 0.0) >= auroc_cut for c in WRITER_CONCEPTS)
    kind = ("detector and writer" if detector and writer else "refusal writer" if writer else "refusal detector"
            if detector else "neither" if detector is not None else "not known (no planted ground truth)")
    return {"role": kind, "detector": detector, "writer": writer, **{f"AUROC {c}": by.get(c) for c in DETECTOR_CONCEPTS + WRITER_CONCEPTS}} | lens
