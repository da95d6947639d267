"""Loading language models and wrapping them for nnsight.

A model is named by a hub id (``google/gemma-2-2b``), a local directory, or
``tiny:<family>`` for a small randomly initialised model built offline (used by
tests and by the methods page). Every intervention of the study goes through
the ``nnsight.TransformersModel`` this module returns.
"""

from __future__ import annotations

import os

import nnsight
import torch
import transformers

from saesteer.core.tiny import tiny_model_and_tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str = "auto") -> str:
    """``'auto'`` means CUDA when a GPU is present, else CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str) -> torch.dtype:
    """A dtype name from ``DTYPES``; anything else is a clear error."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def wrap(model: transformers.PreTrainedModel, tokenizer) -> nnsight.TransformersModel:
    """Wrap an already-built model and tokenizer for nnsight (never touches the hub)."""
    model.eval()
    return nnsight.TransformersModel(model, tokenizer=tokenizer)


def torch_model(lm: nnsight.TransformersModel) -> transformers.PreTrainedModel:
    """The transformers model inside an nnsight wrapper (for plain calls outside a trace)."""
    return lm._module


def load_model(name: str, device: str = "auto", dtype: str = "float32", seed: int = 0) -> nnsight.TransformersModel:
    """Load a model by hub id, local path or ``tiny:<family>`` and wrap it for nnsight.

    Hub loading fails offline with transformers' own error, re-raised as one
    sentence that says what to do.
    """
    torch_dtype = resolve_dtype(dtype)
    if name.startswith("tiny:"):
        model, tokenizer = tiny_model_and_tokenizer(name.split(":", 1)[1], seed=seed)
    else:
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(name)
            model = transformers.AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype)
        except OSError as err:
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            hint = " (HF_HUB_OFFLINE=1 is set)" if offline else ""
            raise FileNotFoundError(
                f"Model {name!r} is neither a local directory nor in the Hugging Face cache{hint}; "
                "download it on a machine with hub access or pass a local path."
            ) from err
    return wrap(model.to(device=resolve_device(device), dtype=torch_dtype), tokenizer)
