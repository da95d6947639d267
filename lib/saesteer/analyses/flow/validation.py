"""Chapter C, step 4: causal validation by deactivation: remove a predecessor (h + (r-1) a d, r = 0) and measure
the feature's activation change 1 - z_new/z_old, for top-1 cosine, the Pearson baseline, a random pick among
the top 5 and exhaustive search over the candidates (the paper's Table 1).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
from sae_lens import SAE

from saesteer.analyses.flow.corpus import Corpus
from saesteer.analyses.flow.matching import PREDECESSORS, SHORT, match_predecessors, predecessor_site
from saesteer.core.codes import sae_codes
from saesteer.core.hooks import Site
from saesteer.core.interventions import (
    ScaleRows,
    batches,
)
from saesteer.core.stats import bootstrap_mean, paired_difference, wilson

METHODS = ("top-1 cosine", "Pearson", "random top-5", "exhaustive")


# --- 4. causal validation by deactivation --------------------------------------------------------
def pearson_matches(codes: dict[Site, torch.Tensor], layer: int, k: int, chunk: int = 2048) -> dict:
    """Data-driven baseline: top-k Pearson correlations of each resid_post feature's activation with the
    features of each predecessor position over the corpus tokens (same layout as ``match_layer``)."""
    def standard(z):
        z = z - z.mean(0)
        return (z / z.norm(dim=0).clamp_min(1e-12)).T  # rows = features, unit norm: dot = correlation

    return match_predecessors(layer, standard(codes[Site(layer)]), lambda site: standard(codes[site]), k, chunk)


def _pooled(match: dict, feature: int, k: int) -> list[tuple[float, str, int]]:
    """(score, position, predecessor) of the top-k at every position, best first."""
    pooled = [(match[p]["sim"][feature][j], p, match[p]["idx"][feature][j])
              for p in PREDECESSORS if match[p] is not None for j in range(min(k, len(match[p]["sim"][feature])))]
    return sorted(pooled, key=lambda t: -t[0])


def picks(cosine: dict, pearson: dict, feature: int, k: int, rng: random.Random) -> dict:
    """Each method's predecessor (position, feature) and the candidate set the exhaustive search covers."""
    cos, cor = _pooled(cosine, feature, k), _pooled(pearson, feature, k)
    cands = list(dict.fromkeys([(p, g) for _, p, g in cos + cor]))
    random_pick = rng.choice(cos[:5])
    return {"top-1 cosine": (cos[0][1], cos[0][2]), "Pearson": (cor[0][1], cor[0][2]),
            "random top-5": (random_pick[1], random_pick[2]), "candidates": cands}


def choose_targets(codes: torch.Tensor, n: int, min_active: int, rng: random.Random) -> list[int]:
    """``n`` features (seeded draw) active on at least ``min_active`` corpus tokens."""
    alive = torch.nonzero((codes > 0).sum(0) >= min_active).flatten().tolist()
    return sorted(rng.sample(alive, min(n, len(alive))))


def scale_edits(saes: Callable[[Site], SAE], rows: list[list[tuple[Site, int]]], factor: float | Sequence[float]) -> list[ScaleRows]:
    """One ``ScaleRows`` per site: row i scales each (site, feature) of ``rows[i]`` by ``factor`` (one number, or
    one per row), so rows with different factors share one edit per site and one forward pass."""
    per_row = [factor] * len(rows) if isinstance(factor, (int, float)) else list(factor)
    edits = []
    for site in sorted({s for row in rows for s, _ in row}, key=lambda s: s.order):
        feats = sorted({f for row in rows for s, f in row if s == site})
        factors = torch.full((len(rows), len(feats)), float("nan"))
        for i, row in enumerate(rows):
            for s, f in row:
                if s == site:
                    factors[i, feats.index(f)] = per_row[i]
        edits.append(ScaleRows(site=site, sae=saes(site), features=feats, factors=factors))
    return edits


