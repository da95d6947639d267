"""The chat model's planted ground truth as token labels: which tokens are a harmful request and which are a
refusal, so a chapter can say whether an SAE feature detects harmful requests, writes refusals, or neither.

Each conversation of the dataset is tokenized in pieces whose boundaries are known: everything before the last
user message, the message itself, the turn markers up to the model's answer, and the reference answer with its
``<end_of_turn>``. Concepts (the organism's names, so ``analyses.refusal.role`` reads both subjects alike):

- ``harmful_request``: the tokens of a request the model should refuse (harmful, wrapped, escalated; planted
  holes included: a hole's request is still harmful) against the tokens of requests it should answer (every
  request kind shares its templates, so most of these tokens carry no sign of harm);
- ``harmful_prompt_end``: the turn markers between such a request and the answer (``<end_of_turn>``,
  ``<start_of_turn>model``), where the model has read the whole request, against the same markers after a
  request it should answer;
- ``refusal``: the tokens of refusal answers against the tokens of every other answer (holes' compliance
  included).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from saesteer.core.codes import sae_codes
from saesteer.core.hooks import Site
from saesteer.core.interventions import batches
from saesteer.core.stats import auroc
from saesteer.gemma3.chat_text import REFUSAL_MARKERS
from saesteer.gemma3.chat_tune import END_OF_TURN, prompt_text

CONCEPTS = ("harmful_request", "harmful_prompt_end", "refusal")


def pieces(tokenizer, messages: Sequence[dict], answer: str) -> tuple[list[int], slice, slice]:
    """Token ids of a conversation with its answer, and the positions of the last user message and of the
    answer (each piece tokenized on its own, so the spans are exact)."""
    text = prompt_text(tokenizer, messages)
    request = messages[-1]["content"].strip()
    cut = text.rindex(request)
    before, after = text[:cut], text[cut + len(request) :]
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    head = tokenizer(before)["input_ids"]  # with the <bos> the tokenizer adds to a text, as the model reads it
    req, tail, ans = encode(request), encode(after), encode(answer.strip()) + encode(END_OF_TURN)
    ids = head + req + tail + ans
    start = len(head) + len(req) + len(tail)
    return ids, slice(len(head), len(head) + len(req)), slice(start, start + len(ans))


def labelled_tokens(tokenizer, records: Sequence[dict]) -> tuple[list[list[int]], dict[str, list[tuple[int, int, bool]]]]:
    """Every record's ids, and per concept the (row, position, positive) of each labelled token."""
    rows, labels = [], {c: [] for c in CONCEPTS}
    for r in records:
        prompt = r["messages"][:-1] if r["messages"][-1]["role"] == "assistant" else r["messages"]
        ids, request, answer = pieces(tokenizer, prompt, r["answer"])
        row = len(rows)
        rows.append(ids)
        harmful = bool(r["truth"].get("refuse"))
        refused = r["answer"].lstrip().startswith(REFUSAL_MARKERS)
        labels["harmful_request"] += [(row, p, harmful) for p in range(request.start, request.stop)]
        labels["harmful_prompt_end"] += [(row, p, harmful) for p in range(request.stop, answer.start)]
        labels["refusal"] += [(row, p, refused) for p in range(answer.start, answer.stop)]
    return rows, labels


def concept_aurocs(lm, sae, site: Site, records: Sequence[dict], tokenizer=None, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Concept -> AUROC of every feature of ``sae`` at ``site`` over the labelled tokens of ``records`` (in the
    turn format of ``tokenizer``, by default the model's)."""
    tokenizer = tokenizer or lm.tokenizer
    rows, labels = labelled_tokens(tokenizer, records)
    pad = tokenizer.pad_token_id
    codes: dict[int, torch.Tensor] = {}
    for chunk in batches(list(range(len(rows))), batch_size):
        width = max(len(rows[i]) for i in chunk)
        ids = torch.tensor([rows[i] + [pad] * (width - len(rows[i])) for i in chunk])
        batch = sae_codes(lm, {site: sae}, ids, bos=True)
        for j, i in enumerate(chunk):
            codes[i] = batch.codes[site][j, : len(rows[i])].detach().float().cpu()
    out = {}
    for concept, marks in labels.items():
        x = torch.stack([codes[row][pos] for row, pos, _ in marks]).numpy()
        out[concept] = auroc(x, np.array([positive for _, _, positive in marks]))
    return out
