"""Chapter B: can an SAE decompose a steering vector? (Mayne, Yang & Mahdi, 2024)

The paper's route, step by step:

1. ``caa_vectors``: contrastive activation addition (CAA) vectors, the mean over
   contrastive pairs of ``resid_post`` at the answer token with the positive
   answer minus with the negative answer, at every layer; ``steerability``: how
   much adding ``m * v`` at every position shifts P(positive answer);
2. out of distribution: ``norm_table`` (|v| against real activation norms),
   ``top_latents`` of encode(v) against encode(0) and of encode(a v),
   ``default_components`` (what real activations carry along the bias features);
   ``v_bootstrap`` redoes them for v rebuilt on resampled pairs (the intervals);
3. ``negative_projections``: decoder directions that v points against, lost by
   the encoder, and their "mirror" features that fire instead; ``negative_test``
   checks the strongest one on held-out pairs;
4. ``decompositions``: the naive encoding and the alternatives (difference of
   mean encodings, signed decoder projections, orthogonal matching pursuit),
   scored against a ground truth that does not use the pairs' SAE codes
   (``planted_truth``: the planted concept's labels on held-out dialogues) by
   ``compare_methods``;
5. ``steering_test``: steer with v, its SAE reconstructions and each
   alternative's top-k reconstruction at matched norm, per held-out pair, so
   that ``paired`` compares two vectors on the same pairs.
The claims table is built by the chapter module, ``saesteer.chapters.steering_vector_decomposition``.

A contrastive pair is ``{"prompt", "positive", "negative", "split", "cluster"}``:
the completions are appended to the prompt as written, and must differ in their
first token (the behaviour is read there as P(positive) / (P(positive) +
P(negative))); pairs of one cluster (a request's verb and object, a question's
template) are resampled together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import OrthogonalMatchingPursuit

from saesteer.core.codes import encode, read_tokens
from saesteer.core.files import read_documents, resolve
from saesteer.core.hooks import Site
from saesteer.core.interventions import AddVector, batches, forward_with_edits
from saesteer.core.sae_training import reconstruction_stats
from saesteer.core.saes import unit_decoder
from saesteer.core.splits import disjoint
from saesteer.core.stats import auroc, paired_difference
from saesteer.organism.language import COMPLY_OPEN, REFUSE_OPEN, Language
from saesteer.study.params import ParameterError

DRAWS = 1000  # bootstrap draws of every interval (core.stats' default)


# --- contrastive pairs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """A contrastive question: the prompt and the two answers appended to it."""

    prompt: str
    positive: str  # e.g. " sorry": the answer showing the behaviour (refusal)
    negative: str
    split: str = "eval"  # "selection" (builds vectors, makes choices) or "eval" (measures)
    cluster: str = ""  # pairs resampled together (the request's verb and object); empty: the prompt

    @property
    def texts(self) -> tuple[str, str]:
        return self.prompt + self.positive, self.prompt + self.negative

    @property
    def unit(self) -> str:
        """The resampling unit this pair belongs to."""
        return self.cluster or self.prompt


BEHAVIOURS = {  # organism behaviour -> (dialogue kind, positive and negative answer, planted concept or None)
    "refusal": ("jailbreak", REFUSE_OPEN, COMPLY_OPEN, "refusal"),  # about half of jailbreaks are refused
    "corrigibility": ("ab", None, None, None),  # the paper's behaviour: A/B letters, no planted concept
}


def _organism_pair(d, behaviour: str, split: str) -> Pair:
    _, positive, negative, _ = BEHAVIOURS[behaviour]
    if positive is None:
        positive, negative = d.truth["positive"], d.truth["negative"]
    return Pair(d.prompt(), f" {positive}", f" {negative}", split, d.truth["cluster"])


def organism_pairs(n_selection: int, n_eval: int, behaviour: str = "refusal", seed: int = 0) -> list[Pair]:
    """The organism's pairs of ``behaviour`` (see ``BEHAVIOURS``): training-distribution prompts (selection) and
    held-out ones (eval; for refusal, verb-object combinations never trained on)."""
    language, kind = Language(seed), BEHAVIOURS[behaviour][0]
    sel = [_organism_pair(d, behaviour, "selection") for d in language.selection_set(kind, n_selection)]
    held = [_organism_pair(d, behaviour, "eval") for d in language.eval_set(kind, n_eval)]
    return sel + held


def load_pairs(path: str | Path) -> list[Pair]:
    """Pairs from JSONL: one ``{"prompt", "positive", "negative", "split"}`` object per line (optionally a
    ``"cluster"``), split "selection" (the vector is built and choices made on these) or "eval" (measured)."""
    pairs = []
    for n, line in enumerate(resolve(path).read_text().splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            missing = {"prompt", "positive", "negative", "split"} - set(row)
            if missing or row["split"] not in ("selection", "eval"):
                raise ParameterError(f"Pair file {str(path)!r} line {n} needs prompt, positive, negative and a split of "
                                     f"'selection' or 'eval'; got keys {sorted(row)}.")
            pairs.append(Pair(row["prompt"], row["positive"], row["negative"], row["split"], str(row.get("cluster", ""))))
    return pairs


def export_pairs(path: str | Path, n_selection: int = 200, n_eval: int = 200, behaviour: str = "refusal") -> Path:
    """Write the organism's pairs in the pair-file format (the template for a real model's file)."""
    lines = [json.dumps(p.__dict__) for p in organism_pairs(n_selection, n_eval, behaviour)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def split_pairs(pairs: list[Pair], n_build: int, n_choose: int, n_eval: int) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """(build, choose, eval): the first ``n_build`` selection pairs build the vectors, the next ``n_choose`` choose
    the layer (the build pairs again when there are no more), at most ``n_eval`` eval pairs measure; stops when a
    prompt is in both splits or a split is empty."""
    sel = [p for p in pairs if p.split == "selection"]
    build, choose = sel[:n_build], sel[n_build:n_build + n_choose] or sel[:n_choose]
    held = [p for p in pairs if p.split == "eval"][:n_eval]
    if not build or not held:
        raise ParameterError("Parameter 'pairs' must give at least one 'selection' and one 'eval' pair.")
    disjoint([p.prompt for p in sel], [p.prompt for p in held], "pair prompts")
    return build, choose, held


def answer_tokens(tokenizer, pairs: Sequence[Pair]) -> torch.Tensor:
    """[n, 2] ids of the first token of each pair's positive and negative answer (they must differ)."""
    ids = []
    for p in pairs:
        pos, neg = (tokenizer(a, add_special_tokens=False)["input_ids"][:1] for a in (p.positive, p.negative))
        if not pos or pos == neg:
            raise ParameterError(f"The answers {p.positive!r} and {p.negative!r} must differ in their first token.")
        ids.append(pos + neg)
    return torch.tensor(ids)