def deactivation_changes(lm, saes, corpus: Corpus, codes: dict[Site, torch.Tensor], layer: int,
                         jobs: list[tuple[int, list[tuple[str, int]]]], batch_size: int) -> list[list[float]]:
    """For each job (target feature, predecessors): the target's mean activation change 1 - z_new/z_old when
    each predecessor alone is removed (r = 0), over the tokens of the target's most active corpus row where
    the target and that predecessor are both active (elsewhere the removal has nothing to remove). A
    predecessor never active with the target there scores 0: it cannot be what drives the target."""
    context = corpus.ids.shape[1]
    z_old = codes[Site(layer)].reshape(len(corpus.ids), context, -1)
    pred_on = {site: codes[site].reshape(len(corpus.ids), context, -1) > 0 for site in codes}
    rows = []  # (job index, candidate index, corpus row, site, predecessor)
    for j, (f, cands) in enumerate(jobs):
        row = int((z_old[:, :, f] > 0).sum(1).argmax())
        rows += [(j, c, row, predecessor_site(layer, p), g) for c, (p, g) in enumerate(cands)]
    changes = [[math.nan] * len(c) for _, c in jobs]
    sae = saes(Site(layer))
    for chunk in batches(rows, batch_size):
        edits = scale_edits(saes, [[(site, g)] for _, _, _, site, g in chunk], 0.0)
        rows_ids = corpus.ids[[r for _, _, r, _, _ in chunk]]
        z_new = sae_codes(lm, {Site(layer): sae}, rows_ids, edits=edits, bos=True).codes[Site(layer)].cpu()
        for i, (j, c, r, site, g) in enumerate(chunk):
            f = jobs[j][0]
            old, new = z_old[r, :, f], z_new[i, :, f]
            on = (old > 0) & pred_on[site][r, :, g]
            changes[j][c] = float((1 - new[on] / old[on]).mean()) if on.any() else 0.0
    return changes


def deactivation_layer(lm, saes, corpus: Corpus, codes: dict, layer: int, cosine: dict, pearson: dict,
                       params: dict) -> list[dict]:
    """The deactivation test at one layer: per target feature, each method's pick and its change."""
    rng = random.Random(params["seed"] * 1000 + layer)
    targets = choose_targets(codes[Site(layer)], params["n_deactivate"], params["min_active_tokens"], rng)
    chosen = [picks(cosine, pearson, f, params["candidates_k"], rng) for f in targets]
    changes = deactivation_changes(lm, saes, corpus, codes, layer, [(f, p["candidates"]) for f, p in zip(targets, chosen)],
                                   params["batch_size"])
    rows = []
    for f, p, change in zip(targets, chosen, changes):
        by = dict(zip(p["candidates"], change))
        best = max(by, key=by.get)
        row = {"layer": layer, "feature": f, "candidates": len(by), "exhaustive": by[best],
               "exhaustive pick": f"{SHORT[best[0]]}:{best[1]}"}
        for method in METHODS[:3]:
            row[method] = by[p[method]]
            row[f"{method} pick"] = f"{SHORT[p[method][0]]}:{p[method][1]}"
        rows.append(row)
    return rows


def deactivation_table(rows: list[dict], success: float) -> list[dict]:
    """The paper's Table 1: per method, mean activation change (95% bootstrap interval over features) and the
    success rate (change >= ``success``, Wilson interval)."""
    out = []
    for method in METHODS:
        values = np.array([r[method] for r in rows])
        mean, lo, hi = bootstrap_mean(values)
        rate, s_lo, s_hi = wilson(int((values >= success).sum()), len(values))
        out.append({"method": method, "mean change": mean, "change lo": lo, "change hi": hi,
                    "success": rate, "success lo": s_lo, "success hi": s_hi, "n": len(values)})
    return out


def method_gaps(rows: list[dict], reference: str = "top-1 cosine") -> list[dict]:
    """Per other method: the ``reference`` method's activation change minus that method's on the same target
    features (paired), with its 95% interval resampling features."""
    clusters = [f"{r['layer']}:{r['feature']}" for r in rows]
    out = []
    for method in METHODS:
        if method != reference:
            diff, lo, hi = paired_difference([r[reference] for r in rows], [r[method] for r in rows], clusters)
            out.append({"versus": method, "diff": diff, "lo": lo, "hi": hi, "n": len(rows)})
    return out


def success_curve(rows: list[dict], thresholds: Sequence[float]) -> list[dict]:
    """Each method's success rate at every threshold (the sensitivity of the success column to its cut)."""
    return [{"threshold": t, "method": m, "success": float(np.mean([r[m] >= t for r in rows]))}
            for t in thresholds for m in METHODS]


def share_gap(rows: list[dict], share: float, reference: str = "top-1 cosine", other: str = "exhaustive") -> dict:
    """The ``reference`` method's activation change minus ``share`` times ``other``'s on the same target features
    (paired, 95% interval resampling features): above zero when the reference keeps at least that share of it."""
    diff, lo, hi = paired_difference([r[reference] for r in rows], [share * r[other] for r in rows],
                                     [f"{r['layer']}:{r['feature']}" for r in rows])
    return {"versus": f"{share:g} x {other}", "diff": diff, "lo": lo, "hi": hi, "n": len(rows)}
