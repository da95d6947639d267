"""Benchmark of chapter D's steering-success stage on Gemma 3 270M: what each of its two speed-ups buys.

1. Sampling: generate's ``do_sample=True`` (torch.multinomial, one exponential number per vocabulary entry per
   row and step) against ``core.generation.sample_at`` (one uniform number per row, the inverse of the
   cumulative distribution), the same rows, tokens and temperature, with a feature steered as in chapter D.
2. The coherence judge: SmolLM2-135M-Instruct's perplexity of the continuations with every row padded to the
   longest re-tokenized row against rows batched by length (``study.judges.judge_perplexity``), with the
   largest difference between the two.

Both in chapter D's dtype on Gemma 3 (``make gemma3-model`` and ``make gemma3``).

    python benchmarks/steering_success.py [--rows 256] [--dtype bfloat16] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from saesteer.core.files import fill, read_documents
from saesteer.core.generation import generate, sample_at
from saesteer.core.hooks import Site
from saesteer.core.interventions import BoostEach
from saesteer.core.models import load_model
from saesteer.core.saes import load_sae
from saesteer.study.judges import judge_perplexity

SAE_PATH = "{cache}/gemma3/saes/jumprelu_resid_post_{layer}"


def timed(run):
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model("gemma3-270m", dtype=args.dtype)
    judge = load_model("smollm2-135m-instruct", dtype=args.dtype)
    prefixes = read_documents("data/gemma3/prefixes.txt")
    prompts = [prefixes[i % len(prefixes)] for i in range(args.rows)]
    sae = load_sae(path=str(fill(SAE_PATH, layer=args.layer)))
    edits = [BoostEach(site=Site(args.layer), sae=sae, features=list(range(args.rows)), factors=4.0, tokens="last")]
    run = lambda **how: generate(lm, prompts, edits, args.tokens, args.rows, seed=0, **how)[0]  # noqa: E731
    multinomial, _ = timed(lambda: run(do_sample=True, temperature=0.7, top_k=0))
    inverse, ids = timed(lambda: run(**sample_at(0.7)))
    print(f"sampling {args.rows} rows x {args.tokens} tokens ({args.dtype}): multinomial {multinomial:.1f} s, "
          f"inverse CDF {inverse:.1f} s, {multinomial / inverse:.2f}x", flush=True)
    padded, one = timed(lambda: judge_perplexity(judge, lm, prompts, ids, batch_size=len(prompts)))
    bucketed, by_length = timed(lambda: judge_perplexity(judge, lm, prompts, ids))
    print(f"judge perplexity of the same rows: one padded batch {padded:.1f} s, batched by length {bucketed:.1f} s, "
          f"{padded / bucketed:.2f}x; largest relative difference {((one - by_length).abs() / one).max():.1e}", flush=True)


if __name__ == "__main__":
    main()
