"""Benchmark of chapter C's data-free matching at Gemma-2-2B scale: plain float32 chunked top-k against the certified one.

Random unit decoder matrices of Gemma-2-2B's shape (16,384 features x 2,304 dimensions; 26 layers, three
predecessor positions each). First one layer side by side, per position: the plain float32 chunked matcher (a block
of ``--chunk`` rows times the source, then ``topk``) and ``top_matches`` (a bfloat16 screen whose candidates are
recomputed exactly and proven by an error bound; unproven rows are recomputed), the screen's largest error relative
to its bound (256 rows), and their agreement: bit for bit with the float64 reference ``exact_top_matches`` on
``--check`` rows, and with the float32 matcher up to its own rounding (its last bits change with the block shape,
so ties within it may swap). Then ``top_matches`` alone over ``--layers`` layers: time and share of screen-proven
rows per layer; fewer than 26 layers project all 26 (labelled).

    python benchmarks/flow_matching.py [--layers 26] [--features 16384] [--dim 2304] [--chunk 2048] [--check 1024]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import psutil
import torch

from saesteer.analyses.flow.matching import BF16_UNIT, Screen, certified_top_matches, exact_top_matches
from saesteer.core.saes import unit_rows

POSITIONS = ("resid_prev", "attn_out", "mlp_out")  # R_{L-1}, A_L, M_L
TARGET_S = 360  # all 26 layers x 3 positions under 6 minutes
ROUNDING = 1e-6  # float32 products of unit rows at d = 2304 differ by ~1e-8 between block shapes


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 5 ms in a thread."""

    def __enter__(self):
        self.proc, self.base, self.peak, self.running = psutil.Process(), psutil.Process().memory_info().rss, 0, True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss - self.base)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss - self.base)


def float32_chunked(target: torch.Tensor, source: torch.Tensor, k: int, chunk: int):
    """The plain matcher: float32 products of ``chunk`` target rows at a time, then ``topk``."""
    parts = [(target[s : s + chunk] @ source.T).topk(k, dim=1) for s in range(0, len(target), chunk)]
    return torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])


def timed(fn, *args):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def agreement(fast, plain, exact) -> str:
    """How the certified result compares with the float32 matcher (all rows) and the float64 reference (its rows)."""
    (values, indices), (p_values, p_indices), (e_values, e_indices) = fast, plain, exact
    same_rows = (indices == p_indices).all(dim=1)
    gaps = (p_values[:, :-1] - p_values[:, 1:]).min(dim=1).values
    tied = gaps[~same_rows] <= ROUNDING  # rows whose order differs are ties within float32 rounding
    bitwise = torch.equal(values[: len(e_values)], e_values) and torch.equal(indices[: len(e_indices)], e_indices)
    return (f"= float64 reference on {len(e_values)} rows (values and indices, bit for bit): {bitwise}; vs float32: "
            f"indices equal in {int(same_rows.sum())}/{len(same_rows)} rows (the other {int((~same_rows).sum())} "
            f"ties within {ROUNDING:g}: {bool(tied.all())}), max |value diff| {(values - p_values).abs().max():.1e}")


def bound_use(target: torch.Tensor, source: torch.Tensor) -> float:
    """Largest |screened - exact| / its proven bound over all pairs of ``target``'s rows (must stay below 1)."""
    screen, low = Screen(source), target.bfloat16()
    screened = (low @ screen.low.T).double()
    allowed = BF16_UNIT * screened.abs() / (1 - BF16_UNIT) + screen.bound(target, low)[:, None]
    return ((screened - target.double() @ source.double().T).abs() / allowed).max().item()


def side_by_side(target: torch.Tensor, sources: list[torch.Tensor], args) -> None:
    """One layer, per position: time of each matcher and their agreement."""
    print("one layer side by side (float32 chunked | certified bf16 screen):")
    totals = [0.0, 0.0]
    for position, source in zip(POSITIONS, sources):
        plain, t_plain = timed(float32_chunked, target, source, args.k, args.chunk)
        (values, indices, proven), t_fast = timed(certified_top_matches, target, source, args.k, args.chunk)
        exact = exact_top_matches(target[: args.check], source, args.k, args.chunk)
        totals = [totals[0] + t_plain, totals[1] + t_fast]
        print(f"  {position:>10}: {t_plain:5.1f} s | {t_fast:5.1f} s ({t_plain / t_fast:.1f}x), proven "
              f"{proven.float().mean():.2%} ({int((~proven).sum())} rows recomputed), screen error / bound at most "
              f"{bound_use(target[:256], source):.3f}; {agreement((values, indices), plain, exact)}")
    print(f"  per layer: {totals[0]:.1f} s | {totals[1]:.1f} s (speed-up {totals[0] / totals[1]:.1f}x); projected 26 layers "
          f"float32: {26 * totals[0] / 60:.1f} min")


def all_layers(args) -> float:
    """``top_matches`` over ``args.layers`` layers of fresh random decoders; returns the matcher's seconds."""
    total, wall = 0.0, time.perf_counter()
    with PeakRSS() as mem:
        for layer in range(args.layers):
            target, seconds, proven = unit_rows(torch.randn(args.features, args.dim)), 0.0, []
            for _ in POSITIONS:
                source = unit_rows(torch.randn(args.features, args.dim))
                (_, _, ok), t = timed(certified_top_matches, target, source, args.k, args.chunk)
                seconds, proven = seconds + t, proven + [ok]
            total += seconds
            shares = ", ".join(f"{p.float().mean():.2%} ({int((~p).sum())})" for p in proven)
            print(f"  layer {layer:2d}: {seconds:5.1f} s, proven per position (rows recomputed) {shares}", flush=True)
    print(f"certified matcher, {args.layers} layers x {len(POSITIONS)} positions: {total:.1f} s matching "
          f"({total / args.layers:.1f} s per layer; {time.perf_counter() - wall:.1f} s with making random decoders), "
          f"peak extra memory {mem.peak / 2**30:.2f} GiB")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=26, help="layers timed with the certified matcher (Gemma-2-2B: 26)")
    parser.add_argument("--features", type=int, default=16384, help="SAE width")
    parser.add_argument("--dim", type=int, default=2304, help="model width")
    parser.add_argument("--chunk", type=int, default=2048, help="target features per block")
    parser.add_argument("--k", type=int, default=5, help="matches kept per feature")
    parser.add_argument("--check", type=int, default=1024, help="rows compared with the float64 reference")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}; decoders {args.features} x "
          f"{args.dim}, top-{args.k}, chunk {args.chunk}")
    side_by_side(unit_rows(torch.randn(args.features, args.dim)),
                 [unit_rows(torch.randn(args.features, args.dim)) for _ in POSITIONS], args)
    total = all_layers(args)
    per_layer = total / args.layers
    if args.layers < 26:
        print(f"  PROJECTION (not measured) for 26 layers: {26 * per_layer:.0f} s = {26 * per_layer / 60:.1f} min "
              f"(target: under {TARGET_S / 60:.0f} min): {26 * per_layer < TARGET_S}")
    else:
        print(f"  all 26 layers in {total / 60:.1f} min (target: under {TARGET_S / 60:.0f} min): {total < TARGET_S}")
    print(f"load average at the end {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")


if __name__ == "__main__":
    main()
