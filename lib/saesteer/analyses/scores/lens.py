"""Chapter D, step 1: the logit lens, each feature's top-k tokens of softmax(W_U . norm(d_f)) through the model's
own final norm, unembedding and logit soft-capping.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from saesteer.core.hooks import layout, walk
from saesteer.core.models import torch_model


# --- 1. logit lens ---------------------------------------------------------------------------
def unembed(lm, vectors: torch.Tensor) -> torch.Tensor:
    """Logits of residual-stream ``vectors`` [n, d] through the model's own final norm, unembedding and
    (Gemma-2) final logit soft-capping: the same modules the model's last position goes through."""
    model, lay = torch_model(lm), layout(lm)
    with torch.no_grad():
        weight = walk(model, lay.unembed).weight
        logits = walk(model, lay.unembed)(walk(model, lay.final_norm)(vectors.to(weight.dtype)))
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
    return logits.float()


def logit_lens(lm, sae, k: int, features: Sequence[int] | None = None, batch_size: int = 4096) -> torch.Tensor:
    """Top-``k`` token ids [n_features, k] of softmax(W_U . norm(d_f)), most probable first; special tokens
    (padding, <bos>, <eos>) are left out, since they are no text a feature could write."""
    rows = torch.arange(sae.cfg.d_sae) if features is None else torch.as_tensor(list(features))
    special = [i for i in lm.tokenizer.all_special_ids if i is not None]
    out = []
    for chunk in rows.split(batch_size):
        logits = unembed(lm, sae.W_dec[chunk].detach())
        logits[:, special] = float("-inf")
        out.append(logits.topk(k, dim=-1).indices)
    return torch.cat(out).cpu()


def lens_index(scored: Sequence[dict]) -> dict[tuple[int, int], list[int]]:
    """(layer, feature) -> its logit lens token ids."""
    return {(layer["layer"], f): lens for layer in scored for f, lens in zip(layer["features"], layer["lens"])}
