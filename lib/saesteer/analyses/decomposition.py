"""Chapter B: can an SAE decompose a steering vector? (Mayne, Yang & Mahdi, 2024)

The paper's route, step by step:

1. ``caa_vectors``: contrastive activation addition (CAA) vectors, the mean over
   contrastive A/B pairs of ``resid_post`` at the answer token with the positive
   answer minus with the negative answer, at every layer; ``steerability``: how
   much adding ``m * v`` at every position shifts P(positive answer);
2. out of distribution: ``norm_table`` (|v| against real activation norms),
   ``top_latents`` of encode(v) against encode(0) and of encode(a v),
   ``default_components`` (what real activations carry along the bias features);
3. ``negative_projections``: decoder directions that v points against, lost by
   the encoder, and their "mirror" features that fire instead;
4. ``decompositions``: the naive encoding and the alternatives (difference of
   mean encodings, signed decoder projections, orthogonal matching pursuit),
   scored against the behaviour's ground-truth features (``ground_truth``);
5. ``steering_test``: steer with v, its SAE reconstruction and each
   alternative's top-k reconstruction at matched norm;
The claims table is built by the chapter module, ``saesteer.chapters.steering_vector_decomposition``.

A contrastive pair is ``{"prompt", "positive", "negative"}``: the completions
are appended to the prompt as written, and must differ in their first token
(the behaviour is read there as P(positive) / (P(positive) + P(negative))).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import OrthogonalMatchingPursuit

from saesteer.core.codes import encode, read_tokens
from saesteer.core.hooks import Site
from saesteer.core.interventions import AddVector, batches, forward_with_edits
from saesteer.core.saes import unit_decoder
from saesteer.core.stats import auroc
from saesteer.organism.language import Language
from saesteer.study.params import ParameterError


# --- contrastive pairs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """A contrastive question: the prompt and the two answers appended to it."""

    prompt: str
    positive: str  # e.g. " a": the answer showing the behaviour (corrigible)
    negative: str
    split: str = "eval"  # "selection" (builds vectors) or "eval" (measures)

    @property
    def texts(self) -> tuple[str, str]:
        return self.prompt + self.positive, self.prompt + self.negative


def organism_pairs(n_selection: int, n_eval: int, seed: int = 0) -> list[Pair]:
    """The organism's A/B corrigibility questions: training-distribution ones (selection) and held-out ones (eval)."""
    language = Language(seed)
    sel = [("selection", d) for d in language.selection_set("ab", n_selection)]
    held = [("eval", d) for d in language.eval_set("ab", n_eval)]
    return [Pair(d.prompt(), f" {d.truth['positive']}", f" {d.truth['negative']}", split) for split, d in sel + held]


def load_pairs(path: str | Path) -> list[Pair]:
    """Pairs from JSONL: one ``{"prompt", "positive", "negative", "split"}`` object per line, split
    "selection" (the vector is built on these) or "eval" (the behaviour is measured on these)."""
    pairs = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            missing = {"prompt", "positive", "negative", "split"} - set(row)
            if missing or row["split"] not in ("selection", "eval"):
                raise ParameterError(f"Pair file {str(path)!r} line {n} needs prompt, positive, negative and a split of "
                                     f"'selection' or 'eval'; got keys {sorted(row)}.")
            pairs.append(Pair(row["prompt"], row["positive"], row["negative"], row["split"]))
    return pairs


