"""The committed organism as chapters use it: its folder, manifest, model, SAEs and language.

Loading imports no training code: ``build`` makes the artifacts, this module only reads them.
"""

from __future__ import annotations

from pathlib import Path

import transformers

from saesteer.core.files import read_json, repo_root
from saesteer.core.hooks import Site
from saesteer.core.models import wrap
from saesteer.core.saes import load_sae
from saesteer.organism.language import Language


def folder() -> Path:
    """``data/organism/`` of this repository."""
    return repo_root() / "data" / "organism"


def load_organism(device: str = "cpu", organism_dir: Path | None = None):
    """The committed organism's model and tokenizer, wrapped for nnsight."""
    out = organism_dir or folder()
    tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(out / "tokenizer")
    model = transformers.AutoModelForCausalLM.from_pretrained(out / "model").to(device).eval()
    return wrap(model, tokenizer)


def organism_sae(site: Site, organism_dir: Path | None = None):
    """The organism's SAE at ``site``."""
    return load_sae(path=str((organism_dir or folder()) / "saes" / site.slug))


def manifest(organism_dir: Path | None = None) -> dict:
    """The organism's manifest: configuration (seed included), data hash, sizes, behaviour table."""
    return read_json((organism_dir or folder()) / "manifest.json")


def language(organism_dir: Path | None = None) -> Language:
    """The organism's synthetic language, built with the seed its manifest records."""
    return Language(manifest(organism_dir)["config"]["seed"])


def probes(organism_dir: Path | None = None) -> dict:
    """The ground-truth probe table: for each site and planted concept, the best SAE features (AUROC)."""
    return read_json((organism_dir or folder()) / "probes.json")
