"""Chapter D, step 3: the output score. Steer each feature on a neutral prompt at the last token (add s times the
largest code at that token, error term kept), many features along the batch dimension of one forward pass;
S_out = P(steered) - P(unsteered) with P = (1 - rank/|V|) * p of the most probable logit-lens token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from saesteer.core.hooks import Site
from saesteer.core.interventions import (
    BoostEach,
    batches,
    last_token_logits,
    prefix_cache,
)


# --- 3. output score --------------------------------------------------------------------------------
def lens_probability(logits: torch.Tensor, lens: torch.Tensor) -> dict[str, torch.Tensor]:
    """P = (1 - rank/|V|) * p of the most probable logit-lens token, per row of ``logits`` [n, V]
    (``lens`` [n, k]); rank 0 is the most probable token of the vocabulary."""
    probs = torch.softmax(logits.float(), dim=-1)
    lens_probs = torch.gather(probs, 1, lens)
    p, best = lens_probs.max(dim=1)
    token = torch.gather(lens, 1, best[:, None])[:, 0]
    rank = (probs > p[:, None]).sum(dim=1).float()
    return {"P": (1 - rank / probs.shape[1]) * p, "p": p, "rank": rank, "token": token}


def prompt_prefix(lm, prompt: str, use_cache: bool = True):
    """Token ids [1, seq] of ``prompt`` and the key/value cache of all but its last token (None when not wanted
    or when the prompt is one token)."""
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"].to(lm.device)
    if not use_cache or ids.shape[1] < 2:
        return ids, None
    return ids, prefix_cache(lm, ids[:, :-1])


def output_scores(lm, sae, site: Site, features: Sequence[int], lens: torch.Tensor, prompt: str, factor: float,
                  batch_size: int = 1024, prefix_cache: bool = True) -> dict:
    """S_out for ``features`` (``lens`` [n, k] their logit lenses): one row per feature in each forward pass,
    each row steering its own feature at the last token of ``prompt`` (the prompt's other tokens run once,
    into a key/value cache, unless ``prefix_cache`` is false)."""
    ids, prefix = prompt_prefix(lm, prompt, prefix_cache)
    base_last = last_token_logits(lm, ids, (), 1, None)
    P, p, rank, token, base_P = [], [], [], [], []
    for chunk in batches(range(len(features)), batch_size):
        feats = [features[i] for i in chunk]
        edit = BoostEach(site=site, sae=sae, features=feats, factors=factor, tokens="last")
        steered = lens_probability(last_token_logits(lm, ids, [edit], len(feats), prefix), lens[chunk])
        base = lens_probability(base_last.expand(len(feats), -1), lens[chunk])
        P.append(steered["P"]), p.append(steered["p"]), rank.append(steered["rank"]), token.append(steered["token"])
        base_P.append(base["P"])
    P, base_P = torch.cat(P), torch.cat(base_P)
    return {"score": (P - base_P).tolist(), "P": P.tolist(), "P_unsteered": base_P.tolist(), "p": torch.cat(p).tolist(),
            "rank": torch.cat(rank).tolist(), "token": torch.cat(token).tolist()}