# --- activations ------------------------------------------------------------------------------------
def last_token_acts(lm, texts: Sequence[str], layers: Sequence[int], batch_size: int) -> dict[int, torch.Tensor]:
    """``resid_post`` at the last token of each text (left padding puts it at -1), per layer: {layer: [n, d]}."""
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for chunk in batches(list(texts), batch_size):
        _, acts = forward_with_edits(lm, chunk, read=[Site(layer) for layer in layers], logits_to_keep=1)
        for layer in layers:
            out[layer].append(acts[Site(layer)][:, -1].float().cpu())
    return {layer: torch.cat(v) for layer, v in out.items()}


def caa_vectors(lm, pairs: Sequence[Pair], layers: Sequence[int], batch_size: int) -> dict:
    """Per layer: the CAA vector v (mean positive minus mean negative answer-token activation) and the
    per-pair activations it came from (``pos``, ``neg``: [n, d])."""
    pos = last_token_acts(lm, [p.texts[0] for p in pairs], layers, batch_size)
    neg = last_token_acts(lm, [p.texts[1] for p in pairs], layers, batch_size)
    return {layer: {"v": pos[layer].mean(0) - neg[layer].mean(0), "pos": pos[layer], "neg": neg[layer]} for layer in layers}


def token_acts(lm, texts: Sequence[str], layer: int, n_tokens: int, batch_size: int) -> torch.Tensor:
    """``resid_post`` of the counted tokens of ``texts`` ([tokens, d]): ``core.codes``'s rule, real tokens without
    the opening <bos> (on the organism and on Gemma its norm is an outlier far above every other token's)."""
    rows: list[torch.Tensor] = []
    for chunk in batches(list(texts), batch_size):
        batch = read_tokens(lm, [Site(layer)], chunk)
        rows.append(batch.acts[Site(layer)].float().cpu()[batch.mask])
        if sum(map(len, rows)) >= n_tokens:
            break
    return torch.cat(rows)[:n_tokens]


def norm_texts(subject, pairs: Sequence[Pair], norm_text: str | None, n: int = 60) -> list[str]:
    """Texts whose tokens stand for "real activations": the lines of ``norm_text``, else the organism's
    held-out dialogues of every kind, else the pair texts."""
    if norm_text:
        return read_documents(norm_text)
    if subject.is_organism:
        kinds = ("harmful", "jailbreak", "benign", "scary", "mc", "arith", "truthful", "topic", "ab")
        return [d.text() for kind in kinds for d in subject.language.eval_set(kind, n, seed=3)]
    return [t for p in pairs for t in p.texts]


