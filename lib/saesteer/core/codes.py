"""SAE codes of a batch of texts or token ids: one forward pass, the SAE encoder, and which tokens count.

Every chapter computes codes and activations here, so one token rule holds
everywhere. **A token counts when it is a real token of the batch that was run
(the tokenizer's attention mask of the padded batch; a tensor of token ids has
no padding) and, unless ``bos=True``, it is not the ``<bos>`` that opens its
row** (``<bos>`` carries an activation norm far above every other token's, on
the organism and on Gemma). A ``<bos>`` inside a packed row is an ordinary token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from sae_lens import SAE

from saesteer.core.hooks import Site
from saesteer.core.interventions import Edit, read_activations


@dataclass
class Batch:
    """What one forward pass read: the token ids run, the tokens that count, activations and SAE codes."""

    ids: torch.Tensor  # [batch, seq] token ids that were run
    mask: torch.Tensor  # [batch, seq] bool: the tokens that count (see the module's rule)
    acts: dict[Site, torch.Tensor]  # site -> [batch, seq, d] activation, on the model's device
    codes: dict[Site, torch.Tensor] = field(default_factory=dict)  # site -> [batch, seq, d_sae] float32

    def tokens(self, site: Site) -> torch.Tensor:
        """Codes of the tokens that count, row by row: [tokens, d_sae] (CPU)."""
        return self.codes[site].cpu()[self.mask]


def encode(sae: SAE, x: torch.Tensor) -> torch.Tensor:
    """SAE codes of ``x`` ([..., d]) as float32, the input cast to the SAE's dtype."""
    with torch.no_grad():
        return sae.encode(x.to(sae.W_dec.dtype)).float()


def tokenize(tokenizer, inputs: Sequence[str] | torch.Tensor, padding_side: str | None = None,
             max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Token ids and attention mask of strings (padded on ``padding_side``, default the tokenizer's; cut at
    ``max_length`` when given) or of a token-id tensor [batch, seq] (every token real)."""
    if isinstance(inputs, torch.Tensor):
        return {"input_ids": inputs, "attention_mask": torch.ones_like(inputs)}
    cut = {"truncation": True, "max_length": max_length} if max_length is not None else {}
    side = {"padding_side": padding_side} if padding_side is not None else {}
    enc = tokenizer(list(inputs), padding=True, return_tensors="pt", **cut, **side)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def counted(tokenizer, ids: torch.Tensor, attention_mask: torch.Tensor, bos: bool = False) -> torch.Tensor:
    """The module's token rule as a bool mask [batch, seq]: real tokens, without each row's opening <bos>
    unless ``bos``."""
    mask = attention_mask.bool().clone()
    if not bos and tokenizer.bos_token_id is not None:
        rows = torch.arange(len(ids))
        first = mask.float().argmax(1)
        mask[rows, first] &= ids[rows, first] != tokenizer.bos_token_id
    return mask


def read_tokens(lm, sites: Sequence[Site], inputs: Sequence[str] | torch.Tensor, *, edits: Sequence[Edit] = (),
                bos: bool = False, padding_side: str | None = None, max_length: int | None = None) -> Batch:
    """Activations at ``sites`` for ``inputs`` in one forward pass (with ``edits``), with the ids that ran and
    the mask of the tokens that count, both from the same tokenization."""
    enc = tokenize(lm.tokenizer, inputs, padding_side, max_length)
    acts = read_activations(lm, enc, list(sites), edits)  # stops after the last site: no unembedding
    return Batch(enc["input_ids"], counted(lm.tokenizer, enc["input_ids"], enc["attention_mask"], bos), acts)


def sae_codes(lm, saes: Mapping[Site, SAE], inputs: Sequence[str] | torch.Tensor, *, edits: Sequence[Edit] = (),
              bos: bool = False, padding_side: str | None = None, max_length: int | None = None) -> Batch:
    """SAE codes at every site of ``saes`` ({site: SAE}) for a batch of strings or token ids, from one forward
    pass (with ``edits``), with the token mask of that same pass (see the module's rule); ``Batch.tokens(site)``
    gives the codes of the counted tokens."""
    batch = read_tokens(lm, list(saes), inputs, edits=edits, bos=bos, padding_side=padding_side, max_length=max_length)
    batch.codes = {site: encode(sae, batch.acts[site]) for site, sae in saes.items()}
    return batch
