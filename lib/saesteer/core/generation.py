"""Generation helpers every chapter shares: the one answer decoder and the one perplexity."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from saesteer.core.interventions import forward_with_edits


def answer_text(tokenizer, ids: torch.Tensor) -> list[str]:
    """Generated ids [rows, new] -> answer texts: up to the end of turn (``<eos>``), padding removed, stripped."""
    texts = []
    for row in ids.tolist():
        text = tokenizer.decode(row, skip_special_tokens=False).split(tokenizer.eos_token)[0]
        texts.append(text.replace(tokenizer.pad_token or "\0", "").strip())
    return texts


def perplexity(lm, prompts: Sequence[str], continuations: torch.Tensor) -> torch.Tensor:
    """Per row, the unedited model's perplexity of the continuation ([rows, new] ids; padding after <eos> left
    out) given its prompt. Rows are prompt + continuation padded on the right, so no real token sees a pad
    and positions start at 0 in every row."""
    pad = lm.tokenizer.pad_token_id
    prompt_ids = [lm.tokenizer(p)["input_ids"] for p in prompts]
    rows = [ids + c for ids, c in zip(prompt_ids, continuations.tolist())]
    width = max(map(len, rows))
    logits, _ = forward_with_edits(lm, torch.tensor([r + [pad] * (width - len(r)) for r in rows]))
    logp = torch.log_softmax(logits.float().cpu(), dim=-1)
    out = []
    for i, (ids, cont) in enumerate(zip(prompt_ids, continuations)):
        start = len(ids) - 1  # the logits at this position predict the first generated token
        nll = -logp[i, start : start + len(cont)].gather(1, cont[:, None]).squeeze(1)
        keep = cont != pad
        out.append(torch.exp((nll * keep).sum() / keep.sum().clamp_min(1)))
    return torch.stack(out)
