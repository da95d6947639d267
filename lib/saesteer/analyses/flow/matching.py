"""Chapter C, steps 1-2: the SAEs of the three positions, data-free matching of every resid_post feature's
decoder direction with its predecessors' (``match_layer``, chunked by ``top_matches``) and the cosine categories
(translated / processed / newborn / unexplained). Layer 0 has no previous residual SAE: its ``resid_prev`` match
is missing and counts as similarity 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sae_lens import SAE

from saesteer.core.files import fill
from saesteer.core.hooks import Site
from saesteer.core.saes import check_fits, load_sae, unit_decoder
from saesteer.study.subjects import device_of

PREDECESSORS = ("resid_prev", "attn_out", "mlp_out")  # R_{L-1}, A_L, M_L
SHORT = {"resid_prev": "RES", "attn_out": "ATT", "mlp_out": "MLP", "resid_post": "R"}
CATEGORIES = ("translated", "processed", "newborn", "unexplained")


# --- SAEs of the three positions ------------------------------------------------------------------
class FlowSAEs:
    """The SAE at each site: resid_post from the subject; mlp_out and attn_out from their own
    sources when given (Gemma Scope has residual and MLP releases, the attention SAE is the user's)."""

    def __init__(self, subject, params: dict):
        self.subject, self.params, self.cache = subject, params, {}

    def __call__(self, site: Site) -> SAE:
        if site not in self.cache:
            self.cache[site] = self._load(site)
        return self.cache[site]

    def _load(self, site: Site) -> SAE:
        p, layer = self.params, site.layer
        if site.position == "mlp_out" and p["mlp_sae_release"]:
            sae = load_sae(p["mlp_sae_release"], p["mlp_sae_id"].format(layer=layer))
        elif site.position == "mlp_out" and p["mlp_sae_path"]:
            sae = load_sae(path=str(fill(p["mlp_sae_path"], layer=layer, position=site.position)))
        elif site.position == "attn_out" and p["attn_sae_path"]:
            sae = load_sae(path=str(fill(p["attn_sae_path"], layer=layer, position=site.position)))
        else:
            return self.subject.sae(site)
        check_fits(sae, self.subject.lm, site)
        return sae.to(device_of(self.subject.lm))


def predecessor_site(layer: int, position: str) -> Site | None:
    """The site of a predecessor position of resid_post at ``layer`` (None: layer 0 has no R_{L-1} SAE)."""
    if position == "resid_prev":
        return Site(layer - 1) if layer > 0 else None
    return Site(layer, position)


# --- 1. data-free matching ------------------------------------------------------------------------
def top_matches(target: torch.Tensor, source: torch.Tensor, k: int, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of ``target @ source.T`` per target row, ``chunk`` rows at a time: the full [n, m]
    matrix is never built, so memory stays at chunk x m floats. Returns (values, indices) [n, k]."""
    k = min(k, source.shape[0])
    values, indices = [], []
    for start in range(0, target.shape[0], chunk):
        block = target[start : start + chunk] @ source.T
        v, i = block.topk(k, dim=1)
        values.append(v)
        indices.append(i)
        del block
    return torch.cat(values), torch.cat(indices)


def decoder(saes: Callable[[Site], SAE], site: Site) -> torch.Tensor:
    """Unit decoder directions [d_sae, d_model] of the SAE at ``site``."""
    return unit_decoder(saes(site))


def match_layer(saes: Callable[[Site], SAE], layer: int, k: int, chunk: int = 2048) -> dict:
    """For every resid_post feature at ``layer``: top-k cosine matches at each predecessor position,
    as {position: {"sim": [F][k], "idx": [F][k]}} (``resid_prev`` is None at layer 0)."""
    return match_predecessors(layer, decoder(saes, Site(layer)), lambda site: decoder(saes, site), k, chunk)


def match_predecessors(layer: int, target: torch.Tensor, rows_at: Callable[[Site], torch.Tensor], k: int,
                        chunk: int) -> dict:
    """Top-k matches of ``target``'s rows among ``rows_at(site)`` for each predecessor site of ``layer``
    ({position: {"sim", "idx"}}, None where the position has no site): shared by cosine and Pearson matching."""
    out = {}
    for position in PREDECESSORS:
        site = predecessor_site(layer, position)
        if site is None:
            out[position] = None
            continue
        sim, idx = top_matches(target, rows_at(site), k, chunk)
        out[position] = {"sim": sim.tolist(), "idx": idx.tolist()}
    return out


def top1(match: dict, position: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, index) of the top-1 match per feature at ``position``; zeros / -1 when missing."""
    m = match[position]
    if m is None:
        return np.zeros(n), np.full(n, -1)
    return np.array(m["sim"])[:, 0], np.array(m["idx"])[:, 0]


# --- 2. categories --------------------------------------------------------------------------------
def categories(match: dict, res_threshold: float, module_threshold: float) -> np.ndarray:
    """Category index (into ``CATEGORIES``) per feature: high s_R alone = translated; high s_R and a
    high module match = processed; a high module match alone = newborn; nothing high = unexplained."""
    n = len(match["attn_out"]["sim"])
    s_r = top1(match, "resid_prev", n)[0] >= res_threshold
    s_mod = np.maximum(top1(match, "attn_out", n)[0], top1(match, "mlp_out", n)[0]) >= module_threshold
    return np.select([s_r & ~s_mod, s_r & s_mod, ~s_r & s_mod], [0, 1, 2], default=3)


def category_rows(matches: dict[int, dict], res_threshold: float, module_threshold: float) -> list[dict]:
    """One row per layer: the share of features in each category."""
    rows = []
    for layer, match in sorted(matches.items()):
        cats = categories(match, res_threshold, module_threshold)
        rows.append({"layer": layer, **{c: float(np.mean(cats == i)) for i, c in enumerate(CATEGORIES)}})
    return rows


def similarity_rows(matches: dict[int, dict]) -> list[dict]:
    """Long table of top-1 similarities (layer, position, similarity) for the distribution figure."""
    rows = []
    for layer, match in sorted(matches.items()):
        n = len(match["attn_out"]["sim"])
        for position in PREDECESSORS:
            if match[position] is not None:
                rows += [{"layer": layer, "position": SHORT[position], "similarity": float(s)}
                         for s in top1(match, position, n)[0]]
    return rows
