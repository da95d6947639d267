"""Chapter C, steps 1-2: the SAEs of the three positions, data-free matching of every resid_post feature's
decoder direction with its predecessors' (``match_layer``, chunked by ``top_matches``) and the cosine categories
(translated / processed / newborn / unexplained). Layer 0 has no previous residual SAE: its ``resid_prev`` match
is missing and counts as similarity 0.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

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
BF16_UNIT = 2.0**-8  # unit roundoff of bfloat16 (8 significant bits): |bf16(x) - x| <= 2^-8 |x|
MARGIN = 11  # screened candidates per row beyond k (a second screen, for rows left unproven, takes 8x as many)


def top_matches(target: torch.Tensor, source: torch.Tensor, k: int, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of ``target @ source.T`` per target row, ``chunk`` rows at a time (the full [n, m] matrix is never
    built): (values [n, k] float32, indices [n, k] int64), equal to ``exact_top_matches``. See
    ``certified_top_matches`` for how and why it is fast."""
    values, indices, _ = certified_top_matches(target, source, k, chunk)
    return values, indices


def exact_top_matches(target: torch.Tensor, source: torch.Tensor, k: int, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference top-k: every dot product accumulated in float64 and rounded to float32, ranked by value, the
    lower index first among equal values. A float32 matrix product is no reference: its last bits change with
    the block shape (about 1e-8 here), and ``torch.topk`` leaves ties unordered."""
    k, source = min(k, source.shape[0]), source.double()
    parts = [(target[s : s + chunk].double() @ source.T).float().sort(dim=1, descending=True, stable=True)
             for s in range(0, max(len(target), 1), chunk)]
    return torch.cat([p.values[:, :k] for p in parts]), torch.cat([p.indices[:, :k] for p in parts])


def certified_top_matches(target: torch.Tensor, source: torch.Tensor, k: int, chunk: int = 2048,
                          margin: int = MARGIN) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``exact_top_matches``, fast on CPU, and per row whether a bfloat16 screen proved it (else it was recomputed).

    A bfloat16 product (AMX on recent Xeons, about 4x float32) picks c = k + ``margin`` candidates per row; their
    dot products are recomputed exactly and ranked. Every screened entry s~ (bf16 inputs, float32 accumulation,
    bf16 output) satisfies |s~ - <a, b>| <= 2^-8 |s~| / (1 - 2^-8) + E(a): the output rounding, plus E(a) for the
    input rounding (||a - a~|| max||b~|| + ||a|| max||b - b~||, from the measured residual norms), the float32
    accumulation of the exact bf16 products (d 2^-24 ||a~|| max||b~||) and the float64 accumulation of the exact
    values. So a column outside the candidates, screened at most t (the (c+1)-th screened value), is at most
    t + 2^-8 |t| / (1 - 2^-8) + E(a); a row whose exact k-th value lies above that (beyond float32 rounding) is
    proven. Unproven rows get a second screen with 8x the margin, then the reference (near-ties, zero or
    non-finite rows), so the result is always exact. Off the CPU, where the accumulation of bf16 products is not
    pinned down, the float64 reference itself is fast and is used."""
    target, source = (x if x.dtype == torch.float64 else x.float() for x in (target, source))
    k, (m, d) = min(k, source.shape[0]), source.shape
    if source.device.type != "cpu" or m <= k + margin or d * 2.0**-24 > 0.01:
        return *exact_top_matches(target, source, k, chunk), torch.zeros(len(target), dtype=torch.bool, device=target.device)
    screen = Screen(source)
    values, indices, proven = screen.top(target, k, k + margin, chunk)
    redo = (~proven).nonzero()[:, 0]
    if len(redo) and k + 8 * margin < m:
        values[redo], indices[redo], proven[redo] = screen.top(target[redo], k, k + 8 * margin, chunk)
        redo = (~proven).nonzero()[:, 0]
    if len(redo):
        values[redo], indices[redo] = exact_top_matches(target[redo], source, k, chunk)
    return values, indices, proven


class Screen:
    """The bfloat16 copy of ``source`` and the norms its error bound needs."""

    def __init__(self, source: torch.Tensor):
        self.source, self.low = source, source.bfloat16()
        self.norm = _norm_bound(source).max().item()
        self.residual = _norm_bound(source - self.low).max().item()  # bf16 promotes exactly

    def top(self, target: torch.Tensor, k: int, c: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(values, indices, proven) of all target rows, in blocks of at most ``chunk`` (and 512) rows shared out to
        single-threaded workers: on a busy machine a descheduled worker then holds up no other (as it does the
        threads of one parallel product), and the blocks stay cache-sized."""
        size = max(1, min(chunk, 512))
        with _workers() as pool:
            parts = list(pool.map(lambda s: self.block(target[s : s + size], k, c), range(0, max(len(target), 1), size)))
        return tuple(torch.cat([p[j] for p in parts]) for j in range(3))

    def block(self, a: torch.Tensor, k: int, c: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(values, indices, proven) of one block of target rows ``a``: screen, recompute c candidates, bound."""
        low = a.bfloat16()
        top = (low @ self.low.T).topk(c + 1, dim=1)
        candidates = top.indices[:, :c]
        values, indices = _ranked(_dots(a, self.source, candidates), candidates, k)
        t = top.values[:, c].double()
        outside = t + BF16_UNIT * t.abs() / (1 - BF16_UNIT) + self.bound(a, low)
        return values, indices, outside + 2.0**-22 * outside.abs() + 2.0**-140 < values[:, -1].double()

    def bound(self, a: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """E(a) per row (float64), slightly enlarged to cover its own rounding and flushed subnormals."""
        d, norm = a.shape[1], _norm_bound(a)
        accumulation = (1 + BF16_UNIT) ** 2 * d * 2.0**-24 / (1 - d * 2.0**-24) + d * 2.0**-52
        err = (_norm_bound(a - low) * self.norm * (1 + BF16_UNIT) + norm * self.residual
               + accumulation * norm * self.norm + d * 2.0**-100 * (1 + norm) * (1 + self.norm))
        return err * (1 + 2.0**-20)


def _norm_bound(x: torch.Tensor) -> torch.Tensor:
    """An upper bound of every row's 2-norm (float64): the norm in the input's precision, enlarged by its
    worst-case rounding (d 2^-22 relative for float32) and by underflowed squares (sqrt(d) 2^-60)."""
    d = x.shape[1]
    return torch.linalg.vector_norm(x, dim=1).double() * (1 + d * 2.0**-22) + d**0.5 * 2.0**-60


@contextmanager
def _workers():
    """A pool of as many threads as torch uses, with torch's own ops single-threaded meanwhile."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            yield pool
    finally:
        torch.set_num_threads(threads)


def _dots(a: torch.Tensor, source: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """float32 of the float64 dot products a[r] . source[idx[r, j]] [r, c], a few rows at a time through reused
    cache-sized buffers (a fresh large tensor per step costs page faults)."""
    (r, c), d = idx.shape, a.shape[1]
    step = max(1, 2**20 // (c * d))
    rows, rows64 = torch.empty(step, c, d, dtype=source.dtype), torch.empty(step, c, d, dtype=torch.float64)
    out, a64 = torch.empty(r, c, 1, dtype=torch.float64), a.double().unsqueeze(2)
    for s in range(0, r, step):
        n = min(step, r - s)
        torch.index_select(source, 0, idx[s : s + n].reshape(-1), out=rows[:n].view(-1, d))
        rows64[:n].copy_(rows[:n])
        torch.bmm(rows64[:n], a64[s : s + n], out=out[s : s + n])
    return out[:, :, 0].float()


def _ranked(values: torch.Tensor, indices: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best (values, indices) per row: value descending, the lower index first among equal values."""
    by_index = indices.sort(dim=1).indices
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    best = values.sort(dim=1, descending=True, stable=True)
    return best.values[:, :k], indices.gather(1, best.indices[:, :k])


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