# --- steering ---------------------------------------------------------------------------------------
def behaviour_logit(lm, prompts: Sequence[str], answers: torch.Tensor, vectors: torch.Tensor, site: Site,
                    batch_size: int) -> torch.Tensor:
    """logit(positive) - logit(negative) at the first answer token (so P(positive) / (P(positive) +
    P(negative)) is its sigmoid), with row r steered by adding ``vectors[r]`` at every position of ``site``
    (a zero row is unsteered); one forward pass per batch."""
    out = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        vec = vectors[start : start + len(chunk)][:, None, :]
        logits, _ = forward_with_edits(lm, chunk, [AddVector(site=site, vector=vec)], logits_to_keep=1)
        pair = torch.gather(logits[:, -1].float().cpu(), 1, answers[start : start + len(chunk)])
        out.append(pair[:, 0] - pair[:, 1])
    return torch.cat(out)


def steer_grid(lm, pairs: Sequence[Pair], answers: torch.Tensor, site: Site, vectors: torch.Tensor,
               multipliers: Sequence[float], batch_size: int) -> np.ndarray:
    """Behaviour logit for every (vector, multiplier, pair), batched along rows: [vectors, multipliers, pairs]."""
    n_v, n_m, n_p = len(vectors), len(multipliers), len(pairs)
    coeff = torch.tensor(multipliers, dtype=torch.float32)
    rows = (vectors[:, None, None, :] * coeff[None, :, None, None]).expand(n_v, n_m, n_p, -1).reshape(-1, vectors.shape[1])
    prompts = [p.prompt for p in pairs] * (n_v * n_m)
    logit = behaviour_logit(lm, prompts, answers.repeat(n_v * n_m, 1), rows, site, batch_size)
    return logit.reshape(n_v, n_m, n_p).numpy()


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def shift_stats(logits: np.ndarray, base: np.ndarray, clusters: Sequence[str]) -> dict:
    """Shift of P(positive) and of the behaviour logit against the unsteered run on the same pairs: means with
    95% intervals that resample clusters of pairs, and the per-pair P shifts (for paired comparisons)."""
    p, p_lo, p_hi = paired_difference(sigmoid(logits), sigmoid(base), clusters)
    lg, lg_lo, lg_hi = paired_difference(logits, base, clusters)
    return {"n": len(base), "clusters": len(set(clusters)), "p_shift": p, "p_lo": p_lo, "p_hi": p_hi,
            "logit_shift": lg, "logit_lo": lg_lo, "logit_hi": lg_hi, "shifts": (sigmoid(logits) - sigmoid(base)).tolist()}


def paired(rows: Sequence[dict], a: str, b: str, clusters: Sequence[str]) -> tuple[float, float, float]:
    """Mean of vector ``a``'s P shift minus vector ``b``'s over the same pairs, with its clustered 95% interval."""
    by = {r["vector"]: r for r in rows}
    return paired_difference(by[a]["shifts"], by[b]["shifts"], clusters)


def steerability(lm, vecs: dict, eval_pairs: Sequence[Pair], multipliers: Sequence[float], batch_size: int) -> list[dict]:
    """Per layer: mean P(positive) and mean behaviour logit at every multiplier of that layer's own v, and
    the steerability: the least-squares slope of mean P(positive) against the multiplier (as in CAA; the
    mean logit is dominated by a few confidently answered items, so the probability is the steadier measure)."""
    answers = answer_tokens(lm.tokenizer, eval_pairs)
    rows = []
    for layer, vec in vecs.items():
        grid = steer_grid(lm, eval_pairs, answers, Site(layer), vec["v"][None], multipliers, batch_size)[0]
        slope = float(np.polyfit(np.asarray(multipliers, float), (1 / (1 + np.exp(-grid))).mean(1), 1)[0])
        rows.append({"layer": layer, "norm": float(vec["v"].norm()), "slope": slope,
                     "curve": [{"multiplier": m, "p": float((1 / (1 + np.exp(-g))).mean()), "logit": float(g.mean())}
                               for m, g in zip(multipliers, grid)]})
    return rows


def pick_layer(rows: list[dict]) -> int:
    """The most steerable layer (largest slope; ties: shallower)."""
    return min(rows, key=lambda r: (-r["slope"], r["layer"]))["layer"]


# --- the SAE side -----------------------------------------------------------------------------------
def pre_acts(sae, x: torch.Tensor) -> torch.Tensor:
    """The encoder's pre-activations, what the nonlinearity (TopK, JumpReLU, ReLU) is applied to: the
    ``hook_sae_acts_pre`` value of sae-lens, times the decoder norms when the SAE rescales by them."""
    with torch.no_grad():
        _, cache = sae.run_with_cache(x.to(sae.W_dec.dtype), names_filter="hook_sae_acts_pre")
    pre = cache["hook_sae_acts_pre"].detach().float()
    if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):
        pre = pre * sae.W_dec.detach().norm(dim=-1).float()
    return pre


