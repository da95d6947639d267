"""Benchmark of chapter D's output scores: many features along the batch dimension of one forward pass
against one feature per forward pass (the paper's official code steers one feature at a time, running the
whole prompt each time). The batched run also runs the prompt's shared tokens once, into a key/value cache;
a middle line shows the batched run without that cache.

Both runs call the same ``input_output_scores.output_scores`` on the same features of one SAE: the
organism's, or with ``--model gemma3-270m`` one of the study's SAEs on Gemma 3 270M (``make gemma3-model``
and ``make gemma3``) with chapter D's Gemma 3 prompt; only the number of rows per forward pass differs.
Prints features per second side by side, their ratio, and whether the scores agree.

    python benchmarks/output_scores.py [--layer 3] [--features 768] [--alone 48]
    python benchmarks/output_scores.py --model gemma3-270m --layer 8 --batch-size 256
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from saesteer.analyses import scores as io
from saesteer.core.files import fill
from saesteer.core.hooks import Site
from saesteer.core.models import load_model
from saesteer.core.saes import load_sae
from saesteer.organism.artifacts import load_organism, organism_sae

PROMPTS = {"organism": "user : hey , say something . assistant :", "gemma3-270m": "From my experience,"}  # chapter D's


def subject(model: str, site: Site, sae_path: str):
    """The model, the SAE at ``site`` and chapter D's neutral prompt for it."""
    if model == "organism":
        return load_organism(), organism_sae(site), PROMPTS[model]
    return load_model(model), load_sae(path=str(fill(sae_path, layer=site.layer))), PROMPTS[model]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(PROMPTS), default="organism", help="the subject")
    parser.add_argument("--sae-path", default="{cache}/gemma3/saes/jumprelu_resid_post_{layer}",
                        help="the SAE folder of a model other than the organism, with {layer}")
    parser.add_argument("--layer", type=int, default=3, help="resid_post layer of the SAE")
    parser.add_argument("--features", type=int, default=768, help="features scored by the batched run")
    parser.add_argument("--alone", type=int, default=48, help="of those, features scored one at a time (the slow run)")
    parser.add_argument("--batch-size", type=int, default=1024, help="rows per forward pass in the batched run")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the chapter's notebook uses 1 on CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    site = Site(args.layer)
    lm, sae, prompt = subject(args.model, site, args.sae_path)
    feats = list(range(min(args.features, sae.cfg.d_sae)))
    lens = io.logit_lens(lm, sae, 20, feats)
    io.output_scores(lm, sae, site, feats[:4], lens[:4], prompt, 10.0, batch_size=4)  # warm-up
    runs = {}
    settings = [("batched", len(feats), args.batch_size, True), ("batched, no prefix cache", len(feats), args.batch_size, False),
                ("one at a time", min(args.alone, len(feats)), 1, False)]
    for name, n, batch, prefix in settings:
        start = time.perf_counter()
        scores = io.output_scores(lm, sae, site, feats[:n], lens[:n], prompt, 10.0, batch_size=batch, prefix_cache=prefix)["score"]
        runs[name] = (n, time.perf_counter() - start, scores)
    print(f"output scores on {args.model}, {site} (SAE width {sae.cfg.d_sae}), torch threads {torch.get_num_threads()}")
    for name, (n, seconds, _) in runs.items():
        print(f"  {name:>24}: {n:5d} features in {seconds:7.2f} s  ({n / seconds:8.1f} features/s)")
    rate = {name: n / seconds for name, (n, seconds, _) in runs.items()}
    n_alone = runs["one at a time"][0]
    same = np.allclose(runs["batched"][2][:n_alone], runs["one at a time"][2], atol=1e-5)
    print(f"  batched is {rate['batched'] / rate['one at a time']:.1f}x faster (target: at least 20x); "
          f"scores identical on the {n_alone} shared features: {same}")


if __name__ == "__main__":
    main()