def export_pairs(path: str | Path, n_selection: int = 200, n_eval: int = 200) -> Path:
    """Write the organism's pairs in the pair-file format (the template for a real model's file)."""
    lines = [json.dumps(p.__dict__) for p in organism_pairs(n_selection, n_eval)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def split_pairs(pairs: list[Pair], n_selection: int, n_eval: int) -> tuple[list[Pair], list[Pair]]:
    """(selection pairs, eval pairs), at most ``n_selection`` and ``n_eval``, with a clear error if either is empty."""
    sel = [p for p in pairs if p.split == "selection"][:n_selection]
    held = [p for p in pairs if p.split == "eval"][:n_eval]
    if not sel or not held:
        raise ParameterError("Parameter 'pairs' must give at least one 'selection' and one 'eval' pair.")
    return sel, held


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
        _, acts = forward_with_edits(lm, chunk, read=[Site(layer) for layer in layers])
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
        return [line for line in Path(norm_text).read_text().splitlines() if line.strip()]
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
        logits, _ = forward_with_edits(lm, chunk, [AddVector(site=site, vector=vec)])
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


def shift_stats(logits: np.ndarray, base: np.ndarray) -> dict:
    """Mean shift of P(positive) and of the behaviour logit against the unsteered run, each with a 95%
    normal interval over pairs (the pairs are the unit: each is steered and unsteered)."""
    out = {"n": len(base)}
    for name, f in [("p", lambda x: 1 / (1 + np.exp(-x))), ("logit", lambda x: x)]:
        d = f(logits) - f(base)
        half = 1.96 * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
        out |= {f"{name}_shift": float(d.mean()), f"{name}_lo": float(d.mean() - half), f"{name}_hi": float(d.mean() + half)}
    return out


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
    """Table 1 of the paper: top-k latents of encode(v) and encode(0), and of encode(a v) for each scale."""
    zero = top(encode(sae, torch.zeros_like(v)), k)
    rows = []
    for a in scales:
        codes = encode(sae, a * v)
        latents = top(codes, k)
        rows.append({"scale": a, "norm_over_median": float(a * v.norm() / median_norm), "top": latents,
                     "overlap_with_zero": overlap(latents, zero), "active": int((codes > 0).sum())})
    return {"v": top(encode(sae, v), k), "zero": zero, "scales": rows}


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


# --- ground truth and decompositions -------------------------------------------------------------------
def ground_truth(sae, pos: torch.Tensor, neg: torch.Tensor) -> np.ndarray:
    """Per feature, the AUROC of its code for telling positive-answer tokens from negative-answer tokens of
    held-out pairs: the behaviour's ground truth (> 0.5: more active on the positive answer)."""
    codes = torch.cat([encode(sae, pos), encode(sae, neg)]).numpy()
    label = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    return np.nan_to_num(auroc(codes, label), nan=0.5)


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


# --- the steering test --------------------------------------------------------------------------------------
def reconstruction_vectors(sae, v: torch.Tensor, weights: dict[str, torch.Tensor], k: int, seed: int) -> dict[str, torch.Tensor]:
    """The vectors steered with, every one rescaled to |v|: v; the SAE's reconstruction decode(encode(v));
    each method's top-k features times their weights (codes along W_dec, or coefficients along unit
    directions); and a random direction (the control)."""
    dirs, w_dec = unit_decoder(sae), sae.W_dec.detach().float()
    with torch.no_grad():
        vecs = {"v": v, "SAE reconstruction": sae.decode(encode(sae, v)[None].to(sae.W_dec.dtype))[0].float()}
    for name, w in weights.items():
        keep = torch.zeros_like(w)
        idx = torch.argsort(w.abs(), descending=True)[:k]
        keep[idx] = w[idx]
        vecs[f"{name} top-{k}"] = keep @ (w_dec if METHODS[name][1] else dirs)
    vecs["random direction"] = torch.randn(v.shape, generator=torch.Generator().manual_seed(seed))
    return {name: x * v.norm() / x.norm().clamp_min(1e-12) for name, x in vecs.items()}


def steering_test(lm, site: Site, vecs: dict[str, torch.Tensor], v: torch.Tensor, eval_pairs: Sequence[Pair],
                  multiplier: float, batch_size: int) -> list[dict]:
    """Each vector added at ``multiplier`` (matched norm |multiplier v|) on the held-out pairs, one batched grid:
    the behaviour shift against the unsteered run with 95% intervals, and the vector's cosine with v."""
    answers = answer_tokens(lm.tokenizer, eval_pairs)
    names = list(vecs)
    grid = steer_grid(lm, eval_pairs, answers, site, torch.stack([vecs[n] for n in names]), [0.0, multiplier], batch_size)
    base = grid[0, 0]
    return [{"vector": n, "cosine with v": float(vecs[n] @ v / (vecs[n].norm() * v.norm()).clamp_min(1e-12)),
             **shift_stats(grid[i, 1], base)} for i, n in enumerate(names)]


# --- the chapter's stages ------------------------------------------------------------------------------
def vectors_stage(subject, sel: Sequence[Pair], ev: Sequence[Pair], layers: Sequence[int], params: dict) -> dict:
    """CAA vectors at every layer (on selection pairs) and their steerability (on held-out pairs)."""
    vecs = caa_vectors(subject.lm, sel, layers, params["batch_size"])
    rows = steerability(subject.lm, vecs, ev, params["multipliers"], params["batch_size"])
    return {"vectors": {str(layer): vecs[layer]["v"].tolist() for layer in layers}, "steerability": rows}


def analysis_stage(subject, layer: int, v: torch.Tensor, sel: Sequence[Pair], ev: Sequence[Pair], texts: Sequence[str],
                   params: dict) -> dict:
    """Everything about v at ``layer`` that needs no steering: norms, Table 1 and its scale sweep, the default
    components, the negative projections, the ground truth and every decomposition with its score."""
    sae, bs, k = subject.sae(Site(layer)), params["batch_size"], params["top_k"]
    real = token_acts(subject.lm, texts, layer, params["n_norm_tokens"], bs)
    pos, neg = (last_token_acts(subject.lm, [p.texts[i] for p in sel], [layer], bs)[layer] for i in (0, 1))
    ev_pos, ev_neg = (last_token_acts(subject.lm, [p.texts[i] for p in ev], [layer], bs)[layer] for i in (0, 1))
    norms = norm_table(v, real)
    table = top_latents(sae, v, params["scales"], k, norms["q50"])
    truth = ground_truth(sae, ev_pos, ev_neg)
    weights = decompositions(sae, v, pos, neg, params["recon_k"])
    return {"layer": layer, "norms": norms, "table1": table, "mean_direction": mean_direction(v, real),
            "default": default_components(sae, v, real, [r["feature"] for r in table["zero"]]),
            "negative": negative_projections(sae, v, pos, neg, k), "truth": truth.tolist(),
            "methods": score_methods(weights, truth, k, params["gt_margin"]),
            "weights": {name: w.tolist() for name, w in weights.items()}}


def steering_stage(subject, layer: int, v: torch.Tensor, analysis: dict, ev: Sequence[Pair], params: dict) -> list[dict]:
    """The steering test at the headline multiplier, every vector at |v|."""
    sae = subject.sae(Site(layer))
    weights = {name: torch.tensor(w) for name, w in analysis["weights"].items()}
    vecs = reconstruction_vectors(sae, v, weights, params["recon_k"], params["seed"])
    return steering_test(subject.lm, Site(layer), vecs, v, ev, params["headline_multiplier"], params["batch_size"])


def truth_features(truth: Sequence[float], margin: float) -> list[dict]:
    """The ground-truth features: |AUROC - 0.5| >= ``margin``, strongest first."""
    t = np.asarray(truth)
    idx = [int(j) for j in np.argsort(-np.abs(t - 0.5)) if abs(t[j] - 0.5) >= margin]
    return [{"feature": j, "auroc": float(t[j]), "side": "positive" if t[j] > 0.5 else "negative"} for j in idx]


def main(argv: list[str] | None = None) -> int:
    """``python -m saesteer.analyses.decomposition --export-pairs FILE``: the organism's pairs as a pair file."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--export-pairs", required=True, metavar="FILE", help="JSONL file to write")
    parser.add_argument("--pairs", type=int, default=200, help="pairs per split")
    args = parser.parse_args(argv)
    path = export_pairs(args.export_pairs, args.pairs, args.pairs)
    print(f"wrote {len(path.read_text().splitlines())} pairs to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
