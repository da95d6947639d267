"""Chapter D, steps 4-5: steering success. Sampled continuations with a feature steered at every new token;
GenSuccess@k counts logit-lens tokens and coherence is the perplexity of the continuation under a second model
(never the steered one). Each layer's features are split by a stable hash into a selection part, on which the
paper's factor rule picks the factor, and an evaluation part, on which the claims are measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from saesteer.analyses.scores.lens import lens_index
from saesteer.core.files import read_documents
from saesteer.core.generation import EditsFor, generate, sample_at
from saesteer.core.hooks import Site
from saesteer.core.interventions import (
    BoostEach,
    batches,
)
from saesteer.core.splits import disjoint, split
from saesteer.study.judges import judge_perplexity
from saesteer.study.params import ParameterError


# --- 4. steering success ---------------------------------------------------------------------------
def prefixes(subject, n: int, prefixes_text: str | None) -> list[str]:
    """GenSuccess prefixes: lines of ``prefixes_text``, or held-out organism prompts of several kinds (in turn)."""
    if prefixes_text is not None:
        return read_documents(prefixes_text)[:n]
    if subject.language is None:
        raise ParameterError("Parameter 'prefixes_text' must name a text file when the model is not the organism.")
    kinds = ("benign", "scary", "topic", "truthful", "arith", "mc")
    sets = subject.eval_sets(kinds, n)
    mixed = [item.prompt for group in zip(*sets.values()) for item in group]
    return mixed[:n]


def _count_hits(ids: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Per row: how many generated tokens (``ids`` [n, t]) are in that row's lens (``lens`` [n, k])."""
    return (ids[:, :, None] == lens[:, None, :]).any(-1).sum(1).float()


def _generate(subject, texts: Sequence[str], edits_for: EditsFor, params: dict, seed: int,
              batch_size: int | None = None) -> list[torch.Tensor]:
    """Sampled continuations (temperature), ``batch_size`` rows per generate call (default: all at once), one id
    tensor per batch; seeded per batch (``seed`` + its first row) so a rerun gives the same tokens on CPU."""
    return generate(subject.lm, texts, edits_for, params["gen_tokens"], batch_size or len(texts), seed=seed,
                    **sample_at(params["temperature"]))


def gen_success(subject, jobs: Sequence[tuple[int, int, float]], lens: dict[tuple[int, int], list[int]],
                prompts: Sequence[str], params: dict, judge) -> list[dict]:
    """GenSuccess@k and the ``judge`` model's perplexity for each steered (layer, feature, factor) job over
    ``prompts``: one row per (job, prompt), steered at the last prompt token and every generated token. Rows of
    different layers and factors share each generate call, every edit leaving the other rows alone."""
    if not jobs:
        return []
    rows = [(j, p) for j in range(len(jobs)) for p in range(len(prompts))]
    texts = [prompts[p] for _, p in rows]
    generated = _generate(subject, texts, lambda chunk: _edits_for(subject, [jobs[rows[i][0]] for i in chunk]), params,
                          params["seed"], params["batch_size"])
    hits, ppl = [], []
    for chunk, ids in zip(batches(range(len(rows)), params["batch_size"]), generated):
        hits.append(_count_hits(ids, torch.tensor([lens[jobs[rows[i][0]][:2]] for i in chunk])))
        ppl.append(judge_perplexity(judge, subject.lm, [texts[i] for i in chunk], ids))
    hits, ppl = torch.cat(hits), torch.cat(ppl)
    n = len(prompts)
    return [{"layer": layer, "feature": f, "factor": s, "gen_success": float(hits[j * n : (j + 1) * n].mean()),
             "perplexity": float(ppl[j * n : (j + 1) * n].mean())} for j, (layer, f, s) in enumerate(jobs)]


def unsteered(subject, prompts: Sequence[str], params: dict, judge, samples: int = 8) -> dict:
    """Unsteered continuations, ``samples`` per prompt (token ids), and their mean perplexity under ``judge``:
    the baseline every feature's GenSuccess and perplexity are compared with."""
    texts = [p for p in prompts for _ in range(samples)]
    ids = _generate(subject, texts, [], params, params["seed"] + 10**6)[0]
    return {"ids": ids.tolist(), "perplexity": float(judge_perplexity(judge, subject.lm, texts, ids).mean())}


def baseline_success(ids: Sequence[Sequence[int]], lens: Sequence[int]) -> float:
    """GenSuccess of a feature's lens in unsteered continuations."""
    ids = torch.as_tensor(ids)
    return float(_count_hits(ids, torch.as_tensor(lens).expand(len(ids), -1)).mean())


def _edits_for(subject, jobs: Sequence[tuple[int, int, float]]) -> list[BoostEach]:
    """One ``BoostEach`` per (layer, factor) among the rows' jobs, each steering only its own rows."""
    edits = []
    for layer, factor in sorted({(layer, s) for layer, _, s in jobs if s > 0}):
        factors = [factor if (l, s) == (layer, factor) else float("nan") for l, _, s in jobs]
        edits.append(BoostEach(site=Site(layer), sae=subject.sae(Site(layer)), features=[f for _, f, _ in jobs],
                               factors=factors, tokens="last"))
    return edits