def top(weights: torch.Tensor, k: int, signed: bool = False) -> list[dict]:
    """The ``k`` largest entries (by absolute value when ``signed``) as [{feature, value}]."""
    order = torch.argsort(weights.abs() if signed else weights, descending=True)[:k]
    return [{"feature": int(j), "value": float(weights[j])} for j in order]


def top_active(codes: torch.Tensor, k: int) -> list[dict]:
    """The ``k`` largest codes that are nonzero (fewer when fewer fire)."""
    return [r for r in top(codes, k) if r["value"] > 0]


def overlap(a: Sequence[dict], b: Sequence[dict]) -> int:
    """Number of features two top lists share."""
    return len({r["feature"] for r in a} & {r["feature"] for r in b})


def norm_table(v: torch.Tensor, real: torch.Tensor) -> dict:
    """|v| against the norms of real activations: quantiles, and the share of real tokens with a smaller norm."""
    norms = real.norm(dim=1)
    q = {f"q{int(100 * p):02d}": float(norms.quantile(p)) for p in (0.01, 0.05, 0.5, 0.95)}
    return {"v_norm": float(v.norm()), **q, "share_below_v": float((norms < v.norm()).float().mean()),
            "ratio_to_median": float(v.norm() / norms.median()), "norms": norms.tolist()}


def top_latents(sae, v: torch.Tensor, scales: Sequence[float], k: int, median_norm: float) -> dict:
    """Table 1 of the paper: the top-k active latents of encode(v) and encode(0), and of encode(a v) for each
    scale with the share of its top k that are encode(0)'s (0 when encode(0) fires nothing)."""
    zero = top_active(encode(sae, torch.zeros_like(v)), k)
    rows = []
    for a in scales:
        codes = encode(sae, a * v)
        latents = top_active(codes, k)
        rows.append({"scale": a, "norm_over_median": float(a * v.norm() / median_norm), "top": latents,
                     "overlap_with_zero": overlap(latents, zero), "share_with_zero": overlap(latents, zero) / k,
                     "active": int((codes > 0).sum())})
    return {"v": top_active(encode(sae, v), k), "zero": zero, "scales": rows}


def zero_code(sae, real: torch.Tensor) -> dict:
    """What the bias alone gives, encode(0): how many features fire, the largest code, and that code over the
    median nonzero code of real tokens (a "bias feature" is as large as ordinary codes)."""
    zero, codes = encode(sae, torch.zeros(sae.cfg.d_in)), encode(sae, real)
    typical = float(codes[codes > 0].median()) if (codes > 0).any() else float("nan")
    return {"architecture": sae.cfg.architecture(), "zero_l0": int((zero > 0).sum()), "zero_max": float(zero.max()),
            "real_median_code": typical, "zero_max_over_median": float(zero.max()) / typical}


# --- resampled vectors ----------------------------------------------------------------------------------
def resampled_vectors(diffs: torch.Tensor, clusters: Sequence[str], draws: int = DRAWS, seed: int = 0) -> torch.Tensor:
    """[draws, d] CAA vectors rebuilt on pairs resampled by cluster (``diffs``: each pair's positive minus
    negative activation): the spread of everything computed from v."""
    _, index = np.unique(np.asarray(clusters), return_inverse=True)
    index = torch.as_tensor(index)
    sums = torch.zeros(int(index.max()) + 1, diffs.shape[1]).index_add_(0, index, diffs.float())
    sizes = torch.bincount(index).float()
    picks = torch.as_tensor(np.random.default_rng(seed).integers(0, len(sizes), (draws, len(sizes))))
    return sums[picks].sum(1) / sizes[picks].sum(1)[:, None]


def interval(values) -> dict:
    """The 2.5th and 97.5th percentiles of bootstrap draws."""
    values = np.asarray(values, float)
    return {"lo": float(np.percentile(values, 2.5)), "hi": float(np.percentile(values, 97.5))}


def norm_bootstrap(draws: torch.Tensor, real: torch.Tensor) -> dict:
    """Share of real tokens with a norm below |v| and |v| over the median real norm, over resampled vectors."""
    norms = real.norm(dim=1).sort().values
    v_norms = draws.norm(dim=1)
    share = torch.searchsorted(norms, v_norms).float() / len(norms)
    return {"share_below_v": interval(share), "ratio_to_median": interval(v_norms / norms.median())}


