"""Loading language models and wrapping them for nnsight.

A model is named by a hub id (``google/gemma-2-2b``), a local directory, a model
that installs from the package index (``gemma3-270m``: ``core.packaged``), or
``tiny:<family>`` for a small randomly initialised model built offline (used by
tests and by the methods page). Every intervention of the study goes through
the ``nnsight.TransformersModel`` this module returns.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import nnsight
import torch
import transformers

from saesteer.core.packaged import PACKAGED, cached_model_dir, model_cache
from saesteer.core.tiny import FAMILIES, tiny_model_and_tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BUILT = {"gemma3-270m-chat": "make gemma3-chat"}  # models the study builds into its model cache, and the command


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


def missing_model_message(name: str) -> str:
    """One sentence for a hub model that is not here: which model, how to get it, where the cache is."""
    cache = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    how = ("the study runs offline (HF_HUB_OFFLINE=1): on a machine with the hub, accept the model's licence on "
           f"huggingface.co/{name} if it is gated, `huggingface-cli login` with a token, and run "
           f"`HF_HUB_OFFLINE=0 huggingface-cli download {name}`" if os.environ.get("HF_HUB_OFFLINE") == "1" else
           f"the hub did not provide it: accept its licence on huggingface.co/{name} if it is gated and log in with a token")
    return f"Model {name!r} is not in the Hugging Face cache ({cache}) and {how}; or pass a local directory."


def wrap(model: transformers.PreTrainedModel, tokenizer) -> nnsight.TransformersModel:
    """Wrap an already-built model and tokenizer for nnsight (never touches the hub)."""
    model.eval()
    return nnsight.TransformersModel(model, tokenizer=tokenizer)


def model_name_problem(name: str) -> str | None:
    """What is wrong with a model name, or None: a model is "organism", ``tiny:<family>``, a local
    directory or a hub id (``owner/name``); anything else is a typo, caught before anything loads."""
    if name == "organism" or name in PACKAGED or name in BUILT or Path(name).is_dir():
        return None
    if name.startswith("tiny:"):
        return None if name[5:] in FAMILIES else f"the tiny families are {', '.join(FAMILIES)}"
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not name.startswith((".", "/")):
        return None
    if difflib.get_close_matches(name, ["organism"], n=1, cutoff=0.6):
        return "did you mean 'organism'?"
    return (f"it must be 'organism', {', '.join([*PACKAGED, *BUILT])}, tiny:<family>, a local directory or a hub id "
            "(owner/name)")


def torch_model(lm: nnsight.TransformersModel) -> transformers.PreTrainedModel:
    """The transformers model inside an nnsight wrapper (for plain calls outside a trace)."""
    return lm._module


def built_model_dir(name: str) -> Path:
    """The folder of a model the study builds (``BUILT``), or one sentence saying which command builds it."""
    folder = model_cache() / name
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"Model {name!r} is built by the study and is not in {folder}; run `{BUILT[name]}`.")
    return folder


def load_model(name: str, device: str = "auto", dtype: str = "float32", seed: int = 0) -> nnsight.TransformersModel:
    """Load a model by hub id, local path or ``tiny:<family>`` and wrap it for nnsight.

    Hub loading fails offline with transformers' own error, re-raised as one
    sentence that says what to do.
    """
    torch_dtype = resolve_dtype(dtype)
    problem = model_name_problem(name)
    if problem:
        raise ValueError(f"Model {name!r} is not a model; {problem}" + ("" if problem.endswith("?") else "."))
    if name.startswith("tiny:"):
        model, tokenizer = tiny_model_and_tokenizer(name.split(":", 1)[1], seed=seed)
    elif name in PACKAGED or name in BUILT:  # from the package index or the study's build, like a local directory
        folder = cached_model_dir(name) if name in PACKAGED else built_model_dir(name)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
    else:
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(name)
            model = transformers.AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype)
        except OSError as err:
            raise FileNotFoundError(missing_model_message(name)) from err
    return wrap(model.to(device=resolve_device(device), dtype=torch_dtype), tokenizer)
