"""Benchmark of the Gemma 3 SAE build's two costs, measured side by side in one run.

1. Activation collection: reading every site the SAEs need in one nnsight pass that stops after the last
   of them (``core.interventions.read_activations``), against a bare torch forward through the same
   decoder layers (no nnsight, no unembedding), on the same token rows, in float32 and in bfloat16.
   Prints tokens per second and their ratio (target: collection at least 85% of bare), and the
   next-token loss of each dtype on the same held-out positions (what bfloat16 costs).
2. SAE training: samples per second of sae-lens's ``MultiSAETrainer`` on the build's plan (every SAE in
   lockstep), per SAE and for the whole plan, against the collection rate, so the share of the build
   spent in the forward pass is a measured number.

Needs the model package (`make gemma3-model`) and the corpus (`make gemma3-corpus`).

    python benchmarks/gemma3_collection.py [--rows 32] [--context 128] [--batch 8] [--band 6 11] [--steps 8]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import torch
from sae_lens.training.multi_sae_trainer import MultiSAETrainer

from saesteer.core.hooks import Site
from saesteer.core.interventions import batches, read_activations
from saesteer.core.models import load_model, torch_model
from saesteer.gemma3.corpus import corpus_dir
from saesteer.gemma3.saes import BuildConfig, LossProbe, trainer_config, training_sae


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


def training_rate(sites, d_in: int, steps: int) -> tuple[float, int]:
    """Samples per second of MultiSAETrainer on the build's plan (random batches: the cost does not depend
    on the values), and the number of SAEs trained in lockstep."""
    cfg = BuildConfig(samples=steps * BuildConfig().batch, checkpoints=0)
    specs = cfg.specs()
    saes = {spec.name: training_sae(spec, d_in, cfg) for spec in specs}
    batch = {str(site): torch.randn(cfg.batch, d_in) for site in sites}
    trainer_cfg = trainer_config(cfg, "cpu", Path(tempfile.mkdtemp()))
    trainer_cfg.n_checkpoints = 0
    trainer = MultiSAETrainer(trainer_cfg, saes, {spec.name: str(spec.site) for spec in specs}, itertools.repeat(batch))
    start = time.perf_counter()
    trainer.fit()
    return steps * cfg.batch / (time.perf_counter() - start), len(specs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32, help="token rows timed per configuration")
    parser.add_argument("--context", type=int, default=128, help="tokens per row")
    parser.add_argument("--batch", type=int, default=8, help="rows per forward pass")
    parser.add_argument("--band", type=int, nargs=2, default=(6, 11), help="layers whose attn_out and mlp_out are read too")
    parser.add_argument("--steps", type=int, default=8, help="training steps timed")
    args = parser.parse_args()
    losses, rates = {}, {}
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
        probe = LossProbe.sample(rows, 16, seed=0)
        losses[dtype], rates[dtype] = probe.loss(lm), collect_tps
        print(f"{dtype}: bare decoder forward {bare_tps:,.0f} tokens/s | collection of {len(sites)} sites "
              f"{collect_tps:,.0f} tokens/s | ratio {collect_tps / bare_tps:.2f} (target >= 0.85) | next-token loss "
              f"{losses[dtype]:.4f} nats", flush=True)
    print(f"bfloat16 against float32: collection {rates['bfloat16'] / rates['float32']:.2f}x as fast, next-token loss "
          f"{losses['bfloat16'] - losses['float32']:+.4f} nats", flush=True)
    per_plan, n_saes = training_rate(sites, lm.config.hidden_size, args.steps)
    used = BuildConfig().batches_per_chunk * BuildConfig().batch / (BuildConfig().chunk_rows * (args.context - 1))
    forward_share = (1 / (rates["float32"] * used)) / (1 / (rates["float32"] * used) + 1 / per_plan)
    print(f"SAE training: {n_saes} SAEs in lockstep, {per_plan:,.0f} samples/s for the plan = {per_plan * n_saes:,.0f} "
          f"SAE-samples/s | float32 collection feeds {rates['float32'] * used:,.0f} samples/s per site "
          f"({used:.0%} of tokens used) | the forward pass is {forward_share:.0%} of a float32 build's streaming time")


if __name__ == "__main__":
    main()