def overlap_bootstrap(sae, draws: torch.Tensor, scales: Sequence[float], k: int) -> dict:
    """Per scale a: the interval of the share of encode(a v)'s top-k active latents that are among encode(0)'s,
    over resampled vectors."""
    zero = encode(sae, torch.zeros(draws.shape[1]))
    in_zero = torch.zeros_like(zero, dtype=torch.bool)
    in_zero[[r["feature"] for r in top_active(zero, k)]] = True
    out = {}
    for a in scales:
        codes = encode(sae, a * draws)
        value, idx = codes.topk(min(k, codes.shape[1]), dim=1)
        out[str(a)] = interval(((value > 0) & in_zero[idx]).sum(1).float() / k)
    return out


def default_components(sae, v: torch.Tensor, real: torch.Tensor, features: Sequence[int]) -> list[dict]:
    """For the bias-driven features (those of encode(0)): the pre-activation at 0 (the effective encoder
    bias), what real activations add to it on average (their "default component" along the encoder
    direction), what v adds, and how often the feature fires on real tokens."""
    zero, pre_v, pre_real = pre_acts(sae, torch.zeros_like(v)), pre_acts(sae, v), pre_acts(sae, real)
    fires = (encode(sae, real) > 0).float().mean(0)
    return [{"feature": f, "bias (pre-act at 0)": float(zero[f]), "real tokens add (mean)": float((pre_real[:, f] - zero[f]).mean()),
             "v adds": float(pre_v[f] - zero[f]), "fires on real tokens": float(fires[f])} for f in features]


def mean_direction(v: torch.Tensor, real: torch.Tensor) -> dict:
    """The largest default component, the mean real activation: its norm, real tokens' projections on it
    and v's (a difference of activations has this component subtracted away)."""
    mu = real.mean(0)
    unit = mu / mu.norm()
    return {"mean_norm": float(mu.norm()), "real_projection_mean": float((real @ unit).mean()),
            "v_projection": float(v @ unit), "cos_v_mean": float(v @ unit / v.norm())}


# --- negative projections -----------------------------------------------------------------------------
def negative_projections(sae, v: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, n: int) -> list[dict]:
    """The ``n`` most negative projections v . d_j / |d_j|: whether the encoder keeps them (it cannot output a
    negative code), whether the feature is more active on the negative answers (the pairs' ``neg``), and its
    "mirror", the feature whose decoder direction is most opposite, with its code on v and on 0."""
    dirs = unit_decoder(sae)
    proj, code_v, code_0 = dirs @ v, encode(sae, v), encode(sae, torch.zeros_like(v))
    on_pos, on_neg = encode(sae, pos).mean(0), encode(sae, neg).mean(0)
    rows = []
    for j in torch.argsort(proj)[:n].tolist():
        cos = dirs @ dirs[j]
        cos[j] = float("inf")
        m = int(torch.argmin(cos))
        rows.append({"feature": j, "projection": float(proj[j]), "code on v": float(code_v[j]),
                     "mean on positive": float(on_pos[j]), "mean on negative": float(on_neg[j]),
                     "mirror": m, "mirror cosine": float(cos[m]), "mirror code on v": float(code_v[m]),
                     "mirror code on 0": float(code_0[m]), "mirror projection": float(proj[m])})
    return rows


def negative_test(sae, v: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, clusters: Sequence[str], n: int) -> dict:
    """The ``n`` most negative projections of v (built on selection pairs) read on held-out pairs (``pos``,
    ``neg``), and for the strongest one the held-out paired difference of its code on the negative minus the
    positive answer, with its clustered 95% interval (the feature "belongs to" the negative answer)."""
    rows = negative_projections(sae, v, pos, neg, n)
    j = rows[0]["feature"]
    diff = paired_difference(encode(sae, neg)[:, j], encode(sae, pos)[:, j], clusters)
    return {"rows": rows, "neg_minus_pos": dict(zip(("mean", "lo", "hi"), diff))}


# --- ground truth and decompositions -------------------------------------------------------------------
def planted_truth(subject, site: Site, sae, concept: str | None) -> np.ndarray | None:
    """Per feature, the AUROC of its code for the planted ``concept``'s tokens against contrasting tokens of
    held-out labelled dialogues (``organism.probes``: for refusal, every word of a refusal against benign
    answers and harmful compliance): a ground truth that uses neither the pairs nor their SAE codes. None
    when the subject plants no such concept (a real model, or a behaviour without one)."""
    if concept is None or subject.language is None:
        return None
    from saesteer.organism.probes import concept_aurocs

    return np.nan_to_num(concept_aurocs(subject.lm, subject.language, site, sae)[concept], nan=0.5)


