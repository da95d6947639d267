"""Word-level tokenizers built offline with ``tokenizers`` and wrapped for transformers."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL = ("<pad>", "<bos>", "<eos>", "<unk>")  # ids 0..3, in this order


def word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over ``SPECIAL + words`` that prepends ``<bos>``.

    Unknown words map to ``<unk>``; padding uses ``<pad>`` (id 0).
    """
    vocab = {w: i for i, w in enumerate(dict.fromkeys([*SPECIAL, *words]))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def pack_rows(pieces: list[list[int]], context: int, max_rows: int | None = None) -> torch.Tensor:
    """Token-id ``pieces`` (tokenized documents) concatenated and cut into full rows [rows, context], at most
    ``max_rows``; the tail that does not fill a row is dropped, so no padding reaches a model (0 rows if short)."""
    stream = [i for piece in pieces for i in piece]
    rows = len(stream) // context if max_rows is None else min(max_rows, len(stream) // context)
    return torch.tensor(stream[: rows * context], dtype=torch.long).view(rows, context)
