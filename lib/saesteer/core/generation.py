"""Generation helpers every chapter shares: the one batched generation loop, the one answer decoder and the
one perplexity."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from saesteer.core.interventions import Edit, batches, forward_with_edits, generate_with_edits
from saesteer.core.progress import bar

EditsFor = Sequence[Edit] | Callable[[list[int]], Sequence[Edit]]


def generate(lm, prompts: Sequence[str], edits_for: EditsFor = (), max_new_tokens: int = 20, batch_size: int = 64,
             progress=False, seed: int | None = None, **sampling) -> list[torch.Tensor]:
    """Generated token ids of ``prompts``, ``batch_size`` rows per generate call: one tensor [rows, new] per
    batch, in order, on the CPU (a batch stops once all its rows have ended, so widths may differ).

    ``edits_for`` is the edits of every batch, or a function of a batch's row indices (into ``prompts``)
    that builds that batch's edits (e.g. one vector or clamp value per row). Greedy unless ``sampling``
    asks otherwise (``do_sample=True``, ``temperature``, ...); with ``seed``, the torch generator is seeded
    with ``seed`` + the batch's first row index before each batch, so a rerun samples the same tokens on CPU.
    ``progress``: true shows a bar over the batches; a tqdm bar is advanced by each batch's rows instead."""
    chunks = list(batches(range(len(prompts)), batch_size))
    shown = bar(chunks, "generating", progress) if isinstance(progress, bool) else chunks
    out = []
    for rows in shown:
        edits = edits_for(rows) if callable(edits_for) else edits_for
        if seed is not None:
            torch.manual_seed(seed + rows[0])
        out.append(generate_with_edits(lm, [prompts[i] for i in rows], edits, max_new_tokens=max_new_tokens,
                                       **sampling).cpu())
        if not isinstance(progress, bool):
            progress.update(len(rows))
    return out


class InverseCdfSampler(LogitsProcessor):
    """Draws each row's next token from softmax(scores / temperature) by inverting its cumulative distribution
    with one uniform number, and hands greedy decoding a row whose only finite score is the drawn token.

    The distribution is generate's ``do_sample=True`` (no top-k or top-p); the cost is not: torch.multinomial
    draws one exponential number per vocabulary entry, 1.25 s a step for 256 rows of Gemma 3's 262,144 words on
    2 CPU cores, more than the model's forward pass, where this draws one number per row. Uses torch's global
    generator, so ``generate``'s ``seed`` makes it repeatable."""

    def __init__(self, temperature: float):
        if temperature <= 0:
            raise ValueError(f"temperature must be positive; got {temperature}.")
        self.temperature = temperature

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        cdf = torch.softmax(scores.float() / self.temperature, dim=-1).cumsum(-1)
        u = torch.rand(len(cdf), 1, device=cdf.device) * cdf[:, -1:]
        token = torch.searchsorted(cdf, u, right=True).clamp_max(cdf.shape[-1] - 1)  # first entry with cdf > u
        return torch.full_like(scores, float("-inf")).scatter_(1, token, 0.0)


def sample_at(temperature: float) -> dict:
    """``generate`` keyword arguments that sample at ``temperature`` from the full distribution (``InverseCdfSampler``)."""
    return {"do_sample": False, "logits_processor": LogitsProcessorList([InverseCdfSampler(temperature)])}


def generate_text(lm, prompts: Sequence[str], edits_for: EditsFor = (), max_new_tokens: int = 20, batch_size: int = 64,
                  progress=False, seed: int | None = None, **sampling) -> list[str]:
    """``generate``'s answers as text (``answer_text``: up to ``<eos>``, padding removed), one per prompt."""
    ids = generate(lm, prompts, edits_for, max_new_tokens, batch_size, progress, seed, **sampling)
    return [text for batch in ids for text in answer_text(lm.tokenizer, batch)]


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
