"""Benchmark of chapter C's data-free matching at Gemma-2-2B scale: chunked top-k against the full similarity matrix.

Random unit decoder matrices of Gemma-2-2B's shape (16,384 features x 2,304 dimensions; 26 layers, three
predecessor positions each). Both matchers compute top-k cosine matches of every resid_post feature; the
naive one builds the full [features x features] matrix per position, the chunked one (``feature_flow.top_matches``)
a block of ``--chunk`` rows at a time. Prints time and peak extra memory of each, side by side, and the ratio;
then times the chunked matcher over ``--layers`` layers and, when fewer than 26, projects all 26 (labelled).

    python benchmarks/flow_matching.py [--layers 26] [--features 16384] [--dim 2304] [--chunk 2048]
"""

from __future__ import annotations

import argparse
import threading
import time

import psutil
import torch

from saesteer.analyses.flow import top_matches
from saesteer.core.saes import unit_rows

POSITIONS = 3  # R_{L-1}, A_L, M_L


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


def naive(target: torch.Tensor, source: torch.Tensor, k: int):
    """The full similarity matrix, then its top-k."""
    full = target @ source.T
    return full.topk(k, dim=1)


def run(fn, *args) -> tuple[float, float]:
    """Seconds and peak extra memory (GiB) of one call."""
    with PeakRSS() as mem:
        start = time.perf_counter()
        fn(*args)
        seconds = time.perf_counter() - start
    return seconds, mem.peak / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=26, help="layers timed with the chunked matcher (Gemma-2-2B: 26)")
    parser.add_argument("--features", type=int, default=16384, help="SAE width")
    parser.add_argument("--dim", type=int, default=2304, help="model width")
    parser.add_argument("--chunk", type=int, default=2048, help="target features per block")
    parser.add_argument("--k", type=int, default=5, help="matches kept per feature")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}; decoders {args.features} x {args.dim}, top-{args.k}, chunk {args.chunk}")
    target, source = unit_rows(torch.randn(args.features, args.dim)), unit_rows(torch.randn(args.features, args.dim))
    same = torch.equal(top_matches(target[:256], source, args.k, 64)[1], naive(target[:256], source, args.k)[1])
    t_naive, m_naive = run(naive, target, source, args.k)
    t_chunk, m_chunk = run(top_matches, target, source, args.k, args.chunk)
    print("one position (one resid_post SAE against one predecessor SAE):")
    print(f"  {'naive full matrix':>18}: {t_naive:7.1f} s   peak extra memory {m_naive:6.2f} GiB")
    print(f"  {'chunked':>18}: {t_chunk:7.1f} s   peak extra memory {m_chunk:6.2f} GiB")
    print(f"  chunked / naive: time {t_chunk / t_naive:.2f}x, memory {m_chunk / max(m_naive, 1e-9):.2f}x; "
          f"chunked peak under 1 GiB: {m_chunk < 1.0}; same top-k indices on a check block: {same}")
    start = time.perf_counter()
    with PeakRSS() as mem:
        for _ in range(args.layers):
            for _ in range(POSITIONS):
                top_matches(target, unit_rows(torch.randn(args.features, args.dim)), args.k, args.chunk)
    total = time.perf_counter() - start
    per_layer = total / args.layers
    print(f"chunked matcher, {args.layers} layers x {POSITIONS} positions (incl. making random decoders): {total:.1f} s "
          f"({per_layer:.1f} s per layer), peak extra memory {mem.peak / 2**30:.2f} GiB")
    if args.layers < 26:
        print(f"  PROJECTION (not measured) for 26 layers: {26 * per_layer:.0f} s = {26 * per_layer / 60:.1f} min "
              f"(target: under 10 min)")
    else:
        print(f"  all 26 layers in {total / 60:.1f} min (target: under 10 min): {total < 600}")


if __name__ == "__main__":
    main()