def pick_factor(sweep: Sequence[dict], baseline_ppl: float) -> dict:
    """The paper's factor rule, one factor for all (selection) features: maximise mean GenSuccess normalised by
    its best value over factors, divided by mean perplexity normalised by the unsteered perplexity."""
    factors = sorted({r["factor"] for r in sweep})
    gen = {s: float(np.mean([r["gen_success"] for r in sweep if r["factor"] == s])) for s in factors}
    gain = {s: float(np.mean([r["gain"] for r in sweep if r["factor"] == s])) for s in factors}
    ppl = {s: float(np.mean([r["perplexity"] for r in sweep if r["factor"] == s])) for s in factors}
    top = max(gen.values()) or 1.0
    score = {s: gen[s] / top / (ppl[s] / baseline_ppl) for s in factors}
    best = max(factors, key=lambda s: (score[s], -s))
    return {"factor": best, "rows": [{"factor": s, "gen_success": gen[s], "gain": gain[s], "perplexity": ppl[s],
                                      "score": score[s]} for s in factors]}


def split_features(rows: Sequence[dict], params: dict) -> dict[str, list[tuple[int, int]]]:
    """Each layer's scored features split by a stable hash (``core.splits.split``) into a selection and an
    evaluation part; a seeded sample of ``select_features`` and ``gen_features`` per layer from each part."""
    rng = np.random.default_rng(params["seed"])
    parts: dict[str, list[tuple[int, int]]] = {"selection": [], "evaluation": []}
    for layer in sorted({r["layer"] for r in rows}):
        feats = [r["feature"] for r in rows if r["layer"] == layer]
        chosen = split(feats, params["selection_share"], salt=f"input_output_scores:layer{layer}")
        for name, part, n in zip(parts, chosen, (params["select_features"], params["gen_features"])):
            take = sorted(rng.choice(part, min(n, len(part)), replace=False).tolist()) if part else []
            parts[name] += [(layer, int(f)) for f in take]
    disjoint(parts["selection"], parts["evaluation"], "features")
    return parts


def _with_baseline(gen: list[dict], base_ids, lenses, part: str) -> list[dict]:
    """Each row with its feature's unsteered GenSuccess (``baseline``), the gain over it, and its part."""
    for g in gen:
        g["baseline"] = baseline_success(base_ids, lenses[(g["layer"], g["feature"])])
        g["gain"] = g["gen_success"] - g["baseline"]
        g["part"] = part
    return gen


def steering(subject, rows: Sequence[dict], scored: Sequence[dict], extra: Sequence[tuple[int, int]], params: dict,
             judge) -> dict:
    """The factor sweep on the selection features and the factor the paper's rule picks there; every factor on
    the evaluation features (the rule's for the claims, the others for the sensitivity figure); the ``extra``
    (ground-truth) features at the rule's factor and the strongest one (``sweep_evaluation`` false: the evaluation
    features at the rule's factor only, so the sensitivity grid has one factor). GenSuccess gains are over each
    feature's lens tokens in unsteered continuations; perplexity is ``judge``'s."""
    prompts = prefixes(subject, params["n_prefixes"], params["prefixes_text"])
    lenses = lens_index(scored)
    base = unsteered(subject, prompts, params, judge)
    parts = split_features(rows, params)
    jobs = lambda feats, factors: [(l, f, s) for s in factors for l, f in feats]  # noqa: E731
    run = lambda feats, factors, part: _with_baseline(  # noqa: E731
        gen_success(subject, jobs(feats, factors), lenses, prompts, params, judge), base["ids"], lenses, part)
    sweep = run(parts["selection"], params["factors"], "selection")
    chosen = pick_factor(sweep, base["perplexity"])
    evaluation = run(parts["evaluation"], params["factors"] if params["sweep_evaluation"] else [chosen["factor"]], "evaluation")
    truth = run(list(dict.fromkeys(extra)), sorted({chosen["factor"], max(params["factors"])}), "ground truth")
    return {"prompts": prompts, "unsteered_perplexity": base["perplexity"], "factor": chosen, "parts": parts,
            "gen": sweep + evaluation + truth}


def continuations(subject, layer: int, feature: int, factor: float, prompts: Sequence[str], params: dict) -> list[dict]:
    """A worked example: sampled continuations of ``prompts`` unsteered and with ``feature`` steered."""
    edit = BoostEach(site=Site(layer), sae=subject.sae(Site(layer)), features=[feature] * len(prompts), factors=factor,
                     tokens="last")
    out = []
    for name, edits in (("unsteered", []), ("steered", [edit])):
        ids = _generate(subject, prompts, edits, params, params["seed"])[0]
        texts = subject.lm.tokenizer.batch_decode(ids, skip_special_tokens=True)
        out += [{"prompt": p, "setting": name, "continuation": t} for p, t in zip(prompts, texts)]
    return out


def worked_examples(rows: Sequence[dict], gen: Sequence[dict], cut: float, n: int) -> dict[str, list[dict]]:
    """The worked examples, by a rule on the scores alone (no steering outcome enters): among the measured
    features (``gen``: evaluation features at one factor) with an input score, the ``n`` with the highest S_in
    whose S_out is below ``cut`` (input features) and the ``n`` with the highest S_out whose S_in is below
    ``cut`` (output features); ties by (layer, feature)."""
    index = {(r["layer"], r["feature"]): r for r in rows}
    keep = ("gen_success", "baseline", "gain", "factor", "perplexity")
    measured = [index[(g["layer"], g["feature"])] | {k: g[k] for k in keep} for g in gen]
    valid = [m for m in measured if m["S_in"] == m["S_in"]]
    inputs = sorted((m for m in valid if m["S_out"] < cut), key=lambda m: (-m["S_in"], m["layer"], m["feature"]))
    outputs = sorted((m for m in valid if m["S_in"] < cut), key=lambda m: (-m["S_out"], m["layer"], m["feature"]))
    return {"input features": inputs[:n], "output features": outputs[:n]}