def omp(sae, v: torch.Tensor, k: int) -> torch.Tensor:
    """Signed sparse decomposition of v over the unit decoder directions by orthogonal matching pursuit
    (scikit-learn), ``k`` atoms: the coefficients [d_sae] (may be negative)."""
    atoms = unit_decoder(sae).T.double().numpy()
    fit = OrthogonalMatchingPursuit(n_nonzero_coefs=min(k, atoms.shape[1]), fit_intercept=False).fit(atoms, v.double().numpy())
    return torch.tensor(fit.coef_, dtype=torch.float32)


METHODS = {  # decomposition -> (what it is, whether its weights are SAE codes decoded by W_dec (else unit directions))
    "encode(v)": ("the naive decomposition: the SAE encoder applied to v", True),
    "encode(v) - encode(0)": ("the naive codes with the bias-only codes removed", True),
    "f(a+) - f(a-)": ("mean SAE code on positive-answer tokens minus on negative-answer tokens", True),
    "signed projection": ("v . d_j / |d_j| on every decoder direction, negative ones kept", False),
    "OMP": ("orthogonal matching pursuit of v over unit decoder directions (signed)", False),
}


def decompositions(sae, v: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """Each method's weight per feature [d_sae]."""
    zero = encode(sae, torch.zeros_like(v))
    return {"encode(v)": encode(sae, v), "encode(v) - encode(0)": encode(sae, v) - zero,
            "f(a+) - f(a-)": encode(sae, pos).mean(0) - encode(sae, neg).mean(0),
            "signed projection": unit_decoder(sae) @ v, "OMP": omp(sae, v, k)}


def score_methods(weights: dict[str, torch.Tensor], truth: np.ndarray, k: int, margin: float) -> list[dict]:
    """Per method: its top-k features (by |weight|) and how many are ground-truth features of the behaviour
    with the right sign (|AUROC - 0.5| >= ``margin`` and the weight's sign matching AUROC's side of 0.5)."""
    rows = []
    for name, w in weights.items():
        named = top(w, k, signed=True)
        hits = [abs(truth[r["feature"]] - 0.5) >= margin and np.sign(r["value"]) == np.sign(truth[r["feature"]] - 0.5)
                for r in named]
        rows.append({"method": name, "features": [r["feature"] for r in named], "weights": [r["value"] for r in named],
                     "aurocs": [float(truth[r["feature"]]) for r in named], "ground truth hits": int(sum(hits)),
                     "precision": float(np.mean(hits))})
    return rows


def recovery_auroc(weights: dict[str, torch.Tensor], truth: np.ndarray, margin: float, draws: int = DRAWS,
                   seed: int = 0) -> dict:
    """How well each method's signed weights single out the ground-truth features: the AUROC, over all
    features, of weight x side (side = which side of 0.5 the feature's truth AUROC lies) for ground-truth
    features (|AUROC - 0.5| >= ``margin``) against the rest; and each method minus ``encode(v)`` with a 95%
    interval resampling features (the same features for both methods: a paired comparison)."""
    names = list(weights)
    label = np.abs(truth - 0.5) >= margin
    scores = np.stack([weights[n].numpy() * np.sign(truth - 0.5) for n in names], axis=1)
    out = {"n_truth": int(label.sum()), "n_features": len(truth), "methods": {}}
    if label.all() or not label.any():
        return out | {"methods": {n: {"auroc": float("nan")} for n in names}}
    point = auroc(scores, label)
    rng, boot = np.random.default_rng(seed), []
    while len(boot) < draws:
        idx = rng.integers(0, len(truth), len(truth))
        if label[idx].any() and not label[idx].all():
            boot.append(auroc(scores[idx], label[idx]))
    boot = np.asarray(boot)
    base = names.index("encode(v)")
    for i, n in enumerate(names):
        out["methods"][n] = {"auroc": float(point[i]), **interval(boot[:, i]),
                             "minus_naive": float(point[i] - point[base]),
                             **{f"minus_naive_{b}": x for b, x in interval(boot[:, i] - boot[:, base]).items()}}
    return out


# --- the steering test --------------------------------------------------------------------------------------
def reconstruction_vectors(sae, v: torch.Tensor, weights: dict[str, torch.Tensor], k: int, seed: int,
                           others: dict | None = None) -> dict[str, torch.Tensor]:
    """The vectors steered with, every one rescaled to |v|: v; the SAE's reconstruction decode(encode(v)) (and
    ``others``' ones, {name: SAE}, as "<name> reconstruction"); each method's top-k features times their
    weights (codes along W_dec, or coefficients along unit directions); and a random direction (the control)."""
    dirs, w_dec = unit_decoder(sae), sae.W_dec.detach().float()
    vecs = {"v": v, "SAE reconstruction": reconstruct(sae, v)}
    vecs |= {f"{name} reconstruction": reconstruct(other, v) for name, other in (others or {}).items()}
    for name, w in weights.items():
        keep = torch.zeros_like(w)
        idx = torch.argsort(w.abs(), descending=True)[:k]
        keep[idx] = w[idx]
        vecs[f"{name} top-{k}"] = keep @ (w_dec if METHODS[name][1] else dirs)
    vecs["random direction"] = torch.randn(v.shape, generator=torch.Generator().manual_seed(seed))
    return {name: x * v.norm() / x.norm().clamp_min(1e-12) for name, x in vecs.items()}


def reconstruct(sae, v: torch.Tensor) -> torch.Tensor:
    """decode(encode(v)) as float32."""
    with torch.no_grad():
        return sae.decode(encode(sae, v)[None].to(sae.W_dec.dtype))[0].float()


def steering_test(lm, site: Site, vecs: dict[str, torch.Tensor], v: torch.Tensor, eval_pairs: Sequence[Pair],
                  multipliers: Sequence[float], batch_size: int) -> list[dict]:
    """Each vector added at each multiplier (matched norm |multiplier v|) on the held-out pairs, one batched
    grid: per (multiplier, vector) the P shift against the unsteered run on the same pairs (clustered 95%
    intervals, per-pair shifts kept for paired comparisons) and the vector's cosine with v."""
    answers = answer_tokens(lm.tokenizer, eval_pairs)
    names, clusters = list(vecs), [p.unit for p in eval_pairs]
    grid = steer_grid(lm, eval_pairs, answers, site, torch.stack([vecs[n] for n in names]), [0.0, *multipliers], batch_size)
    base = grid[0, 0]
    return [{"vector": n, "multiplier": m, "cosine with v": float(vecs[n] @ v / (vecs[n].norm() * v.norm()).clamp_min(1e-12)),
             **shift_stats(grid[i, j + 1], base, clusters)} for j, m in enumerate(multipliers) for i, n in enumerate(names)]


# --- the chapter's stages ------------------------------------------------------------------------------
def chapter_saes(subject, site: Site, families: Sequence[str]) -> dict:
    """{name: SAE} analysed at ``site``, the first the claims' SAE. The organism with its own SAEs: each of
    ``families`` ("jumprelu": ``organism.jumprelu``'s, "topk": the committed ones); a ``sae_path`` with an
    ``{architecture}`` field: the first family, and each other one that has an SAE at ``site`` (the real
    model has TopK SAEs at a few layers only); any other subject: its one SAE, named by its architecture."""
    p = subject.params
    if subject.is_organism and not p["sae_path"] and not p["sae_release"]:
        from saesteer.organism.jumprelu import jumprelu_sae

        load = {"jumprelu": lambda: jumprelu_sae(site), "topk": lambda: subject.sae(site)}
        return {family: load[family]() for family in families}
    if p["sae_path"] and "{architecture}" in p["sae_path"]:
        first, *others = families
        return {first: subject.sae(site, first)} | {family: subject.sae(site, family) for family in others
                                                     if (subject.sae_dir(site, family) / "cfg.json").is_file()}
    sae = subject.sae(site)
    return {sae.cfg.architecture(): sae}


def saes_fingerprint(saes: dict) -> str:
    """A digest of the analysed SAEs' names and weights, for the stage cache key (a rebuilt SAE is a new key)."""
    digest = hashlib.sha256()
    for name, sae in saes.items():
        digest.update(name.encode())
        for key, tensor in sorted(sae.state_dict().items()):
            digest.update(key.encode() + tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def vectors_stage(subject, build: Sequence[Pair], choose: Sequence[Pair], layers: Sequence[int], params: dict) -> dict:
    """CAA vectors at every layer (on the build pairs) and their steerability (on the choose pairs)."""
    vecs = caa_vectors(subject.lm, build, layers, params["batch_size"])
    rows = steerability(subject.lm, vecs, choose, params["multipliers"], params["batch_size"])
    return {"vectors": {str(layer): vecs[layer]["v"].tolist() for layer in layers}, "steerability": rows}


def pair_acts(lm, pairs: Sequence[Pair], layer: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``resid_post`` at the answer token of each pair with the positive and with the negative answer."""
    pos, neg = (last_token_acts(lm, [p.texts[i] for p in pairs], [layer], batch_size)[layer] for i in (0, 1))
    return pos, neg


def analysis_stage(subject, layer: int, v: torch.Tensor, build: Sequence[Pair], ev: Sequence[Pair], texts: Sequence[str],
                   saes: dict, concept: str | None, params: dict) -> dict:
    """Everything about v at ``layer`` that needs no steering: the norms (with intervals from v rebuilt on
    resampled build pairs), and per SAE of ``saes``: Table 1 and its scale sweep with intervals, encode(0),
    the default components, the negative projections read on held-out pairs, the ground truth and every
    decomposition with its score."""
    bs, draws = params["batch_size"], params["draws"]
    real = token_acts(subject.lm, texts, layer, params["n_norm_tokens"], bs)
    pos, neg = pair_acts(subject.lm, build, layer, bs)
    ev_pos, ev_neg = pair_acts(subject.lm, ev, layer, bs)
    resampled = resampled_vectors(pos - neg, [p.unit for p in build], draws, params["seed"])
    norms = norm_table(v, real)
    out = {"layer": layer, "norms": norms, "norm_intervals": norm_bootstrap(resampled, real),
           "mean_direction": mean_direction(v, real), "saes": {}}
    for name, sae in saes.items():
        out["saes"][name] = sae_analysis(subject, Site(layer), sae, v, real, resampled, (pos, neg), (ev_pos, ev_neg),
                                         [p.unit for p in ev], concept, norms["q50"], params)
    return out


def sae_analysis(subject, site: Site, sae, v: torch.Tensor, real: torch.Tensor, resampled: torch.Tensor, sel: tuple,
                 held: tuple, clusters: Sequence[str], concept: str | None, median: float, params: dict) -> dict:
    """One SAE's part of ``analysis_stage`` (with its FVU, L0 and dead share on the real tokens, so the
    architectures are compared at known quality)."""
    k = params["top_k"]
    table = top_latents(sae, v, params["scales"], k, median)
    truth = planted_truth(subject, site, sae, concept)
    weights = decompositions(sae, v, *sel, params["recon_k"])
    out = {"zero": zero_code(sae, real), "quality": reconstruction_stats(sae, real), "table1": table, "overlap_intervals": overlap_bootstrap(sae, resampled, params["scales"], k),
           "default": default_components(sae, v, real, [r["feature"] for r in table["zero"]]),
           "negative": negative_test(sae, v, *held, clusters, k), "weights": {n: w.tolist() for n, w in weights.items()},
           "truth": None if truth is None else truth.tolist()}
    if truth is not None:
        out["methods"] = score_methods(weights, truth, k, params["gt_margin"])
        out["recovery"] = recovery_auroc(weights, truth, params["gt_margin"], params["draws"], params["seed"])
    return out


def steering_stage(subject, layer: int, v: torch.Tensor, analysis: dict, saes: dict, ev: Sequence[Pair],
                   params: dict) -> list[dict]:
    """The steering test at every positive multiplier of the sweep, every vector at |v|: the first SAE's
    reconstruction and decompositions, the other SAEs' reconstructions."""
    (name, sae), *others = saes.items()
    weights = {n: torch.tensor(w) for n, w in analysis["saes"][name]["weights"].items()}
    vecs = reconstruction_vectors(sae, v, weights, params["recon_k"], params["seed"], dict(others))
    multipliers = [m for m in params["multipliers"] if m > 0]
    return steering_test(subject.lm, Site(layer), vecs, v, ev, multipliers, params["batch_size"])


def truth_features(truth: Sequence[float], margin: float) -> list[dict]:
    """The ground-truth features: |AUROC - 0.5| >= ``margin``, strongest first."""
    t = np.asarray(truth)
    idx = [int(j) for j in np.argsort(-np.abs(t - 0.5)) if abs(t[j] - 0.5) >= margin]
    return [{"feature": j, "auroc": float(t[j]), "side": "positive" if t[j] > 0.5 else "negative"} for j in idx]


def precision_grid(weights: dict, truth: Sequence[float], ks: Sequence[int], margins: Sequence[float]) -> list[dict]:
    """Precision at k of every method for each k and ground-truth margin (the sensitivity of claim 5)."""
    w = {n: torch.tensor(x) for n, x in weights.items()}
    t = np.asarray(truth)
    return [{"k": k, "margin": m, "method": r["method"], "precision": r["precision"]}
            for k in ks for m in margins for r in score_methods(w, t, k, m)]


def main(argv: list[str] | None = None) -> int:
    """``python -m saesteer.analyses.decomposition --export-pairs FILE``: the organism's pairs as a pair file."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--export-pairs", required=True, metavar="FILE", help="JSONL file to write")
    parser.add_argument("--pairs", type=int, default=200, help="pairs per split")
    parser.add_argument("--behaviour", default="refusal", choices=sorted(BEHAVIOURS), help="the organism's behaviour")
    args = parser.parse_args(argv)
    path = export_pairs(args.export_pairs, args.pairs, args.pairs, args.behaviour)
    print(f"wrote {len(path.read_text().splitlines())} pairs to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
